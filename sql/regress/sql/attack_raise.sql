-- Issue 9, item 4: errors PostgreSQL raises as internal (class XX) or that pg_nlq turned into
-- internal ones come back as answers. nlq_validate() answers a code (never raises);
-- nlq_run() raises with a code at the head of DETAIL, a SQLSTATE other than XX000, and no Rust
-- backtrace anywhere in the error (run the server with RUST_BACKTRACE=1 to see the ones this
-- guards against). Immutable calls are folded by the planner, so nlq_validate() sees their
-- error (INVALID_QUERY); stable ones fail only when run (EXECUTION_ERROR).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
RESET client_min_messages;
CREATE FUNCTION pg_temp.validate(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v jsonb; state text;
BEGIN
  v := nlq_validate(sql);
  RETURN v->>'code';
EXCEPTION WHEN OTHERS OR query_canceled THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
  RETURN 'raised ' || state;
END $$;
-- the code at the head of DETAIL, and what is wrong with the error besides
CREATE FUNCTION pg_temp.run(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; detail text; msg text; code text;
BEGIN
  PERFORM nlq_run(sql, 5);
  RETURN 'answered';
EXCEPTION WHEN OTHERS OR query_canceled THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
  code := substring(detail from '^([A-Z][A-Z_]+)(?::|$)');
  RETURN coalesce(code, 'no code')
    || CASE WHEN state = 'XX000' THEN ' +XX000' ELSE '' END
    || CASE WHEN detail || msg ~ '(stack backtrace|\n\s*[0-9]+: |\.rs:[0-9]+)' THEN ' +backtrace' ELSE '' END;
END $$;
CREATE TEMP TABLE shapes (n serial, sql text);
INSERT INTO shapes (sql) VALUES
  -- the issue's reproducers
  ($$SELECT acldefault('x', 0)$$),
  ($$SELECT satisfies_hash_partition(0, 4, 0, NULL)$$),
  ($$SELECT array_in('{1}', 0, -1)$$),
  ($$SELECT pg_identify_object(0, 0, 0)$$),
  -- more "cache lookup failed" / "unrecognized ..." shapes, immutable
  ($$SELECT ts_lexize(0, 'x')$$),
  ($$SELECT to_tsvector(0::oid::regconfig, 'x')$$),
  ($$SELECT * FROM ts_token_type(0)$$),
  ($$SELECT * FROM ts_parse(0, 'x')$$),
  -- ... stable ones, failing at execution
  ($$SELECT record_in('(1)', 16, -1)$$),
  ($$SELECT pg_identify_object_as_address(0, 0, 0)$$),
  ($$SELECT pg_get_replica_identity_index(0)$$),
  -- a stable call in WHERE is folded for the estimate: its error happens while planning
  ($$SELECT relname FROM pg_class WHERE relname = (pg_identify_object(0, 0, 0)).name$$),
  ($$SELECT relname FROM pg_class WHERE relname = array_in('{1}', 0, -1)::text$$),
  -- an ordinary error whose SQLSTATE (22031) pgrx does not know became XX000 with a backtrace
  ($$SELECT jsonb_path_query('null', '$.datetime()')$$),
  ($$SELECT jsonb_path_query('"2017-03-10T12:34:56.789Z"', '$.datetime()')$$),
  ($$SELECT jsonb_path_query_first('"x"', '$.datetime("HH24")')$$);
SELECT n, sql, pg_temp.validate(sql) AS validate, pg_temp.run(sql) AS run FROM shapes ORDER BY n;
