-- A pg_nlq.* policy stored for a role or a database that is not in force makes every pg_nlq
-- function fail with POLICY_ERROR: never an answer without the policy the DBA wrote.
-- nlq_policy_check() lists every stored entry and its problem.
--
-- Each case stores an entry in a session where pg_nlq is not loaded (a fresh connection that
-- has called no pg_nlq function yet: nothing checks the name or the value then), then logs in
-- as the role it applies to. PostgreSQL only warns and drops the entry (a WARNING when the
-- library is loaded); pg_nlq must refuse to work.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS fc_sales CASCADE;
DROP SCHEMA IF EXISTS fc CASCADE;
DROP ROLE IF EXISTS nlq_fc_r;
RESET client_min_messages;
CREATE SCHEMA fc_sales;
CREATE TABLE fc_sales.orders (id int PRIMARY KEY, amount int);
INSERT INTO fc_sales.orders VALUES (1, 100), (2, 250);
CREATE ROLE nlq_fc_r LOGIN;
GRANT USAGE ON SCHEMA fc_sales TO nlq_fc_r;
GRANT SELECT ON fc_sales.orders TO nlq_fc_r;
-- what each pg_nlq function answers: the code of nlq_validate, the code at the head of the
-- DETAIL of the others' errors (or 'answers')
CREATE SCHEMA fc;
GRANT USAGE ON SCHEMA fc TO PUBLIC;
CREATE FUNCTION fc.probe() RETURNS TABLE (fn text, outcome text) LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  fn := 'nlq_validate';
  outcome := nlq_validate('SELECT amount FROM fc_sales.orders')->>'code';
  RETURN NEXT;
  fn := 'nlq_run';
  BEGIN
    PERFORM nlq_run('SELECT amount FROM fc_sales.orders', 10);
    outcome := 'answers';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    outcome := split_part(d, ':', 1);
  END;
  RETURN NEXT;
  fn := 'nlq_schema_snapshot';
  BEGIN
    PERFORM nlq_schema_snapshot(ARRAY['fc_sales']);
    outcome := 'answers';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    outcome := split_part(d, ':', 1);
  END;
  RETURN NEXT;
  fn := 'nlq_schema_fingerprint';
  BEGIN
    PERFORM nlq_schema_fingerprint();
    outcome := 'answers';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    outcome := split_part(d, ':', 1);
  END;
  RETURN NEXT;
END $$;
-- the entries nlq_policy_check() lists for this test's role and database
CREATE FUNCTION fc.check() RETURNS TABLE (setting text, value text, source text, role text,
                                          severity text, problem text)
LANGUAGE sql AS $$
  SELECT setting, value, source, role, severity, problem FROM nlq_policy_check()
  WHERE role = 'nlq_fc_r' OR database = current_database() OR source = 'global'
     OR source NOT IN ('user', 'database', 'database user', 'global')
$$;
-- no policy: everything answers
\c - nlq_fc_r
SELECT * FROM fc.probe();
SELECT * FROM fc.check();

-- 1. the issue's reproducer: a misspelt name (deny_relations for denied_relations), stored
--    for the role in a session where pg_nlq is not loaded
\c - postgres
ALTER ROLE nlq_fc_r SET pg_nlq.deny_relations = 'fc_sales.*';
\c - nlq_fc_r
SELECT * FROM fc.probe();
SELECT nlq_validate('SELECT amount FROM fc_sales.orders')->>'message' AS message;
SELECT * FROM fc.check();
\c - postgres
ALTER ROLE nlq_fc_r RESET pg_nlq.deny_relations;

-- 2. a value out of range, replaced by the default at login
ALTER ROLE nlq_fc_r SET pg_nlq.max_rows = -5;
\c - nlq_fc_r
SELECT * FROM fc.probe();
SELECT * FROM fc.check();
\c - postgres
ALTER ROLE nlq_fc_r RESET pg_nlq.max_rows;

-- 3. for the database (every role), a misspelt name
SELECT format('ALTER DATABASE %I SET pg_nlq.denied_relation = %L', current_database(),
              'fc_sales.*') \gexec
\c - nlq_fc_r
SELECT * FROM fc.probe();
\c - postgres
SELECT format('ALTER DATABASE %I RESET pg_nlq.denied_relation', current_database()) \gexec

-- 4. for the role in this database, a value that is not a number
SELECT format('ALTER ROLE nlq_fc_r IN DATABASE %I SET pg_nlq.max_cost = %L',
              current_database(), 'lots') \gexec
\c - nlq_fc_r
SELECT * FROM fc.probe();
SELECT * FROM fc.check();
\c - postgres
SELECT format('ALTER ROLE nlq_fc_r IN DATABASE %I RESET pg_nlq.max_cost', current_database())
\gexec

-- 5. for all roles and databases, a misspelt name: the superuser's own session fails too
ALTER ROLE ALL SET pg_nlq.statment_timeout = '5s';
\c - nlq_fc_r
SELECT * FROM fc.probe();
\c - postgres
SELECT fn, outcome FROM fc.probe() WHERE fn = 'nlq_validate';
\c - postgres
ALTER ROLE ALL RESET pg_nlq.statment_timeout;

