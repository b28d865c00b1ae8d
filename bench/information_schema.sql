-- The baseline: what most peers send to introspect a database, columns and keys through
-- information_schema (no indexes, types, comments, statistics). Two statements, timed together.
SELECT c.table_schema, c.table_name, c.column_name, c.ordinal_position, c.data_type,
       c.is_nullable, c.column_default
FROM information_schema.columns c
WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY c.table_schema, c.table_name, c.ordinal_position;
SELECT tc.table_schema, tc.table_name, tc.constraint_name, tc.constraint_type,
       kcu.column_name, kcu.ordinal_position,
       fk.table_schema AS foreign_table_schema, fk.table_name AS foreign_table_name,
       fk.column_name AS foreign_column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
LEFT JOIN information_schema.referential_constraints rc
  ON rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name
LEFT JOIN information_schema.key_column_usage fk
  ON fk.constraint_schema = rc.unique_constraint_schema
 AND fk.constraint_name = rc.unique_constraint_name
 AND fk.ordinal_position = kcu.position_in_unique_constraint
WHERE tc.table_schema NOT IN ('pg_catalog', 'information_schema')
  AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
ORDER BY tc.table_schema, tc.table_name, tc.constraint_name, kcu.ordinal_position;
