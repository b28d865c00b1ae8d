-- pg_nlq policies, as a DBA sets them: examples to read, adapt and apply one at a time.
--
--   psql -d <database> -v role=nlq_bridge -f sql/policy_examples.sql
--       dry run: every example applied inside a transaction, the result listed, all rolled
--       back; nothing is kept
--   psql -d <database> -v role=nlq_bridge -v example=denied_relations -f sql/policy_examples.sql
--       applies that one example, and nothing else, and keeps it
--
-- The examples, one per setting (the name is the setting's, without pg_nlq.):
--   denied_relations allowed_relations denied_columns allowed_functions denied_functions
--   max_cost max_rows_estimate statement_timeout lock_timeout max_rows max_result_bytes
-- Adapt the values below to your schema before applying one. allowed_relations takes its
-- pattern from -v allowed='...' (default 'reporting.*') and is refused when a pattern matches
-- no relation of the database: the role would be left with nothing to read.
--
-- Every example is stored for the role in the current database only (ALTER ROLE ... IN
-- DATABASE ... SET): never for every role of a database, never for the role in every
-- database. The role must exist (sql/bridge_role.sql creates nlq_bridge); run the script as a
-- superuser, in a database where pg_nlq is installed.
--
-- Every pg_nlq.* setting is SUSET: a superuser sets it in postgresql.conf, per database
-- (ALTER DATABASE ... SET), per role (ALTER ROLE ... SET) or per role in one database
-- (ALTER ROLE ... IN DATABASE ... SET; it takes precedence over the role's own setting). The
-- role it restricts cannot change it, not with SET, RESET, set_config() nor a placeholder set
-- before pg_nlq is loaded. Role and database settings apply at login, so reconnect the bridge
-- after changing them. To undo an example:
--   ALTER ROLE nlq_bridge IN DATABASE <database> RESET pg_nlq.<setting>;
--
-- nlq_validate(sql) shows what a query reads (relations, columns, functions) and which rule
-- refuses it; nlq_run(sql) applies the same rules, plus an executor hook that applies the
-- relation and column rules to everything the query reaches inside functions.

\set ON_ERROR_STOP 1
\set examples 'denied_relations allowed_relations denied_columns allowed_functions denied_functions max_cost max_rows_estimate statement_timeout lock_timeout max_rows max_result_bytes'
\if :{?role}
\else
  \set role nlq_bridge
\endif
\if :{?allowed}
\else
  \set allowed 'reporting.*'
\endif
\if :{?apply}
  -- the old way of keeping the examples kept all of them at once
  SELECT format('DO %L', format('BEGIN RAISE EXCEPTION USING MESSAGE = %L; END',
    '-v apply=1 no longer applies anything: choose one example with -v example=NAME, one of: '
    || :'examples')) \gexec
\endif
\if :{?example}
\else
  \set example ''
\endif

SELECT current_database() AS db,
       :'example' = '' AS dry,
       :'example' = '' OR :'example' = ANY (string_to_array(:'examples', ' ')) AS known,
       :'example' IN ('', 'denied_relations') AS ex_denied_relations,
       :'example' IN ('', 'allowed_relations') AS ex_allowed_relations,
       :'example' IN ('', 'denied_columns') AS ex_denied_columns,
       :'example' IN ('', 'allowed_functions') AS ex_allowed_functions,
       :'example' IN ('', 'denied_functions') AS ex_denied_functions,
       :'example' IN ('', 'max_cost') AS ex_max_cost,
       :'example' IN ('', 'max_rows_estimate') AS ex_max_rows_estimate,
       :'example' IN ('', 'statement_timeout') AS ex_statement_timeout,
       :'example' IN ('', 'lock_timeout') AS ex_lock_timeout,
       :'example' IN ('', 'max_rows') AS ex_max_rows,
       :'example' IN ('', 'max_result_bytes') AS ex_max_result_bytes,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_nlq') AS has_pg_nlq,
       coalesce((SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                 WHERE e.extname = 'pg_nlq'), 'public') AS nlq_schema
\gset
\if :known
\else
  SELECT format('DO %L', format('BEGIN RAISE EXCEPTION USING MESSAGE = %L; END',
    format('there is no example %L: choose one of: %s', :'example', :'examples'))) \gexec
\endif
\if :has_pg_nlq
\else
  SELECT format('DO %L', format('BEGIN RAISE EXCEPTION USING MESSAGE = %L; END',
    format('pg_nlq is not installed in database %I: CREATE EXTENSION pg_nlq first', :'db'))) \gexec
\endif

-- Loaded now, pg_nlq checks every value below when it is set (a typo is refused at once).
LOAD 'pg_nlq';
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
\if :ex_denied_relations
-- Nothing in schema hr, nor the payments table, for the bridge role, wherever it is read from:
-- directly, in a subquery, through a view, in a row-level security policy. A pattern that
-- matches nothing denies nothing.
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.denied_relations = 'hr.*, finance.payments';
\endif

\if :ex_allowed_relations
-- Or the other way round: only the reporting views. A table behind one of them (a view owned
-- by someone else, without security_invoker) is the view's business and stays allowed; a table
-- the query names itself, or reads through a security_invoker view, must be listed. A pattern
-- that matches nothing here would leave the role nothing to read: applying it is refused
-- (the dry run lists the warning).
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.allowed_relations = :'allowed';
\if :dry
\else
SELECT format('DO %L', format('BEGIN RAISE EXCEPTION USING MESSAGE = %L, HINT = %L; END',
         format('pg_nlq.allowed_relations = %L is not applied: %s; the role would have '
                'nothing to read there', :'allowed',
                string_agg(regexp_replace(problem, ' \(it stays in force[^)]*\)', ''), '; ')),
         'name relations of this database, e.g. psql -v allowed=''sales.*, ref.*'''))
FROM :"nlq_schema".nlq_policy_check()
WHERE setting = 'pg_nlq.allowed_relations' AND role = :'role' AND database = :'db'
  AND severity IS NOT NULL
HAVING count(*) > 0
\gexec
\endif
\endif

------------------------------------------------------------------ columns
\if :ex_denied_columns
-- Personal data: refused in any clause (SELECT, WHERE, JOIN, ORDER BY, GROUP BY), through
-- SELECT *, TABLE, a whole-row reference (SELECT c FROM customers c, row_to_json(c)), and
-- through any view whose definition reads the column (even if the query does not select that
-- view column: revoke it from the view too, or give the bridge a narrower view).
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.denied_columns = 'crm.customers.email, crm.customers.phone, *.ssn';
\endif

------------------------------------------------------------------ functions
\if :ex_allowed_functions
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
-- ('public.citext*', 'postgis.st_*') once you have checked what they do. Row-level security
-- policies that call your functions (auth.current_tenant() below) need those functions
-- allowed too.
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.allowed_functions = 'util.slugify, util.fiscal_quarter, public.similarity, auth.current_tenant';
\endif

\if :ex_denied_functions
-- More built-ins to refuse, e.g. those that reveal server details.
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.denied_functions = 'pg_catalog.version, pg_catalog.inet_server_*, pg_catalog.current_setting';
\endif

------------------------------------------------------------------ cost and limits
-- Refuse, before running, queries the planner expects to be expensive (0 = no limit).
\if :ex_max_cost
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.max_cost = 1e7;
\endif
\if :ex_max_rows_estimate
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.max_rows_estimate = 1e8;
\endif
-- Limits of each nlq_run() call (defaults: 10 s, 1 s, 10,000 rows, 10 MB).
\if :ex_statement_timeout
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.statement_timeout = '15s';
\endif
\if :ex_lock_timeout
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.lock_timeout = '500ms';
\endif
\if :ex_max_rows
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.max_rows = 5000;
\endif
\if :ex_max_result_bytes
ALTER ROLE :"role" IN DATABASE :"db" SET pg_nlq.max_result_bytes = '4MB';
\endif

------------------------------------------------------------------ checking
-- Where pg_nlq settings are set, for whom, and what nlq_policy_check() finds wrong with them:
SELECT coalesce(r.rolname, '(all roles)') AS role, coalesce(d.datname, '(all databases)') AS db,
       s.setting
FROM pg_db_role_setting x
LEFT JOIN pg_roles r ON r.oid = x.setrole LEFT JOIN pg_database d ON d.oid = x.setdatabase,
     unnest(x.setconfig) s(setting)
WHERE s.setting LIKE 'pg\_nlq.%'
ORDER BY 1, 2, 3;
SELECT setting, value, source, role, database, severity, problem
FROM :"nlq_schema".nlq_policy_check() WHERE problem IS NOT NULL;

\if :dry
ROLLBACK;
\echo 'dry run: nothing was kept. Apply one example with -v example=NAME, one of:' :examples
\else
COMMIT;
\echo 'applied example' :example 'for role' :role 'in database' :db
\endif

-- What applies to a role (as that role, after reconnecting):
--   SELECT name, setting FROM pg_settings WHERE name LIKE 'pg\_nlq.%' ORDER BY 1;
-- What a query would read, and why it is refused:
--   SELECT jsonb_pretty(nlq_validate('SELECT * FROM crm.customers'));
