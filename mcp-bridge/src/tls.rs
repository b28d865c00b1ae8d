//! TLS between the bridge and PostgreSQL, with rustls, following libpq's `sslmode` and
//! `sslrootcert` as far as tokio-postgres allows.
//!
//! | `sslmode`          | TLS                          | server certificate checked            |
//! | ------------------ | ---------------------------- | ------------------------------------- |
//! | `disable`          | never                        | -                                     |
//! | `allow`, `prefer`  | if the server offers it      | no                                    |
//! | `require`          | always                       | no (as libpq: encryption only)        |
//! | `verify-ca`        | always                       | signed by a trusted CA                |
//! | `verify-full`      | always                       | signed by a trusted CA, names the host |
//!
//! The trusted CAs are those of the `sslrootcert` file, or the system's root certificates when
//! it is unset or `system`. As in libpq, `require` with an `sslrootcert` file behaves as
//! `verify-ca`, and `sslrootcert=system` makes `verify-full` the default and refuses weaker
//! modes. TLS is never used over a Unix-domain socket, whatever the mode.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and rejects `sslrootcert`, so
//! [`extract_options`] takes both keys out of the connection string before tokio-postgres
//! parses it; [`crate::config::DatabaseConfig`] keeps the result.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseConfig;
use crate::error::{describe_pg_error, BridgeError};

pub use crate::conninfo::{extract_options, TlsMode, TlsOptions};

/// The TLS connector for `config`'s `sslmode` and `sslrootcert`, for
/// `tokio_postgres::Config::connect` and `deadpool_postgres::Manager::from_config`.
///
/// The CA certificates are read here, so an unreadable or empty `sslrootcert` file, or a system
/// without root certificates, is a [`BridgeError::Config`]. For `disable`, `prefer` and
/// `require` no CA is read (tokio-postgres does not use the connector with `disable`).
pub fn connector(config: &DatabaseConfig) -> Result<MakeRustlsConnect, BridgeError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BridgeError::Internal(format!("cannot set up TLS: {e}")))?;
    let mode = config.tls_mode();
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(ChainCheck {
            roots: None,
            algorithms: provider.signature_verification_algorithms,
        }),
        TlsMode::VerifyCa => Arc::new(ChainCheck {
            roots: Some(Arc::new(root_store(config.root_cert())?)),
            algorithms: provider.signature_verification_algorithms,
        }),
        TlsMode::VerifyFull => WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(config.root_cert())?),
            provider.clone(),
        )
        .build()
        .map_err(|e| BridgeError::Config(format!("cannot use the trusted CAs: {e}")))?,
    };
    let tls = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}

