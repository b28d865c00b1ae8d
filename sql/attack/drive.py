"""Send statements through nlq_validate() and nlq_run() and check the promises hold.

    python drive.py --dsn DSN --input STATEMENTS.jsonl --label NAME [--jobs 2]
                    [--timeout-ms 5000] [--failures OUT.jsonl] [--functions validate,run]

STATEMENTS.jsonl holds one {"file", "n", "sql"} a line (split_regress.py, sqlsmith.py). Every
statement goes, as its own top-level call with `statement_timeout` as its bound, through
`nlq_validate(sql)` and then `nlq_run(sql, 5)`, on at most --jobs sessions at once. It
passes when:

- nlq_validate never raises, answers a jsonb object whose code is a known one;
- nlq_run answers, or raises with a known code at the head of DETAIL, a SQLSTATE that is not
  XX000 (internal error), and no Rust backtrace in DETAIL or the message;
- no backend crashes, no call outlives its bound (a watchdog cancels, then terminates, then
  SIGKILLs a backend that ignores both: reported as HANG);
- no session keeps an advisory lock after a call;
- the checksum of every table, materialized view and sequence of the database, and the count
  of advisory locks in the cluster, is the same before and after.

Prints a summary (statements, code histograms, failures by kind, time) and exits 1 on any
failure; each failure goes to --failures as a JSON line with the statement.
"""

import argparse
import collections
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time

import psycopg

VALIDATE_CODES = {
    "OK", "EMPTY", "SYNTAX_ERROR", "MULTIPLE_STATEMENTS", "NOT_A_QUERY", "SELECT_INTO",
    "LOCKING_CLAUSE", "DATA_MODIFYING_CTE", "FORBIDDEN_FUNCTION", "FORBIDDEN_RELATION",
    "FORBIDDEN_COLUMN", "UNDEFINED_OBJECT", "PERMISSION_DENIED", "COST_LIMIT_EXCEEDED",
    "INVALID_QUERY", "STATEMENT_TIMEOUT", "POLICY_ERROR", "TOO_COMPLEX",
}
# pg_nlq's own failures: a code, but never the answer to a query, so reported as failures
INTERNAL_CODES = {"INTERNAL_ERROR"}
RUN_CODES = VALIDATE_CODES - {"OK"} | {"LOCK_TIMEOUT", "EXECUTION_ERROR", "INVALID_ARGUMENT"}
BACKTRACE = re.compile(r"stack backtrace|^\s+\d+: |\bat \S+\.rs:\d+", re.MULTILINE)
CODE_HEAD = re.compile(r"^([A-Z][A-Z_]+)(?::|$)")


class Watchdog:
    """Ends calls that outlive their bound: cancel, then terminate, then SIGKILL."""

    def __init__(self, admin_dsn, grace_s):
        self.admin_dsn = admin_dsn
        self.grace_s = grace_s
        self.calls = {}  # backend pid -> (started, escalation step)
        self.lock = threading.Lock()
        self.hung = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def begin(self, pid):
        with self.lock:
            self.hung.discard(pid)
            self.calls[pid] = [time.monotonic(), 0]

    def finish(self, pid):
        """End the watch of pid's call; whether the watchdog had to step in."""
        with self.lock:
            self.calls.pop(pid, None)
            hung = pid in self.hung
            self.hung.discard(pid)
            return hung

    def loop(self):
        while not self.stop.wait(0.5):
            now = time.monotonic()
            with self.lock:
                late = [(pid, c) for pid, c in self.calls.items()
                        if now - c[0] > self.grace_s * (c[1] + 1)]
            for pid, c in late:
                with self.lock:
                    self.hung.add(pid)
                step = c[1]
                c[1] += 1
                try:
                    if step < 2:
                        fn = "pg_cancel_backend" if step == 0 else "pg_terminate_backend"
                        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as a:
                            a.execute(f"SELECT {fn}(%s)", (pid,))
                    else:
                        os.kill(pid, signal.SIGKILL)  # a backend of our own session
                except Exception as e:  # noqa: BLE001 - keep watching whatever happens
                    print(f"watchdog: {pid}: {e}", file=sys.stderr)


