-- The access policy follows the data wherever it is read from (issue 9, items 2 and 9):
-- statistics catalogs, partitions and inheritance children read through an ancestor (and a
-- column denied on one denied on the others), materialized views, the columns a view really
-- reads, partition keys (tableoid, bounds) and generated columns. Each check goes through the
-- validator, through nlq_run (the runtime hook also sees the planned range table), and where
-- a DBA-allowed function reads the data, through the runtime hook alone.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqd CASCADE;
RESET client_min_messages;
CREATE SCHEMA nlqd;
CREATE FUNCTION pg_temp.check(sql text) RETURNS text LANGUAGE sql AS
  $$SELECT (v->>'code') || coalesce(': ' || (v->>'message'), '') FROM nlq_validate(sql) v$$;
-- nlq_run's outcome: the rows, or the code at the head of the refusal's DETAIL
CREATE FUNCTION pg_temp.run(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  RETURN (SELECT coalesce(r->>'rows', r::text) FROM nlq_run(sql, 100) r);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN 'raised ' || split_part(coalesce(d, SQLSTATE), ':', 1);
END $$;

-- statistics
CREATE TABLE nlqd.emp (id int, name text, salary int);
INSERT INTO nlqd.emp SELECT g, 'n' || g % 3, 1000 * (g % 4) FROM generate_series(1, 100) g;
CREATE STATISTICS nlqd.emp_st (mcv) ON name, salary FROM nlqd.emp;
CREATE STATISTICS nlqd.emp_ex (mcv) ON (salary + 1), name FROM nlqd.emp;
ANALYZE nlqd.emp;
-- partitions and inheritance
CREATE TABLE nlqd.pt (id int, k text, secret text) PARTITION BY LIST (k);
CREATE TABLE nlqd.pt_a PARTITION OF nlqd.pt FOR VALUES IN ('a');
CREATE TABLE nlqd.pt_b PARTITION OF nlqd.pt FOR VALUES IN ('b');
INSERT INTO nlqd.pt VALUES (1, 'a', 'sa'), (2, 'b', 'sb');
CREATE TABLE nlqd.par (id int, note text);
CREATE TABLE nlqd.chi (extra text) INHERITS (nlqd.par);
INSERT INTO nlqd.par VALUES (1, 'parent');
INSERT INTO nlqd.chi VALUES (2, 'child', 'x');
-- materialized views
CREATE TABLE nlqd.hush (id int, word text);
INSERT INTO nlqd.hush VALUES (1, 'quiet');
CREATE MATERIALIZED VIEW nlqd.mv_hush AS SELECT * FROM nlqd.hush;
CREATE MATERIALIZED VIEW nlqd.mv_nested AS SELECT id FROM nlqd.mv_hush;
CREATE VIEW nlqd.v_mv AS SELECT id FROM nlqd.mv_hush;
-- views over a table with a denied column
CREATE TABLE nlqd.acct (id int, name text, ssn text);
INSERT INTO nlqd.acct VALUES (1, 'ann', '123'), (2, 'bob', '456');
CREATE VIEW nlqd.v_acct AS SELECT * FROM nlqd.acct;
CREATE VIEW nlqd.v_on_v AS SELECT * FROM nlqd.v_acct;
CREATE VIEW nlqd.v_where AS SELECT id FROM nlqd.acct WHERE ssn LIKE '1%';
CREATE VIEW nlqd.v_expr AS SELECT id, length(ssn) AS n FROM nlqd.acct;
CREATE VIEW nlqd.v_join AS SELECT a.id FROM nlqd.acct a JOIN nlqd.acct b ON a.ssn = b.ssn;
CREATE VIEW nlqd.v_order AS SELECT id FROM nlqd.acct ORDER BY ssn;
CREATE VIEW nlqd.v_group AS SELECT ssn, count(*) AS c FROM nlqd.acct GROUP BY ssn;
CREATE VIEW nlqd.v_distinct AS SELECT DISTINCT id, ssn FROM nlqd.acct;
CREATE VIEW nlqd.v_srf AS SELECT id, generate_series(1, length(ssn)) AS g FROM nlqd.acct;
CREATE VIEW nlqd.v_union AS SELECT id, ssn FROM nlqd.acct UNION SELECT 1, 'x';
CREATE VIEW nlqd.v_using AS SELECT * FROM nlqd.acct JOIN nlqd.hush USING (id);
CREATE VIEW nlqd.v_sub AS SELECT * FROM (SELECT * FROM nlqd.acct) s;
CREATE VIEW nlqd.v_window AS SELECT id, row_number() OVER (ORDER BY ssn) AS r FROM nlqd.acct;
CREATE MATERIALIZED VIEW nlqd.mv_acct AS SELECT * FROM nlqd.acct;
-- derived data: a partition key, a generated column, an index expression, a check constraint
CREATE TABLE nlqd.orders_p (id int, region text) PARTITION BY LIST (region);
CREATE TABLE nlqd.orders_p_n PARTITION OF nlqd.orders_p FOR VALUES IN ('north');
CREATE TABLE nlqd.orders_p_s PARTITION OF nlqd.orders_p FOR VALUES IN ('south');
INSERT INTO nlqd.orders_p VALUES (1, 'north'), (2, 'south');
CREATE TABLE nlqd.people (
  id int,
  ssn text CHECK (ssn <> ''),
  ssn_last4 text GENERATED ALWAYS AS (right(ssn, 4)) STORED
);
CREATE INDEX people_lower_ssn ON nlqd.people (lower(ssn));
CREATE INDEX people_id ON nlqd.people (id);
INSERT INTO nlqd.people (id, ssn) VALUES (1, '123-45-6789');
-- DBA-allowed functions whose bodies only the runtime hook sees
CREATE FUNCTION nlqd.count_pt() RETURNS bigint LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT count(*) FROM nlqd.pt); END$$;
CREATE FUNCTION nlqd.secret_a() RETURNS text LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT max(secret) FROM nlqd.pt_a); END$$;
CREATE FUNCTION nlqd.last4() RETURNS text LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT max(ssn_last4) FROM nlqd.people); END$$;
CREATE FUNCTION nlqd.stats_of_emp() RETURNS text LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT string_agg(most_common_vals::text, ';') FROM pg_stats
                  WHERE schemaname = 'nlqd' AND tablename = 'emp'); END$$;
