//! Connection strings: parsed once (libpq key/value strings and `postgres://` URLs, with the
//! TLS options), redacted for messages. Where they come from: a configuration file's
//! `[[servers]]`, `NLQ_DATABASE_URL` (a server whose databases are discovered, see
//! [`crate::settings`]) and `snapshot --dsn` (one database).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conninfo::TlsMode;
use crate::error::{describe_pg_error, BridgeError};

/// Environment variable naming a server (its databases are discovered) when no configuration
/// file names one; the same meaning for every command.
pub const DATABASE_ENV: &str = "NLQ_DATABASE_URL";

/// How long to wait for a server when the connection string sets no `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the bridge shows itself in `pg_stat_activity` unless the connection string says otherwise.
const APPLICATION_NAME: &str = "pg-nlq-bridge";

/// A parsed connection string, and its redacted text for messages and logs.
#[derive(Clone)]
pub struct DatabaseConfig {
    pg: tokio_postgres::Config,
    redacted: String,
    /// `sslmode` after libpq's defaults (see [`TlsMode::resolve`]).
    tls: TlsMode,
    /// The `sslrootcert` file; `None` for the system's root certificates.
    root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseConfig")
            .field(&self.redacted)
            .finish()
    }
}

impl DatabaseConfig {
    /// The connection string of `--dsn` when given (`flag`), else `env` (empty counts as
    /// unset).
    pub fn resolve(flag: Option<String>, env: Option<String>) -> Result<Self, BridgeError> {
        match (flag, env) {
            (Some(dsn), _) => Self::parse(&dsn, "--dsn"),
            (None, Some(dsn)) if !dsn.trim().is_empty() => Self::parse(&dsn, DATABASE_ENV),
            (None, _) => Err(BridgeError::Config(format!(
                "no database given: pass --dsn <conninfo-or-URL> or set {DATABASE_ENV}"
            ))),
        }
    }

    /// Parses a libpq key/value connection string or a `postgres://` URL; `source` names where
    /// it came from, for the error message.
    ///
    /// `sslmode` and `sslrootcert` are read here (tokio-postgres knows neither `verify-ca`,
    /// `verify-full` nor `sslrootcert`); see [`crate::tls`]. TLS is not asked for when every
    /// host is a Unix-domain socket, as in libpq, and a server given only by `hostaddr` is
    /// also its host name for TLS (tokio-postgres cannot do TLS without one).
    pub fn parse(dsn: &str, source: &str) -> Result<Self, BridgeError> {
        let redacted = redact_dsn(dsn);
        if dsn.trim().is_empty() {
            return Err(BridgeError::Config(format!(
                "{source} is empty: give a connection string such as \
                 \"host=localhost dbname=shop\" or \"postgres://localhost/shop\""
            )));
        }
        let options = crate::conninfo::extract_options(dsn);
        let (tls, root_cert) =
            TlsMode::resolve(options.sslmode.as_deref(), options.sslrootcert.as_deref()).map_err(
                |e| {
                    BridgeError::Config(format!(
                        "{source} is not a valid connection string ({redacted}): {e}"
                    ))
                },
            )?;
        let mut pg: tokio_postgres::Config = options.rest.parse().map_err(|e| {
            BridgeError::Config(format!(
                "{source} is not a valid connection string ({redacted}): {}",
                describe_pg_error(&e)
            ))
        })?;
        if pg.get_hosts().is_empty() && pg.get_hostaddrs().is_empty() {
            return Err(BridgeError::Config(format!(
                "the connection string of {source} ({redacted}) names no server: \
                 add host=<name or socket directory>"
            )));
        }
        let (hosts, ports) = (
            pg.get_hosts().len().max(pg.get_hostaddrs().len()),
            pg.get_ports().len(),
        );
        if ports > 1 && ports != hosts {
            return Err(BridgeError::Config(format!(
                "the connection string of {source} ({redacted}) gives {ports} ports for \
                 {hosts} host(s): give one port, or one per host (a repeated key adds a value \
                 here, it does not replace the first)"
            )));
        }
        if let Some(password) = pg.get_password() {
            crate::redact::register(&String::from_utf8_lossy(password));
        }
        if pg.get_application_name().is_none() {
            pg.application_name(APPLICATION_NAME);
        }
        if tls != TlsMode::Disable && pg.get_hosts().is_empty() {
            for addr in pg.get_hostaddrs().to_vec() {
                pg.host(addr.to_string());
            }
        }
        let only_sockets = pg
            .get_hosts()
            .iter()
            .all(|host| !matches!(host, tokio_postgres::config::Host::Tcp(_)));
        pg.ssl_mode(if only_sockets {
            tokio_postgres::config::SslMode::Disable
        } else {
            tls.pg_ssl_mode()
        });
        Ok(DatabaseConfig {
            pg,
            redacted,
            tls,
            root_cert,
        })
    }

