-- The validation corpus (sql/regress/corpus/statements.sql): every labelled statement must get
-- its code from nlq_validate() and from nlq_run(), as a non-superuser role under the policy of
-- nlqc_util.corpus_policy(); and running the whole corpus must change nothing in the database.
-- Only mismatches are printed, so this file's expected output is short: any line in the
-- mismatch lists is a defect (a false acceptance or a false rejection).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_nlq;
RESET client_min_messages;
\set ECHO none
\set QUIET on
\ir sql/regress/corpus/schema.sql
\ir sql/regress/corpus/statements.sql
\set QUIET off
\set ECHO all
SELECT count(*) AS statements, count(*) FILTER (WHERE expect = 'OK') AS must_accept,
       count(*) FILTER (WHERE expect <> 'OK') AS must_reject
FROM nlqc_shop.corpus;
-- every code the issue names is exercised
SELECT expect AS code, count(*) AS statements FROM nlqc_shop.corpus GROUP BY expect ORDER BY expect;
SELECT FROM nlqc_util.corpus_policy();
SELECT nlqc_util.database_checksum() AS checksum_before \gset
SET ROLE nlqc_reader;
-- nlq_validate(): statements whose code differs from their label
SELECT * FROM nlqc_util.corpus_mismatches();
-- nlq_run(): accepted statements that fail, refused ones raised with another code
SELECT * FROM nlqc_util.corpus_run_mismatches();
-- after nlq_run(), the caller can still write
SHOW transaction_read_only;
RESET ROLE;
CREATE TEMP TABLE written_after_run AS SELECT 1 AS x;
DROP TABLE written_after_run;
-- nothing the corpus ran changed any table, sequence or advisory lock
SELECT nlqc_util.database_checksum() = :'checksum_before' AS database_unchanged;
-- as a superuser: only the statements refused for missing privileges now run; every policy
-- still holds, and nothing changes either
SELECT * FROM nlqc_util.corpus_run_mismatches();
SELECT nlqc_util.database_checksum() = :'checksum_before' AS database_unchanged;
SET client_min_messages = warning;
DROP SCHEMA nlqc_shop, nlqc_hr, nlqc_secret, nlqc_private, nlqc_util CASCADE;
DROP ROLE nlqc_reader;
RESET client_min_messages;
