//! Defence in depth, proven inside a real backend (`cargo pgrx test`): with the validator
//! switched off (`_nlq_run_unchecked`, compiled only in test builds), the runtime layers alone
//! — the rolled-back read-only subtransaction, SPI's read-only mode, pg_nlq's timeout and caps,
//! the executor permission hook — still keep every write, every runaway query and every
//! denied relation out, and the caller's transaction is untouched.
//!
//! The SQL-level checks of the validator itself (the labelled corpus, the policies, the result
//! shape) are regression files under `sql/regress/`.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use pgrx::prelude::*;

    const CORPUS_SCHEMA: &str = include_str!("../../sql/regress/corpus/schema.sql");
    const CORPUS_STATEMENTS: &str = include_str!("../../sql/regress/corpus/statements.sql");

    /// `OK <row_count> <truncated_reason>` or `<SQLSTATE> <code> <message>` for a statement
    /// run with the validator off.
    const TRY_UNCHECKED: &str = r#"
        CREATE FUNCTION pg_temp.try_unchecked(q text, n int DEFAULT 100) RETURNS text
        LANGUAGE plpgsql AS $f$
        DECLARE state text; detail text; msg text; r jsonb;
        BEGIN
          r := _nlq_run_unchecked(q, n);
          RETURN 'OK ' || (r->>'row_count') || ' ' || coalesce(r->>'truncated_reason', '-');
        EXCEPTION WHEN OTHERS OR query_canceled THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL,
                                  msg = MESSAGE_TEXT;
          RETURN state || ' ' || coalesce(split_part(detail, ':', 1), '-') || ' ' || msg;
        END $f$;
    "#;

    fn sql(s: &str) {
        Spi::run(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }

    fn one_string(s: &str) -> String {
        Spi::get_one::<String>(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .unwrap_or_default()
    }

    fn one_i64(s: &str) -> i64 {
        Spi::get_one::<i64>(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .unwrap_or(-1)
    }

    fn unchecked(q: &str) -> String {
        Spi::get_one_with_args::<String>("SELECT pg_temp.try_unchecked($1)", &[q.into()])
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .unwrap_or_default()
    }

    fn setup() {
        sql(TRY_UNCHECKED);
        sql("CREATE SCHEMA dd;
             CREATE TABLE dd.t (id int PRIMARY KEY, note text);
             INSERT INTO dd.t SELECT g, 'n' || g FROM generate_series(1, 20) g;
             CREATE SEQUENCE dd.s;
             SELECT nextval('dd.s');
             CREATE FUNCTION dd.add(n int) RETURNS int LANGUAGE plpgsql VOLATILE AS
               $$BEGIN INSERT INTO dd.t VALUES (n, 'added'); RETURN n; END$$;");
    }

    fn assert_untouched() {
        assert_eq!(one_i64("SELECT count(*) FROM dd.t"), 20);
        assert_eq!(one_i64("SELECT last_value FROM dd.s"), 1);
        assert_eq!(
            one_string("SELECT current_setting('transaction_read_only')"),
            "off"
        );
        // and the caller can still write
        sql("INSERT INTO dd.t VALUES (1000, 'caller'); DELETE FROM dd.t WHERE id = 1000;");
    }

    #[pg_test]
    fn a_volatile_pl_function_that_inserts_changes_nothing() {
        setup();
        // the call hook stops a user function the policy does not allow before it runs
        let r = unchecked("SELECT dd.add(100)");
        assert!(r.starts_with("42501 FORBIDDEN_FUNCTION"), "{r}");
        // allowed, the read-only transaction stops its write
        sql("SET pg_nlq.allowed_functions = 'dd.add'");
        let r = unchecked("SELECT dd.add(100)");
        assert!(r.starts_with("25006 EXECUTION_ERROR"), "{r}");
        assert!(r.contains("read-only transaction"), "{r}");
        assert_untouched();
    }

    #[pg_test]
    fn nextval_and_setval_change_nothing() {
        setup();
        let r = unchecked("SELECT nextval('dd.s')");
        assert!(r.starts_with("25006 EXECUTION_ERROR"), "{r}");
        let r = unchecked("SELECT setval('dd.s', 99)");
        assert!(r.starts_with("25006 EXECUTION_ERROR"), "{r}");
        assert_untouched();
    }

    #[pg_test]
    fn writable_ctes_select_into_and_piggybacked_writes_change_nothing() {
        setup();
        for q in [
            "WITH d AS (DELETE FROM dd.t RETURNING *) SELECT count(*) FROM d",
            "WITH i AS (INSERT INTO dd.t VALUES (500, 'x') RETURNING *) SELECT * FROM i",
            "SELECT * INTO dd.copy FROM dd.t",
            "SELECT 1; DELETE FROM dd.t",
            "SELECT 1; COMMIT; DELETE FROM dd.t",
            "DELETE FROM dd.t",
            "SELECT * FROM dd.t FOR UPDATE",
            "DO $$BEGIN DELETE FROM dd.t; END$$",
            "SELECT query_to_xml('DELETE FROM dd.t RETURNING 1', true, true, '')",
        ] {
            let r = unchecked(q);
            assert!(!r.starts_with("OK"), "{q} ran: {r}");
        }
        assert!(
            Spi::get_one::<bool>("SELECT to_regclass('dd.copy') IS NULL")
                .unwrap()
                .unwrap()
        );
        assert_untouched();
    }

    #[pg_test]
    fn writes_the_read_only_mode_allows_are_rolled_back() {
        setup();
        // temporary tables are writable in a read-only transaction: the rollback undoes it
        sql("CREATE TEMP TABLE scratch (x int);
             CREATE FUNCTION pg_temp.scribble() RETURNS int LANGUAGE plpgsql AS
               $$BEGIN INSERT INTO scratch VALUES (1); RETURN 1; END$$;");
        let r = unchecked("SELECT pg_temp.scribble()");
        assert!(r.starts_with("42501 FORBIDDEN_FUNCTION"), "{r}");
        sql("SET pg_nlq.allowed_functions = 'scribble'");
        let r = unchecked("SELECT pg_temp.scribble()");
        assert_eq!(r, "OK 1 -");
        assert_eq!(one_i64("SELECT count(*) FROM scratch"), 0);
        // so are settings, even session-wide ones
        let before = one_string("SELECT current_setting('search_path')");
        let r = unchecked("SELECT set_config('search_path', 'dd', false)");
        assert!(r.starts_with("OK"), "{r}");
        assert_eq!(one_string("SELECT current_setting('search_path')"), before);
        assert_untouched();
    }

    #[pg_test]
    fn a_runaway_cross_join_is_cancelled_by_the_timeout() {
        setup();
        sql("SET pg_nlq.statement_timeout = '150ms'");
        let r = unchecked(
            "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b",
        );
        assert!(r.starts_with("57014 STATEMENT_TIMEOUT"), "{r}");
        let r = unchecked("SELECT pg_sleep(60)");
        assert!(r.starts_with("57014 STATEMENT_TIMEOUT"), "{r}");
        assert_untouched();
    }

    #[pg_test]
    fn the_row_and_byte_caps_truncate() {
        setup();
        assert_eq!(
            unchecked("SELECT generate_series(1, 1000000000)"),
            "OK 100 row_limit"
        );
        sql("SET pg_nlq.max_result_bytes = 64");
        assert_eq!(
            unchecked("SELECT id, note FROM dd.t ORDER BY id"),
            "OK 7 max_result_bytes"
        );
        assert_eq!(
            unchecked("SELECT repeat('x', 100000)"),
            "OK 0 max_result_bytes"
        );
    }

    #[pg_test]
    fn the_executor_hook_refuses_denied_relations_the_validator_never_saw() {
        setup();
        sql("CREATE TABLE dd.secret (k text, v text);
             INSERT INTO dd.secret VALUES ('a', 'b');
             CREATE FUNCTION dd.peek() RETURNS text LANGUAGE plpgsql STABLE AS
               $$BEGIN RETURN (SELECT v FROM dd.secret LIMIT 1); END$$;
             SET pg_nlq.denied_relations = 'dd.secret';
             SET pg_nlq.denied_columns = 'dd.t.note';");
        let r = unchecked("SELECT * FROM dd.secret");
        assert!(r.starts_with("42501 FORBIDDEN_RELATION"), "{r}");
        // a user function not allowed is stopped when it is called, by the call hook
        let r = unchecked("SELECT dd.peek()");
        assert!(r.starts_with("42501 FORBIDDEN_FUNCTION"), "{r}");
        // allowed, its body's read of the denied table is stopped by the executor hook
        sql("SET pg_nlq.allowed_functions = 'dd.peek'");
        let r = unchecked("SELECT dd.peek()");
        assert!(r.starts_with("42501 FORBIDDEN_RELATION"), "{r}");
        let r = unchecked("SELECT count(*) FROM dd.t WHERE note IS NOT NULL");
        assert!(r.starts_with("42501 FORBIDDEN_COLUMN"), "{r}");
        let r = unchecked("SELECT t FROM dd.t t");
        assert!(r.starts_with("42501 FORBIDDEN_COLUMN"), "{r}");
        assert_eq!(unchecked("SELECT id FROM dd.t"), "OK 20 -");
        // outside nlq_run the hook does nothing
        assert_eq!(one_string("SELECT dd.peek()"), "b");
    }

    /// The whole labelled corpus, run with the validator off as the corpus's reader role: no
    /// table or sequence changes, the session survives, the caller's transaction is intact.
    /// Left out: the statements only the function policy stops, because their effect is
    /// outside any transaction (signalling backends, session advisory locks, configuration
    /// reload, statistics reset, the random seed, assigning a transaction id).
    #[pg_test]
    fn the_corpus_with_the_validator_off_changes_nothing() {
        sql(TRY_UNCHECKED);
        sql(CORPUS_SCHEMA);
        sql(CORPUS_STATEMENTS);
        sql("SELECT nlqc_util.corpus_policy();
             SET pg_nlq.statement_timeout = '300ms';");
        let before = one_string("SELECT nlqc_util.database_checksum()");
        let path = one_string("SELECT current_setting('search_path')");
        sql("SET ROLE nlqc_reader");
        let ran = one_i64(
            r#"SELECT count(pg_temp.try_unchecked(sql, 5)) FROM nlqc_shop.corpus
               WHERE sql !~* ('pg_terminate_backend|pg_cancel_backend|advisory|pg_reload_conf'
                              '|pg_stat_reset|setseed|txid_current|pg_current_xact_id')"#,
        );
        sql("RESET ROLE");
        assert!(ran > 250, "only {ran} statements ran");
        assert_eq!(one_string("SELECT nlqc_util.database_checksum()"), before);
        assert_eq!(one_string("SELECT current_setting('search_path')"), path);
        assert_eq!(
            one_string("SELECT current_setting('transaction_read_only')"),
            "off"
        );
        assert_eq!(one_i64("SELECT count(*) FROM nlqc_util.audit"), 0);
        sql("INSERT INTO nlqc_util.audit(what) VALUES ('caller writes')");
        assert_eq!(one_i64("SELECT 1"), 1);
    }

    /// The same corpus, validator on: nlq_validate() never raises, whatever the input.
    #[pg_test]
    fn nlq_validate_reports_every_corpus_statement_as_data() {
        sql(CORPUS_SCHEMA);
        sql(CORPUS_STATEMENTS);
        sql("SELECT nlqc_util.corpus_policy()");
        sql("SET ROLE nlqc_reader");
        let mismatches = one_i64("SELECT count(*) FROM nlqc_util.corpus_mismatches()");
        sql("RESET ROLE");
        assert_eq!(mismatches, 0);
    }
}
