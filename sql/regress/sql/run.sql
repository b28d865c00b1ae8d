-- nlq_run(): JSON-typed results, row and byte caps that stop the executor, refusals and
-- failures with their SQLSTATE and code, pg_nlq's own timeout, and the caller's transaction
-- left exactly as it was.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqr CASCADE;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
CREATE SCHEMA nlqr;
CREATE TYPE nlqr.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN nlqr.percent AS numeric CHECK (VALUE BETWEEN 0 AND 100);
CREATE TYPE nlqr.point2 AS (x int, y int);
CREATE TABLE nlqr.t (id int PRIMARY KEY, note text);
INSERT INTO nlqr.t SELECT g, 'note ' || g FROM generate_series(1, 10) g;
-- SQLSTATE, the code at the head of DETAIL, and the message of the error nlq_run() raises
CREATE FUNCTION pg_temp.try(sql text, row_limit int DEFAULT 100) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; detail text; msg text;
BEGIN
  PERFORM nlq_run(sql, row_limit);
  RETURN 'no error';
EXCEPTION WHEN OTHERS OR query_canceled THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
  RETURN state || ' | ' || coalesce(detail, '-') || ' | ' || msg;
END $$;

-- one column of each type family: numbers as numbers (NaN and infinities as strings), booleans,
-- json and jsonb embedded, everything else in PostgreSQL's text form
SELECT jsonb_pretty(nlq_run($q$
  SELECT 1::int2 AS i2, 2::int4 AS i4, 9007199254740993::int8 AS i8, 1.5::float4 AS f4,
         -2.25e-5::float8 AS f8, 'NaN'::float8 AS f8_nan, 'Infinity'::numeric AS n_inf,
         123.4500::numeric AS n, 42::nlqr.percent AS domain_number, true AS b,
         'tab	"quote" \ back'::text AS t, 'v'::varchar(3) AS vc, '{"a": [1, null]}'::json AS j,
         '{"b": {"c": true}}'::jsonb AS jb, date '2024-02-29' AS d,
         timestamptz '2024-01-02 03:04:05+00' AS ts, interval '1 day 2 hours' AS iv,
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '\x00ff'::bytea AS by,
         ARRAY[1, 2, NULL] AS arr, 'happy'::nlqr.mood AS e, ROW(1, 2)::nlqr.point2 AS comp,
         NULL::int AS nothing
$q$) - 'elapsed_ms') AS result;
SELECT jsonb_typeof(nlq_run('SELECT 1')->'elapsed_ms') AS elapsed_ms;

-- the row cap: row_limit, bounded by pg_nlq.max_rows; exactly the limit is not truncated
SELECT r->'rows' AS rows, r->'row_count' AS n, r->'truncated' AS truncated, r->>'truncated_reason' AS reason
FROM nlq_run('SELECT id FROM nlqr.t ORDER BY id', 3) r;
SELECT r->'row_count' AS n, r->'truncated' AS truncated FROM nlq_run('SELECT id FROM nlqr.t', 10) r;
-- no rows: the columns are still described (a row_limit below 1 is refused: contract.sql)
SELECT r->'rows' AS rows, r->'truncated' AS truncated, r->'columns' AS columns
FROM nlq_run('SELECT id FROM nlqr.t WHERE id < 0', 5) r;
SET pg_nlq.max_rows = 2;
SELECT r->'row_count' AS n, r->>'truncated_reason' AS reason FROM nlq_run('SELECT id FROM nlqr.t', 50) r;
RESET pg_nlq.max_rows;
-- the executor stops at the cap: a billion-row stream returns at once
SELECT r->'row_count' AS n, r->>'truncated_reason' AS reason
FROM nlq_run('SELECT generate_series(1, 1000000000) AS g', 5) r;