    /// The `sslmode` to connect with, after libpq's defaults (`require` with an `sslrootcert`
    /// file is `verify-ca`).
    pub fn tls_mode(&self) -> TlsMode {
        self.tls
    }

    /// The CA certificates file of `sslrootcert`; `None` means the system's root certificates.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// The settings to connect with.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The connection settings with `timeout` as the connect timeout when the string sets
    /// none (`database.connect_timeout_secs`, or [`DEFAULT_CONNECT_TIMEOUT`] on the command
    /// line).
    pub fn pg_config_with_timeout(&self, timeout: Duration) -> tokio_postgres::Config {
        let mut pg = self.pg.clone();
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(timeout);
        }
        pg
    }

    /// The connection string as given, with any password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// The connection string with every password replaced by `***`: the `password` keyword of a
/// key/value string, or the password of a URL's user information (any scheme, so that a
/// mistyped `postgress://` or a `jdbc:postgresql://` is redacted too) and its `password`
/// parameter. Malformed text after the last recognised keyword is not echoed. See
/// [`crate::redact`].
pub fn redact_dsn(dsn: &str) -> String {
    crate::redact::redact_dsn(dsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(result: Result<DatabaseConfig, BridgeError>) -> DatabaseConfig {
        match result {
            Ok(config) => config,
            Err(err) => panic!("{err}"),
        }
    }

    fn config_error(result: Result<DatabaseConfig, BridgeError>) -> String {
        match result {
            Err(BridgeError::Config(message)) => message,
            other => panic!("expected a CONFIG_ERROR, got {other:?}"),
        }
    }

    #[test]
    fn flag_wins_over_environment() {
        let config = parsed(DatabaseConfig::resolve(
            Some("host=/run/pg dbname=from_flag".into()),
            Some("host=/run/pg dbname=from_env".into()),
        ));
        assert_eq!(config.pg_config().get_dbname(), Some("from_flag"));
        assert_eq!(config.redacted(), "host=/run/pg dbname=from_flag");
    }

    #[test]
    fn environment_is_used_without_flag() {
        let config = parsed(DatabaseConfig::resolve(
            None,
            Some("postgres://u:pw@db.example:6543/x".into()),
        ));
        assert_eq!(config.pg_config().get_ports(), &[6543]);
        assert_eq!(config.pg_config().get_dbname(), Some("x"));
        assert_eq!(config.redacted(), "postgres://u:***@db.example:6543/x");
        assert_eq!(
            config.pg_config().get_application_name(),
            Some("pg-nlq-bridge")
        );
        // no connect_timeout in the string: the caller's (database.connect_timeout_secs)
        assert_eq!(config.pg_config().get_connect_timeout(), None);
        assert_eq!(
            config
                .pg_config_with_timeout(Duration::from_secs(4))
                .get_connect_timeout(),
            Some(&Duration::from_secs(4))
        );
    }

    #[test]
    fn settings_in_the_string_are_kept() {
        let config = parsed(DatabaseConfig::resolve(
            Some("host=h application_name=mine connect_timeout=3".into()),
            None,
        ));
        assert_eq!(config.pg_config().get_application_name(), Some("mine"));
        assert_eq!(
            config
                .pg_config_with_timeout(Duration::from_secs(9))
                .get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn neither_flag_nor_environment_is_an_error() {
        for env in [None, Some(String::new()), Some("  ".into())] {
            let message = config_error(DatabaseConfig::resolve(None, env));
            assert_eq!(
                message,
                "no database given: pass --dsn <conninfo-or-URL> or set NLQ_DATABASE_URL"
            );
        }
    }

    #[test]
    fn empty_flag_is_an_error() {
        let message = config_error(DatabaseConfig::resolve(Some(String::new()), None));
        assert!(message.starts_with("--dsn is empty"), "{message}");
    }

    #[test]
    fn invalid_string_is_an_error_without_the_password() {
        let message = config_error(DatabaseConfig::resolve(
            Some("host=h password=s3cret port=x".into()),
            None,
        ));
        assert_eq!(
            message,
            "--dsn is not a valid connection string (host=h password=*** port=x): \
             invalid connection string: invalid value for option `port`"
        );
    }

    #[test]
    fn a_server_is_required() {
        let message = config_error(DatabaseConfig::resolve(
            None,
            Some("dbname=x password=s3cret".into()),
        ));
        assert_eq!(
            message,
            "the connection string of NLQ_DATABASE_URL (dbname=x password=***) names no server: \
             add host=<name or socket directory>"
        );
    }

    #[test]
    fn ports_must_match_hosts() {
        let message = config_error(DatabaseConfig::resolve(
            Some("host=h port=5432 port=5433".into()),
            None,
        ));
        assert!(message.contains("gives 2 ports for 1 host(s)"), "{message}");
        let config = DatabaseConfig::resolve(Some("host=a,b port=5432,5433".into()), None);
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn tls_settings_are_read() {
        use tokio_postgres::config::SslMode;
        let cases = [
            ("host=h", TlsMode::Prefer, None, SslMode::Prefer),
            (
                "host=h sslmode=disable",
                TlsMode::Disable,
                None,
                SslMode::Disable,
            ),
            (
                "host=h sslmode=allow",
                TlsMode::Prefer,
                None,
                SslMode::Prefer,
            ),
            (
                "host=h sslmode=require",
                TlsMode::Require,
                None,
                SslMode::Require,
            ),
            (
                "host=h sslmode=verify-ca sslrootcert=/ca.pem",
                TlsMode::VerifyCa,
                Some("/ca.pem"),
                SslMode::Require,
            ),
            (
                "host=h sslmode=require sslrootcert='/my ca.pem'",
                TlsMode::VerifyCa,
                Some("/my ca.pem"),
                SslMode::Require,
            ),
            (
                "host=h sslmode=verify-full",
                TlsMode::VerifyFull,
                None,
                SslMode::Require,
            ),
            (
                "host=h sslrootcert=system",
                TlsMode::VerifyFull,
                None,
                SslMode::Require,
            ),
            (
                "postgres://h/db?sslmode=verify-full&sslrootcert=%2Fca.pem&user=u",
                TlsMode::VerifyFull,
                Some("/ca.pem"),
                SslMode::Require,
            ),
            // TLS is never used over a Unix-domain socket
            (
                "host=/run/pg sslmode=verify-full",
                TlsMode::VerifyFull,
                None,
                SslMode::Disable,
            ),
            (
                "postgres://%2Frun%2Fpg/db?sslmode=require",
                TlsMode::Require,
                None,
                SslMode::Disable,
            ),
            (
                "host=/run/pg,h sslmode=require",
                TlsMode::Require,
                None,
                SslMode::Require,
            ),
        ];
        for (dsn, mode, root_cert, pg_mode) in cases {
            let config = parsed(DatabaseConfig::parse(dsn, "test"));
            assert_eq!(config.tls_mode(), mode, "{dsn}");
            assert_eq!(config.root_cert(), root_cert.map(Path::new), "{dsn}");
            assert_eq!(config.pg_config().get_ssl_mode(), pg_mode, "{dsn}");
            assert_eq!(config.redacted(), redact_dsn(dsn), "{dsn}");
        }
        let url = parsed(DatabaseConfig::parse(
            "postgres://h/db?sslmode=verify-full&user=u",
            "test",
        ));
        assert_eq!(url.pg_config().get_user(), Some("u"));
    }

    #[test]
    fn a_server_given_by_address_is_its_tls_name() {
        let config = parsed(DatabaseConfig::parse(
            "hostaddr=10.0.0.1 sslmode=require",
            "test",
        ));
        assert_eq!(
            config.pg_config().get_hosts(),
            &[tokio_postgres::config::Host::Tcp("10.0.0.1".into())]
        );
        let config = parsed(DatabaseConfig::parse(
            "hostaddr=10.0.0.1 sslmode=disable",
            "test",
        ));
        assert!(config.pg_config().get_hosts().is_empty());
    }

    #[test]
    fn invalid_tls_settings_are_errors() {
        let message = config_error(DatabaseConfig::parse(
            "host=h password=s3cret sslmode=verify",
            "--database",
        ));
        assert_eq!(
            message,
            "--database is not a valid connection string (host=h password=*** sslmode=verify): \
             invalid sslmode \"verify\": use \
             disable, allow, prefer, require, verify-ca or verify-full"
        );
        let message = config_error(DatabaseConfig::parse(
            "host=h sslmode=require sslrootcert=system",
            "--database",
        ));
        assert!(
            message.ends_with(
                "sslmode=require may not be used with sslrootcert=system: use sslmode=verify-full"
            ),
            "{message}"
        );
        let message = config_error(DatabaseConfig::parse("host=h sslcert=/c.pem", "--database"));
        assert!(message.contains("unknown option `sslcert`"), "{message}");
    }

    #[test]
    fn debug_does_not_show_the_password() {
        let config = parsed(DatabaseConfig::parse("host=h password=s3cret", "test"));
        assert_eq!(
            format!("{config:?}"),
            "DatabaseConfig(\"host=h password=***\")"
        );
    }

    #[test]
    fn redacts_conninfo_passwords() {
        let cases = [
            ("host=h user=u", "host=h user=u"),
            (
                "host=h password=s3cret user=u",
                "host=h password=*** user=u",
            ),
            ("password = s3cret", "password=***"),
            (
                "host=h password='s3 cr\\'et' dbname=d",
                "host=h password=*** dbname=d",
            ),
            ("password=a\\ b host=h", "password=*** host=h"),
            ("password='unterminated host=h", "password=***"),
            ("host='a b' password=x", "host='a b' password=***"),
            ("  host=h   port=1  ", "host=h port=1"),
            ("host=h garbage password=x", "host=h garbage ..."),
            ("password=", "password=***"),
        ];
        for (dsn, expected) in cases {
            assert_eq!(redact_dsn(dsn), expected, "redacting {dsn:?}");
        }
    }

    #[test]
    fn redacts_url_passwords() {
        let cases = [
            ("postgres://h/db", "postgres://h/db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            (
                "postgres://u:s3cret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u:s3@c/r?et@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?sslmode=disable&password=s3cret&user=u",
                "postgres://h/db?sslmode=disable&password=***&user=u",
            ),
            (
                "postgres://u:s3cret@h/db?password=s3cret",
                "postgres://u:***@h/db?password=***",
            ),
            ("postgres://:s3cret@h/db", "postgres://:***@h/db"),
            (
                "postgres://h/db?pass%77ord=s3cret&user=u",
                "postgres://h/db?password=***&user=u",
            ),
            (
                "postgres://h/db?%70assword=s3cret",
                "postgres://h/db?password=***",
            ),
        ];
        for (dsn, expected) in cases {
            assert_eq!(redact_dsn(dsn), expected, "redacting {dsn:?}");
            assert!(!redact_dsn(dsn).contains("s3"), "{dsn:?}");
        }
    }
}
