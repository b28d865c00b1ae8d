-- What clients read besides messages (issue 12): argument errors name their argument after
-- INVALID_ARGUMENT, a row limit is at least 1, truncation says which cap cut the rows and its
-- value (and only when a further row existed), a refusal over a limit carries the estimate
-- and the limit as JSON numbers, and a restricted relation, column or function is named in a
-- key of its own, in nlq_validate()'s report and in the DETAIL of nlq_run()'s error alike.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqc CASCADE;
DROP ROLE IF EXISTS nlqc_reader;
RESET client_min_messages;
CREATE SCHEMA nlqc;
CREATE TABLE nlqc.t (id int PRIMARY KEY, note text, secret text);
INSERT INTO nlqc.t SELECT g, 'note ' || g, 's' || g FROM generate_series(1, 10) g;
CREATE TABLE nlqc.hidden (id int);
ANALYZE nlqc.t;
-- SQLSTATE | DETAIL | message of the error a statement raises
CREATE FUNCTION pg_temp.raised(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; detail text; msg text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
  RETURN state || ' | ' || coalesce(detail, '-') || ' | ' || msg;
END $$;
CREATE FUNCTION pg_temp.try(sql text, row_limit int DEFAULT 100) RETURNS text LANGUAGE sql AS
$$ SELECT pg_temp.raised(format('SELECT nlq_run(%L, %L::int)', sql, row_limit)) $$;
CREATE FUNCTION pg_temp.try_snapshot(schemas text[], include_stats bool DEFAULT true) RETURNS text
LANGUAGE sql AS
$$ SELECT pg_temp.raised(format('SELECT nlq_schema_snapshot(%L::text[], %L::bool)', schemas, include_stats)) $$;
-- the DETAIL alone
CREATE FUNCTION pg_temp.detail(sql text) RETURNS text LANGUAGE sql AS
$$ SELECT split_part(pg_temp.try(sql), ' | ', 2) $$;

-- argument errors: INVALID_ARGUMENT, then the argument, at the head of DETAIL
SELECT pg_temp.try(NULL);
SELECT pg_temp.try('SELECT 1', NULL);
SELECT pg_temp.try('SELECT 1', -1);
SELECT pg_temp.try_snapshot(ARRAY['nlqc', 'no_such_schema']);
SELECT pg_temp.try_snapshot(ARRAY['nlqc', NULL]);
SELECT pg_temp.try_snapshot(NULL, NULL);

-- a row limit is at least 1: 0 is refused, not an empty result marked truncated
SELECT pg_temp.try('SELECT 1', 0);
SELECT (nlq_run('SELECT 1', 1) - 'elapsed_ms') AS one_row;
-- ... and so is the DBA's cap
SET pg_nlq.max_rows = 0;

-- truncation says which cap cut the rows, and its value; exactly the limit is not truncated
SELECT r->'row_count' AS n, r->'truncated' AS truncated, r->'truncated_reason' AS reason,
       r->'truncated_limit' AS cap
FROM nlq_run('SELECT id FROM nlqc.t', 10) r;
SELECT r->'row_count' AS n, r->'truncated' AS truncated, r->'truncated_reason' AS reason,
       r->'truncated_limit' AS cap
FROM nlq_run('SELECT id FROM nlqc.t', 9) r;
SET pg_nlq.max_rows = 4;
SELECT r->'row_count' AS n, r->'truncated_reason' AS reason, r->'truncated_limit' AS cap
FROM nlq_run('SELECT id FROM nlqc.t', 50) r;
SELECT r->'row_count' AS n, r->'truncated' AS truncated, r->'truncated_limit' AS cap
FROM nlq_run('SELECT id FROM nlqc.t WHERE id <= 4', 50) r;
RESET pg_nlq.max_rows;
SET pg_nlq.max_result_bytes = 20;
SELECT r->'row_count' AS n, r->'truncated_reason' AS reason, r->'truncated_limit' AS cap
FROM nlq_run('SELECT id FROM nlqc.t ORDER BY id', 50) r;
RESET pg_nlq.max_result_bytes;

-- over a limit: the estimate and the limit as JSON numbers
SET pg_nlq.max_cost = 1;
SELECT v->>'code' AS code, jsonb_typeof(v->'estimated_cost') AS estimated_cost,
       v->'max_cost' AS max_cost, (v->>'estimated_cost')::float8 > 1 AS over
FROM nlq_validate('SELECT * FROM nlqc.t a, nlqc.t b') v;
SELECT split_part(d, ': ', 1) AS code, substr(d, position(': ' in d) + 2)::jsonb - 'estimated_cost' AS facts,
       jsonb_typeof(substr(d, position(': ' in d) + 2)::jsonb->'estimated_cost') AS estimated_cost
FROM (SELECT pg_temp.detail('SELECT * FROM nlqc.t a, nlqc.t b') AS d) x;
RESET pg_nlq.max_cost;
SET pg_nlq.max_rows_estimate = 5;
SELECT v->>'code' AS code, v->'estimated_rows' AS estimated_rows, v->'max_rows_estimate' AS max_rows_estimate
FROM nlq_validate('SELECT * FROM nlqc.t') v;
SELECT pg_temp.try('SELECT * FROM nlqc.t');
RESET pg_nlq.max_rows_estimate;

-- restricted by the DBA's policy: the relation, column or function, in a key of its own
SET pg_nlq.denied_relations = 'nlqc.hidden';
SELECT v->>'code' AS code, v->'relation' AS relation FROM nlq_validate('SELECT * FROM nlqc.hidden') v;
SELECT pg_temp.try('SELECT * FROM nlqc.hidden');
RESET pg_nlq.denied_relations;
SET pg_nlq.denied_columns = 'nlqc.t.secret';
SELECT v->>'code' AS code, v->'column' AS "column" FROM nlq_validate('SELECT secret FROM nlqc.t') v;
SELECT pg_temp.try('SELECT secret FROM nlqc.t');
RESET pg_nlq.denied_columns;
SELECT v->>'code' AS code, v->'function' AS function FROM nlq_validate('SELECT pg_sleep(1)') v;
SELECT pg_temp.try('SELECT pg_sleep(1)');
-- a type input function called with a type that is not a constant
SELECT v->>'code' AS code, v->'function' AS function
FROM nlq_validate('SELECT array_in(''{1}'', t.oid, -1) FROM pg_catalog.pg_type t LIMIT 1') v;
-- ... and by the caller's privileges: PERMISSION_DENIED names the relation or function
CREATE ROLE nlqc_reader;
GRANT USAGE ON SCHEMA nlqc TO nlqc_reader;
GRANT SELECT ON nlqc.t TO nlqc_reader;
CREATE FUNCTION nlqc.private_fn() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
REVOKE EXECUTE ON FUNCTION nlqc.private_fn() FROM PUBLIC;
SET pg_nlq.allowed_functions = 'nlqc.private_fn';
SET ROLE nlqc_reader;
SELECT v->>'code' AS code, v->'relation' AS relation, v->>'sqlstate' AS sqlstate
FROM nlq_validate('SELECT count(*) FROM nlqc.t JOIN nlqc.hidden USING (id)') v;
SELECT pg_temp.try('SELECT * FROM nlqc.hidden');
SELECT v->>'code' AS code, v->'function' AS function FROM nlq_validate('SELECT nlqc.private_fn()') v;
SELECT pg_temp.try('SELECT nlqc.private_fn()');
RESET ROLE;
RESET pg_nlq.allowed_functions;

SET client_min_messages = warning;
DROP SCHEMA nlqc CASCADE;
DROP ROLE nlqc_reader;
RESET client_min_messages;