CREATE FUNCTION nlqd.acct_id() RETURNS bigint LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT max(id) FROM nlqd.v_acct); END$$;
CREATE FUNCTION nlqd.mirror() RETURNS text LANGUAGE plpgsql STABLE AS
  $$BEGIN RETURN (SELECT max(ssn) FROM (SELECT * FROM nlqd.acct) s); END$$;
CREATE FUNCTION pg_temp.shown(schema_name text)
RETURNS TABLE (relation text, columns text, extra text) LANGUAGE sql AS $$
  SELECT r->>'name',
         (SELECT string_agg(c->>'name', ', ' ORDER BY (c->>'position')::int)
          FROM jsonb_array_elements(r->'columns') c),
         concat_ws('; ',
           'key ' || (r->>'partition_key'),
           (SELECT 'parts ' || string_agg((p->>'name') || ' ' || coalesce(p->>'bound', '-'), ', '
                                          ORDER BY p->>'name')
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r->'partitions') = 'array'
                                            THEN r->'partitions' ELSE '[]' END) p),
           (SELECT 'idx ' || string_agg(i->>'name', ', ' ORDER BY i->>'name')
            FROM jsonb_array_elements(r->'indexes') i),
           (SELECT 'check ' || string_agg(k->>'definition', ', ' ORDER BY k->>'name')
            FROM jsonb_array_elements(r->'check_constraints') k),
           (SELECT 'gen ' || string_agg(c->'generated'->>'expression', ', ')
            FROM jsonb_array_elements(r->'columns') c WHERE c->'generated' <> 'null'))
  FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY[schema_name])->'relations') r
  ORDER BY 1
