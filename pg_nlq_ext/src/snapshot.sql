-- nlq_schema_snapshot(): everything the caller may query, as one jsonb document.
--
-- One statement, set-based: every object kind is read with one scan of its catalog and
-- aggregated per relation; nothing is looked up per table. Visibility follows the caller's
-- privileges: a schema needs USAGE, a relation SELECT on the table or on one of its columns,
-- a column SELECT on it (table-level SELECT covers every column). A constraint or index is
-- shown only when every column it mentions is visible, a foreign key only when its target is.
-- What the access policy hides ($7-$9) counts as not visible: the model is never shown what
-- nlq_run() would refuse, nor the statistics of a denied column.
-- The type lists (enums, domains, composites, ranges) repeat one json_agg shape on purpose:
-- declarative, one per type kind.
-- Partitions are folded under the partitioned table at the root of their tree.
--
-- $1 text[]  only these schemas (NULL: all)
-- $2 bool    include per-column statistics (read by _nlq_column_stats(), see stats.rs;
--            @extschema@ is replaced by pg_nlq's schema, quoted, before the query runs)
-- $3 int     most common values kept per column
-- $4 int     longest most-common value kept (characters)
-- $5 text    fingerprint of the schema state (nlq_schema_fingerprint())
-- $6 int     format version of this document
-- $7 oid[]   relations the DBA's access policy hides (pg_nlq.denied_relations,
--            pg_nlq.allowed_relations, and views over what they hide); see snapshot.rs
-- $8 oid[], $9 int2[]  columns it hides (pg_nlq.denied_columns, and what reads them), as
--            parallel arrays
-- $10 oid[]  partitions it hides (denied, or under a denied parent)
-- $11 oid[]  partitioned tables whose key uses a hidden column: key and bounds below hidden
--
-- The document is built as json text and converted to jsonb once, at the end: jsonb built
-- level by level re-encodes every nested value at every level, which costs several times more.
--
-- Sizes and row estimates are the planner's (pg_class.relpages/reltuples, as of the last
-- VACUUM or ANALYZE): reading them costs nothing, where asking the file system for the size
-- of every relation and index costs about 0.1 ms per table.
WITH
own AS MATERIALIZED (
    -- objects that belong to pg_nlq itself
    SELECT d.classid, d.objid
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_extension e
      ON d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = e.oid
    WHERE d.deptype = 'e' AND e.extname = 'pg_nlq'
),
nsp AS MATERIALIZED (
    SELECT n.oid, n.nspname
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND ($1::text[] IS NULL OR n.nspname = ANY ($1::text[]))
      AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM own
                      WHERE own.classid = 'pg_catalog.pg_namespace'::regclass AND own.objid = n.oid)
),
-- looked up with [NOT] IN, which the planner hashes (neither side is ever NULL)
hidden_col AS MATERIALIZED (
    SELECT h.relid, h.attnum FROM unnest($8::oid[], $9::int2[]) AS h(relid, attnum)
),
rel AS MATERIALIZED (
    SELECT c.oid, c.relname, c.relkind, c.reltuples, n.nspname,
           pg_catalog.has_table_privilege(c.oid, 'SELECT')
           AND c.oid NOT IN (SELECT h.relid FROM hidden_col h) AS full_access
    FROM pg_catalog.pg_class c
    JOIN nsp n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
      AND c.oid <> ALL ($7::oid[])
      AND (pg_catalog.has_table_privilege(c.oid, 'SELECT')
           OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT'))
      AND NOT EXISTS (SELECT 1 FROM own
                      WHERE own.classid = 'pg_catalog.pg_class'::regclass AND own.objid = c.oid)
),
-- planner's size of every table and materialized view: heap, TOAST and indexes
sizes AS (
    SELECT c.oid,
           (c.relpages::bigint + COALESCE(tc.relpages, 0) + COALESCE(ix.pages, 0))
             * current_setting('block_size')::bigint AS bytes
    FROM pg_catalog.pg_class c
    LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
    LEFT JOIN (SELECT i.indrelid, sum(ic.relpages)::bigint AS pages
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               GROUP BY i.indrelid) ix ON ix.indrelid = c.oid
    WHERE c.relkind IN ('r', 'm')
),
col AS MATERIALIZED (
    SELECT a.attrelid, a.attnum, a.attname, a.attnotnull, a.attidentity, a.attgenerated,
           a.atttypid, r.nspname, r.relname, r.relkind,
           pg_catalog.format_type(a.atttypid, a.atttypmod) AS typname,
           pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS expr
    FROM rel r
    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
      AND (r.full_access
           OR (pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
               AND (a.attrelid, a.attnum) NOT IN (SELECT h.relid, h.attnum FROM hidden_col h)))
),
stats AS (
    SELECT s.relid, s.attnum,
           json_build_object(
               'null_frac', s.null_frac,
               'n_distinct', s.n_distinct,
               'distinct_estimate',
                   CASE WHEN s.n_distinct >= 0 THEN s.n_distinct::numeric
                        WHEN r.reltuples > 0 THEN round(-s.n_distinct * r.reltuples::numeric)
                   END,
               'common_values',
                   CASE WHEN s.common_values IS NOT NULL THEN COALESCE(
                       (SELECT json_agg(json_build_object('value', v.val, 'frequency', v.freq)
                                         ORDER BY v.i)
                        FROM unnest(s.common_values, s.common_freqs) WITH ORDINALITY v(val, freq, i)),
                       '[]'::json) END
           ) AS j
    FROM (SELECT array_agg(c.attrelid) AS relids, array_agg(c.attnum) AS attnums,
                 array_agg(c.relkind = 'p') AS inh,
                 array_agg(t.typcategory IN ('S', 'E')) AS with_values
          FROM col c JOIN pg_catalog.pg_type t ON t.oid = c.atttypid) a
    CROSS JOIN LATERAL @extschema@._nlq_column_stats(a.relids, a.attnums, a.inh, a.with_values,
                                                    $3::int, $4::int) s
    JOIN rel r ON r.oid = s.relid
    WHERE $2::bool AND a.relids IS NOT NULL
),
cols AS (
    SELECT c.attrelid,
           json_agg(json_build_object(
               'name', c.attname,
               'position', c.attnum,
               'type', c.typname,
               'nullable', NOT c.attnotnull,
               'default', CASE WHEN c.attgenerated = '' THEN c.expr END,
               'identity', CASE c.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
               'generated', CASE WHEN c.attgenerated = 's'
                                 THEN json_build_object('kind', 'stored', 'expression', c.expr) END,
               'comment', d.description,
               'stats', st.j
           ) ORDER BY c.attnum) AS j
    FROM col c
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_class'::regclass
                     AND d.objoid = c.attrelid AND d.objsubid = c.attnum
    LEFT JOIN stats st ON st.relid = c.attrelid AND st.attnum = c.attnum
    GROUP BY c.attrelid
),
-- constraints on visible relations, with the names of their columns in key order
con AS MATERIALIZED (
    SELECT k.oid, k.conname, k.contype, k.conrelid, k.confrelid, k.confupdtype, k.confdeltype,
           k.conkey, k.confkey, r.full_access
    FROM pg_catalog.pg_constraint k
    JOIN rel r ON r.oid = k.conrelid
    WHERE k.contype IN ('p', 'u', 'f', 'c') AND k.conparentid = 0
),
con_cols AS (
    SELECT k.oid,
           array_agg(a.attname ORDER BY u.i) AS cols,
           bool_and(k.full_access OR a.attnum IS NULL
                    OR (pg_catalog.has_column_privilege(k.conrelid, a.attnum, 'SELECT')
                        AND (k.conrelid, a.attnum) NOT IN (SELECT h.relid, h.attnum
                                                           FROM hidden_col h)))
             AS visible
    FROM con k
    CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, i)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
    GROUP BY k.oid
),
con_refcols AS (
    SELECT k.oid,
           array_agg(a.attname ORDER BY u.i) AS cols,
           bool_and(pg_catalog.has_column_privilege(k.confrelid, a.attnum, 'SELECT')
                    AND (k.confrelid, a.attnum) NOT IN (SELECT h.relid, h.attnum
                                                        FROM hidden_col h))
             AS visible
    FROM con k
    CROSS JOIN LATERAL unnest(k.confkey) WITH ORDINALITY u(attnum, i)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
    WHERE k.contype = 'f'
    GROUP BY k.oid
),
cons AS (
    SELECT k.conrelid,
           json_agg(json_build_object('name', k.conname, 'columns', cc.cols,
                                        'comment', d.description)
                     ORDER BY k.conname) FILTER (WHERE k.contype = 'p') AS pk,
           json_agg(json_build_object('name', k.conname, 'columns', cc.cols,
                                        'comment', d.description)
                     ORDER BY k.conname) FILTER (WHERE k.contype = 'u') AS uq,
           json_agg(json_build_object(
                         'name', k.conname,
                         'columns', cc.cols,
                         'references', json_build_object('schema', fr.nspname, 'table', fr.relname,
                                                          'columns', rc.cols),
                         'on_update', CASE k.confupdtype WHEN 'a' THEN 'no action'
                                          WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
                                          WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' END,
                         'on_delete', CASE k.confdeltype WHEN 'a' THEN 'no action'
                                          WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade'
                                          WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' END,
                         'comment', d.description)
                     ORDER BY k.conname) FILTER (WHERE k.contype = 'f') AS fk,
           json_agg(json_build_object('name', k.conname,
                                        'definition', pg_catalog.pg_get_constraintdef(k.oid, true),
                                        'comment', d.description)
                     ORDER BY k.conname) FILTER (WHERE k.contype = 'c') AS ck
    FROM con k
    LEFT JOIN con_cols cc ON cc.oid = k.oid
    LEFT JOIN con_refcols rc ON rc.oid = k.oid
    -- the target of a foreign key may lie outside the schemas asked for: it is shown when the
    -- caller can use its schema and read the referenced columns
    LEFT JOIN (SELECT fc.oid, fc.relname, fn.nspname
               FROM pg_catalog.pg_class fc
               JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
               WHERE pg_catalog.has_schema_privilege(fn.oid, 'USAGE')
                 AND fc.oid <> ALL ($7::oid[])) fr ON fr.oid = k.confrelid
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_constraint'::regclass AND d.objoid = k.oid
    WHERE COALESCE(cc.visible, true)
      AND (k.contype <> 'f' OR (fr.oid IS NOT NULL AND COALESCE(rc.visible, false)))
    GROUP BY k.conrelid
),
idx AS (
    SELECT i.indrelid,
           json_agg(json_build_object(
               'name', ic.relname,
               'method', am.amname,
               'unique', i.indisunique,
               'primary', i.indisprimary,
               'columns', (SELECT json_agg(pg_catalog.pg_get_indexdef(i.indexrelid, n, true)
                                            ORDER BY n)
                           FROM generate_series(1, i.indnkeyatts) n),
               'include', COALESCE((SELECT json_agg(pg_catalog.pg_get_indexdef(i.indexrelid, n, true)
                                                     ORDER BY n)
                                    FROM generate_series(i.indnkeyatts + 1, i.indnatts) n),
                                   '[]'::json),
               'predicate', pg_catalog.pg_get_expr(i.indpred, i.indrelid, true),
               'definition', pg_catalog.pg_get_indexdef(i.indexrelid),
               'comment', d.description
           ) ORDER BY ic.relname) AS j
    FROM pg_catalog.pg_index i
    JOIN rel r ON r.oid = i.indrelid
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_class'::regclass
                     AND d.objoid = i.indexrelid AND d.objsubid = 0
    -- key columns from indkey; columns used in expressions and predicates from pg_depend
    WHERE CASE WHEN r.full_access THEN true
               ELSE NOT EXISTS (
                   SELECT 1 FROM unnest(i.indkey::int2[]) k(attnum)
                   WHERE k.attnum > 0
                     AND (NOT pg_catalog.has_column_privilege(i.indrelid, k.attnum, 'SELECT')
                          OR (i.indrelid, k.attnum) IN (SELECT h.relid, h.attnum
                                                        FROM hidden_col h)))
                AND NOT EXISTS (
                   SELECT 1 FROM pg_catalog.pg_depend dep
                   WHERE dep.classid = 'pg_catalog.pg_class'::regclass
                     AND dep.objid = i.indexrelid
                     AND dep.refclassid = 'pg_catalog.pg_class'::regclass
                     AND dep.refobjid = i.indrelid AND dep.refobjsubid > 0
                     AND (NOT pg_catalog.has_column_privilege(i.indrelid, dep.refobjsubid::int2,
                                                              'SELECT')
                          OR (i.indrelid, dep.refobjsubid::int2) IN (SELECT h.relid, h.attnum
                                                                     FROM hidden_col h)))
          END
    GROUP BY i.indrelid
),
-- partitions (at any depth) folded under the partitioned table at the root of their tree
part AS MATERIALIZED (
    SELECT pg_catalog.pg_partition_root(c.oid) AS root, c.oid, c.relname, c.relkind,
           c.reltuples, pn.nspname, inh.inhparent,
           pg_catalog.pg_get_expr(c.relpartbound, c.oid, true) AS bound
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace pn ON pn.oid = c.relnamespace
    JOIN pg_catalog.pg_inherits inh ON inh.inhrelid = c.oid
    WHERE c.relispartition AND c.relkind IN ('r', 'p', 'f')
      AND c.oid <> ALL ($10::oid[])
),
parts AS (
    SELECT p.root,
           json_agg(json_build_object(
               'schema', p.nspname,
               'name', p.relname,
               'parent', CASE WHEN p.inhparent <> p.root THEN pp.relname END,
               'bound', CASE WHEN p.inhparent <> ALL ($11::oid[]) THEN p.bound END,
               'row_estimate', CASE WHEN p.relkind = 'p' OR p.reltuples < 0 THEN NULL
                                    ELSE p.reltuples::bigint END
           ) ORDER BY p.nspname, p.relname) AS j,
           sum(p.reltuples) FILTER (WHERE p.relkind <> 'p' AND p.reltuples >= 0) AS rows,
           count(*) FILTER (WHERE p.relkind <> 'p' AND p.reltuples < 0) AS unanalysed,
           sum(sz.bytes) AS bytes
    FROM part p
    JOIN rel r ON r.oid = p.root
    JOIN pg_catalog.pg_class pp ON pp.oid = p.inhparent
    LEFT JOIN sizes sz ON sz.oid = p.oid
    GROUP BY p.root
),
relations AS (
    SELECT json_agg(json_build_object(
               'schema', r.nspname,
               'name', r.relname,
               'kind', CASE r.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                                      WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                      WHEN 'f' THEN 'foreign table' END,
               'comment', d.description,
               'row_estimate', CASE
                   WHEN r.relkind = 'p' THEN
                       CASE WHEN pa.unanalysed = 0 THEN pa.rows::bigint
                            WHEN r.reltuples >= 0 THEN r.reltuples::bigint END
                   WHEN r.relkind IN ('r', 'm', 'f') AND r.reltuples >= 0 THEN r.reltuples::bigint
               END,
               'size_bytes', CASE
                   WHEN r.relkind IN ('r', 'm') THEN sz.bytes
                   WHEN r.relkind = 'p' THEN COALESCE(pa.bytes, 0)::bigint
               END,
               'columns', COALESCE(c.j, '[]'::json),
               'primary_key', k.pk -> 0,
               'unique_constraints', COALESCE(k.uq, '[]'::json),
               'foreign_keys', COALESCE(k.fk, '[]'::json),
               'check_constraints', COALESCE(k.ck, '[]'::json),
               'indexes', COALESCE(i.j, '[]'::json),
               -- a definition names the columns it reads: not shown when one is hidden
               'definition', CASE WHEN r.relkind IN ('v', 'm')
                                       AND r.oid NOT IN (SELECT h.relid FROM hidden_col h)
                                  THEN pg_catalog.pg_get_viewdef(r.oid, true) END,
               'partition_key', CASE WHEN r.relkind = 'p' AND r.oid <> ALL ($11::oid[])
                                     THEN pg_catalog.pg_get_partkeydef(r.oid) END,
               'partitions', CASE WHEN r.relkind = 'p' THEN COALESCE(pa.j, '[]'::json) END,
               'foreign_server', fs.srvname
           ) ORDER BY r.nspname, r.relname) AS j
    FROM rel r
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_class'::regclass
                     AND d.objoid = r.oid AND d.objsubid = 0
    LEFT JOIN cols c ON c.attrelid = r.oid
    LEFT JOIN cons k ON k.conrelid = r.oid
    LEFT JOIN idx i ON i.indrelid = r.oid
    LEFT JOIN parts pa ON pa.root = r.oid
    LEFT JOIN sizes sz ON sz.oid = r.oid
    LEFT JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = r.oid
    LEFT JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver
),
typ AS MATERIALIZED (
    SELECT t.oid, t.typname, t.typtype, t.typrelid, t.typbasetype, t.typtypmod, t.typnotnull,
           t.typdefault, n.nspname, d.description
    FROM pg_catalog.pg_type t
    JOIN nsp n ON n.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_type'::regclass AND d.objoid = t.oid
    WHERE t.typtype IN ('e', 'd', 'c', 'r')
      AND (t.typtype <> 'c'
           OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
      AND pg_catalog.has_type_privilege(t.oid, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM own
                      WHERE own.classid = 'pg_catalog.pg_type'::regclass AND own.objid = t.oid)
),
enums AS (
    SELECT json_agg(json_build_object(
               'schema', t.nspname, 'name', t.typname,
               'labels', (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
                          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
               'comment', t.description
           ) ORDER BY t.nspname, t.typname) AS j
    FROM typ t WHERE t.typtype = 'e'
),
domains AS (
    SELECT json_agg(json_build_object(
               'schema', t.nspname, 'name', t.typname,
               'base_type', pg_catalog.format_type(t.typbasetype, t.typtypmod),
               'nullable', NOT t.typnotnull,
               'default', t.typdefault,
               'constraints', COALESCE((
                   SELECT json_agg(json_build_object(
                              'name', k.conname,
                              'definition', pg_catalog.pg_get_constraintdef(k.oid, true))
                          ORDER BY k.conname)
                   FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid), '[]'::json),
               'comment', t.description
           ) ORDER BY t.nspname, t.typname) AS j
    FROM typ t WHERE t.typtype = 'd'
),
composites AS (
    SELECT json_agg(json_build_object(
               'schema', t.nspname, 'name', t.typname,
               'fields', (SELECT json_agg(json_build_object(
                                     'name', a.attname,
                                     'type', pg_catalog.format_type(a.atttypid, a.atttypmod))
                                 ORDER BY a.attnum)
                          FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
               'comment', t.description
           ) ORDER BY t.nspname, t.typname) AS j
    FROM typ t WHERE t.typtype = 'c'
),
ranges AS (
    SELECT json_agg(json_build_object(
               'schema', t.nspname, 'name', t.typname,
               'subtype', pg_catalog.format_type(rg.rngsubtype, NULL),
               'comment', t.description
           ) ORDER BY t.nspname, t.typname) AS j
    FROM typ t JOIN pg_catalog.pg_range rg ON rg.rngtypid = t.oid
    WHERE t.typtype = 'r'
),
schemas AS (
    SELECT json_agg(json_build_object('name', n.nspname, 'comment', d.description)
                     ORDER BY n.nspname) AS j
    FROM nsp n
    LEFT JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = n.oid
)
SELECT json_build_object(
    'format_version', $6::int,
    'fingerprint', $5::text,
    'database', current_database(),
    'role', current_user,
    'server_version_num', current_setting('server_version_num')::int,
    'options', json_build_object('schemas', to_json($1::text[]), 'statistics', $2::bool),
    'schemas', COALESCE((SELECT j FROM schemas), '[]'::json),
    'relations', COALESCE((SELECT j FROM relations), '[]'::json),
    'types', json_build_object(
        'enums', COALESCE((SELECT j FROM enums), '[]'::json),
        'domains', COALESCE((SELECT j FROM domains), '[]'::json),
        'composites', COALESCE((SELECT j FROM composites), '[]'::json),
        'ranges', COALESCE((SELECT j FROM ranges), '[]'::json)
    )
)::jsonb
