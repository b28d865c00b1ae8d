-- nlq_schema_fingerprint(): a hash that changes whenever anything nlq_schema_snapshot() shows
-- about the structure of the schema may have changed, and stays put otherwise.
--
-- Every catalog row the snapshot is built from carries the id of the transaction that last
-- wrote it (xmin). DDL, COMMENT, GRANT/REVOKE and role membership changes write new row
-- versions; ANALYZE and VACUUM update pg_class in place and DML writes no catalog row, and the
-- raw xmin survives VACUUM FREEZE. So the set of (row, xmin) pairs of those catalogs, for user
-- schemas, identifies the schema state without reading any of its content; a change rolled back
-- leaves it as it was. Statistics, row estimates and sizes are deliberately not part of it:
-- they drift all the time and a client should not reload for them.
--
-- The UNION ALL arms below repeat one shape on purpose, one per catalog: declarative, each
-- arm names its catalog, key and join.
--
-- Known limits: TRUNCATE, VACUUM FULL and CLUSTER give a table a new file and so a new pg_class
-- row version: the fingerprint changes although the snapshot does not (one needless reload).
-- A transaction that changes a catalog row it created itself (CREATE TABLE then GRANT, before
-- COMMIT) writes a version with the same xmin, so its own later reads miss the second change;
-- other sessions never saw the first state.
--
-- The caller's access policy is hashed too: a DBA who changes pg_nlq.denied_columns for the
-- bridge's role changes what its snapshot shows (from its next login, when settings apply).
--
-- Each catalog is folded with count(*) and an order-independent xor of 64-bit hashes of the
-- row's identity seeded with its xmin (no sort, no text); the folds, the caller's identity and
-- the snapshot format go into sha256.
--
-- $1 text  snapshot format version
-- $2 text  the caller's access policy (pg_nlq.denied_relations, allowed_relations,
--          denied_columns): it decides what the snapshot shows
WITH
nsp AS MATERIALIZED (
    SELECT n.oid, n.xmin FROM pg_catalog.pg_namespace n
    WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
),
cls AS MATERIALIZED (
    SELECT c.oid, c.xmin, c.relkind FROM pg_catalog.pg_class c JOIN nsp ON nsp.oid = c.relnamespace
),
typ AS MATERIALIZED (
    SELECT t.oid, t.xmin FROM pg_catalog.pg_type t JOIN nsp ON nsp.oid = t.typnamespace
),
folds(part, n, h) AS (
    SELECT 'namespace', count(*), bit_xor(hashint8extended(oid::int8, xmin::text::int8)) FROM nsp
    UNION ALL
    SELECT 'class', count(*), bit_xor(hashint8extended(oid::int8, xmin::text::int8)) FROM cls
    UNION ALL
    SELECT 'type', count(*), bit_xor(hashint8extended(oid::int8, xmin::text::int8)) FROM typ
    UNION ALL
    SELECT 'attribute', count(*),
           bit_xor(hashint8extended(a.attrelid::int8 * 65536 + a.attnum, a.xmin::text::int8))
    FROM pg_catalog.pg_attribute a
    WHERE a.attnum > 0
      AND a.attrelid IN (SELECT oid FROM cls WHERE relkind IN ('r', 'p', 'v', 'm', 'f', 'c'))
    UNION ALL
    SELECT 'attrdef', count(*), bit_xor(hashint8extended(d.oid::int8, d.xmin::text::int8))
    FROM pg_catalog.pg_attrdef d JOIN cls ON cls.oid = d.adrelid
    UNION ALL
    SELECT 'constraint', count(*), bit_xor(hashint8extended(k.oid::int8, k.xmin::text::int8))
    FROM pg_catalog.pg_constraint k JOIN nsp ON nsp.oid = k.connamespace
    UNION ALL
    SELECT 'index', count(*), bit_xor(hashint8extended(i.indexrelid::int8, i.xmin::text::int8))
    FROM pg_catalog.pg_index i JOIN cls ON cls.oid = i.indrelid
    UNION ALL
    SELECT 'inherits', count(*),
           bit_xor(hashint8extended(h.inhrelid::int8 << 32 | h.inhparent::int8, h.xmin::text::int8))
    FROM pg_catalog.pg_inherits h JOIN cls ON cls.oid = h.inhrelid
    UNION ALL
    SELECT 'rewrite', count(*), bit_xor(hashint8extended(r.oid::int8, r.xmin::text::int8))
    FROM pg_catalog.pg_rewrite r JOIN cls ON cls.oid = r.ev_class
    UNION ALL
    SELECT 'enum', count(*), bit_xor(hashint8extended(e.oid::int8, e.xmin::text::int8))
    FROM pg_catalog.pg_enum e JOIN typ ON typ.oid = e.enumtypid
    UNION ALL
    SELECT 'foreign_table', count(*), bit_xor(hashint8extended(f.ftrelid::int8, f.xmin::text::int8))
    FROM pg_catalog.pg_foreign_table f JOIN cls ON cls.oid = f.ftrelid
    UNION ALL
    SELECT 'description', count(*),
           bit_xor(hashint8extended((d.objoid::int8 << 32 | d.classoid::int8) # d.objsubid,
                                    d.xmin::text::int8))
    FROM pg_catalog.pg_description d
    WHERE (d.objoid >= 16384
           AND d.classoid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_type'::regclass,
                              'pg_catalog.pg_constraint'::regclass))
       OR (d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid IN (SELECT oid FROM nsp))
    UNION ALL
    SELECT 'auth_members', count(*),
           bit_xor(hashint8extended(m.roleid::int8 << 32 | m.member::int8, m.xmin::text::int8))
    FROM pg_catalog.pg_auth_members m
    UNION ALL
    -- user functions: a rename shows in the views, defaults and checks that call them
    SELECT 'function', count(*), bit_xor(hashint8extended(p.oid::int8, p.xmin::text::int8))
    FROM pg_catalog.pg_proc p WHERE p.oid >= 16384
    UNION ALL
    SELECT 'foreign_server', count(*), bit_xor(hashint8extended(s.oid::int8, s.xmin::text::int8))
    FROM pg_catalog.pg_foreign_server s
    UNION ALL
    SELECT 'extension', count(*), bit_xor(hashint8extended(e.oid::int8, e.xmin::text::int8))
    FROM pg_catalog.pg_extension e
)
SELECT encode(sha256(convert_to(
           concat_ws('|', $1::text, $2::text, current_user,
                     (SELECT r.rolsuper::text || r.rolbypassrls::text
                      FROM pg_catalog.pg_roles r WHERE r.rolname = current_user),
                     (SELECT string_agg(part || '=' || n || ':' || COALESCE(h, 0), ','
                                        ORDER BY part)
                      FROM folds)),
           'UTF8')), 'hex')
