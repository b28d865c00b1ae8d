-- Benchmark bodies for bench/validate_run.sh. Timed inside the server, in one session, with
-- clock_timestamp() around each call, the two sides of each comparison interleaved call by
-- call so that drift and cache effects hit both equally.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS nlqb;
DROP TABLE IF EXISTS nlqb.rows;
CREATE TABLE nlqb.rows (
  id int PRIMARY KEY,
  name text NOT NULL,
  amount numeric(12, 2),
  created_at timestamptz NOT NULL,
  active boolean NOT NULL,
  tags text[],
  payload jsonb
);
INSERT INTO nlqb.rows
SELECT g, 'name ' || g, g * 1.25, timestamptz '2024-01-01' + g * interval '1 minute', g % 3 = 0,
       ARRAY['a' || g % 5, 'b'], jsonb_build_object('k', g % 10, 'label', 'row ' || g)
FROM generate_series(1, 100000) g;
ANALYZE nlqb.rows;

-- nlq_validate() against plain EXPLAIN of the same statement (parse, analyse, rewrite, plan:
-- the floor nlq_validate() cannot go below), over every must-accept statement of the corpus,
-- `rounds` times each. Returns the mean per statement, in microseconds.
CREATE OR REPLACE FUNCTION nlqb.validate_vs_explain(rounds int)
RETURNS TABLE (statements int, explain_us numeric, validate_us numeric, ratio numeric)
LANGUAGE plpgsql AS $$
DECLARE
  c record;
  t0 timestamptz;
  explain_total interval := interval '0';
  validate_total interval := interval '0';
  v jsonb;
  line text;
  n int := 0;
  default_path text := current_setting('search_path');
BEGIN
  FOR c IN SELECT * FROM nlqc_shop.corpus WHERE expect = 'OK' ORDER BY id LOOP
    PERFORM set_config('search_path', coalesce(c.search_path, default_path), true);
    -- warm caches for both, and check the statement is really accepted
    EXECUTE 'EXPLAIN ' || c.sql INTO line;
    v := public.nlq_validate(c.sql);
    IF v->>'code' <> 'OK' THEN
      RAISE EXCEPTION 'corpus statement % not accepted: %', c.id, v;
    END IF;
    FOR i IN 1..rounds LOOP
      t0 := clock_timestamp();
      EXECUTE 'EXPLAIN ' || c.sql INTO line;
      explain_total := explain_total + (clock_timestamp() - t0);
      t0 := clock_timestamp();
      v := public.nlq_validate(c.sql);
      validate_total := validate_total + (clock_timestamp() - t0);
    END LOOP;
    n := n + 1;
  END LOOP;
  PERFORM set_config('search_path', default_path, true);
  statements := n;
  explain_us := round((extract(epoch FROM explain_total) * 1e6 / (n * rounds))::numeric, 1);
  validate_us := round((extract(epoch FROM validate_total) * 1e6 / (n * rounds))::numeric, 1);
  ratio := round(validate_us / explain_us, 2);
  RETURN NEXT;
END $$;

-- nlq_run() against SELECT json_agg(t) FROM (<q>) t for a result of `nrows` rows, `rounds`
-- times each. Returns the mean per call, in milliseconds.
CREATE OR REPLACE FUNCTION nlqb.run_vs_json_agg(nrows int, rounds int)
RETURNS TABLE (result_rows int, json_agg_ms numeric, nlq_run_ms numeric, ratio numeric)
LANGUAGE plpgsql AS $$
DECLARE
  q text := format('SELECT id, name, amount, created_at, active, tags, payload FROM nlqb.rows WHERE id <= %s', nrows);
  t0 timestamptz;
  agg_total interval := interval '0';
  run_total interval := interval '0';
  j json;
  r jsonb;
BEGIN
  EXECUTE format('SELECT json_agg(t) FROM (%s) t', q) INTO j;
  r := public.nlq_run(q, nrows);
  IF (r->>'row_count')::int <> nrows OR (r->>'truncated')::bool THEN
    RAISE EXCEPTION 'nlq_run returned % rows (truncated: %)', r->>'row_count', r->>'truncated';
  END IF;
  FOR i IN 1..rounds LOOP
    t0 := clock_timestamp();
    EXECUTE format('SELECT json_agg(t) FROM (%s) t', q) INTO j;
    agg_total := agg_total + (clock_timestamp() - t0);
    t0 := clock_timestamp();
    r := public.nlq_run(q, nrows);
    run_total := run_total + (clock_timestamp() - t0);
  END LOOP;
  result_rows := nrows;
  json_agg_ms := round((extract(epoch FROM agg_total) * 1e3 / rounds)::numeric, 3);
  nlq_run_ms := round((extract(epoch FROM run_total) * 1e3 / rounds)::numeric, 3);
  ratio := round(nlq_run_ms / json_agg_ms, 2);
  RETURN NEXT;
END $$;
