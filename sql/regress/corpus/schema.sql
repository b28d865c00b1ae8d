-- The schema the validation corpus (statements.sql) runs against: a small shop with every
-- feature the corpus needs (enum, domain, composite, arrays, jsonb, views, a materialized view,
-- a partitioned table, row-level security, sequences), a denied HR schema, a schema the reader
-- may not use, and user functions and operators an attacker would reach for.
--
-- Used by sql/regress/sql/validate_corpus.sql (via \ir) and by the #[pg_test]s in
-- pg_nlq_ext/src/tests.rs (via include_str!). Idempotent; run as a superuser.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS nlqc_shop, nlqc_hr, nlqc_secret, nlqc_private, nlqc_util CASCADE;
DROP ROLE IF EXISTS nlqc_reader;
RESET client_min_messages;

CREATE ROLE nlqc_reader;
CREATE SCHEMA nlqc_shop;
CREATE SCHEMA nlqc_hr;
CREATE SCHEMA nlqc_secret;
CREATE SCHEMA nlqc_private;
CREATE SCHEMA nlqc_util;

CREATE TYPE nlqc_shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN nlqc_shop.email AS text CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE TYPE nlqc_shop.address AS (street text, city text, zip text);

CREATE TABLE nlqc_shop.customers (
  id int PRIMARY KEY,
  name text NOT NULL,
  email nlqc_shop.email,
  address nlqc_shop.address,
  tags text[],
  profile jsonb,
  created_at timestamptz NOT NULL,
  ssn text
);
CREATE TABLE nlqc_shop.products (
  id int PRIMARY KEY,
  name text NOT NULL,
  category text NOT NULL,
  price numeric(10, 2) NOT NULL,
  attrs jsonb
);
CREATE TABLE nlqc_shop.orders (
  id int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES nlqc_shop.customers,
  status nlqc_shop.order_status NOT NULL,
  placed_at timestamptz NOT NULL,
  total numeric(12, 2) NOT NULL
);
CREATE TABLE nlqc_shop.order_items (
  order_id int NOT NULL REFERENCES nlqc_shop.orders,
  product_id int NOT NULL REFERENCES nlqc_shop.products,
  qty int NOT NULL,
  unit_price numeric(10, 2) NOT NULL
);
CREATE TABLE nlqc_shop.measurements (city text, day date, temp_c numeric) PARTITION BY RANGE (day);
CREATE TABLE nlqc_shop.measurements_2024 PARTITION OF nlqc_shop.measurements
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE nlqc_shop.measurements_2025 PARTITION OF nlqc_shop.measurements
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE nlqc_shop.tenant_notes (tenant name NOT NULL, note text);
ALTER TABLE nlqc_shop.tenant_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON nlqc_shop.tenant_notes USING (tenant = current_user);
CREATE SEQUENCE nlqc_shop.invoice_seq;

INSERT INTO nlqc_shop.customers
SELECT g, 'Customer ' || g, 'c' || g || '@example.com',
       ROW('Street ' || g, (ARRAY['Berlin', 'Paris', 'Rome'])[1 + g % 3], lpad(g::text, 5, '0'))::nlqc_shop.address,
       ARRAY['t' || (g % 4), 'all'], jsonb_build_object('tier', g % 3, 'vip', g % 5 = 0),
       timestamptz '2024-01-01' + g * interval '3 days', 'ssn-' || g
FROM generate_series(1, 50) g;
INSERT INTO nlqc_shop.products
SELECT g, 'Product ' || g, (ARRAY['books', 'games', 'music'])[1 + g % 3], 5 + g,
       jsonb_build_object('colour', (ARRAY['red', 'blue'])[1 + g % 2])
FROM generate_series(1, 20) g;
INSERT INTO nlqc_shop.orders
SELECT g, 1 + g % 50, (enum_range(NULL::nlqc_shop.order_status))[1 + g % 4],
       timestamptz '2024-06-01' + g * interval '1 day', 10 * g
