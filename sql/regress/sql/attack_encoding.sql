-- Issue 9, item 4 (delivery item 5): the query text is taken in the database's encoding and
-- every answer is valid UTF-8 JSON, in LATIN1, SQL_ASCII and EUC_JP databases: literals and
-- names with non-ASCII characters validate, relations and columns are reported by their real
-- names, nlq_run() returns the real values, the access policy matches the real names (a denied
-- relation or column with a non-ASCII name is refused), and the snapshot works.
\set regress_db :DBNAME
SET client_min_messages = warning;
DROP DATABASE IF EXISTS nlq_attack_latin1;
DROP DATABASE IF EXISTS nlq_attack_ascii;
DROP DATABASE IF EXISTS nlq_attack_eucjp;
RESET client_min_messages;
CREATE DATABASE nlq_attack_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE nlq_attack_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE nlq_attack_eucjp ENCODING 'EUC_JP' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;

-- LATIN1 (this file is UTF-8: the client says so and the server converts)
\c nlq_attack_latin1
SET client_encoding = 'UTF8';
SET client_min_messages = warning;
CREATE EXTENSION pg_nlq;
RESET client_min_messages;
CREATE TABLE "café" (id int, "prénom" text, "naïve" text);
INSERT INTO "café" VALUES (1, 'Zoë', 'ça va');
CREATE TABLE "señor_secret" (x int);
CREATE FUNCTION pg_temp.validate(sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE state text;
BEGIN
  RETURN nlq_validate(sql);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
  RETURN jsonb_build_object('code', 'raised ' || state);
END $$;
CREATE FUNCTION pg_temp.run(sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE state text; detail text;
BEGIN
  RETURN nlq_run(sql, 5) - 'elapsed_ms';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
  RETURN jsonb_build_object('error', coalesce(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), 'no code (' || state || ')'));
END $$;
SELECT v->>'code' AS code FROM pg_temp.validate($q$SELECT 'café'$q$) v;
SELECT v->>'code' AS code, v->'relations' AS relations, v->'columns' AS columns
FROM pg_temp.validate($q$SELECT id, "prénom" FROM "café" WHERE "naïve" <> 'ß'$q$) v;
SELECT pg_temp.run($q$SELECT "prénom", 'ça' AS "ç", length("naïve") AS n FROM "café"$q$) AS result;
SELECT pg_temp.run($q$SELECT 'café' AS word$q$)->'rows' AS rows;
-- the policy matches the real names
SET pg_nlq.denied_relations = 'public.señor_secret';
SELECT v->>'code' AS code FROM pg_temp.validate($q$SELECT * FROM "señor_secret"$q$) v;
SELECT pg_temp.run($q$SELECT * FROM "señor_secret"$q$) AS result;
SET pg_nlq.denied_columns = 'public.café.naïve';
SELECT v->>'code' AS code FROM pg_temp.validate($q$SELECT "naïve" FROM "café"$q$) v;
SELECT v->>'code' AS code FROM pg_temp.validate($q$SELECT "prénom" FROM "café"$q$) v;
-- the snapshot: the real names, the denied relation and column left out
SELECT r->>'name' AS relation,
       (SELECT array_agg(c->>'name' ORDER BY c->>'name') FROM jsonb_array_elements(r->'columns') c) AS columns
FROM jsonb_array_elements(nlq_schema_snapshot()->'relations') r ORDER BY 1;
RESET pg_nlq.denied_relations;
RESET pg_nlq.denied_columns;

-- SQL_ASCII: bytes >= 0x80 pass through unconverted; whatever they are, nlq_validate() answers
-- and both functions' JSON is valid UTF-8
\c nlq_attack_ascii
SET client_min_messages = warning;
CREATE EXTENSION pg_nlq;
RESET client_min_messages;
CREATE FUNCTION pg_temp.is_utf8(t text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  PERFORM convert_from(convert_to(t, 'SQL_ASCII'), 'UTF8');
  RETURN true;
EXCEPTION WHEN OTHERS THEN
  RETURN false;
END $$;
CREATE FUNCTION pg_temp.raw(hex text) RETURNS text LANGUAGE sql AS
  $$SELECT convert_from(decode(hex, 'hex'), 'SQL_ASCII')$$;
CREATE FUNCTION pg_temp.probe(sql text, OUT validate text, OUT validate_utf8 bool,
                              OUT run text, OUT run_utf8 bool)
LANGUAGE plpgsql AS $$
DECLARE v jsonb; r jsonb; state text; detail text;
BEGIN
  BEGIN
    v := nlq_validate(sql);
    validate := v->>'code';
    validate_utf8 := pg_temp.is_utf8(v::text);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    validate := 'raised ' || state;
  END;
  BEGIN
    r := nlq_run(sql, 5);
    run := 'answered';
    run_utf8 := pg_temp.is_utf8(r::text);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
    run := coalesce(substring(detail from '^([A-Z][A-Z_]+)(?::|$)'), 'no code (' || state || ')');
  END;
END $$;
-- a table whose name and column name hold a LATIN1 byte (e9) and a UTF-8 sequence (c3a9)
SELECT format('CREATE TABLE %I (id int, %I text)', pg_temp.raw('636166e9'), pg_temp.raw('6e6f6dc3a9')) AS ddl \gset
:ddl;
SELECT format('INSERT INTO %I VALUES (1, %L)', pg_temp.raw('636166e9'), pg_temp.raw('5a6febff')) AS dml \gset
:dml;
SELECT label, p.* FROM (VALUES
  (1, 'ASCII', pg_temp.raw(encode('SELECT ''cafe''', 'hex'))),
  (2, 'a LATIN1 byte in a literal', pg_temp.raw('53454c4543542027636166e92027')),
  (3, 'a UTF-8 sequence in a literal', pg_temp.raw('53454c4543542027636166c3a92027')),
  (4, 'an invalid byte ff in a literal', pg_temp.raw('53454c454354202778ff2027')),
  (5, 'high-bit table and column names', pg_temp.raw('53454c45435420226e6f6dc3a9222c2069642046524f4d2022636166e922')),
  (6, 'high-bit bytes in an identifier alias', pg_temp.raw('53454c4543542031204153202261e92022')),
  (7, 'a syntax error next to high-bit bytes', pg_temp.raw('53454c454354202ce9'))
) AS t(n, label, sql), pg_temp.probe(sql) p ORDER BY n;
SELECT jsonb_array_length(v->'relations') AS relations, jsonb_array_length(v->'columns') AS columns
FROM nlq_validate(pg_temp.raw('53454c45435420226e6f6dc3a9222c2069642046524f4d2022636166e922')) v;
SELECT pg_temp.is_utf8(nlq_schema_snapshot()::text) AS snapshot_utf8;

-- EUC_JP, a multibyte encoding
\c nlq_attack_eucjp
SET client_encoding = 'UTF8';
SET client_min_messages = warning;
CREATE EXTENSION pg_nlq;
RESET client_min_messages;
CREATE TABLE "日本" (id int, "名前" text);
INSERT INTO "日本" VALUES (1, '東京');
SELECT v->>'code' AS code FROM nlq_validate($q$SELECT '日本語'$q$) v;
SELECT v->>'code' AS code, v->'relations' AS relations, v->'columns' AS columns
FROM nlq_validate($q$SELECT "名前" FROM "日本"$q$) v;
SELECT nlq_run($q$SELECT "名前", '語' AS "字" FROM "日本"$q$)->'rows' AS rows;
SET pg_nlq.denied_columns = 'public.日本.名前';
SELECT v->>'code' AS code FROM nlq_validate($q$SELECT "名前" FROM "日本"$q$) v;
RESET pg_nlq.denied_columns;

\c :regress_db
DROP DATABASE nlq_attack_latin1;
DROP DATABASE nlq_attack_ascii;
DROP DATABASE nlq_attack_eucjp;
