-- Issue 9, item 1: bounded work for any input. Each shape, small, larger and huge, answers
-- within the statement_timeout of 1 s set here (server time, not a wall-clock assertion: a
-- call that ran longer is cancelled and shows as "raised 57014"). nlq_validate() answers OK
-- where PostgreSQL can run the query, "too complex" (TOO_COMPLEX, or SYNTAX_ERROR, or a
-- program-limit error of PostgreSQL's own, SQLSTATE 54xxx) where it cannot, and either for the
-- sizes in between; it never raises. nlq_run() answers or raises with the same kind of code at
-- the head of DETAIL, never XX000, never a backtrace. Then pg_cancel_backend() and
-- pg_terminate_backend() from another session end a long, legal call at once.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
CREATE EXTENSION IF NOT EXISTS dblink;
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
  ('operator chain', 800, 'ok', 'SELECT 1' || repeat('+1', 800)),
  ('operator chain', 3000, 'mid', 'SELECT 1' || repeat('+1', 3000)),
  ('operator chain', 100000, 'big', 'SELECT 1' || repeat('+1', 100000)),
  ('nested CASE', 50, 'ok', 'SELECT ' || repeat('CASE WHEN random() < 2 THEN ', 50) || '1' || repeat(' END', 50)),
  ('nested CASE', 2000, 'mid', 'SELECT ' || repeat('CASE WHEN random() < 2 THEN ', 2000) || '1' || repeat(' END', 2000)),
  ('nested CASE', 50000, 'big', 'SELECT ' || repeat('CASE WHEN random() < 2 THEN ', 50000) || '1' || repeat(' END', 50000)),
  ('nested parentheses', 100, 'ok', 'SELECT ' || repeat('(', 100) || '1' || repeat(')', 100)),
  ('nested parentheses', 5000, 'mid', 'SELECT ' || repeat('(', 5000) || '1' || repeat(')', 5000)),
  ('nested parentheses', 100000, 'big', 'SELECT ' || repeat('(', 100000) || '1' || repeat(')', 100000)),
  ('nested subqueries', 30, 'ok', 'SELECT ' || repeat('(SELECT ', 30) || '1' || repeat(')', 30)),
  ('nested subqueries', 1000, 'mid', 'SELECT ' || repeat('(SELECT ', 1000) || '1' || repeat(')', 1000)),
  ('nested subqueries', 50000, 'big', 'SELECT ' || repeat('(SELECT ', 50000) || '1' || repeat(')', 50000)),
  ('nested FROM subqueries', 30, 'ok', 'SELECT * FROM ' || repeat('(SELECT * FROM ', 30) || '(SELECT 1 AS x) s' || repeat(') s', 30)),
  ('nested FROM subqueries', 1000, 'mid', 'SELECT * FROM ' || repeat('(SELECT * FROM ', 1000) || '(SELECT 1 AS x) s' || repeat(') s', 1000)),
  ('nested FROM subqueries', 30000, 'big', 'SELECT * FROM ' || repeat('(SELECT * FROM ', 30000) || '(SELECT 1 AS x) s' || repeat(') s', 30000)),
  ('nested function calls', 100, 'ok', 'SELECT ' || repeat('abs(', 100) || '1' || repeat(')', 100)),
  ('nested function calls', 3000, 'mid', 'SELECT ' || repeat('abs(', 3000) || '1' || repeat(')', 3000)),
  ('nested function calls', 100000, 'big', 'SELECT ' || repeat('abs(', 100000) || '1' || repeat(')', 100000)),
  ('-> chain', 500, 'ok', 'SELECT ''{}''::jsonb' || repeat('->''a''', 500)),
  ('-> chain', 100000, 'big', 'SELECT ''{}''::jsonb' || repeat('->''a''', 100000)),
  ('deep JSON path', 1000, 'ok', 'SELECT jsonb_path_query(''{}'', ''$' || repeat('.a', 1000) || ''')'),
  ('deep JSON path', 100000, 'mid', 'SELECT jsonb_path_query(''{}'', ''$' || repeat('.a', 100000) || ''')'),
  ('nested jsonpath filters', 100000, 'big', 'SELECT jsonb_path_query(''{}'', ''$' || repeat(' ? (@', 100000) || repeat(')', 100000) || ''')'),
  ('nested JSON literal', 1000, 'ok', 'SELECT ''' || repeat('[', 1000) || repeat(']', 1000) || '''::jsonb'),
  ('nested JSON literal', 200000, 'big', 'SELECT ''' || repeat('[', 200000) || repeat(']', 200000) || '''::jsonb'),
  ('nested ARRAY[]', 6, 'ok', 'SELECT ' || repeat('ARRAY[', 6) || '1' || repeat(']', 6)),
  ('nested ARRAY[]', 100000, 'big', 'SELECT ' || repeat('ARRAY[', 100000) || '1' || repeat(']', 100000)),
  ('nested array literal', 100000, 'big', 'SELECT ''' || repeat('{', 100000) || '1' || repeat('}', 100000) || '''::int[]'),
  ('ROW() nesting', 100000, 'big', 'SELECT ' || repeat('ROW(', 100000) || '1' || repeat(')', 100000)),
  ('NOT chain', 100000, 'big', 'SELECT ' || repeat('NOT ', 100000) || 'true'),
  ('unary minus chain', 100000, 'big', 'SELECT ' || repeat('- ', 100000) || '1'),
  ('AND chain', 1000, 'ok', 'SELECT 1 WHERE ' || repeat('random() < 2 AND ', 1000) || 'true'),
  ('AND chain', 100000, 'mid', 'SELECT 1 WHERE ' || repeat('random() < 2 AND ', 100000) || 'true'),
  ('OR chain', 100000, 'mid', 'SELECT 1 WHERE ' || repeat('random() > 2 OR ', 100000) || 'true'),
  ('parenthesised AND', 100000, 'big', 'SELECT 1 WHERE ' || repeat('(true AND ', 100000) || 'true' || repeat(')', 100000)),
  ('IN list', 1000, 'ok', 'SELECT 1 WHERE 7 IN (' || (SELECT string_agg(g::text, ',') FROM generate_series(1, 1000) g) || ')'),
  ('IN list', 100000, 'mid', 'SELECT 1 WHERE 7 IN (' || (SELECT string_agg(g::text, ',') FROM generate_series(1, 100000) g) || ')'),
  ('IN list of expressions', 50000, 'mid', 'SELECT 1 WHERE random() IN (' || (SELECT string_agg('random()', ',') FROM generate_series(1, 50000) g) || ')'),
  ('UNION chain', 100, 'ok', 'SELECT 1' || repeat(' UNION SELECT 1', 100)),
  ('UNION chain', 3000, 'mid', 'SELECT 1' || repeat(' UNION SELECT 1', 3000)),
  ('UNION chain', 100000, 'big', 'SELECT 1' || repeat(' UNION SELECT 1', 100000)),
  ('UNION ALL chain', 100000, 'mid', 'SELECT 1' || repeat(' UNION ALL SELECT 1', 100000)),
  ('many columns', 1600, 'ok', 'SELECT ' || (SELECT string_agg('1', ',') FROM generate_series(1, 1600) g)),
  ('many columns', 100000, 'mid', 'SELECT ' || (SELECT string_agg('1', ',') FROM generate_series(1, 100000) g)),
  ('many joins', 200, 'mid', 'SELECT 1 FROM ' || (SELECT string_agg(format('(SELECT 1) t%s', g), ', ') FROM generate_series(1, 200) g))
) AS t(shape, size, expect, sql);
-- one top-level statement per shape and function, so that each call has its own 1 s
SET statement_timeout = '1s';
SELECT format('SELECT n, shape, size, expect, pg_temp.%s(sql, expect) AS %s FROM shapes WHERE n = %s', f, f, n)
FROM shapes, (VALUES (1, 'validate'), (2, 'run')) AS fn(k, f) ORDER BY n, k \gexec
RESET statement_timeout;

-- cancel and terminate from another session, during a long legal call: each of these runs for
-- seconds (pg_nlq.statement_timeout, 10 s by default, is the only bound on it); `ended` says
-- whether the call ended within 5 s of the signal
CREATE FUNCTION pg_temp.interrupt(sql text, how text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE victim int; i int := 0; outcome text; conn text := 'victim_' || md5(random()::text);
BEGIN
  PERFORM dblink_connect(conn, format('host=%s port=%s dbname=%s user=%s',
    split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
    current_database(), current_user));
  SELECT p INTO victim FROM dblink(conn, 'SELECT pg_backend_pid()') AS t(p int);
  PERFORM dblink_send_query(conn, sql);
  PERFORM pg_sleep(0.5);
  IF how = 'cancel' THEN
    PERFORM pg_cancel_backend(victim);
    WHILE dblink_is_busy(conn) = 1 AND i < 100 LOOP
      PERFORM pg_sleep(0.05); i := i + 1;
    END LOOP;
    outcome := CASE WHEN dblink_is_busy(conn) = 1 THEN 'still running' ELSE 'ended' END;
  ELSE
    PERFORM pg_terminate_backend(victim);
    WHILE EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = victim) AND i < 100 LOOP
      PERFORM pg_sleep(0.05); i := i + 1;
      PERFORM pg_stat_clear_snapshot();  -- the view is read once per transaction otherwise
    END LOOP;
    outcome := CASE WHEN EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = victim)
                    THEN 'still running' ELSE 'ended' END;
  END IF;
  IF outcome = 'ended' THEN
    PERFORM dblink_disconnect(conn);
  END IF;
  RETURN outcome;
END $$;
CREATE TEMP TABLE long_calls (n serial, label text, sql text);
INSERT INTO long_calls (label, sql) VALUES
  ('nlq_run of a long scan', $$SELECT nlq_run('SELECT count(*) FROM generate_series(1, 1000000000)')$$),
  ('nlq_validate of a 3000-term chain', format('SELECT nlq_validate(%L)', 'SELECT 1' || repeat('+1', 3000))),
  ('nlq_run of a 3000-term chain', format('SELECT nlq_run(%L)', 'SELECT 1' || repeat('+1', 3000)));
SELECT n, label, pg_temp.interrupt(sql, 'cancel') AS cancel, pg_temp.interrupt(sql, 'terminate') AS terminate
FROM long_calls ORDER BY n;
-- leave nothing behind for the files that follow
DROP EXTENSION dblink;
