"""Split PostgreSQL's regression SQL files into single statements.

    python split_regress.py DIR OUT.jsonl

DIR holds psql scripts (the postgres_regress/*.sql that libpg_query bundles in the pglast
sdist). Each statement becomes one JSON line {"file", "n", "sql"} in OUT.jsonl, in file order.

The scripts are psql input, not plain SQL, so before pglast's scanner-based splitter
(pglast.split(with_parser=False): dollar quotes, comments, E'' strings) sees a file:
- psql meta-command lines (\\set, \\c, \\d..., \\if ...) are dropped;
- a statement ended by a meta-command instead of a semicolon (\\gset, \\g, \\gx, \\gexec,
  \\crosstabview, \\watch, \\gdesc) ends there;
- the data lines of COPY ... FROM stdin, up to the \\. line, are dropped.
psql variables (:name, :'name') are left as they are: the validator sees them as the text
they are (a syntax error, mostly). A file the scanner cannot split (an unterminated quote) is
split again statement by statement on the semicolons the scanner did find, and what is left
is sent whole, so no text is lost.
"""

import json
import re
import sys
from pathlib import Path

import pglast

END_META = re.compile(r"\\(gset|gexec|gdesc|gx|g|crosstabview|watch)\b.*$")
COPY_STDIN = re.compile(r"^\s*copy\b.*\bfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)


def psql_to_sql(text):
    out = []
    in_copy = False
    pending = []  # lines of the statement being read, to spot COPY ... FROM stdin
    for line in text.splitlines():
        if in_copy:
            if line.strip() == "\\.":
                in_copy = False
            continue
        stripped = line.lstrip()
        if stripped.startswith("\\"):
            continue
        m = END_META.search(line)
        if m and not line.lstrip().startswith("--"):
            line = line[: m.start()] + ";"
        out.append(line)
        pending.append(line)
        if line.rstrip().endswith(";"):
            if COPY_STDIN.search(" ".join(pending)):
                in_copy = True
            pending = []
    return "\n".join(out) + "\n"


def split(sql):
    try:
        return [s for s in pglast.split(sql, with_parser=False) if s.strip()]
    except Exception:  # noqa: BLE001 - the scanner failed somewhere: fall back, lose nothing
        parts = []
        rest = sql
        while rest.strip():
            try:
                return parts + [s for s in pglast.split(rest, with_parser=False) if s.strip()]
            except Exception:  # noqa: BLE001
                cut = rest.find(";\n")
                if cut < 0:
                    return parts + [rest.strip()]
                parts.append(rest[: cut + 1].strip())
                rest = rest[cut + 2 :]
        return parts


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    total = 0
    with out.open("w", encoding="utf-8") as f:
        for path in sorted(src.glob("*.sql")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            for n, stmt in enumerate(split(psql_to_sql(text)), 1):
                f.write(json.dumps({"file": path.name, "n": n, "sql": stmt}) + "\n")
                total += 1
    print(f"split: {total} statements from {len(list(src.glob('*.sql')))} files", file=sys.stderr)


if __name__ == "__main__":
    main()
