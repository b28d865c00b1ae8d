-- A least-privilege role for pg-nlq-bridge, for a DBA to read and run.
--
--   psql -d <database> -v role=nlq_bridge -f sql/bridge_role.sql
--   psql -d <database> -c "ALTER ROLE nlq_bridge PASSWORD '...'"   -- or use a certificate
--
-- Run it once per database the bridge may use (grants on schemas and tables are per database;
-- the role itself is created once per server). It is idempotent.
--
-- What the role may do: connect; see and read the tables and views of the ordinary schemas of
-- this database (and those created later by the role running this script); call pg_nlq's
-- functions. What it may not do: own anything, write anything, create anything, read the
-- system's server files or other sessions' activity. Narrow it further with column-level
-- grants (REVOKE SELECT ... ; GRANT SELECT (col, ...) ...): nlq_schema_snapshot() shows the
-- role exactly what it may query. PostgreSQL 15 already keeps PUBLIC from creating objects in
-- schema public; revoking TEMPORARY on the database from PUBLIC also stops temporary tables,
-- but that affects every role, so it is left to the DBA.
\set ON_ERROR_STOP 1
\if :{?role}
\else
  \set role nlq_bridge
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
              :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec

-- Belt and braces at the session level: every transaction read-only, nothing runs forever,
-- no transaction is left open. (pg_nlq's nlq_run adds its own, stricter limits per query.)
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = '60s';
ALTER ROLE :"role" SET lock_timeout = '2s';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = '60s';

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec

-- Ordinary schemas: not the system ones, not those of extensions.
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', n.nspname, :'role'),
       format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', n.nspname, :'role'),
       format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              n.nspname, :'role')
FROM pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                    AND d.deptype = 'e')
ORDER BY n.nspname
\gexec
