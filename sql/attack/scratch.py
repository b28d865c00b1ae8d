"""Make the scratch database the regression corpus is sent to, and the attacking role.

    python scratch.py --dsn ADMIN_DSN --db nlq_attack --setup STATEMENTS.jsonl --role ROLE

Drops and re-creates DB (template0, UTF8), installs pg_nlq, then EXECUTES, as the superuser
and one by one, the statements of PostgreSQL's test_setup.sql from STATEMENTS.jsonl (the
regression suite's shared tables onek, tenk1, int4_tbl..., their types and functions; the
statements that need the regression suite's data files or C library fail and are skipped),
so that the corpus's queries reach analysis and planning instead of stopping at an unknown
table. The tables stay empty but are ANALYZEd. ROLE (LOGIN, no superuser) gets
pg_read_all_data, so privileges are not what stops its statements either; the policy limits
of both roles: pg_nlq.statement_timeout = 2 s (per role, and per database for the
superuser), a bound well below the driver's own statement_timeout.
Idempotent.
"""

import argparse
import json

import psycopg
from psycopg import sql as q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True, help="a superuser, any database")
    ap.add_argument("--db", required=True)
    ap.add_argument("--setup", required=True)
    ap.add_argument("--role", required=True)
    args = ap.parse_args()
    db, role = q.Identifier(args.db), q.Identifier(args.role)
    with psycopg.connect(args.dsn, dbname="postgres", autocommit=True) as c:
        c.execute("SET client_min_messages = warning")
        c.execute(q.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        c.execute(q.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                        "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'").format(db))
        exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (args.role,)).fetchone()
        if not exists:
            c.execute(q.SQL("CREATE ROLE {} LOGIN").format(role))
        c.execute(q.SQL("GRANT pg_read_all_data TO {}").format(role))
        c.execute(q.SQL("ALTER ROLE {} SET pg_nlq.statement_timeout = 2000").format(role))
        c.execute(q.SQL("ALTER DATABASE {} SET pg_nlq.statement_timeout = 2000").format(db))
    ran = failed = 0
    with psycopg.connect(args.dsn, dbname=args.db, autocommit=True) as c:
        c.execute("SET client_min_messages = error")
        c.execute("CREATE EXTENSION pg_nlq")
        for line in open(args.setup, encoding="utf-8"):
            item = json.loads(line)
            if item["file"] != "test_setup.sql":
                continue
            try:
                c.execute(item["sql"].encode())  # as text: never a client-side parameter
                ran += 1
            except psycopg.Error:
                failed += 1
        c.execute("ANALYZE")
        (tables,) = c.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    print(f"scratch: {args.db} ready, test_setup.sql: {ran} statements ran, {failed} skipped, "
          f"{tables} tables; role {args.role}")


if __name__ == "__main__":
    main()
