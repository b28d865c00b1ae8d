-- Issue 9, item 7: estimates are not an oracle. A refusal (missing table or column privilege,
-- the access policy) carries no estimate: estimated_rows and estimated_cost are null or absent,
-- so the planner's view of data the caller may not read never reaches it; nlq_run()'s error
-- carries no figure either. Over a table with row-level security that applies to the caller,
-- estimates are withheld even when the query is accepted. Where nothing is hidden, estimates
-- are given (so the test can fail both ways).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
DROP SCHEMA IF EXISTS nlqo CASCADE;
DROP ROLE IF EXISTS nlqo_reader;
RESET client_min_messages;
CREATE SCHEMA nlqo;
CREATE TABLE nlqo.salaries (id int, name text, amount numeric);
INSERT INTO nlqo.salaries SELECT g, CASE WHEN g < 3000 THEN 'CEO Alice' ELSE 'Bob' END, g
FROM generate_series(1, 3000) g;
CREATE TABLE nlqo.people (id int, name text, ssn text);
INSERT INTO nlqo.people SELECT g, 'p' || g, lpad(g::text, 9, '0') FROM generate_series(1, 3000) g;
CREATE INDEX ON nlqo.people (ssn);
CREATE TABLE nlqo.notes (id int, owner name, secret text);
INSERT INTO nlqo.notes SELECT g, CASE WHEN g = 1 THEN 'nlqo_reader' ELSE 'someone' END, 'kw' || (g % 7)
FROM generate_series(1, 3000) g;
ALTER TABLE nlqo.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON nlqo.notes USING (owner = current_user);
CREATE TABLE nlqo.open (id int);
INSERT INTO nlqo.open SELECT generate_series(1, 100);
ANALYZE nlqo.salaries, nlqo.people, nlqo.notes, nlqo.open;
-- inserted after ANALYZE: the planner would still find it through the index's live bounds
INSERT INTO nlqo.people VALUES (9999, 'late', '999999999');
CREATE ROLE nlqo_reader;
GRANT USAGE ON SCHEMA nlqo TO nlqo_reader;
GRANT SELECT (id, name) ON nlqo.people TO nlqo_reader;
GRANT SELECT ON nlqo.notes, nlqo.open TO nlqo_reader;

CREATE FUNCTION pg_temp.probe(sql text, OUT code text, OUT estimates text, OUT run text,
                              OUT run_error_has_figures bool)
LANGUAGE plpgsql AS $$
DECLARE v jsonb; detail text; msg text; hint text;
BEGIN
  v := nlq_validate(sql);
  code := v->>'code';
  estimates := CASE
    WHEN coalesce(jsonb_typeof(v->'estimated_rows'), 'null') = 'null'
     AND coalesce(jsonb_typeof(v->'estimated_cost'), 'null') = 'null' THEN 'withheld'
    WHEN jsonb_typeof(v->'estimated_rows') = 'number' AND jsonb_typeof(v->'estimated_cost') = 'number'
      THEN 'given'
    ELSE 'partly' END;
  BEGIN
    PERFORM nlq_run(sql, 5);
    run := 'answered';
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    run := coalesce(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), 'no code');
    run_error_has_figures := concat_ws(' ', msg, detail, hint) ~ '(2999|rows|cost)';
  END;
END $$;

SET ROLE nlqo_reader;
SELECT label, p.* FROM (VALUES
  (1, 'no privilege on the table', $q$SELECT * FROM nlqo.salaries WHERE name = 'CEO Alice'$q$),
  (2, 'no privilege, absent value', $q$SELECT * FROM nlqo.salaries WHERE name = 'Nobody'$q$),
  (3, 'ungranted column in WHERE', $q$SELECT id FROM nlqo.people WHERE ssn = '000000042'$q$),
  (4, 'ungranted column, amplified join',
      $q$SELECT a.id FROM nlqo.people a, nlqo.people b, nlqo.people c WHERE a.ssn > '999999990'$q$),
  (5, 'granted columns only', $q$SELECT id, name FROM nlqo.people WHERE name = 'p1'$q$),
  (6, 'row-level security applies', $q$SELECT id FROM nlqo.notes WHERE secret = 'kw3'$q$),
  (7, 'row-level security, amplified', $q$SELECT a.id FROM nlqo.notes a, nlqo.notes b WHERE a.secret = b.secret$q$),
  (8, 'nothing hidden', $q$SELECT id FROM nlqo.open WHERE id < 50$q$)
) AS t(n, label, sql), pg_temp.probe(sql) p ORDER BY n;
RESET ROLE;
-- the access policy's refusals carry no estimate either
SET pg_nlq.denied_relations = 'nlqo.salaries';
SET pg_nlq.denied_columns = 'nlqo.people.ssn';
SELECT label, p.* FROM (VALUES
  (1, 'denied relation', $q$SELECT * FROM nlqo.salaries WHERE name = 'CEO Alice'$q$),
  (2, 'denied column', $q$SELECT id FROM nlqo.people WHERE ssn = '000000042'$q$)
) AS t(n, label, sql), pg_temp.probe(sql) p ORDER BY n;
RESET pg_nlq.denied_relations;
RESET pg_nlq.denied_columns;
SET client_min_messages = warning;
DROP SCHEMA nlqo CASCADE;
DROP ROLE nlqo_reader;
RESET client_min_messages;
