-- sql/bridge_role.sql gives a role that sees and reads the ordinary schemas, and writes nothing.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS sales CASCADE;
RESET client_min_messages;
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id int PRIMARY KEY, amount numeric);
INSERT INTO sales.orders VALUES (1, 10), (2, 20);
\set role nlq_bridge_regress
\i sql/bridge_role.sql
-- idempotent: a second run changes nothing and fails on nothing
\i sql/bridge_role.sql
\set ON_ERROR_STOP 0
SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin
FROM pg_roles WHERE rolname = 'nlq_bridge_regress';
SELECT unnest(setconfig) AS setting FROM pg_db_role_setting
WHERE setrole = 'nlq_bridge_regress'::regrole ORDER BY 1;
-- a table created later by the owner is readable too (default privileges)
CREATE TABLE sales.refunds (id int, order_id int REFERENCES sales.orders (id));
\c - nlq_bridge_regress
SELECT current_user, current_setting('transaction_read_only') AS read_only;
SELECT r->>'name' AS relation FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY['sales'])->'relations') r
ORDER BY 1;
SELECT count(*) FROM sales.orders;
SELECT count(*) FROM sales.refunds;
-- two layers: the session is read-only, and even a read-write transaction has no privilege
INSERT INTO sales.orders VALUES (3, 30);
CREATE TABLE sales.mine (id int);
BEGIN READ WRITE;
INSERT INTO sales.orders VALUES (3, 30);
ROLLBACK;
BEGIN READ WRITE;
CREATE TABLE sales.mine (id int);
ROLLBACK;
\c - postgres
DROP SCHEMA sales CASCADE;
DROP OWNED BY nlq_bridge_regress;
DROP ROLE nlq_bridge_regress;
