#!/usr/bin/env bash
# Benchmark: nlq_schema_snapshot() against information_schema introspection, same run.
#
# Builds (once) database nlq_bench with a generated estate of NTABLES tables of 10 columns
# each (primary key, two more indexes, a foreign key, comments, statistics), then times with
# pgbench, as whole client round trips (query, result transfer, discard):
#   snapshot          SELECT nlq_schema_snapshot()            everything, with statistics
#   fingerprint       SELECT nlq_schema_fingerprint()         the staleness check
#   is_minimal        information_schema columns + key columns (no foreign key targets)
#   is_with_fk        information_schema columns + keys + foreign key targets, as peers query
#                     them (referential_constraints); run only RUNS_SLOW times: it is slow
# and prints the median and mean per query and the ratios against the snapshot.
# Targets (issue 2): snapshot under 100 ms; at least 3x faster than is_minimal.
#
# Usage: make bench            (starts the project cluster first)
#        NTABLES=200 RUNS=5 bench/snapshot.sh
set -euo pipefail
cd "$(dirname "$0")"

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
NTABLES=${NTABLES:-1000}
RUNS=${RUNS:-15}
RUNS_SLOW=${RUNS_SLOW:-1}
DB=${BENCH_DB:-nlq_bench}
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)
OUT=${BENCH_OUT:-$(mktemp -d)}

marker="pg_nlq bench estate: $NTABLES tables, $(sha256sum gen_schema.sql | cut -c1-16)"
if ! "${PSQL[@]}" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
fi
"${PSQL[@]}" -d "$DB" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_nlq"
current=$("${PSQL[@]}" -d "$DB" -Atc "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$DB'")
if [ "$current" != "$marker" ]; then
  echo "building $NTABLES tables in $DB (once)..." >&2
  "${PSQL[@]}" -d "$DB" -v ntables="$NTABLES" -f gen_schema.sql >/dev/null
  "${PSQL[@]}" -d "$DB" -c "COMMENT ON DATABASE $DB IS '$marker'"
fi

echo "SELECT nlq_schema_snapshot();" >"$OUT/snapshot.sql"
echo "SELECT nlq_schema_fingerprint();" >"$OUT/fingerprint.sql"
cp information_schema.sql "$OUT/is_with_fk.sql"
cp information_schema_minimal.sql "$OUT/is_minimal.sql"

# time one script: prints "median mean" in ms over the transactions of one pgbench run
measure() {
  local script=$1 runs=$2
  rm -f "$OUT"/pgbench_log.*
  (cd "$OUT" && "$PG_BIN/pgbench" -n -d "$DB" -f "$script" -t "$runs" -l >/dev/null 2>&1)
  # log columns: client tx latency_us script_no epoch epoch_us
  awk '{print $3/1000}' "$OUT"/pgbench_log.* | sort -n |
    awk '{v[NR]=$1; s+=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f %.1f\n", m, s/NR}'
}

# warm the catalog caches of a first connection; each pgbench run opens its own
"${PSQL[@]}" -d "$DB" -Atc "SELECT length(nlq_schema_snapshot()::text)" >/dev/null

declare -A median mean
for q in snapshot fingerprint is_minimal is_with_fk; do
  runs=$RUNS
  [ "$q" = is_with_fk ] && runs=$RUNS_SLOW
  read -r median[$q] mean[$q] < <(measure "$q.sql" "$runs")
done

size=$("${PSQL[@]}" -d "$DB" -Atc "SELECT octet_length(nlq_schema_snapshot()::text)")
rels=$("${PSQL[@]}" -d "$DB" -Atc "SELECT jsonb_array_length(nlq_schema_snapshot()->'relations')")

printf '\nnlq_schema_snapshot() benchmark: %s relations, document %s bytes, runs %s (is_with_fk %s)\n' \
  "$rels" "$size" "$RUNS" "$RUNS_SLOW"
printf '%-12s %12s %12s %14s\n' query median_ms mean_ms vs_snapshot
for q in snapshot fingerprint is_minimal is_with_fk; do
  ratio=$(awk -v a="${median[$q]}" -v b="${median[snapshot]}" 'BEGIN{printf "%.2fx", a/b}')
  printf '%-12s %12s %12s %14s\n' "$q" "${median[$q]}" "${mean[$q]}" "$ratio"
done
awk -v s="${median[snapshot]}" -v m="${median[is_minimal]}" 'BEGIN{
  printf "\ntarget snapshot < 100 ms: %s (%.1f ms)\n", (s < 100 ? "met" : "NOT met"), s;
  printf "target snapshot >= 3x faster than is_minimal: %s (%.2fx)\n", (m / s >= 3 ? "met" : "NOT met"), m / s }'
