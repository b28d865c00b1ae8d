-- pg_nlq policies, as a DBA sets them: examples to read and adapt.
--
--   psql -d <database> -v role=nlq_bridge -f sql/policy_examples.sql            (dry run)
--   psql -d <database> -v role=nlq_bridge -v apply=1 -f sql/policy_examples.sql (keeps them)
--
-- The dry run applies every example inside a transaction, lists the result and rolls back.
-- The role must exist (sql/bridge_role.sql creates nlq_bridge); the names in the patterns need
-- not.
--
-- Every pg_nlq.* setting is SUSET: a superuser sets it in postgresql.conf, per database
-- (ALTER DATABASE ... SET), per role (ALTER ROLE ... SET) or per role in one database
-- (ALTER ROLE ... IN DATABASE ... SET). The role it restricts cannot change it, not with SET,
-- RESET, set_config() nor a placeholder set before pg_nlq is loaded. Role and database
-- settings apply at login, so reconnect the bridge after changing them.
--
-- nlq_validate(sql) shows what a query reads (relations, columns, functions) and which rule
-- refuses it; nlq_run(sql) applies the same rules, plus an executor hook that applies the
-- relation and column rules to everything the query reaches inside functions.

\set ON_ERROR_STOP 1
\if :{?role}
\else
  \set role nlq_bridge
\endif
BEGIN;

------------------------------------------------------------------ pattern syntax
-- A comma-separated list of dotted names, spelt as in SQL: unquoted names fold to lower case,
-- "Quoted" names are taken as written, an unquoted * matches any characters within one part.
-- Fewer parts than the full name match the trailing parts (any schema, any table).
--   relations   [schema.]relation             hr.*   public.salaries   salaries
--   columns     [[schema.]table.]column       hr.employees.ssn   employees.ssn   *.ssn
--   functions   [schema.]function             util.slugify   util.*   pg_catalog.md5
-- A typo is refused when you SET or ALTER ... SET it. A bad value that still arrives (from
-- postgresql.conf, or stored before pg_nlq was loaded) makes every nlq_validate()/nlq_run()
-- call fail with POLICY_ERROR until it is fixed: a broken policy never means "no policy".

------------------------------------------------------------------ relations
-- Nothing in schema hr, nor the payments table, for the bridge role, wherever it is read from:
-- directly, in a subquery, through a view, in a row-level security policy.
ALTER ROLE :"role" SET pg_nlq.denied_relations = 'hr.*, finance.payments';

-- Or the other way round: only the reporting views. A table behind one of them (a view owned
-- by someone else, without security_invoker) is the view's business and stays allowed; a table
-- the query names itself, or reads through a security_invoker view, must be listed.
ALTER ROLE :"role" SET pg_nlq.allowed_relations = 'reporting.*';

------------------------------------------------------------------ columns
-- Personal data: refused in any clause (SELECT, WHERE, JOIN, ORDER BY, GROUP BY), through
-- SELECT *, TABLE, a whole-row reference (SELECT c FROM customers c, row_to_json(c)), and
-- through any view whose definition reads the column (even if the query does not select that
-- view column: revoke it from the view too, or give the bridge a narrower view).
ALTER ROLE :"role" SET pg_nlq.denied_columns = 'crm.customers.email, crm.customers.phone, *.ssn';

------------------------------------------------------------------ functions
-- By default a query may call built-in functions that are not volatile, plus a few harmless
-- volatile ones (random, clock_timestamp, gen_random_uuid, the relation size functions, the
-- TABLESAMPLE methods). Never allowed, whatever the settings: sleeping, advisory locks,
-- set_config, sequences, signalling backends, reloading configuration, server files and
-- directories, large objects, dblink*, pg_notify, logical messages, txid_current and kin,
-- query_to_xml and the other *_to_xml functions that run SQL text, ts_stat, statistics resets.
--
-- Your own and extensions' functions need allowing (every overload of the name). Make sure
-- they do not write: nlq_run() would refuse the write anyway, but the query fails. That
-- includes the functions behind an extension's operators, casts and types: comparing citext
-- values calls citext functions, PostGIS queries call st_* functions; allow them by schema
-- ('public.citext*', 'postgis.st_*') once you have checked what they do.
ALTER ROLE :"role" SET pg_nlq.allowed_functions = 'util.slugify, util.fiscal_quarter, public.similarity';
-- Row-level security policies that call your functions need those functions allowed too.
-- (here for every role of the current database; a role's own setting takes precedence)
SELECT format('ALTER DATABASE %I SET pg_nlq.allowed_functions = %L', current_database(),
              'auth.current_tenant') \gexec

-- More built-ins to refuse, e.g. those that reveal server details.
ALTER ROLE :"role" SET pg_nlq.denied_functions = 'pg_catalog.version, pg_catalog.inet_server_*, pg_catalog.current_setting';

------------------------------------------------------------------ cost and limits
-- Refuse, before running, queries the planner expects to be expensive (0 = no limit).
ALTER ROLE :"role" SET pg_nlq.max_cost = 1e7;
ALTER ROLE :"role" SET pg_nlq.max_rows_estimate = 1e8;
-- Limits of each nlq_run() call (defaults: 10 s, 1 s, 10,000 rows, 10 MB).
ALTER ROLE :"role" SET pg_nlq.statement_timeout = '15s';
ALTER ROLE :"role" SET pg_nlq.lock_timeout = '500ms';
ALTER ROLE :"role" SET pg_nlq.max_rows = 5000;
ALTER ROLE :"role" SET pg_nlq.max_result_bytes = '4MB';

------------------------------------------------------------------ checking
-- Where pg_nlq settings are set, for whom:
SELECT coalesce(r.rolname, '(all roles)') AS role, coalesce(d.datname, '(all databases)') AS db,
       s.setting
FROM pg_db_role_setting x
LEFT JOIN pg_roles r ON r.oid = x.setrole LEFT JOIN pg_database d ON d.oid = x.setdatabase,
     unnest(x.setconfig) s(setting)
WHERE s.setting LIKE 'pg\_nlq.%'
ORDER BY 1, 2, 3;

\if :{?apply}
COMMIT;
\else
ROLLBACK;
\endif

-- What applies to a role (as that role, after reconnecting):
--   SELECT name, setting FROM pg_settings WHERE name LIKE 'pg\_nlq.%' ORDER BY 1;
-- What a query would read, and why it is refused:
--   SELECT jsonb_pretty(nlq_validate('SELECT * FROM crm.customers'));