/// The CAs of the `sslrootcert` file (PEM, any number of certificates), or the system's.
fn root_store(root_cert: Option<&Path>) -> Result<RootCertStore, BridgeError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    BridgeError::Config(format!("cannot read sslrootcert file {shown}: {e}"))
                })?;
            if certs.is_empty() {
                return Err(BridgeError::Config(format!(
                    "sslrootcert file {shown} holds no PEM certificate"
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    BridgeError::Config(format!(
                        "sslrootcert file {shown} holds an unusable certificate: {e}"
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipped a system root certificate");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(BridgeError::Config(
                    "no system root certificates found to verify the server's certificate: \
                     give the CA file with sslrootcert=<path>"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The certificate check of every mode but `verify-full` (which uses rustls's own verifier).
///
/// - `roots: None` — `prefer` and `require`: any certificate is accepted, as libpq does without
///   `sslrootcert`. The connection is encrypted but a man in the middle is not detected; use
///   `verify-full` for that.
/// - `roots: Some` — `verify-ca`: the certificate chain must lead to a trusted CA and be valid
///   now; the host name is not compared with the certificate.
///
/// Either way the handshake signatures are checked, so the server does hold the key of the
/// certificate it shows (which is what SCRAM channel binding relies on).
#[derive(Debug)]
struct ChainCheck {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// [`describe_pg_error`] of a failed connection attempt, followed by a hint when TLS was the
/// reason: an untrusted or misnamed server certificate, or a server without TLS.
pub fn describe_connect_error(config: &DatabaseConfig, err: &tokio_postgres::Error) -> String {
    let text = describe_pg_error(err);
    match tls_hint(config, err, &text) {
        Some(hint) => format!("{text} (hint: {hint})"),
        None => text,
    }
}

fn tls_hint(config: &DatabaseConfig, err: &tokio_postgres::Error, text: &str) -> Option<String> {
    if text.contains("server does not support TLS") {
        return Some(format!(
            "the server does not accept TLS connections, and sslmode={} requires TLS: turn on \
             ssl on the server, or use sslmode=prefer",
            config.tls_mode()
        ));
    }
    let roots = match config.root_cert() {
        Some(path) => format!("the CA certificates of sslrootcert={}", path.display()),
        None => "the system's root certificates".to_string(),
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        let rustls_error = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| current.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(cert_error)) = rustls_error {
            return Some(match cert_error {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "the server's certificate does not name the host connected to \
                     (sslmode=verify-full): connect with a host name the certificate names, or \
                     use sslmode=verify-ca to check only who signed it"
                        .to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_string()
                }
                CertificateError::UnknownIssuer => format!(
                    "the server's certificate is not signed by any of {roots}: give the CA \
                     that signed it with sslrootcert=<path>"
                ),
                _ => format!("the server's certificate was checked against {roots}"),
            });
        }
        source = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tokio_postgres::config::SslMode;

    #[test]
    fn sslmode_values() {
        let cases = [
            ("disable", TlsMode::Disable),
            ("allow", TlsMode::Prefer),
            ("prefer", TlsMode::Prefer),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ];
        for (value, mode) in cases {
            assert_eq!(TlsMode::from_sslmode(value), Some(mode), "{value}");
        }
        for value in ["", "Require", "verify_full", "on"] {
            assert_eq!(TlsMode::from_sslmode(value), None, "{value:?}");
        }
        assert_eq!(TlsMode::VerifyFull.to_string(), "verify-full");
        assert_eq!(TlsMode::VerifyCa.pg_ssl_mode(), SslMode::Require);
        assert_eq!(TlsMode::Prefer.pg_ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn libpq_defaults() {
        let ok = |mode: Option<&str>, root: Option<&str>| match TlsMode::resolve(mode, root) {
            Ok(resolved) => resolved,
            Err(e) => panic!("{mode:?} {root:?}: {e}"),
        };
        let ca = Some(PathBuf::from("/etc/ca.pem"));
        assert_eq!(ok(None, None), (TlsMode::Prefer, None));
        assert_eq!(ok(Some("require"), None), (TlsMode::Require, None));
        assert_eq!(
            ok(Some("require"), Some("/etc/ca.pem")),
            (TlsMode::VerifyCa, ca.clone())
        );
        assert_eq!(
            ok(Some("prefer"), Some("/etc/ca.pem")),
            (TlsMode::Prefer, ca.clone())
        );
        assert_eq!(
            ok(Some("verify-full"), Some("/etc/ca.pem")),
            (TlsMode::VerifyFull, ca)
        );
        assert_eq!(ok(Some("verify-ca"), Some("")), (TlsMode::VerifyCa, None));
        assert_eq!(ok(None, Some("system")), (TlsMode::VerifyFull, None));
        assert_eq!(
            ok(Some("verify-full"), Some("system")),
            (TlsMode::VerifyFull, None)
        );
    }

    #[test]
    fn weak_modes_are_refused_with_system_roots() {
        for mode in ["disable", "prefer", "require", "verify-ca"] {
            match TlsMode::resolve(Some(mode), Some("system")) {
                Err(message) => assert_eq!(
                    message,
                    format!(
                        "sslmode={mode} may not be used with sslrootcert=system: use \
                         sslmode=verify-full"
                    )
                ),
                Ok(resolved) => panic!("{mode}: {resolved:?}"),
            }
        }
        match TlsMode::resolve(Some("verify"), None) {
            Err(message) => assert!(
                message.starts_with("invalid sslmode \"verify\""),
                "{message}"
            ),
            Ok(resolved) => panic!("{resolved:?}"),
        }
    }

    fn options(rest: &str, sslmode: Option<&str>, sslrootcert: Option<&str>) -> TlsOptions {
        TlsOptions {
            rest: rest.to_string(),
            sslmode: sslmode.map(str::to_string),
            sslrootcert: sslrootcert.map(str::to_string),
        }
    }

    #[test]
    fn extracts_from_conninfo() {
        let cases = [
            ("host=h dbname=d", options("host=h dbname=d", None, None)),
            (
                "host=h sslmode=verify-full dbname=d",
                options("host=h   dbname=d", Some("verify-full"), None),
            ),
            (
                "sslmode = require host=h",
                options("  host=h", Some("require"), None),
            ),
            (
                "host=h sslrootcert='/etc/my ca\\'s.pem' sslmode=verify-ca",
                options("host=h    ", Some("verify-ca"), Some("/etc/my ca's.pem")),
            ),
            (
                "host=h sslrootcert=/a\\ b.pem",
                options("host=h  ", None, Some("/a b.pem")),
            ),
            (
                "sslmode=disable sslmode=require host=h",
                options("    host=h", Some("require"), None),
            ),
            (
                "host='x'sslmode=require",
                options("host='x' ", Some("require"), None),
            ),
            // malformed: left for tokio-postgres to report
            (
                "host=h garbage sslmode=require",
                options("host=h garbage sslmode=require", None, None),
            ),
            (
                "sslmode='require host=h",
                options("sslmode='require host=h", None, None),
            ),
            ("sslmode=", options("sslmode=", None, None)),
        ];
        for (dsn, expected) in cases {
            assert_eq!(extract_options(dsn), expected, "{dsn:?}");
        }
    }

    #[test]
    fn extracts_from_urls() {
        let cases = [
            (
                "postgres://h/db?sslmode=disable",
                options("postgres://h/db", Some("disable"), None),
            ),
            (
                "postgresql://u:p@h:5432/db?application_name=x&sslmode=verify-full\
                 &sslrootcert=%2Fetc%2Fca%20file.pem&connect_timeout=3",
                options(
                    "postgresql://u:p@h:5432/db?application_name=x&connect_timeout=3",
                    Some("verify-full"),
                    Some("/etc/ca file.pem"),
                ),
            ),
            (
                "postgres://u:a?b@h/db?ssl%6Dode=require",
                options("postgres://u:a?b@h/db", Some("require"), None),
            ),
            (
                "postgres://h/db?user=u",
                options("postgres://h/db?user=u", None, None),
            ),
            ("postgres://h/db", options("postgres://h/db", None, None)),
        ];
        for (dsn, expected) in cases {
            assert_eq!(extract_options(dsn), expected, "{dsn:?}");
        }
    }
}