class Session:
    def __init__(self, dsn, timeout_ms):
        self.dsn = dsn
        self.timeout_ms = timeout_ms
        self.connect()

    def connect(self):
        deadline = time.monotonic() + 90
        while True:
            try:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)  # the server is restarting after a crash
        self.conn.execute(f"SET statement_timeout = {int(self.timeout_ms)}")
        self.conn.execute("SET client_min_messages = error")
        self.pid = self.conn.info.backend_pid


def check_validate(cur_result):
    (doc,) = cur_result
    if not isinstance(doc, dict):
        return None, f"not a jsonb object: {doc!r}"[:300]
    code = doc.get("code")
    if code in INTERNAL_CODES:
        return code, f"pg_nlq failed: {doc.get('message')!r}"[:300]
    if code not in VALIDATE_CODES:
        return code, f"unknown code {code!r}"
    if (doc.get("ok") is True) != (code == "OK"):
        return code, f"ok={doc.get('ok')!r} with code {code}"
    return code, None


def check_run_error(e):
    diag = e.diag
    state = diag.sqlstate or "?"
    detail = diag.message_detail or ""
    message = diag.message_primary or str(e)
    m = CODE_HEAD.match(detail)
    code = m.group(1) if m else None
    problems = []
    if state == "XX000":
        problems.append("SQLSTATE XX000")
    if code in INTERNAL_CODES:
        problems.append(f"pg_nlq failed ({message[:120]!r})")
    elif code not in RUN_CODES:
        problems.append(f"no known code at the head of DETAIL ({detail[:80]!r})")
    if BACKTRACE.search(detail) or BACKTRACE.search(message):
        problems.append("backtrace in the error")
    return code or f"raised {state}", "; ".join(problems) or None


def worker(args, items, results, watchdog, sessions):
    s = Session(args.dsn, args.timeout_ms)
    sessions.append(s)
    for item in items:
        for fn in args.functions:
            if fn == "validate":
                query, params = "SELECT public.nlq_validate(%s)", (item["sql"],)
            else:
                query, params = "SELECT public.nlq_run(%s, 5)", (item["sql"],)
            kind = code = problem = None
            lost = False
            t0 = time.monotonic()
            watchdog.begin(s.pid)
            try:
                row = s.conn.execute(query, params).fetchone()
                if fn == "validate":
                    code, problem = check_validate(row)
                    kind = "BAD_ANSWER" if problem else None
                else:
                    code = "answered"
            except psycopg.Error as e:
                lost = s.conn.closed or s.conn.broken
                if lost:
                    kind, code, problem = "CRASH", "CRASH", str(e).strip()[:300]
                elif fn == "validate":
                    kind, code = "RAISE", f"raised {e.diag.sqlstate}"
                    problem = f"{e.diag.sqlstate}: {e.diag.message_primary} | {e.diag.message_detail or ''}"[:500]
                else:
                    code, problem = check_run_error(e)
                    kind = "BAD_ERROR" if problem else None
                if isinstance(e, psycopg.errors.QueryCanceled) and kind:
                    kind = "HANG"  # outlived pg_nlq.statement_timeout up to the caller's bound
            hung = watchdog.finish(s.pid)
            elapsed = time.monotonic() - t0
            if hung:
                kind, problem = "HANG", f"the watchdog had to end the call after {elapsed:.1f} s ({problem})"
            if lost:
                s.connect()
            elif kind is None:
                try:
                    (locks,) = s.conn.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                    ).fetchone()
                    if locks:
                        kind, problem = "ADVISORY_LOCK_LEFT", f"{locks} advisory lock(s) held after the call"
                        s.conn.execute("SELECT pg_advisory_unlock_all()")
                except psycopg.Error:
                    s.connect()
            results.append((fn, item, code, kind, problem, elapsed))


CHECKSUM_RELATIONS = """
SELECT c.oid::regclass::text, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'S', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast' AND c.relpersistence <> 't'
ORDER BY 1
"""


