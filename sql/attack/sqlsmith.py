"""Generate a reproducible batch of random queries with sqlsmith, as statements for drive.py.

    python sqlsmith.py --target CONNSTR --seed N --max-queries N OUT.jsonl

Runs `sqlsmith --dry-run` (it reads the schema of --target, fixtures and catalogs alike, and
prints queries without running any) with a fixed seed, so a run is the same every time for
the same schema; bounded by --max-queries and a time limit. Each query becomes one JSON line
{"file": "sqlsmith-<seed>", "n", "sql"}.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from split_regress import split  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--max-queries", type=int, required=True)
    ap.add_argument("--timeout-s", type=int, default=120)
    ap.add_argument("out")
    args = ap.parse_args()
    done = subprocess.run(
        ["sqlsmith", f"--target={args.target}", "--dry-run", f"--seed={args.seed}",
         f"--max-queries={args.max_queries}"],
        capture_output=True, timeout=args.timeout_s, check=True)
    queries = split(done.stdout.decode("utf-8", errors="replace"))
    with open(args.out, "w", encoding="utf-8") as f:
        for n, q in enumerate(queries, 1):
            f.write(json.dumps({"file": f"sqlsmith-{args.seed}", "n": n, "sql": q}) + "\n")
    print(f"sqlsmith: {len(queries)} queries (seed {args.seed})", file=sys.stderr)


if __name__ == "__main__":
    main()
