-- Access, function and cost policy: each pg_nlq.* setting, schema wildcards, the view
-- boundary of allowed_relations, the runtime backstop inside functions, per-role and
-- per-database settings, and what a non-superuser cannot do about any of it.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqp_sales, nlqp_reporting, nlqp_hr CASCADE;
DROP ROLE IF EXISTS nlqp_analyst;
RESET client_min_messages;
CREATE ROLE nlqp_analyst LOGIN;
CREATE SCHEMA nlqp_sales;
CREATE SCHEMA nlqp_reporting;
CREATE SCHEMA nlqp_hr;
CREATE TABLE nlqp_sales.orders (id int, region text, amount numeric, card_number text);
CREATE TABLE nlqp_sales.customers (id int, name text);
CREATE TABLE nlqp_hr.staff (id int, name text, salary numeric);
INSERT INTO nlqp_sales.orders VALUES (1, 'north', 10, '4111'), (2, 'south', 20, '4222');
INSERT INTO nlqp_hr.staff VALUES (1, 'ann', 100);
CREATE VIEW nlqp_reporting.revenue AS
  SELECT region, sum(amount) AS amount FROM nlqp_sales.orders GROUP BY region;
CREATE VIEW nlqp_reporting.revenue_invoker WITH (security_invoker) AS
  SELECT region, amount FROM nlqp_sales.orders;
CREATE FUNCTION nlqp_sales.vat(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 0.2';
CREATE FUNCTION nlqp_sales.top_salary() RETURNS numeric LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT max(salary) FROM nlqp_hr.staff); END$$;
GRANT USAGE ON SCHEMA nlqp_sales, nlqp_reporting, nlqp_hr TO nlqp_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA nlqp_sales, nlqp_reporting, nlqp_hr TO nlqp_analyst;
CREATE FUNCTION pg_temp.check(sql text) RETURNS text LANGUAGE sql AS
  $$SELECT (v->>'code') || coalesce(': ' || (v->>'message'), '') FROM nlq_validate(sql) v$$;

-- What a query reads, after view expansion, schema-qualified: the view and the table behind it
SELECT jsonb_pretty(nlq_validate('SELECT region FROM nlqp_reporting.revenue WHERE amount > 5')
                    - 'estimated_cost' - 'estimated_rows') AS report;
-- estimates are reported for every accepted query
SELECT nlq_validate('SELECT 1')->'estimated_rows' AS estimated_rows,
       jsonb_typeof(nlq_validate('TABLE nlqp_sales.orders')->'estimated_cost') AS estimated_cost;

-- pg_nlq.denied_relations, with a schema wildcard; a view over a denied table is refused too
SET pg_nlq.denied_relations = 'nlqp_hr.*, nlqp_sales.customers';
SELECT pg_temp.check('SELECT * FROM nlqp_hr.staff');
SELECT pg_temp.check('SELECT count(*) FROM nlqp_sales.customers');
SELECT pg_temp.check('SELECT sum(amount) FROM nlqp_sales.orders');
CREATE VIEW nlqp_reporting.staff_names AS SELECT name FROM nlqp_hr.staff;
SELECT pg_temp.check('SELECT * FROM nlqp_reporting.staff_names');
DROP VIEW nlqp_reporting.staff_names;
RESET pg_nlq.denied_relations;

-- pg_nlq.allowed_relations: nothing else may be read with the caller's own privileges; a
-- table behind an allowed view owned by someone else is the view's business, but not one
-- behind a security_invoker view
SET pg_nlq.allowed_relations = 'nlqp_reporting.*';
SELECT pg_temp.check('SELECT * FROM nlqp_reporting.revenue');
SELECT pg_temp.check('SELECT * FROM nlqp_sales.orders');
SELECT pg_temp.check('SELECT * FROM nlqp_reporting.revenue_invoker');
RESET pg_nlq.allowed_relations;

-- pg_nlq.denied_columns: in any clause, through *, whole-row references and views
SET pg_nlq.denied_columns = 'nlqp_sales.orders.card_number';
SELECT pg_temp.check('SELECT id, amount FROM nlqp_sales.orders');
SELECT pg_temp.check('SELECT * FROM nlqp_sales.orders');
SELECT pg_temp.check('SELECT id FROM nlqp_sales.orders WHERE card_number LIKE ''4%''');
SELECT pg_temp.check('SELECT row_to_json(o) FROM nlqp_sales.orders o');
SELECT pg_temp.check('SELECT * FROM nlqp_reporting.revenue');
RESET pg_nlq.denied_columns;