$$;
-- no policy: everything is shown
SELECT * FROM pg_temp.shown('nlqd');

-- 1. Statistics catalogs expose stored values: refused while an access policy is in force
SET pg_nlq.denied_columns = 'nlqd.emp.salary';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  $$SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'emp'$$,
  $$SELECT histogram_bounds::text FROM pg_catalog.pg_stats WHERE attname = 'salary'$$,
  $$SELECT most_common_vals::text FROM pg_stats_ext WHERE statistics_name = 'emp_st'$$,
  $$SELECT most_common_vals::text FROM pg_stats_ext_exprs WHERE statistics_name = 'emp_ex'$$,
  $$SELECT stavalues1::text FROM pg_statistic$$,
  $$SELECT count(*) FROM pg_statistic_ext$$,
  $$SELECT count(*) FROM pg_statistic_ext_data$$,
  $$SELECT relname FROM pg_class WHERE relname = 'emp'$$,
  $$SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'pt_a'$$
]) q ORDER BY 1;
SELECT pg_temp.run($$SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'emp'$$);
-- inside an allowed function, only the runtime hook sees it
SET pg_nlq.allowed_functions = 'nlqd.*';
SELECT pg_temp.check('SELECT nlqd.stats_of_emp()');
SELECT pg_temp.run('SELECT nlqd.stats_of_emp()');
RESET pg_nlq.allowed_functions;
-- _nlq_column_stats applies the caller's policy: nothing for a denied column or relation
SELECT s.attnum, s.common_values
FROM _nlq_column_stats(ARRAY['nlqd.emp'::regclass, 'nlqd.emp'::regclass]::oid[], ARRAY[2, 3]::int2[],
                       ARRAY[false, false], ARRAY[true, true], 10, 100) s
ORDER BY 1;
RESET pg_nlq.denied_columns;
SET pg_nlq.denied_relations = 'nlqd.emp';
SELECT count(*) AS rows
FROM _nlq_column_stats(ARRAY['nlqd.emp'::regclass]::oid[], ARRAY[2]::int2[], ARRAY[false],
                       ARRAY[true], 10, 100);
RESET pg_nlq.denied_relations;
-- no policy: statistics are the caller's privileges' business, as before
SELECT pg_temp.check($$SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'emp'$$);
SELECT s.attnum, s.common_values
FROM _nlq_column_stats(ARRAY['nlqd.emp'::regclass]::oid[], ARRAY[2]::int2[], ARRAY[false],
                       ARRAY[true], 10, 100) s;

