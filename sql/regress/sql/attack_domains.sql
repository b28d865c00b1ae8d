-- Issue 9, item 3 (delivery item 4): a domain's CHECK calls a function the policy does not
-- allow. Whatever way a value reaches the domain (a cast, an array or record literal, an input
-- function, the populate / to_record functions, XMLTABLE, a range or multirange over it, a
-- domain over it, arrays of composites), nlq_validate() refuses with FORBIDDEN_FUNCTION and
-- lists the function, nlq_run() refuses with the same code, and the function never runs: the
-- session advisory lock it takes is not held after either call (a rolled-back subtransaction
-- does not release session locks).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqd CASCADE;
RESET client_min_messages;
CREATE SCHEMA nlqd;
CREATE FUNCTION nlqd.chk(v int) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_advisory_lock(90909); RETURN v IS NOT NULL; END$$;
CREATE DOMAIN nlqd.d_chk AS int CHECK (nlqd.chk(VALUE));
CREATE DOMAIN nlqd.d_chk2 AS nlqd.d_chk;
CREATE DOMAIN nlqd.d_text AS text CHECK (nlqd.chk(length(VALUE)));
CREATE TYPE nlqd.comp_chk AS (a nlqd.d_chk);
CREATE TYPE nlqd.comp_outer AS (c nlqd.comp_chk);
CREATE TYPE nlqd.r_chk AS RANGE (subtype = nlqd.d_chk, multirange_type_name = nlqd.mr_chk);
CREATE TABLE nlqd.t (id int, doc jsonb);
INSERT INTO nlqd.t VALUES (1, '{"a": 1}');

-- the code nlq_validate() answers, whether chk is listed, the advisory locks held after it;
-- the same for nlq_run()'s refusal
CREATE FUNCTION pg_temp.probe(sql text, OUT validate text, OUT lists_chk bool,
                              OUT locks_after_validate int, OUT run text, OUT locks_after_run int)
LANGUAGE plpgsql AS $$
DECLARE v jsonb; state text; detail text;
BEGIN
  PERFORM pg_advisory_unlock_all();
  BEGIN
    v := nlq_validate(sql);
    validate := v->>'code';
    lists_chk := coalesce(v->'functions' ? 'nlqd.chk', false);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    validate := 'raised ' || state;
  END;
  SELECT count(*) INTO locks_after_validate FROM pg_locks
  WHERE locktype = 'advisory' AND pid = pg_backend_pid();
  PERFORM pg_advisory_unlock_all();
  BEGIN
    PERFORM nlq_run(sql, 5);
    run := 'answered';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    run := coalesce(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), 'no code');
  END;
  SELECT count(*) INTO locks_after_run FROM pg_locks
  WHERE locktype = 'advisory' AND pid = pg_backend_pid();
  PERFORM pg_advisory_unlock_all();
END $$;

CREATE TEMP TABLE shapes (n serial, sql text);
INSERT INTO shapes (sql) VALUES
  ($$SELECT 1::nlqd.d_chk$$),
  ($$SELECT '{1}'::nlqd.d_chk[]$$),
  ($$SELECT '(1)'::nlqd.comp_chk$$),
  ($$SELECT '{"(1)"}'::nlqd.comp_chk[]$$),
  ($$SELECT '("(1)")'::nlqd.comp_outer$$),
  ($$SELECT ROW(1)::nlqd.comp_chk$$),
  ($$SELECT json_populate_record(NULL::nlqd.comp_chk, '{"a": 1}')$$),
  ($$SELECT * FROM jsonb_populate_recordset(NULL::nlqd.comp_chk, '[{"a": 1}]')$$),
  ($$SELECT jsonb_populate_record(NULL::nlqd.comp_chk, doc) FROM nlqd.t$$),
  ($$SELECT * FROM jsonb_to_record('{"a": 1}') AS x(a nlqd.d_chk)$$),
  ($$SELECT * FROM json_to_recordset('[{"a": 1}]') AS x(a nlqd.d_chk)$$),
  ($$SELECT x.* FROM nlqd.t, jsonb_to_record(t.doc) AS x(a nlqd.d_chk)$$),
  ($$SELECT ('{' || id || '}')::nlqd.d_chk[] FROM nlqd.t$$),
  ($$SELECT ('(' || id || ')')::nlqd.comp_chk FROM nlqd.t$$),
  ($$SELECT id::text::nlqd.d_chk FROM nlqd.t$$),
  ($$SELECT CAST(ARRAY['1'] AS nlqd.d_chk[])$$),
  ($$SELECT '1'::nlqd.d_text$$),
  ($$SELECT 1::nlqd.d_chk2$$),
  ($$SELECT '{1}'::nlqd.d_chk2[]$$),
  ($$SELECT '[1,2)'::nlqd.r_chk$$),
  ($$SELECT '{[1,2)}'::nlqd.mr_chk$$),
  ($$SELECT nlqd.r_chk(1, 2)$$),
  ($$SELECT array_in('{1}', 'nlqd.d_chk'::regtype, -1)$$),
  ($$SELECT record_in('(1)', 'nlqd.comp_chk'::regtype, -1)$$),
  ($$SELECT domain_in('1', 'nlqd.d_chk'::regtype, -1)$$),
  ($$SELECT * FROM XMLTABLE('/r' PASSING ('<r><a>1</a></r>'::xml) COLUMNS a nlqd.d_chk PATH 'a')$$),
  ($$SELECT * FROM unnest('{1}'::nlqd.d_chk[]) AS u(a)$$);
SELECT n, sql, p.* FROM shapes, pg_temp.probe(sql) p ORDER BY n;
-- nothing is left held by the whole file
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SET client_min_messages = warning;
DROP SCHEMA nlqd CASCADE;
RESET client_min_messages;
