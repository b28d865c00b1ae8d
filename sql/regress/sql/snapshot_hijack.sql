-- nothing pg_nlq runs for itself resolves an operator, function, cast or relation that another
-- role created. With pg_nlq installed in public and another role allowed to CREATE there,
-- that role's look-alikes (each records its calls) never run during nlq_schema_snapshot(),
-- nlq_schema_fingerprint(), _nlq_column_stats() or nlq_policy_check(): every pg_nlq function
-- pins search_path = pg_catalog, pg_temp and calls its own helper by its schema.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS hj CASCADE;
DROP SCHEMA IF EXISTS hj_data CASCADE;
DROP OWNED BY nlq_hj_evil;
DROP ROLE IF EXISTS nlq_hj_evil;
DROP ROLE IF EXISTS nlq_hj_reader;
RESET client_min_messages;
SELECT e.extnamespace::regnamespace AS pg_nlq_schema FROM pg_extension e WHERE e.extname = 'pg_nlq';
CREATE ROLE nlq_hj_evil;
CREATE ROLE nlq_hj_reader;
GRANT CREATE ON SCHEMA public TO nlq_hj_evil;
-- what the reader may read and the other role may not
CREATE SCHEMA hj_data;
CREATE TABLE hj_data.salaries (id int PRIMARY KEY, name text DEFAULT 'x', pay int);
INSERT INTO hj_data.salaries VALUES (1, 'CEO', 1000000);
CREATE VIEW hj_data.v_pay AS SELECT id, pay FROM hj_data.salaries;
ANALYZE hj_data.salaries;
GRANT USAGE ON SCHEMA hj_data TO nlq_hj_reader;
GRANT SELECT ON hj_data.salaries, hj_data.v_pay TO nlq_hj_reader;
-- the other role's record of calls, writable by anyone
CREATE SCHEMA hj AUTHORIZATION nlq_hj_evil;
SET ROLE nlq_hj_evil;
CREATE TABLE hj.calls (what text, caller name);
GRANT USAGE ON SCHEMA hj TO PUBLIC;
GRANT INSERT, SELECT ON hj.calls TO PUBLIC;
CREATE FUNCTION hj.note(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'look-alike % ran as %', what, current_user;
  INSERT INTO hj.calls VALUES (what, current_user);
END $$;
-- operators that match the built-in operands more exactly than pg_catalog's own
CREATE FUNCTION public.la_cat(a text, b bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('text || bigint'); RETURN a OPERATOR(pg_catalog.||) b::text; END $$;
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = public.la_cat);
CREATE FUNCTION public.la_xor(a bigint, b integer) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('bigint # integer'); RETURN a OPERATOR(pg_catalog.#) b::bigint; END $$;
CREATE OPERATOR public.# (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.la_xor);
CREATE FUNCTION public.la_ge(a oid, b integer) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('oid >= integer'); RETURN a OPERATOR(pg_catalog.>=) b::oid; END $$;
CREATE OPERATOR public.>= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.la_ge);
CREATE FUNCTION public.la_eq(a oid, b integer) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('oid = integer'); RETURN a OPERATOR(pg_catalog.=) b::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.la_eq);
CREATE FUNCTION public.la_lt(a smallint, b bigint) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('smallint < bigint'); RETURN a OPERATOR(pg_catalog.<) b; END $$;
CREATE OPERATOR public.< (LEFTARG = smallint, RIGHTARG = bigint, FUNCTION = public.la_lt);
CREATE FUNCTION public.la_match(a text, b text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('text !~ text'); RETURN a OPERATOR(pg_catalog.!~) b; END $$;
CREATE OPERATOR public.!~ (LEFTARG = name, RIGHTARG = text, FUNCTION = public.la_match);
-- functions: more exact overloads of built-ins, and of pg_nlq's own helper
CREATE FUNCTION public.concat_ws(text, text, text, name, text, text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('concat_ws'); RETURN pg_catalog.concat_ws($1, $2, $3, $4, $5, $6); END $$;
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('quote_ident(name)'); RETURN pg_catalog.quote_ident($1::text); END $$;
-- found by a black-box attack: exact-type overloads of polymorphic built-ins and an aggregate
CREATE FUNCTION public.to_json(text[]) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('to_json(text[])'); RETURN pg_catalog.to_json($1); END $$;
CREATE FUNCTION public.la_agg(name[], name) RETURNS name[] LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('array_agg(name)'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $$;
CREATE AGGREGATE public.array_agg(name) (SFUNC = public.la_agg, STYPE = name[]);
CREATE FUNCTION public.has_table_privilege(oid, unknown) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('has_table_privilege'); RETURN true; END $$;
CREATE FUNCTION public._nlq_column_stats(relids oid[], attnums int2[], inh bool[],
    with_values bool[], max_values bigint, max_len bigint)
RETURNS TABLE (relid oid, attnum int2, null_frac real, n_distinct real,
               common_values text[], common_freqs real[])
LANGUAGE plpgsql AS $$
BEGIN PERFORM hj.note('_nlq_column_stats overload'); END $$;
-- a cast between built-in types cannot be created by another role
CREATE FUNCTION public.la_text(bigint) RETURNS text LANGUAGE sql AS 'SELECT ''x''';
CREATE CAST (bigint AS text) WITH FUNCTION public.la_text(bigint);
-- relations named like pg_catalog's, in public and in the reader's temporary schema below
CREATE VIEW public.pg_class AS SELECT * FROM pg_catalog.pg_class WHERE hj.note('pg_class') IS NULL;
RESET ROLE;
-- the reader takes a snapshot, a fingerprint and a policy check with public on its path
SET ROLE nlq_hj_reader;
SET search_path = public, pg_catalog;
CREATE TEMP VIEW pg_namespace AS SELECT * FROM pg_catalog.pg_namespace;
SELECT jsonb_path_query_array(nlq_schema_snapshot(ARRAY['hj_data']), '$.relations[*].name') AS relations;
SELECT length(nlq_schema_fingerprint()) AS fingerprint_length;
SELECT count(*) >= 0 AS checked FROM nlq_policy_check();
SELECT count(*) AS stats_rows
FROM public._nlq_column_stats(ARRAY['hj_data.salaries'::regclass::oid], ARRAY[3::int2],
                              ARRAY[false], ARRAY[true], 10, 64);
RESET search_path;
RESET ROLE;
-- no look-alike ran
SELECT what, caller, count(*) FROM hj.calls GROUP BY 1, 2 ORDER BY 1, 2;
SET client_min_messages = warning;
DROP SCHEMA hj_data CASCADE;
DROP OWNED BY nlq_hj_evil CASCADE;
DROP SCHEMA IF EXISTS hj CASCADE;
REVOKE CREATE ON SCHEMA public FROM nlq_hj_evil;
DROP ROLE nlq_hj_evil;
DROP OWNED BY nlq_hj_reader;
DROP ROLE nlq_hj_reader;
RESET client_min_messages;