FROM generate_series(1, 200) g;
INSERT INTO nlqc_shop.order_items
SELECT g, 1 + g % 20, 1 + g % 3, 5 + g % 20 FROM generate_series(1, 200) g;
INSERT INTO nlqc_shop.measurements
SELECT (ARRAY['Berlin', 'Paris'])[1 + g % 2], date '2024-01-01' + g, g % 30
FROM generate_series(0, 700) g;
INSERT INTO nlqc_shop.tenant_notes VALUES ('nlqc_reader', 'mine'), ('someone_else', 'theirs');

CREATE VIEW nlqc_shop.order_summary AS
  SELECT o.id, c.name AS customer, o.status, o.total
  FROM nlqc_shop.orders o JOIN nlqc_shop.customers c ON c.id = o.customer_id;
CREATE VIEW nlqc_shop.customer_contacts AS SELECT id, name, ssn FROM nlqc_shop.customers;
CREATE VIEW nlqc_shop.locked_orders AS SELECT * FROM nlqc_shop.orders FOR UPDATE;
CREATE MATERIALIZED VIEW nlqc_shop.daily_sales AS
  SELECT placed_at::date AS day, sum(total) AS total FROM nlqc_shop.orders GROUP BY 1;

CREATE TABLE nlqc_hr.salaries (employee text, amount numeric);
INSERT INTO nlqc_hr.salaries VALUES ('ann', 100), ('bob', 200);
CREATE VIEW nlqc_shop.payroll AS SELECT * FROM nlqc_hr.salaries;

CREATE TABLE nlqc_secret.keys (id int, k text);
INSERT INTO nlqc_secret.keys VALUES (1, 'hunter2');
CREATE TABLE nlqc_secret.partial (id int, k text);
CREATE TABLE nlqc_private.hidden (id int);

