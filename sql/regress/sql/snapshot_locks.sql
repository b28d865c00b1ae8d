-- nlq_schema_snapshot() and nlq_schema_fingerprint() are bounded while another session holds
-- ACCESS EXCLUSIVE on a table they describe: the snapshot waits no longer than
-- pg_nlq.lock_timeout (or runs no longer than pg_nlq.statement_timeout), fails with the code at
-- the head of DETAIL and no backtrace; the fingerprint reads only catalog rows and answers; and
-- neither keeps a lock past its own end.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS lk CASCADE;
RESET client_min_messages;
CREATE SCHEMA lk;
CREATE EXTENSION dblink SCHEMA lk;
CREATE TABLE lk.t (id int PRIMARY KEY, n int DEFAULT 1);
CREATE VIEW lk.v AS SELECT id FROM lk.t;
CREATE TABLE lk.other (id int);
-- SQLSTATE, DETAIL and message of what a call raises
CREATE FUNCTION pg_temp.try(sql text) RETURNS TABLE (state text, detail text, message text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  state := '00000';
  RETURN NEXT;
EXCEPTION WHEN query_canceled OR OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL,
                          message = MESSAGE_TEXT;
  RETURN NEXT;
END $$;
-- another session takes ACCESS EXCLUSIVE on lk.t and keeps its transaction open
SELECT lk.dblink_connect('locker', format('host=%s port=%s dbname=%s user=%s',
         split_part(current_setting('unix_socket_directories'), ',', 1),
         current_setting('port'), current_database(), current_user));
SELECT lk.dblink_exec('locker', 'BEGIN');
SELECT lk.dblink_exec('locker', 'LOCK TABLE lk.t IN ACCESS EXCLUSIVE MODE');
-- the caller's own limits would let it wait for 20 s
SET statement_timeout = '20s';
SET lock_timeout = 0;
SET pg_nlq.lock_timeout = 200;
SELECT * FROM pg_temp.try($$SELECT nlq_schema_snapshot(ARRAY['lk'])$$);
-- with no lock timeout of its own, pg_nlq's statement timeout ends the wait
SET pg_nlq.lock_timeout = 0;
SET pg_nlq.statement_timeout = 300;
SELECT * FROM pg_temp.try($$SELECT nlq_schema_snapshot(ARRAY['lk'])$$);
RESET pg_nlq.lock_timeout;
RESET pg_nlq.statement_timeout;
-- the fingerprint reads catalog rows only, and the snapshot of another schema takes no lock
-- on lk.t: both answer while the lock is held
SELECT * FROM pg_temp.try($$SELECT nlq_schema_fingerprint()$$);
SET client_min_messages = warning;
CREATE SCHEMA lk2;
CREATE TABLE lk2.x (id int DEFAULT 0);
RESET client_min_messages;
SELECT * FROM pg_temp.try($$SELECT nlq_schema_snapshot(ARRAY['lk2'])$$);
SELECT lk.dblink_exec('locker', 'ROLLBACK');
SELECT lk.dblink_disconnect('locker');
-- the locks the snapshot's catalog functions take (pg_get_expr, pg_get_viewdef) end with the
-- call, not with the caller's transaction
BEGIN;
SELECT jsonb_path_query_array(nlq_schema_snapshot(ARRAY['lk']), '$.relations[*].name') AS relations;
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'lk'::regnamespace ORDER BY 1, 2;
SELECT length(nlq_schema_fingerprint()) AS fingerprint_length;
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'lk'::regnamespace ORDER BY 1, 2;
COMMIT;
RESET statement_timeout;
RESET lock_timeout;
SET client_min_messages = warning;
DROP SCHEMA lk CASCADE;
DROP SCHEMA lk2 CASCADE;
RESET client_min_messages;