-- the byte cap, on the JSON text of the rows
SET pg_nlq.max_result_bytes = 40;
SELECT r->'rows' AS rows, r->'truncated' AS truncated, r->>'truncated_reason' AS reason
FROM nlq_run('SELECT id, note FROM nlqr.t ORDER BY id') r;
SELECT r->'row_count' AS n, r->>'truncated_reason' AS reason
FROM nlq_run('SELECT repeat(''x'', 1000) AS big') r;
SELECT r->'row_count' AS n, r->>'truncated_reason' AS reason
FROM nlq_run('SELECT generate_series(1, 1000000000) AS g', 1000000) r;
RESET pg_nlq.max_result_bytes;

-- a refused or failing query raises with a specific SQLSTATE and its code in DETAIL
SELECT pg_temp.try('');
SELECT pg_temp.try('SELECT 1; SELECT 2');
SELECT pg_temp.try('SELECT * FROM');
SELECT pg_temp.try('DELETE FROM nlqr.t');
SELECT pg_temp.try('SELECT * INTO nlqr.copy FROM nlqr.t');
SELECT pg_temp.try('SELECT * FROM nlqr.t FOR UPDATE');
SELECT pg_temp.try('WITH d AS (DELETE FROM nlqr.t RETURNING *) SELECT * FROM d');
SELECT pg_temp.try('SELECT pg_sleep(1)');
SELECT pg_temp.try('SELECT nope FROM nlqr.t');
SELECT pg_temp.try('SELECT 1 / 0');
SELECT pg_temp.try('SELECT 1 / (id - id) FROM nlqr.t');
SELECT pg_temp.try('SELECT 1', -1);
SELECT pg_temp.try(NULL);
SET pg_nlq.denied_relations = 'nlqr.t';
SELECT pg_temp.try('SELECT * FROM nlqr.t');
RESET pg_nlq.denied_relations;
SET pg_nlq.max_cost = 10;
SELECT pg_temp.try('SELECT * FROM nlqr.t a, nlqr.t b');
RESET pg_nlq.max_cost;

-- pg_nlq's own statement timeout cancels a runaway query
SET pg_nlq.statement_timeout = '200ms';
SELECT pg_temp.try('SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b');
-- ... and afterwards the caller's own statement_timeout is armed again: this statement, which
-- sleeps past it, is cancelled by it
SET statement_timeout = '1s';
SELECT nlq_run('SELECT 1') IS NOT NULL AS ran, pg_sleep(3);
RESET statement_timeout;
RESET pg_nlq.statement_timeout;

-- the caller's transaction is exactly as it was: read-write, settings unchanged, its own
-- writes visible to the query, no locks left behind, after success and after failure
BEGIN;
SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) AS settings FROM pg_settings \gset
SELECT nlq_run('SELECT count(*) FROM nlqr.t')->'rows' AS rows;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_transaction_id_assigned;
INSERT INTO nlqr.t VALUES (11, 'uncommitted');
SELECT nlq_run('SELECT count(*) AS n FROM nlqr.t')->'rows' AS rows_seen;
SHOW transaction_read_only;
SELECT count(*) AS locks_left FROM pg_locks
WHERE pid = pg_backend_pid() AND relation = 'nlqr.t'::regclass AND mode = 'AccessShareLock';
SELECT pg_temp.try('SELECT * FROM nlqr.t FOR UPDATE') <> 'no error' AS refused;
SELECT pg_temp.try('SELECT 1 / (id - id) FROM nlqr.t') <> 'no error' AS failed;
SHOW transaction_read_only;
INSERT INTO nlqr.t VALUES (12, 'still writable');
SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) = :'settings' AS settings_unchanged
FROM pg_settings;
ROLLBACK;
-- in a read-only transaction it stays read-only
BEGIN READ ONLY;
SELECT nlq_run('SELECT count(*) FROM nlqr.t')->'rows' AS rows;
SHOW transaction_read_only;
ROLLBACK;

-- never SECURITY DEFINER; honest volatility
SELECT p.proname, p.prosecdef, p.provolatile, p.proparallel
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON e.oid = d.refobjid AND d.deptype = 'e'
WHERE e.extname = 'pg_nlq' AND p.proname IN ('nlq_validate', 'nlq_run')
ORDER BY 1;

SET client_min_messages = warning;
DROP SCHEMA nlqr CASCADE;
RESET client_min_messages;
