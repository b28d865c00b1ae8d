-- Findings of a black-box attack on the build before issue 9's fixes were merged, one block
-- each (the other findings are covered by snapshot_hijack, policy_derived and attack_encoding).
CREATE EXTENSION IF NOT EXISTS pg_nlq;
SET client_min_messages = warning;
CREATE SCHEMA af;
CREATE TABLE af.pub (id int);
INSERT INTO af.pub SELECT g FROM generate_series(1, 1000) g;
ANALYZE af.pub;
CREATE ROLE nlq_af_reader;
GRANT USAGE ON SCHEMA af TO nlq_af_reader;
GRANT SELECT ON af.pub TO nlq_af_reader;
RESET client_min_messages;

-- 1. libxml2 cannot be interrupted: its XPath functions and XMLTABLE are refused unless
-- allowed (a cubic XPath over a constant document once ignored cancel for a minute)
SELECT q, v->>'code' AS code, v->>'message' LIKE '%libxml2%' AS why,
       v->'functions' ?| ARRAY[f, replace(f, '.', '."') || '"'] AS listed
FROM (VALUES
  ($$SELECT xpath('count(//*[count(//*[count(//*) > 0]) > 0])', '<r><a/><a/></r>'::xml)$$, 'pg_catalog.xpath'),
  ($$SELECT xpath_exists('//a', '<r><a/></r>'::xml)$$, 'pg_catalog.xpath_exists'),
  ($$SELECT xmlexists('//a' PASSING ('<r><a/></r>'::xml))$$, 'pg_catalog.xmlexists'),
  ($$SELECT * FROM XMLTABLE('/r/a' PASSING ('<r><a>1</a></r>'::xml) COLUMNS a int PATH '.')$$, 'pg_catalog.xmltable')
) AS t(q, f), nlq_validate(q) v ORDER BY q;
SET pg_nlq.allowed_functions = 'pg_catalog.xpath';
SELECT nlq_validate($$SELECT xpath('//a', '<r><a/></r>'::xml)$$)->>'code' AS allowed_xpath;
RESET pg_nlq.allowed_functions;

-- 2. a LIMIT does not hide the cost of what must be read before the first row
SET pg_nlq.max_cost = 1000;
SELECT q, v->>'code' AS code
FROM (VALUES
  ('SELECT count(*) FROM af.pub a, af.pub b'),
  ('SELECT count(*) OVER () FROM af.pub a, af.pub b, af.pub c LIMIT 1'),
  ('SELECT a.id FROM af.pub a, af.pub b ORDER BY a.id + b.id LIMIT 1'),
  ('SELECT * FROM (SELECT a.id, count(*) FROM af.pub a, af.pub b GROUP BY a.id) s LIMIT 1'),
  ('SELECT id FROM af.pub LIMIT 5')
) AS t(q), nlq_validate(q) v ORDER BY q;
RESET pg_nlq.max_cost;

-- 3. under row-level security the row and cost limits are not applied (their verdict was an
-- oracle on the hidden rows) and no estimate is given
SET client_min_messages = warning;
CREATE TABLE af.docs (owner text, body text);
INSERT INTO af.docs SELECT 'nlq_af_reader', 'public-' || g FROM generate_series(1, 1000) g;
INSERT INTO af.docs SELECT 'boss', 'merger-with-acme' FROM generate_series(1, 300);
ALTER TABLE af.docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON af.docs FOR SELECT USING (owner = current_user);
GRANT SELECT ON af.docs TO nlq_af_reader;
ANALYZE af.docs;
RESET client_min_messages;
SET pg_nlq.max_rows_estimate = 1000;
SET ROLE nlq_af_reader;
SELECT n, v->>'code' AS code, v->'estimated_rows' AS rows, v->'estimated_cost' AS cost
FROM unnest(ARRAY[1, 5, 300]) n,
     nlq_validate(format($q$SELECT * FROM af.docs d, generate_series(1, %s) g
                            WHERE d.body = 'merger-with-acme'$q$, n)) v
ORDER BY n;
-- without row-level security the limit holds
SELECT nlq_validate('SELECT * FROM af.pub a, af.pub b')->>'code' AS no_rls;
RESET ROLE;
RESET pg_nlq.max_rows_estimate;

SET client_min_messages = warning;
DROP SCHEMA af CASCADE;
DROP OWNED BY nlq_af_reader;
DROP ROLE nlq_af_reader;
RESET client_min_messages;
