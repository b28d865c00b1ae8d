-- Issue 9, item 5 (delivery item 6): pg_nlq.max_cost is measured on cost constants the caller
-- cannot change. A role whose max_cost the DBA set (ALTER ROLE ... SET) logs in, sets the
-- planner's cost constants and resource settings in its own session, each alone and all
-- together, and still gets COST_LIMIT_EXCEEDED for a cross join, from nlq_validate() and
-- from nlq_run().
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqk CASCADE;
DROP ROLE IF EXISTS nlqk_caller;
RESET client_min_messages;
CREATE SCHEMA nlqk;
CREATE TABLE nlqk.big AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 2000) g;
ANALYZE nlqk.big;
CREATE ROLE nlqk_caller LOGIN;
GRANT USAGE ON SCHEMA nlqk TO nlqk_caller;
GRANT SELECT ON nlqk.big TO nlqk_caller;
ALTER ROLE nlqk_caller SET pg_nlq.max_cost = 100000;
-- so that a cross join let through ends soon, with STATEMENT_TIMEOUT
ALTER ROLE nlqk_caller SET pg_nlq.statement_timeout = 1000;
\c - nlqk_caller
SHOW pg_nlq.max_cost;
CREATE FUNCTION pg_temp.codes(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v jsonb; detail text; run text;
BEGIN
  v := nlq_validate(sql);
  BEGIN
    PERFORM nlq_run(sql, 1);
    run := 'answered';
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    run := coalesce(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), 'no code');
  END;
  RETURN (v->>'code') || ' / ' || run;
END $$;
\set cross 'SELECT count(*) FROM nlqk.big a, nlqk.big b, nlqk.big c'
-- a cheap query passes, the cross join is refused
SELECT pg_temp.codes('SELECT id FROM nlqk.big WHERE id = 1') AS cheap;
SELECT pg_temp.codes(:'cross') AS cross_join;
-- each setting alone
CREATE TEMP TABLE knobs (n serial, setting text, value text);
INSERT INTO knobs (setting, value) VALUES
  ('seq_page_cost', '0'), ('random_page_cost', '0'), ('cpu_tuple_cost', '0'),
  ('cpu_index_tuple_cost', '0'), ('cpu_operator_cost', '0'), ('parallel_setup_cost', '0'),
  ('parallel_tuple_cost', '0'), ('max_parallel_workers_per_gather', '64'),
  ('min_parallel_table_scan_size', '0'), ('work_mem', '2GB'), ('hash_mem_multiplier', '1000'),
  ('effective_cache_size', '2147483647'), ('jit_above_cost', '-1'), ('enable_nestloop', 'off'),
  ('cursor_tuple_fraction', '0.000001'), ('join_collapse_limit', '1');
CREATE FUNCTION pg_temp.alone(setting text, value text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE result text; old text := current_setting(setting);
BEGIN
  PERFORM set_config(setting, value, true);
  result := pg_temp.codes('SELECT count(*) FROM nlqk.big a, nlqk.big b, nlqk.big c');
  PERFORM set_config(setting, old, true);
  RETURN result;
END $$;
BEGIN;
SELECT setting, value, pg_temp.alone(setting, value) AS cross_join FROM knobs ORDER BY n;
ROLLBACK;
-- the two that matter for a nested loop
BEGIN;
SET LOCAL cpu_tuple_cost = 0;
SET LOCAL cpu_operator_cost = 0;
SELECT pg_temp.codes(:'cross') AS cross_join_tuple_and_operator_zero;
ROLLBACK;
-- all of them together
SET seq_page_cost = 0;
SET random_page_cost = 0;
SET cpu_tuple_cost = 0;
SET cpu_index_tuple_cost = 0;
SET cpu_operator_cost = 0;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET max_parallel_workers_per_gather = 64;
SET min_parallel_table_scan_size = 0;
SET work_mem = '2GB';
SET hash_mem_multiplier = 1000;
SET effective_cache_size = 2147483647;
SELECT pg_temp.codes(:'cross') AS cross_join_all_zero;
SELECT pg_temp.codes('SELECT count(*) FROM nlqk.big a, nlqk.big b') AS two_way_all_zero;
-- the same settings inside a view body or a function the query calls change nothing either
SELECT pg_temp.codes($$SELECT count(*) FROM nlqk.big a, nlqk.big b, nlqk.big c
                       WHERE set_config('cpu_tuple_cost', '0', true) IS NOT NULL$$) AS set_config_inside;
DISCARD TEMP;
\c - postgres
SET client_min_messages = warning;
DROP SCHEMA nlqk CASCADE;
DROP ROLE nlqk_caller;
RESET client_min_messages;