-- 6. a pattern list that does not parse, stored as a role setting (PostgreSQL keeps it)
ALTER ROLE nlq_fc_r SET pg_nlq.denied_relations = 'fc_sales.';
\c - nlq_fc_r
SELECT * FROM fc.probe();
\c - postgres
ALTER ROLE nlq_fc_r RESET pg_nlq.denied_relations;

-- where pg_nlq is loaded (as it is in every session with shared_preload_libraries or
-- session_preload_libraries = 'pg_nlq'), the same mistakes are refused when typed
SELECT nlq_schema_fingerprint() IS NOT NULL AS loaded;
ALTER ROLE nlq_fc_r SET pg_nlq.deny_relations = 'fc_sales.*';
ALTER ROLE nlq_fc_r SET pg_nlq.max_rows = -5;
ALTER ROLE nlq_fc_r SET pg_nlq.denied_relations = '"fc_sales.orders"';

-- 7. a valid entry stored after the session started is not in force in it (settings apply
--    at login): this session fails closed until it reconnects
SELECT format('ALTER ROLE postgres IN DATABASE %I SET pg_nlq.denied_relations = %L',
              current_database(), 'fc_sales.*') \gexec
SELECT * FROM fc.probe();
SELECT nlq_validate('SELECT 1')->>'message' AS message;
\c - postgres
SELECT * FROM fc.probe();
SELECT format('ALTER ROLE postgres IN DATABASE %I RESET pg_nlq.denied_relations',
              current_database()) \gexec
-- and a setting in force that is no longer stored: reconnect too
SELECT fn, outcome FROM fc.probe() WHERE fn = 'nlq_validate';
\c - postgres
SELECT fn, outcome FROM fc.probe() WHERE fn = 'nlq_validate';

-- 8. a role's settings apply when it logs in, not under SET ROLE: acting as nlq_fc_r in a
--    session that logged in as postgres, nlq_fc_r's policy is not in force
ALTER ROLE nlq_fc_r SET pg_nlq.denied_relations = 'fc_sales.*';
SET ROLE nlq_fc_r;
SELECT * FROM fc.probe();
SELECT nlq_validate('SELECT 1')->>'message' AS message;
RESET ROLE;
\c - nlq_fc_r
SELECT * FROM fc.probe();
\c - postgres
ALTER ROLE nlq_fc_r RESET pg_nlq.denied_relations;

-- 9. a pattern that matches nothing is in force (it may name an object created later) and
--    reported as a warning; so is one in force from SET
ALTER ROLE nlq_fc_r SET pg_nlq.denied_columns = 'fc_sales.orders.amount, fc_sales.orders.amout';
SET pg_nlq.denied_relations = 'fc_sales.order';
SELECT * FROM fc.check();
RESET pg_nlq.denied_relations;
\c - nlq_fc_r
SELECT * FROM fc.probe();
\c - postgres
ALTER ROLE nlq_fc_r RESET ALL;
-- a role that cannot log in: its settings reach no session, not even its members'
CREATE ROLE nlq_fc_group NOLOGIN;
GRANT nlq_fc_group TO nlq_fc_r;
ALTER ROLE nlq_fc_group SET pg_nlq.denied_relations = 'fc_sales.orders';
SELECT setting, value, source, severity, problem FROM nlq_policy_check() WHERE role = 'nlq_fc_group';
DROP ROLE nlq_fc_group;

-- 10. a relation denied by the name it was created with, longer than PostgreSQL keeps
--     (70 characters, stored as the first 63): the pattern is truncated the same way
SET client_min_messages = warning;
CREATE TABLE fc_sales.quarterly_revenue_by_region_and_product_line_for_the_board_2024_q1 (n int);
CREATE TABLE fc_sales."QUARTERLY_revenue_by_region_and_product_line_for_the_board_2024_q1" (n int);
RESET client_min_messages;
SET pg_nlq.denied_relations = 'fc_sales.quarterly_revenue_by_region_and_product_line_for_the_board_2024_q1';
SELECT nlq_validate('SELECT n FROM fc_sales.quarterly_revenue_by_region_and_product_line_for_the_board_2024_q1')->>'code' AS code;
SET pg_nlq.denied_relations = '"fc_sales"."QUARTERLY_revenue_by_region_and_product_line_for_the_board_2024_q1"';
SELECT nlq_validate('SELECT n FROM fc_sales."QUARTERLY_revenue_by_region_and_product_line_for_the_board_2024_q1"')->>'code' AS code;
SET pg_nlq.denied_relations = 'fc_sales."odd.name"';
SHOW pg_nlq.denied_relations;
RESET pg_nlq.denied_relations;

SET client_min_messages = warning;
DROP SCHEMA fc CASCADE;
DROP SCHEMA fc_sales CASCADE;
DROP ROLE nlq_fc_r;
RESET client_min_messages;