-- 2. A denied partition or inheritance child is refused through any ancestor
SET pg_nlq.denied_relations = 'nlqd.pt_b, nlqd.chi';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT id, k FROM nlqd.pt',
  'SELECT count(*) FROM nlqd.pt WHERE k = ''a''',
  'SELECT id FROM nlqd.pt_a',
  'SELECT * FROM nlqd.par',
  'SELECT * FROM ONLY nlqd.par',
  'SELECT (SELECT count(*) FROM nlqd.par)'
]) q ORDER BY 1;
SELECT pg_temp.run('SELECT id, k FROM nlqd.pt');
SELECT pg_temp.run('SELECT id FROM ONLY nlqd.par');
-- the runtime hook sees the children the planner adds
SET pg_nlq.allowed_functions = 'nlqd.*';
SELECT pg_temp.check('SELECT nlqd.count_pt()');
SELECT pg_temp.run('SELECT nlqd.count_pt()');
RESET pg_nlq.allowed_functions;
-- the snapshot hides the denied partition, its bound and its rows; and the denied child
SELECT * FROM pg_temp.shown('nlqd') WHERE relation IN ('pt', 'par', 'chi');
RESET pg_nlq.denied_relations;
-- allowed_relations names what may be read directly: a partition read through its allowed
-- parent is not read directly, so the parent may be read whole, and its partitions only there
SET pg_nlq.allowed_relations = 'nlqd.pt';
SELECT q, pg_temp.check(q) AS verdict, pg_temp.run(q) AS run
FROM unnest(ARRAY['SELECT id, k FROM nlqd.pt ORDER BY 1', 'SELECT id FROM nlqd.pt_a']) q ORDER BY 1;
SELECT relation, extra FROM pg_temp.shown('nlqd') ORDER BY 1;
RESET pg_nlq.allowed_relations;
-- a denied parent denies its partitions and children too
SET pg_nlq.denied_relations = 'nlqd.pt, nlqd.par';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY['SELECT id FROM nlqd.pt_a', 'SELECT extra FROM nlqd.chi']) q ORDER BY 1;
SELECT * FROM pg_temp.shown('nlqd') WHERE relation IN ('pt', 'par', 'chi');
RESET pg_nlq.denied_relations;
-- a column denied on a parent is denied on every partition and child, by name
SET pg_nlq.denied_columns = 'nlqd.pt.secret, nlqd.par.note';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT secret FROM nlqd.pt_a',
  'SELECT id FROM nlqd.pt_a',
  'SELECT note FROM nlqd.chi',
  'SELECT id, extra FROM nlqd.chi',
  'SELECT c FROM nlqd.chi c'
]) q ORDER BY 1;
SET pg_nlq.allowed_functions = 'nlqd.*';
SELECT pg_temp.run('SELECT nlqd.secret_a()');
RESET pg_nlq.allowed_functions;
SELECT * FROM pg_temp.shown('nlqd') WHERE relation IN ('pt', 'par', 'chi');
RESET pg_nlq.denied_columns;
-- and the other way round: a column denied on a partition or child is denied through the parent
SET pg_nlq.denied_columns = 'nlqd.pt_a.secret, nlqd.chi.note';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT secret FROM nlqd.pt',
  'SELECT id, k FROM nlqd.pt',
  'SELECT note FROM nlqd.par',
  'SELECT note FROM ONLY nlqd.par'
]) q ORDER BY 1;
SELECT pg_temp.run('SELECT secret FROM nlqd.pt');
RESET pg_nlq.denied_columns;

-- 3. A materialized view is treated like a view
SET pg_nlq.denied_relations = 'nlqd.hush';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT * FROM nlqd.mv_hush',
  'SELECT id FROM nlqd.mv_nested',
  'SELECT * FROM nlqd.v_mv'
]) q ORDER BY 1;
SELECT pg_temp.run('SELECT * FROM nlqd.mv_hush');
SELECT relation FROM pg_temp.shown('nlqd') WHERE relation LIKE '%hush%' OR relation LIKE '%mv%';
RESET pg_nlq.denied_relations;
SET pg_nlq.denied_columns = 'nlqd.hush.word';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT id FROM nlqd.mv_hush',
  'SELECT word FROM nlqd.mv_hush',
  'SELECT id FROM nlqd.mv_nested'
]) q ORDER BY 1;
SELECT * FROM pg_temp.shown('nlqd') WHERE relation LIKE '%mv%';
RESET pg_nlq.denied_columns;

