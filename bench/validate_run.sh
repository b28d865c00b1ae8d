#!/usr/bin/env bash
# Benchmark: nlq_validate() and nlq_run() against their floors, same run.
#
#   validate   nlq_validate(q) against plain EXPLAIN q (parse, analyse, rewrite, plan) over
#              every must-accept statement of the validation corpus (sql/regress/corpus/)
#   run        nlq_run(q, n) against SELECT json_agg(t) FROM (q) t for results of 10, 1,000
#              and 100,000 rows of a 7-column table (int, text, numeric, timestamptz, bool,
#              text[], jsonb)
# Both sides are timed inside the server, in one session, interleaved call by call, so the
# figures are server time without client round trips. Prints mean latencies and the ratios.
# Targets (issue 3): validate <= 1.3x EXPLAIN; run <= 1.2x json_agg.
#
# Usage: bench/validate_run.sh          (against the project cluster; PGHOST/PGPORT as make sets)
#        ROUNDS=50 bench/validate_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PGHOST=${PGHOST:-/var/lib/postgresql/pg_nlq/run} PGPORT=${PGPORT:-54315} PGUSER=${PGUSER:-postgres}
DB=${BENCH_DB:-nlq_bench_validate}
ROUNDS=${ROUNDS:-20}
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"${PSQL[@]}" -d "$DB" -c "CREATE EXTENSION pg_nlq"
"${PSQL[@]}" -d "$DB" -f sql/regress/corpus/schema.sql -f sql/regress/corpus/statements.sql >/dev/null
"${PSQL[@]}" -d "$DB" -f bench/validate_run.sql >/dev/null

"${PSQL[@]}" -d "$DB" <<SQL
SELECT FROM nlqc_util.corpus_policy();
SET pg_nlq.max_rows = 100000;
SET pg_nlq.max_result_bytes = '1GB';
\echo
\echo nlq_validate() vs EXPLAIN, mean per statement over the must-accept corpus ($ROUNDS rounds)
SELECT * FROM nlqb.validate_vs_explain($ROUNDS);
\echo nlq_run() vs SELECT json_agg(t) FROM (q) t, mean per call
SELECT * FROM nlqb.run_vs_json_agg(10, 50 * $ROUNDS)
UNION ALL SELECT * FROM nlqb.run_vs_json_agg(1000, 5 * $ROUNDS)
UNION ALL SELECT * FROM nlqb.run_vs_json_agg(100000, greatest($ROUNDS / 4, 3));
SQL
echo "targets: validate <= 1.3x EXPLAIN; run <= 1.2x json_agg"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "DROP ROLE IF EXISTS nlqc_reader"
