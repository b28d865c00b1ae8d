-- The fingerprint changes after DDL, COMMENT, GRANT and role membership changes, and not after
-- reads, DML, ANALYZE or VACUUM.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS fp CASCADE;
DROP ROLE IF EXISTS nlq_fp_member;
DROP ROLE IF EXISTS nlq_fp_group;
RESET client_min_messages;
CREATE SCHEMA fp;
CREATE TABLE fp.t (id int PRIMARY KEY, v text);
CREATE TYPE fp.mood AS ENUM ('sad', 'ok');
CREATE ROLE nlq_fp_group;
CREATE ROLE nlq_fp_member;
CREATE TEMP TABLE seen (step text, fingerprint text);
CREATE FUNCTION pg_temp.step(name text) RETURNS text LANGUAGE sql AS $$
  INSERT INTO seen SELECT name, nlq_schema_fingerprint()
  RETURNING CASE WHEN fingerprint = (SELECT s.fingerprint FROM seen s
                                     WHERE s.step <> name ORDER BY ctid DESC LIMIT 1)
                 THEN 'same' ELSE 'changed' END
$$;
SELECT pg_temp.step('start');
SELECT pg_temp.step('read again');
INSERT INTO fp.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
SELECT pg_temp.step('insert');
UPDATE fp.t SET v = 'w' WHERE id < 10;
DELETE FROM fp.t WHERE id = 1;
SELECT pg_temp.step('update and delete');
ANALYZE fp.t;
SELECT pg_temp.step('analyze');
VACUUM (FREEZE) fp.t;
SELECT pg_temp.step('vacuum freeze');
SELECT count(*) FROM fp.t;
SELECT pg_temp.step('select');
ALTER TABLE fp.t ADD COLUMN n int;
SELECT pg_temp.step('add column');
ALTER TABLE fp.t RENAME COLUMN n TO qty;
SELECT pg_temp.step('rename column');
ALTER TABLE fp.t ALTER COLUMN qty TYPE bigint;
SELECT pg_temp.step('alter column type');
ALTER TABLE fp.t DROP COLUMN qty;
SELECT pg_temp.step('drop column');
CREATE INDEX t_v_idx ON fp.t (v);
SELECT pg_temp.step('create index');
ALTER INDEX fp.t_v_idx RENAME TO t_v_index;
SELECT pg_temp.step('rename index');
COMMENT ON TABLE fp.t IS 'a table';
SELECT pg_temp.step('comment on table');
COMMENT ON COLUMN fp.t.v IS 'a value';
SELECT pg_temp.step('comment on column');
COMMENT ON SCHEMA public IS 'the public schema';
SELECT pg_temp.step('comment on schema public');
COMMENT ON SCHEMA public IS 'standard public schema';
SELECT pg_temp.step('comment on schema public again');
TRUNCATE fp.t;  -- a new file for the table: one needless change (documented)
SELECT pg_temp.step('truncate');
GRANT SELECT ON fp.t TO nlq_fp_group;
SELECT pg_temp.step('grant');
GRANT SELECT (v) ON fp.t TO nlq_fp_member;
SELECT pg_temp.step('column grant');
GRANT nlq_fp_group TO nlq_fp_member;
SELECT pg_temp.step('role membership');
ALTER TYPE fp.mood ADD VALUE 'happy';
SELECT pg_temp.step('enum value');
CREATE VIEW fp.v AS SELECT id FROM fp.t;
SELECT pg_temp.step('create view');
CREATE OR REPLACE VIEW fp.v AS SELECT id, v FROM fp.t;
SELECT pg_temp.step('replace view');
ALTER TABLE fp.t ADD CONSTRAINT v_not_empty CHECK (v <> '');
SELECT pg_temp.step('add check');
DROP VIEW fp.v;
SELECT pg_temp.step('drop view');
-- inside one transaction: a new object shows; a transaction changing an object it created
-- itself writes the same xmin again, so its own later read misses that (documented limit)
BEGIN;
CREATE TABLE fp.u (id int);
SELECT pg_temp.step('create table in transaction');
GRANT SELECT ON fp.u TO nlq_fp_group;
SELECT pg_temp.step('grant on it in the same transaction');
COMMIT;
SELECT pg_temp.step('after commit');
-- a change rolled back leaves the fingerprint as it was
BEGIN;
DROP TABLE fp.u;
ROLLBACK;
SELECT fingerprint = nlq_schema_fingerprint() AS unchanged_after_rollback
FROM seen ORDER BY ctid DESC LIMIT 1;
-- the fingerprint depends on who asks
GRANT SELECT ON seen TO nlq_fp_member;
SET ROLE nlq_fp_member;
SELECT nlq_schema_fingerprint() <> (SELECT fingerprint FROM seen ORDER BY ctid DESC LIMIT 1)
       AS differs_for_another_role;
RESET ROLE;
DROP TABLE seen;
DROP SCHEMA fp CASCADE;
DROP ROLE nlq_fp_member;
DROP ROLE nlq_fp_group;
