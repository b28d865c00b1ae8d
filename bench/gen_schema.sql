-- A generated estate for the snapshot benchmark: :ntables tables of 10 columns each in
-- schema `bench`, every table with a primary key, a secondary index, a foreign key to the
-- previous table, a comment, and a few rows so that ANALYZE leaves real statistics.
-- psql -v ntables=1000 -f bench/gen_schema.sql
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SELECT format($f$
CREATE TABLE bench.t%1$s (
  id integer PRIMARY KEY,
  parent_id integer %2$s,
  code text NOT NULL,
  label varchar(40),
  city text,
  amount numeric(12,2) DEFAULT 0,
  qty integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  active boolean NOT NULL DEFAULT true,
  note text
);
CREATE INDEX t%1$s_code_idx ON bench.t%1$s (code);
CREATE INDEX t%1$s_city_created_idx ON bench.t%1$s (city, created_at) WHERE active;
COMMENT ON TABLE bench.t%1$s IS 'Generated table number %1$s';
COMMENT ON COLUMN bench.t%1$s.code IS 'Business code';
INSERT INTO bench.t%1$s (id, parent_id, code, label, city, amount, qty, note)
SELECT g, %3$s, 'C' || (g %% 7), 'label ' || g, (ARRAY['Berlin','Paris','Madrid','Rome'])[1 + g %% 4],
       g * 1.5, g %% 10, NULL
FROM generate_series(1, 50) g;
$f$, i,
   CASE WHEN i > 1 THEN format('REFERENCES bench.t%s (id)', i - 1) ELSE '' END,
   CASE WHEN i > 1 THEN 'g' ELSE 'NULL' END)
FROM generate_series(1, :ntables) i
\gexec
ANALYZE;