-- 4. Columns count as read only when really read
SET pg_nlq.denied_columns = 'nlqd.acct.ssn';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT id FROM nlqd.v_acct',
  'SELECT id, name FROM nlqd.v_on_v',
  'SELECT count(*) FROM nlqd.v_acct',
  'SELECT id FROM nlqd.v_expr',
  'SELECT id FROM nlqd.v_using',
  'SELECT id FROM nlqd.v_sub',
  'SELECT id FROM (SELECT * FROM nlqd.acct) s',
  'SELECT x.id FROM nlqd.v_acct x, LATERAL (SELECT x.ssn) s',
  'SELECT id FROM nlqd.mv_acct',
  'SELECT ssn FROM nlqd.v_acct',
  'SELECT v FROM nlqd.v_acct v',
  'SELECT * FROM nlqd.v_acct',
  'SELECT ssn FROM nlqd.v_on_v',
  'SELECT n FROM nlqd.v_expr',
  'SELECT id FROM nlqd.v_where',
  'SELECT id FROM nlqd.v_join',
  'SELECT id FROM nlqd.v_order',
  'SELECT c FROM nlqd.v_group',
  'SELECT id FROM nlqd.v_distinct',
  'SELECT id FROM nlqd.v_srf',
  'SELECT id FROM nlqd.v_union',
  'SELECT id FROM nlqd.v_window',
  'SELECT count(*) FROM nlqd.v_acct WHERE ssn IS NULL',
  'SELECT id FROM nlqd.v_acct ORDER BY ssn',
  'SELECT (SELECT max(ssn) FROM nlqd.v_acct)',
  'SELECT x.id FROM nlqd.v_acct x, LATERAL (SELECT 1 WHERE x.ssn > ''1'') s',
  'SELECT id FROM (SELECT * FROM nlqd.acct) s WHERE ssn = ''123''',
  'SELECT ssn FROM nlqd.mv_acct',
  'WITH c AS (SELECT * FROM nlqd.acct) SELECT id FROM c'
]) q ORDER BY 1;
-- what is reported as read
SELECT nlq_validate('SELECT id FROM nlqd.v_on_v')->'columns' AS columns;
-- nlq_run runs what the validator accepted, and the runtime hook agrees with it
SELECT pg_temp.run('SELECT id FROM nlqd.v_acct ORDER BY id');
SELECT pg_temp.run('SELECT ssn FROM nlqd.v_acct');
SELECT pg_temp.run('SELECT id FROM nlqd.mv_acct ORDER BY id');
-- inside a function the hook cannot tell which view columns are used: it stays strict
SET pg_nlq.allowed_functions = 'nlqd.*';
SELECT pg_temp.run('SELECT nlqd.acct_id()');
-- what the validator found of the query's own columns applies to the query's own plan only: a
-- function body read the same way as the query is still checked on everything it names
SELECT pg_temp.check('SELECT nlqd.mirror(), id FROM (SELECT * FROM nlqd.acct) s');
SELECT pg_temp.run('SELECT nlqd.mirror(), id FROM (SELECT * FROM nlqd.acct) s');
RESET pg_nlq.allowed_functions;
-- the snapshot shows v_acct without ssn, hides the views whose other parts read ssn
SELECT * FROM pg_temp.shown('nlqd') WHERE relation LIKE 'v\_%' OR relation = 'mv_acct';
RESET pg_nlq.denied_columns;

-- 5. Derived data: a denied partition key hides the key and the bounds and refuses tableoid
SET pg_nlq.denied_columns = 'nlqd.orders_p.region, nlqd.people.ssn';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY[
  'SELECT id FROM nlqd.orders_p',
  'SELECT id, tableoid::regclass FROM nlqd.orders_p',
  'SELECT count(*) FROM nlqd.orders_p GROUP BY tableoid',
  'SELECT tableoid FROM nlqd.orders_p_n',
  'SELECT id FROM nlqd.people',
  'SELECT ssn_last4 FROM nlqd.people',
  'SELECT * FROM nlqd.people',
  'SELECT id FROM nlqd.people WHERE ssn_last4 = ''6789''',
  'SELECT tableoid FROM nlqd.people'
]) q ORDER BY 1;
SELECT pg_temp.run('SELECT id, tableoid::regclass FROM nlqd.orders_p');
SET pg_nlq.allowed_functions = 'nlqd.*';
SELECT pg_temp.run('SELECT nlqd.last4()');
RESET pg_nlq.allowed_functions;
-- hidden from the snapshot: the key, the bounds, the generated column and its expression, the
-- index on an expression of ssn and the check constraint on it
SELECT * FROM pg_temp.shown('nlqd') WHERE relation IN ('orders_p', 'people');
RESET pg_nlq.denied_columns;