-- functions: user functions need pg_nlq.allowed_functions; pg_nlq.denied_functions extends the
-- built-in deny list, which no setting can lift
SELECT pg_temp.check('SELECT nlqp_sales.vat(amount) FROM nlqp_sales.orders');
SET pg_nlq.allowed_functions = 'nlqp_sales.vat';
SELECT pg_temp.check('SELECT nlqp_sales.vat(amount) FROM nlqp_sales.orders');
SET pg_nlq.denied_functions = 'pg_catalog.md5, *.sha*';
SELECT pg_temp.check('SELECT md5(region) FROM nlqp_sales.orders');
SELECT pg_temp.check('SELECT sha256(region::bytea) FROM nlqp_sales.orders');
SELECT pg_temp.check('SELECT upper(region) FROM nlqp_sales.orders');
SET pg_nlq.allowed_functions = 'pg_catalog.*';
SELECT pg_temp.check('SELECT pg_sleep(1)');
RESET pg_nlq.allowed_functions;
RESET pg_nlq.denied_functions;

-- the runtime backstop: a function the DBA allowed reads a denied table; the validator cannot
-- see inside a PL/pgSQL body, the executor hook can
SET pg_nlq.allowed_functions = 'nlqp_sales.top_salary';
SET pg_nlq.denied_relations = 'nlqp_hr.*';
SELECT pg_temp.check('SELECT nlqp_sales.top_salary()');
\set VERBOSITY default
SELECT nlq_run('SELECT nlqp_sales.top_salary()');
RESET pg_nlq.allowed_functions;
RESET pg_nlq.denied_relations;

-- row-level security quals are part of the query: a policy calling a user function needs
-- that function allowed, for the roles the policy applies to
CREATE TABLE nlqp_sales.notes (owner name, note text);
ALTER TABLE nlqp_sales.notes ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION nlqp_sales.is_me(who name) RETURNS bool LANGUAGE sql STABLE AS 'SELECT who = current_user';
CREATE POLICY mine ON nlqp_sales.notes USING (nlqp_sales.is_me(owner));
GRANT SELECT ON nlqp_sales.notes TO nlqp_analyst;
SET ROLE nlqp_analyst;
SELECT pg_temp.check('SELECT count(*) FROM nlqp_sales.notes');
RESET ROLE;
SET pg_nlq.allowed_functions = 'nlqp_sales.is_me';
SET ROLE nlqp_analyst;
SELECT pg_temp.check('SELECT count(*) FROM nlqp_sales.notes');
RESET ROLE;
RESET pg_nlq.allowed_functions;

-- cost policy: planned, never executed
SET pg_nlq.max_cost = 1000;
SELECT pg_temp.check('SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b');
RESET pg_nlq.max_cost;
SET pg_nlq.max_rows_estimate = 100;
SELECT pg_temp.check('SELECT * FROM generate_series(1, 1000)');
SELECT pg_temp.check('SELECT * FROM generate_series(1, 10)');
RESET pg_nlq.max_rows_estimate;

-- a misspelt pattern is refused when typed
SET pg_nlq.denied_columns = 'card_number';
SET pg_nlq.denied_relations = 'a..b';

-- a non-superuser can change none of it, in any way
SET ROLE nlqp_analyst;
SET pg_nlq.denied_relations = '';
SELECT set_config('pg_nlq.allowed_relations', '', false);
RESET pg_nlq.max_cost;
SET pg_nlq.statement_timeout = 0;
RESET ROLE;

-- settings per role and per database, applied at login
ALTER ROLE nlqp_analyst SET pg_nlq.denied_relations = 'nlqp_sales.customers';
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET pg_nlq.max_rows_estimate = 100;
\c - nlqp_analyst
-- set before pg_nlq is loaded in this session: a placeholder, thrown away when pg_nlq loads
SET pg_nlq.denied_relations = '';
SELECT nlq_validate('SELECT * FROM nlqp_sales.customers')->>'code' AS per_role;
SHOW pg_nlq.denied_relations;
SELECT nlq_validate('SELECT * FROM generate_series(1, 1000)')->>'code' AS per_database;
\c - postgres
ALTER DATABASE :"db" RESET pg_nlq.max_rows_estimate;
-- a stored pattern that does not parse fails closed: every call is refused until it is fixed
ALTER ROLE nlqp_analyst SET pg_nlq.denied_columns = 'card_number';
\c - nlqp_analyst
SELECT nlq_validate('SELECT 1')->>'code' AS code, nlq_validate('SELECT 1')->>'message' AS message;
\c - postgres

SET client_min_messages = warning;
DROP SCHEMA nlqp_sales, nlqp_reporting, nlqp_hr CASCADE;
DROP OWNED BY nlqp_analyst;
DROP ROLE nlqp_analyst;
RESET client_min_messages;
