-- An empty database gives an empty but well-formed snapshot.
SET client_min_messages = warning;
DROP DATABASE IF EXISTS nlq_regress_empty;
RESET client_min_messages;
CREATE DATABASE nlq_regress_empty TEMPLATE template0;
\c nlq_regress_empty
CREATE EXTENSION pg_nlq;
SELECT regexp_replace(regexp_replace(jsonb_pretty(nlq_schema_snapshot()),
       '"fingerprint": "[0-9a-f]{64}"', '"fingerprint": "<sha256>"'),
       '"server_version_num": [0-9]+', '"server_version_num": "<version>"') AS snapshot;
-- pg_nlq's own functions are not part of what the caller may query
SELECT count(*) AS relations FROM jsonb_array_elements(nlq_schema_snapshot()->'relations');
\c nlq_regress
DROP DATABASE nlq_regress_empty;
