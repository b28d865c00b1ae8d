-- A role sees exactly what it may query: schemas with USAGE, relations with SELECT on the table
-- or on some of its columns, those columns only, and no key, index, foreign key or statistic
-- that would reveal what it may not read.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS hr CASCADE;
DROP SCHEMA IF EXISTS secret CASCADE;
DROP ROLE IF EXISTS nlq_reader;
RESET client_min_messages;
CREATE ROLE nlq_reader;
CREATE SCHEMA hr;
CREATE SCHEMA secret;
CREATE TABLE secret.keys (id int PRIMARY KEY, k text);
CREATE TABLE hr.departments (id int PRIMARY KEY, name text NOT NULL UNIQUE, budget numeric);
CREATE TABLE hr.employees (
  id int PRIMARY KEY,
  name text NOT NULL,
  department_id int REFERENCES hr.departments(id),
  salary numeric CHECK (salary > 0),
  ssn text UNIQUE,
  key_id int REFERENCES secret.keys(id)
);
CREATE INDEX employees_salary_idx ON hr.employees (salary);
CREATE INDEX employees_name_idx ON hr.employees (name);
CREATE INDEX employees_name_salary_idx ON hr.employees (name) WHERE salary > 100000;
CREATE TABLE hr.reviews (id int PRIMARY KEY, employee_id int REFERENCES hr.employees(id), note text);
CREATE VIEW hr.directory AS SELECT id, name FROM hr.employees;
INSERT INTO hr.departments VALUES (1, 'Sales', 10), (2, 'R&D', 20);
INSERT INTO hr.employees SELECT g, 'E' || (g % 3), 1 + g % 2, 1000 * g, 'ssn' || g, NULL
FROM generate_series(1, 30) g;
ANALYZE hr.departments, hr.employees;
-- grants: the whole departments table; employees only partly; the view; nothing on reviews
GRANT USAGE ON SCHEMA hr TO nlq_reader;
GRANT SELECT ON hr.departments, hr.directory TO nlq_reader;
GRANT SELECT (id, name, department_id, key_id) ON hr.employees TO nlq_reader;
GRANT SELECT ON secret.keys TO nlq_reader;  -- but no USAGE on schema secret
-- what the owner sees
SELECT r->>'name' AS relation, jsonb_array_length(r->'columns') AS columns,
       jsonb_array_length(r->'indexes') AS indexes, jsonb_array_length(r->'foreign_keys') AS fks
FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY['hr', 'secret'])->'relations') r
ORDER BY 1;
SET ROLE nlq_reader;
-- schema secret is not listed at all, even when asked for
SELECT jsonb_pretty(nlq_schema_snapshot(ARRAY['hr', 'secret'])->'schemas') AS schemas;
SELECT r->>'schema' AS schema, r->>'name' AS relation, r->>'kind' AS kind
FROM jsonb_array_elements(nlq_schema_snapshot()->'relations') r
WHERE r->>'schema' IN ('hr', 'secret')
ORDER BY 1, 2;
-- employees: only the granted columns; no salary/ssn, nor the check, unique key and indexes
-- that mention them; the foreign key to a table in a schema without USAGE is left out
SELECT jsonb_pretty(r - 'size_bytes') AS employees
FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY['hr'])->'relations') r
WHERE r->>'name' = 'employees';
-- statistics follow the same rule: the helper refuses columns the caller may not read
SELECT a.attname, s.null_frac IS NOT NULL AS has_stats
FROM pg_attribute a
LEFT JOIN _nlq_column_stats(
    ARRAY(SELECT 'hr.employees'::regclass FROM generate_series(1, 5)),
    ARRAY[1, 2, 3, 4, 5]::int2[], ARRAY[false, false, false, false, false],
    ARRAY[true, true, true, true, true], 10, 64) s ON s.attnum = a.attnum
WHERE a.attrelid = 'hr.employees'::regclass AND a.attnum BETWEEN 1 AND 5
ORDER BY a.attnum;
RESET ROLE;
-- row-level security active for the caller hides every statistic of the table, as pg_stats does
ALTER TABLE hr.departments ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON hr.departments FOR SELECT USING (true);
SET ROLE nlq_reader;
SELECT c->>'name' AS column, c->'stats' AS stats
FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY['hr'])->'relations') r,
     jsonb_array_elements(r->'columns') c
WHERE r->>'name' = 'departments'
ORDER BY 1;
RESET ROLE;
DROP SCHEMA hr CASCADE;
DROP SCHEMA secret CASCADE;
DROP ROLE nlq_reader;