-- 6. Shapes the issue did not list
CREATE TABLE nlqd.sp (id int, k text, secret text) PARTITION BY LIST (k);
CREATE TABLE nlqd.sp_a PARTITION OF nlqd.sp FOR VALUES IN ('a');
CREATE TABLE nlqd.sp_b PARTITION OF nlqd.sp FOR VALUES IN ('b') PARTITION BY LIST (id);
CREATE TABLE nlqd.sp_b1 PARTITION OF nlqd.sp_b FOR VALUES IN (1);
INSERT INTO nlqd.sp VALUES (1, 'a', 'x'), (1, 'b', 'y');
CREATE VIEW nlqd.v_sp AS SELECT * FROM nlqd.sp;
CREATE VIEW nlqd.v_barrier WITH (security_barrier) AS SELECT * FROM nlqd.acct WHERE name <> 'x';
CREATE VIEW nlqd.v_invoker WITH (security_invoker) AS SELECT * FROM nlqd.acct;
-- a denied sub-partition is refused through the root and the middle level, hidden two levels down
SET pg_nlq.denied_relations = 'nlqd.sp_b1';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY['SELECT id FROM nlqd.sp', 'SELECT id FROM nlqd.sp_b', 'SELECT id FROM nlqd.sp_a',
                  'SELECT id FROM nlqd.v_sp']) q ORDER BY 1;
SELECT * FROM pg_temp.shown('nlqd') WHERE relation = 'sp';
RESET pg_nlq.denied_relations;
-- a sub-partition's key: tableoid of the root tells it too; the bounds below it are hidden
SET pg_nlq.denied_columns = 'nlqd.sp_b.id';
SELECT q, pg_temp.check(q) AS verdict
FROM unnest(ARRAY['SELECT tableoid FROM nlqd.sp', 'SELECT k FROM nlqd.sp', 'SELECT tableoid FROM nlqd.sp_a',
                  'SELECT tableoid FROM nlqd.sp_b1', 'SELECT id FROM nlqd.sp']) q ORDER BY 1;
SELECT * FROM pg_temp.shown('nlqd') WHERE relation = 'sp';
RESET pg_nlq.denied_columns;
-- through a view over a partitioned table, a security_barrier view, a security_invoker view and
-- UNION ALL, the columns used are what counts, for the validator and for the runtime hook
SET pg_nlq.denied_columns = 'nlqd.sp.secret, nlqd.acct.ssn';
SELECT q, pg_temp.check(q) AS verdict, pg_temp.run(q) AS run
FROM unnest(ARRAY[
  'SELECT id FROM nlqd.v_sp ORDER BY 1',
  'SELECT secret FROM nlqd.v_sp',
  'SELECT id FROM nlqd.v_barrier',
  'SELECT ssn FROM nlqd.v_barrier',
  'SELECT id FROM nlqd.v_invoker',
  'SELECT id FROM nlqd.v_acct UNION ALL SELECT id FROM nlqd.v_barrier ORDER BY 1',
  'SELECT a.id FROM nlqd.v_acct a JOIN nlqd.v_barrier b USING (id)',
  'SELECT id FROM nlqd.v_acct WHERE v_acct IS NOT NULL',
  'SELECT count(DISTINCT v.*) FROM nlqd.v_acct v',
  'SELECT max(id) FILTER (WHERE ssn > ''0'') FROM nlqd.v_acct',
  'SELECT id FROM nlqd.v_acct GROUP BY GROUPING SETS ((id), (name)) ORDER BY 1',
  'SELECT DISTINCT ON (name) id FROM nlqd.v_acct ORDER BY name, id',
  'SELECT ''x'' UNION ALL SELECT ssn FROM nlqd.acct',
  'SELECT 1 INTERSECT SELECT length(ssn) FROM nlqd.v_acct',
  'SELECT id FROM (SELECT id FROM nlqd.acct EXCEPT SELECT id FROM nlqd.acct WHERE ssn = ''1'') s',
  'SELECT id FROM (SELECT id, CASE WHEN ssn = ''123'' AND random() >= 0 THEN 1 / 0 END AS x
                   FROM nlqd.acct OFFSET 0) s'
]) q ORDER BY 1;
RESET pg_nlq.denied_columns;

SET client_min_messages = warning;
DROP SCHEMA nlqd CASCADE;
RESET client_min_messages;
