-- Issue 9, item 1: bounded work for any input, for chains of common table expressions. Each
-- CTE reads the one before, so the planner inlines them into a nesting as deep as the chain:
-- plain PostgreSQL takes 2 s to plan 300 of them and more than a minute for 1000, without
-- servicing interrupts (statement_timeout, pg_cancel_backend and pg_terminate_backend have no
-- effect meanwhile). nlq_validate() and nlq_run() must answer (OK, or TOO_COMPLEX) within the
-- statement_timeout of 1 s set here, as in attack_depth.sql.
-- Kept apart from attack_depth.sql because on a build without a limit that catches them the
-- 3000- and 20000-CTE shapes hang the backend running this file (kill -9 alone stops it).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
RESET client_min_messages;
CREATE FUNCTION pg_temp.kind(code text, sqlstate text) RETURNS text LANGUAGE sql AS $$
  SELECT CASE
    WHEN code IN ('TOO_COMPLEX', 'SYNTAX_ERROR') THEN 'too complex'
    WHEN code IN ('INVALID_QUERY', 'EXECUTION_ERROR') AND sqlstate LIKE '54%' THEN 'too complex'
    ELSE code END
$$;
-- what nlq_validate() makes of sql, with `expect` the size class: 'ok' (must be OK), 'big'
-- (must be too complex), 'mid' (either is an answer)
CREATE FUNCTION pg_temp.validate(sql text, expect text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v jsonb; state text; k text;
BEGIN
  v := nlq_validate(sql);
  k := pg_temp.kind(v->>'code', v->>'sqlstate');
  RETURN CASE WHEN expect = 'mid' AND k IN ('OK', 'too complex') THEN 'answered' ELSE k END;
EXCEPTION WHEN OTHERS OR query_canceled THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
  RETURN 'raised ' || state;
END $$;
-- the same for nlq_run(): an answer, or the kind of the code at the head of DETAIL
CREATE FUNCTION pg_temp.run(sql text, expect text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; detail text; msg text; k text;
BEGIN
  BEGIN
    PERFORM nlq_run(sql, 1);
    k := 'OK';
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
    IF state = 'XX000' OR detail || msg ~ '(stack backtrace|\n\s*[0-9]+: |\.rs:[0-9]+)' THEN
      k := 'raised ' || state || ' without a clean code';
    ELSIF state = '57014' AND detail IS DISTINCT FROM 'STATEMENT_TIMEOUT' THEN
      k := 'raised 57014';
    ELSE
      k := pg_temp.kind(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), state);
    END IF;
  END;
  RETURN CASE WHEN expect = 'mid' AND k IN ('OK', 'too complex') THEN 'answered' ELSE k END;
END $$;
CREATE TEMP TABLE shapes (n serial, shape text, size int, expect text, sql text);
INSERT INTO shapes (shape, size, expect, sql)
SELECT shape, size, expect, sql FROM (VALUES
  ('CTE chain', 100, 'ok', 'WITH c0 AS (SELECT 1 AS x)' || (SELECT string_agg(format(', c%s AS (SELECT x FROM c%s)', g, g - 1), '') FROM generate_series(1, 100) g) || ' SELECT x FROM c100'),
  ('CTE chain', 300, 'mid', 'WITH c0 AS (SELECT 1 AS x)' || (SELECT string_agg(format(', c%s AS (SELECT x FROM c%s)', g, g - 1), '') FROM generate_series(1, 300) g) || ' SELECT x FROM c300'),
  ('CTE chain', 3000, 'mid', 'WITH c0 AS (SELECT 1 AS x)' || (SELECT string_agg(format(', c%s AS (SELECT x FROM c%s)', g, g - 1), '') FROM generate_series(1, 3000) g) || ' SELECT x FROM c3000'),
  ('CTE chain', 20000, 'mid', 'WITH c0 AS (SELECT 1 AS x)' || (SELECT string_agg(format(', c%s AS (SELECT x FROM c%s)', g, g - 1), '') FROM generate_series(1, 20000) g) || ' SELECT x FROM c20000')
) AS t(shape, size, expect, sql);
-- one top-level statement per shape and function, so that each call has its own 1 s
SET statement_timeout = '1s';
SELECT format('SELECT n, shape, size, expect, pg_temp.%s(sql, expect) AS %s FROM shapes WHERE n = %s', f, f, n)
FROM shapes, (VALUES (1, 'validate'), (2, 'run')) AS fn(k, f) ORDER BY n, k \gexec
RESET statement_timeout;