-- what an attacker would reach for: a volatile PL function that writes, harmless-looking SQL
-- functions, a function without EXECUTE, look-alikes of built-ins for search_path tricks, a
-- user operator, a domain whose CHECK calls a user function, a function reading a denied table
CREATE TABLE nlqc_util.audit (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION nlqc_util.add_note(t text) RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$BEGIN INSERT INTO nlqc_util.audit(what) VALUES (t); RETURN 1; END$$;
CREATE FUNCTION nlqc_util.slugify(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$SELECT lower(regexp_replace(t, '[^a-zA-Z0-9]+', '-', 'g'))$$;
CREATE FUNCTION nlqc_util.private_fn(t text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$SELECT t$$;
REVOKE EXECUTE ON FUNCTION nlqc_util.private_fn(text) FROM PUBLIC;
CREATE FUNCTION nlqc_util.now() RETURNS timestamptz LANGUAGE sql STABLE AS
  $$SELECT pg_catalog.now()$$;
CREATE FUNCTION nlqc_util.int_plus(a int, b int) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO nlqc_util.audit(what) VALUES ('plus'); RETURN a - b; END$$;
CREATE OPERATOR nlqc_util.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = nlqc_util.int_plus);
CREATE FUNCTION nlqc_util.same(a int, b int) RETURNS bool LANGUAGE sql IMMUTABLE AS
  $$SELECT a = b$$;
CREATE OPERATOR nlqc_util.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = nlqc_util.same);
CREATE FUNCTION nlqc_util.positive(v int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS
  $$BEGIN RETURN v > 0; END$$;
CREATE DOMAIN nlqc_shop.checked_qty AS int CHECK (nlqc_util.positive(VALUE));
CREATE FUNCTION nlqc_util.read_salaries() RETURNS SETOF numeric LANGUAGE sql STABLE AS
  $$SELECT amount FROM nlqc_hr.salaries$$;
CREATE VIEW nlqc_shop.sleepy AS SELECT pg_sleep(0) IS NULL AS slept;

ANALYZE nlqc_shop.customers, nlqc_shop.products, nlqc_shop.orders, nlqc_shop.order_items,
        nlqc_shop.measurements, nlqc_hr.salaries;

GRANT USAGE ON SCHEMA nlqc_shop, nlqc_hr, nlqc_secret, nlqc_util TO nlqc_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA nlqc_shop, nlqc_hr TO nlqc_reader;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA nlqc_shop TO nlqc_reader;
GRANT SELECT (id) ON nlqc_secret.partial TO nlqc_reader;
GRANT SELECT ON nlqc_private.hidden TO nlqc_reader;  -- but no USAGE on the schema

-- The labelled statements: expect is the code nlq_validate() must return; search_path, when
-- set, is the caller's search_path for that statement.
CREATE TABLE nlqc_shop.corpus (
  id int PRIMARY KEY,
  expect text NOT NULL,
  category text NOT NULL,
  search_path text,
  sql text NOT NULL
);
GRANT SELECT ON nlqc_shop.corpus TO nlqc_reader;

-- The policy the corpus is labelled for (set by the caller, as a DBA would per role).
CREATE FUNCTION nlqc_util.corpus_policy() RETURNS void LANGUAGE sql AS $$
  SELECT set_config('pg_nlq.denied_relations', 'nlqc_hr.*', false),
         set_config('pg_nlq.denied_columns', 'nlqc_shop.customers.ssn', false),
         set_config('pg_nlq.allowed_functions', 'nlqc_util.slugify, nlqc_util.private_fn', false),
         set_config('pg_nlq.max_cost', '100000000', false)
$$;

-- Statements whose nlq_validate() code differs from their label, as the calling role.
CREATE FUNCTION nlqc_util.corpus_mismatches()
RETURNS TABLE (id int, expect text, got text, message text) LANGUAGE plpgsql AS $$
DECLARE
  c record;
  v jsonb;
  default_path text := current_setting('search_path');
BEGIN
  FOR c IN SELECT * FROM nlqc_shop.corpus ORDER BY corpus.id LOOP
    PERFORM set_config('search_path', coalesce(c.search_path, default_path), true);
    v := public.nlq_validate(c.sql);
    PERFORM set_config('search_path', default_path, true);
    IF v->>'code' IS DISTINCT FROM c.expect THEN
      id := c.id; expect := c.expect; got := v->>'code'; message := v->>'message';
      RETURN NEXT;
    END IF;
  END LOOP;
END $$;

-- The same through nlq_run(): an accepted statement must run, a refused one must raise with its
-- code at the head of the DETAIL.
CREATE FUNCTION nlqc_util.corpus_run_mismatches()
RETURNS TABLE (id int, expect text, got text, message text) LANGUAGE plpgsql AS $$
DECLARE
  c record;
  detail text;
  msg text;
  default_path text := current_setting('search_path');
BEGIN
  FOR c IN SELECT * FROM nlqc_shop.corpus ORDER BY corpus.id LOOP
    PERFORM set_config('search_path', coalesce(c.search_path, default_path), true);
    BEGIN
      PERFORM public.nlq_run(c.sql, 5);
      got := 'OK'; msg := NULL;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
      got := split_part(detail, ':', 1);
    END;
    PERFORM set_config('search_path', default_path, true);
    IF got IS DISTINCT FROM c.expect THEN
      id := c.id; expect := c.expect; message := msg;
      RETURN NEXT;
    END IF;
  END LOOP;
END $$;

-- A checksum of every table and sequence in the database (content, and which exist), and of
-- the session's advisory locks: identical before and after running the whole corpus.
CREATE FUNCTION nlqc_util.database_checksum() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r record;
  part text;
  parts text[] := '{}';
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS rel, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'S', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    ORDER BY 1::text
  LOOP
    IF r.relkind = 'S' THEN
      EXECUTE format('SELECT last_value::text || is_called::text FROM %s', r.rel) INTO part;
    ELSE
      EXECUTE format('SELECT count(*)::text || md5(coalesce(string_agg(t::text, %L ORDER BY t::text), %L)) FROM %s t',
                     E'\n', '', r.rel) INTO part;
    END IF;
    parts := parts || (r.rel::text || ':' || part);
  END LOOP;
  SELECT count(*)::text INTO part FROM pg_locks WHERE locktype = 'advisory';
  parts := parts || ('advisory locks:' || part);
  RETURN md5(array_to_string(parts, E'\n'));
END $$;
