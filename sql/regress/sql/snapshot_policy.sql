-- The snapshot shows the caller only what the DBA's access policy lets nlq_run() read: no
-- denied relation, no view that would read one, no denied column, nor its statistics, keys
-- and indexes; with pg_nlq.allowed_relations, only the allowed relations.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS pol CASCADE;
RESET client_min_messages;
CREATE SCHEMA pol;
CREATE TABLE pol.secret (id int PRIMARY KEY, code text);
CREATE TABLE pol.people (
  id int PRIMARY KEY,
  name text NOT NULL,
  ssn text UNIQUE,
  city text,
  secret_id int REFERENCES pol.secret (id)
);
CREATE INDEX people_city_ssn ON pol.people (city) WHERE ssn IS NOT NULL;
CREATE INDEX people_name ON pol.people (name);
CREATE VIEW pol.v_people AS SELECT id, name, city FROM pol.people;
CREATE VIEW pol.v_ssn AS SELECT id, ssn FROM pol.people;
CREATE VIEW pol.v_secret AS SELECT id FROM pol.secret;
CREATE VIEW pol.v_on_v_secret AS SELECT id FROM pol.v_secret;
CREATE MATERIALIZED VIEW pol.m_secret AS SELECT count(*) AS n FROM pol.secret;
INSERT INTO pol.secret VALUES (1, 'x');
INSERT INTO pol.people SELECT g, 'P' || g % 3, 'ssn-' || g, 'C' || g % 2, 1
FROM generate_series(1, 20) g;
ANALYZE pol.people, pol.secret;
CREATE FUNCTION pg_temp.shown() RETURNS TABLE (relation text, columns text, keys text)
LANGUAGE sql AS $$
  SELECT r->>'name',
         (SELECT string_agg(c->>'name' || CASE WHEN c->'stats' IS NOT NULL
                                               AND c->>'stats' <> 'null' THEN '*' ELSE '' END,
                            ', ' ORDER BY (c->>'position')::int)
          FROM jsonb_array_elements(r->'columns') c),
         concat_ws('; ',
           'pk ' || (r->'primary_key'->>'name'),
           (SELECT 'unique ' || string_agg(u->>'name', ', ') FROM jsonb_array_elements(r->'unique_constraints') u),
           (SELECT 'fk ' || string_agg(f->>'name', ', ') FROM jsonb_array_elements(r->'foreign_keys') f),
           (SELECT 'idx ' || string_agg(i->>'name', ', ' ORDER BY i->>'name') FROM jsonb_array_elements(r->'indexes') i))
  FROM jsonb_array_elements(nlq_schema_snapshot(ARRAY['pol'])->'relations') r
  ORDER BY 1
$$;
-- no policy: everything (columns with statistics are marked *)
SELECT * FROM pg_temp.shown();
SELECT nlq_schema_fingerprint() AS before \gset
SET pg_nlq.denied_relations = 'pol.secret';
SET pg_nlq.denied_columns = 'pol.people.ssn';
-- secret, the views over it (however deep) and the materialized view over it are gone; v_ssn
-- loses ssn (its id may still be read); people loses ssn, its statistics, the unique key and
-- the partial index that mention it, and the foreign key to secret
SELECT * FROM pg_temp.shown();
-- the policy is part of the fingerprint
SELECT nlq_schema_fingerprint() <> :'before' AS fingerprint_changed;
SELECT nlq_schema_snapshot()->>'fingerprint' = nlq_schema_fingerprint() AS same_fingerprint;
-- what is shown, nlq_validate accepts; what is hidden, it refuses
SELECT q, nlq_validate(q)->>'code' AS code
FROM unnest(ARRAY['SELECT name, city FROM pol.people', 'SELECT * FROM pol.v_on_v_secret',
                  'SELECT * FROM pol.v_ssn', 'SELECT id FROM pol.v_ssn',
                  'SELECT n FROM pol.m_secret']) q
ORDER BY 1;
RESET pg_nlq.denied_relations;
RESET pg_nlq.denied_columns;
-- allowed_relations: only what it names, read directly; a view stays readable over tables
-- that are not listed
SET pg_nlq.allowed_relations = 'pol.v_people';
SELECT * FROM pg_temp.shown();
RESET pg_nlq.allowed_relations;
SELECT nlq_schema_fingerprint() = :'before' AS fingerprint_back;
DROP SCHEMA pol CASCADE;
