//! TLS to PostgreSQL (`src/tls.rs`) against throwaway PostgreSQL 15 clusters of the test's own:
//! one with `ssl = on` and a certificate signed by a CA made here with `openssl`, one with
//! `ssl = off`. Both listen on 127.0.0.1 and a free port, trust `hostssl` and `hostnossl`
//! connections from 127.0.0.1 and are stopped and removed when the test ends, failed or not.
//!
//! The binaries are taken from `/usr/lib/postgresql/15/bin` (or `$NLQ_PG_BIN`). As root the
//! cluster runs as the `postgres` user (`runuser`), since PostgreSQL refuses to run as root.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_bridge::config::DatabaseConfig;
use mcp_bridge::error::BridgeError;
use mcp_bridge::pgnlq;

const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn pg_bin() -> PathBuf {
    match std::env::var("NLQ_PG_BIN") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_PG_BIN),
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program args...` as the `postgres` user when we are root, else as ourselves.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ])
        .args(["-subj", &format!("/CN=pg_nlq test {name}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
}

/// `server.crt` and `server.key` for `pg.test` and 127.0.0.1, signed by the CA `ca`.
fn make_server_cert(dir: &Path) {
    fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:pg.test,IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes"])
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=pg.test",
        ]));
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
        ])
        .args(["-CAcreateserial", "-days", "2", "-out", "server.crt"])
        .args(["-extfile", "server.ext"]));
}

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// A running cluster; dropping it stops the server and removes its directory.
struct Cluster {
    dir: PathBuf,
    port: u16,
    started: bool,
}

impl Cluster {
    fn start(ssl: bool) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "pg_nlq_tls_{}_{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the cluster directory");
        let mut cluster = Cluster {
            dir,
            port: free_port(),
            started: false,
        };
        let dir = cluster.dir.clone();
        make_ca(&dir, "ca");
        make_ca(&dir, "other-ca");
        make_server_cert(&dir);
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir));
        }
        let data = dir.join("data");
        run(as_postgres(&pg_bin().join("initdb"))
            .args([
                "--no-sync",
                "--no-instructions",
                "-A",
                "trust",
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&data));
        let conf = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{dir}'\n\
             ssl = {ssl}\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             fsync = off\n\
             max_connections = 20\n",
            port = cluster.port,
            dir = dir.display(),
            ssl = if ssl { "on" } else { "off" },
        );
        let mut postgresql_conf = fs::read_to_string(data.join("postgresql.conf")).unwrap();
        postgresql_conf.push_str(&conf);
        fs::write(data.join("postgresql.conf"), postgresql_conf).unwrap();
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all scram_user 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        cluster.started = true;
        run(as_postgres(&pg_bin().join("pg_ctl"))
            .args(["-w", "-t", "30", "-s", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("start"));
        cluster
    }

    /// A connection string for user postgres on this cluster, with `extra` appended.
    fn dsn(&self, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres {extra}",
            self.port
        )
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started {
            let _ = as_postgres(&pg_bin().join("pg_ctl"))
                .args(["-s", "-m", "immediate", "-D"])
                .arg(self.dir.join("data"))
                .arg("stop")
                .output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Connects through the bridge; `Ok(ssl)` tells whether the session is encrypted.
async fn connect(dsn: &str) -> Result<bool, BridgeError> {
    let config = DatabaseConfig::parse(dsn, "test").unwrap_or_else(|e| panic!("{dsn}: {e}"));
    let client = pgnlq::connect(&config, std::time::Duration::from_secs(10)).await?;
    let row = client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .expect("query pg_stat_ssl");
    Ok(row.get(0))
}

async fn assert_tls(dsn: &str, expected: bool) {
    match connect(dsn).await {
        Ok(ssl) => assert_eq!(ssl, expected, "TLS in use with {dsn}"),
        Err(e) => panic!("{dsn}: {}", e.one_line()),
    }
}

/// The connection fails with a CONNECTION_ERROR whose message holds every one of `needles`.
async fn assert_refused(dsn: &str, needles: &[&str]) {
    match connect(dsn).await {
        Ok(ssl) => panic!("{dsn} connected (ssl = {ssl}) but must not"),
        Err(e) => {
            assert_eq!(
                e.code().as_str(),
                "CONNECTION_ERROR",
                "{dsn}: {}",
                e.one_line()
            );
            let message = e.to_string();
            eprintln!("{dsn}\n  -> {}", e.one_line());
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{dsn}: {message}\nlacks {needle:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn server_with_tls() {
    let pg = Cluster::start(true);
    let (ca, other_ca) = (pg.path("ca.pem"), pg.path("other-ca.pem"));

    // encryption without checks, and none
    assert_tls(&pg.dsn("sslmode=require"), true).await;
    assert_tls(&pg.dsn(""), true).await; // prefer, libpq's default
    assert_tls(&pg.dsn("sslmode=allow"), true).await;
    assert_tls(&pg.dsn("sslmode=disable"), false).await;

    // checked certificates: by IP address, by name, and the CA only
    assert_tls(
        &pg.dsn(&format!("sslmode=verify-full sslrootcert={ca}")),
        true,
    )
    .await;
    let by_name = format!(
        "host=pg.test hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert='{ca}'",
        pg.port
    );
    assert_tls(&by_name, true).await;
    let wrong_name = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslrootcert={ca}",
        pg.port
    );
    assert_tls(&format!("{wrong_name} sslmode=verify-ca"), true).await;
    assert_tls(&format!("{wrong_name} sslmode=require"), true).await; // = verify-ca
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port,
        ca.replace('/', "%2F")
    );
    assert_tls(&url, true).await;

    // refused certificates
    assert_refused(
        &format!("{wrong_name} sslmode=verify-full"),
        &[
            "could not connect to",
            "certificate not valid for name \"localhost\"",
            "does not name the host",
        ],
    )
    .await;
    assert_refused(
        &pg.dsn(&format!("sslmode=verify-full sslrootcert={other_ca}")),
        &[
            "invalid peer certificate",
            "UnknownIssuer",
            &format!("sslrootcert={other_ca}"),
        ],
    )
    .await;
    assert_refused(
        &pg.dsn(&format!("sslmode=require sslrootcert={other_ca}")),
        &["UnknownIssuer"],
    )
    .await;
    assert_refused(
        &pg.dsn("sslmode=verify-ca"),
        &["UnknownIssuer", "the system's root certificates"],
    )
    .await;

    // password authentication bound to the TLS channel (SCRAM-SHA-256-PLUS)
    let admin = DatabaseConfig::parse(&pg.dsn("sslmode=disable"), "test").unwrap();
    pgnlq::connect(&admin, std::time::Duration::from_secs(10))
        .await
        .unwrap()
        .batch_execute("CREATE ROLE scram_user LOGIN PASSWORD 's3cret'")
        .await
        .unwrap();
    let scram = format!(
        "host=127.0.0.1 port={} user=scram_user password=s3cret dbname=postgres \
         channel_binding=require",
        pg.port
    );
    assert_tls(&format!("{scram} sslmode=require"), true).await;
    assert_tls(
        &format!("{scram} sslmode=verify-full sslrootcert={ca}"),
        true,
    )
    .await;

    // a Unix-domain socket never uses TLS, whatever the mode
    let socket = format!(
        "host={} port={} user=postgres dbname=postgres sslmode=verify-full",
        pg.dir.display(),
        pg.port
    );
    assert_tls(&socket, false).await;
}

#[tokio::test]
async fn server_without_tls() {
    let pg = Cluster::start(false);
    assert_tls(&pg.dsn("sslmode=prefer"), false).await;
    assert_tls(&pg.dsn("sslmode=disable"), false).await;
    let ca = pg.path("ca.pem");
    for (extra, mode) in [
        ("sslmode=require".to_string(), "require"),
        (
            format!("sslmode=verify-full sslrootcert={ca}"),
            "verify-full",
        ),
    ] {
        assert_refused(
            &pg.dsn(&extra),
            &[
                "server does not support TLS",
                "does not accept TLS connections",
                &format!("sslmode={mode} requires TLS"),
            ],
        )
        .await;
    }
}

#[test]
fn unreadable_root_certificate_is_a_config_error() {
    let config = DatabaseConfig::parse(
        "host=127.0.0.1 sslmode=verify-full sslrootcert=/nonexistent/ca.pem",
        "test",
    )
    .unwrap();
    match mcp_bridge::tls::connector(&config) {
        Err(BridgeError::Config(message)) => assert!(
            message.starts_with("cannot read sslrootcert file /nonexistent/ca.pem"),
            "{message}"
        ),
        Err(other) => panic!("expected a CONFIG_ERROR, got {other:?}"),
        Ok(_) => panic!("a missing sslrootcert file must be an error"),
    }
}