def checksum(dsn):
    """What exists and what it holds: every table, materialized view and sequence (content),
    and the advisory locks of the whole cluster; as validate_corpus.sql's database_checksum()."""
    parts = []
    with psycopg.connect(dsn, autocommit=True, connect_timeout=30) as c:
        c.execute("SET statement_timeout = 0")
        for rel, kind in c.execute(CHECKSUM_RELATIONS).fetchall():
            if kind == "S":
                q = f"SELECT last_value::text || is_called::text FROM {rel}"
            else:
                q = (f"SELECT count(*)::text || md5(coalesce(string_agg(t::text, E'\\n' "
                     f"ORDER BY t::text), '')) FROM {rel} t")
            parts.append(rel + ":" + c.execute(q).fetchone()[0])
        (locks,) = c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
        parts.append(f"advisory locks:{locks}")
    return f"{len(parts)} relations, " + hashlib.md5("\n".join(parts).encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True, help="the role the statements are sent as")
    ap.add_argument("--admin-dsn", help="a superuser on the same database (default: --dsn)")
    ap.add_argument("--input", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout-ms", type=int, default=5000)
    ap.add_argument("--functions", default="validate,run")
    ap.add_argument("--failures")
    ap.add_argument("--limit", type=int, default=0, help="first N statements only")
    args = ap.parse_args()
    args.functions = args.functions.split(",")
    admin = args.admin_dsn or args.dsn
    items = [json.loads(line) for line in open(args.input, encoding="utf-8")]
    if args.limit:
        items = items[: args.limit]
    jobs = max(1, min(args.jobs, 2))

    t0 = time.monotonic()
    before = checksum(admin)
    watchdog = Watchdog(admin, grace_s=args.timeout_ms / 1000 + 5)
    results, sessions, threads = [], [], []
    for j in range(jobs):
        t = threading.Thread(target=worker, args=(args, items[j::jobs], results, watchdog, sessions))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    after = checksum(admin)  # the sessions are still open: their advisory locks count
    watchdog.stop.set()
    for s in sessions:
        s.conn.close()
    elapsed = time.monotonic() - t0

    hist = {fn: collections.Counter() for fn in args.functions}
    kinds = collections.Counter()
    failures = []
    slow = []
    for fn, item, code, kind, problem, took in results:
        hist[fn][code] += 1
        if kind:
            kinds[kind] += 1
            failures.append({"function": fn, "file": item.get("file"), "n": item.get("n"),
                             "kind": kind, "code": code, "problem": problem,
                             "seconds": round(took, 3), "sql": item["sql"][:4000]})
        slow.append((took, fn, item.get("file"), item.get("n")))
    if before != after:
        kinds["DATABASE_CHANGED"] += 1
        failures.append({"kind": "DATABASE_CHANGED", "problem": f"checksum {before} -> {after}"})

    print(f"== {args.label}: {len(items)} statements x {'+'.join(args.functions)}, "
          f"{jobs} sessions, {elapsed:.1f} s")
    for fn in args.functions:
        print(f"   {fn}: " + ", ".join(f"{c} {n}" for c, n in sorted(hist[fn].items(), key=lambda x: (-x[1], str(x[0])))))
    slow.sort(reverse=True)
    print("   slowest: " + ", ".join(f"{fn} {f}#{n} {t:.2f}s" for t, fn, f, n in slow[:5]))
    print(f"   database checksum {'unchanged' if before == after else 'CHANGED'}")
    if failures:
        print(f"   FAILURES: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
        for f in failures[:15]:
            sql = (f.get("sql") or "").replace("\n", " ")
            print(f"     {f['kind']} {f.get('function','')} {f.get('file','')}#{f.get('n','')}: "
                  f"{f.get('problem')} :: {sql[:160]}")
        if args.failures:
            with open(args.failures, "w", encoding="utf-8") as out:
                for f in failures:
                    out.write(json.dumps(f) + "\n")
            print(f"   all {len(failures)} failures in {args.failures}")
    else:
        print("   no failure")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
