//! The shared store: PostgreSQL, for one migration that several machines work on.
//!
//! The embedded store (`sqlite/`) is one file that one machine writes; this one is a server that
//! every `ferry serve` instance and every shard worker of a migration reach at one address
//! (`postgres://…`). What lives here, and its invariants:
//!
//! - **The schema** is [`MIGRATIONS`], the PostgreSQL dialect of the embedded store's tables,
//!   applied in order, each in its own transaction under a transaction-level advisory lock (two
//!   machines starting at once do not apply a step twice), and counted in `ferry_schema`. A store
//!   written by a newer ferry is refused, as with SQLite. The state machine of docs/operations.md
//!   is the database's own: CHECK constraints and triggers refuse a process that starts anywhere
//!   but STAGED, a transition it does not allow, a new staged version for a process that is not
//!   STAGED, and any change to the audit table but an INSERT.
//! - **The 40 creations in flight** are 40 transaction-level advisory locks in the key space
//!   [`SLOT_CLASS`], taken by `ferry_take_create_slot(limit)` inside the transaction that creates
//!   an account: every instance on one server shares them, a request that gets none is refused
//!   at once, and a slot comes back the moment its transaction ends, its session ends, or the
//!   server ends a session that went quiet (the settings in the README).
//! - **A connection** is a `tokio_postgres::Client` whose connection task runs on a thread of its
//!   own; the store's synchronous calls wait on the client's futures there, so the store works
//!   the same from a command's writer thread and from inside `ferry serve`'s runtime (the
//!   synchronous `postgres` crate panics inside a tokio runtime).
//! - **The password** never leaves [`Target`]: errors and logs name the server as
//!   `postgres://user@host:port/dbname`.

use std::fmt;
use std::future::Future;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use super::{Failure, StoreError};

mod backup;
mod create;
mod records;
mod store;

pub use store::PgStore;

/// The advisory-lock key space (the first of two keys) of the creation slots.
pub const SLOT_CLASS: i32 = 7420;
/// The key space of the migration lock.
const MIGRATION_CLASS: i32 = 7421;

/// Where a PostgreSQL store is: a connection string (`postgres://user:password@host:port/db`, or
/// `host=… user=…`), parsed once. Its `Display` never shows the password.
#[derive(Clone)]
pub struct Target {
    config: Config,
    shown: String,
    tls: Tls,
}

/// How the connection is encrypted (`sslmode`, `sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tls {
    /// `sslmode=disable` (and a unix socket, where TLS has no use).
    Off,
    /// `sslmode=prefer` (libpq's default): TLS when the server offers it, its certificate
    /// verified.
    Prefer { root: Option<std::path::PathBuf> },
    /// `sslmode=require`, `verify-ca` or `verify-full`: TLS or no connection, the certificate
    /// verified against the system's roots or `sslrootcert`, and the host name checked.
    /// (Stricter than libpq's `require`, which does not check the certificate.)
    Required { root: Option<std::path::PathBuf> },
}

impl Target {
    /// Parses a connection string. The error names what is wrong without repeating the string
    /// (it may hold a password).
    pub fn parse(dsn: &str) -> Result<Self, crate::error::Error> {
        let invalid = |e: &dyn fmt::Display| {
            crate::error::Error::usage(
                format!("the store's PostgreSQL connection string is not valid: {e}"),
                Some("write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE (or host=… user=… dbname=…)"),
            )
        };
        let (rest, mode, root) = split_tls_options(dsn);
        let config: Config = rest.parse().map_err(|e| invalid(&e))?;
        let root = root.map(std::path::PathBuf::from);
        let tls = match mode.as_deref() {
            Some("disable") => Tls::Off,
            None | Some("prefer" | "allow") => Tls::Prefer { root },
            Some("require" | "verify-ca" | "verify-full") => Tls::Required { root },
            Some(other) => {
                return Err(invalid(&format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let mut config = config;
        config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            Tls::Prefer { .. } => SslMode::Prefer,
            Tls::Required { .. } => SslMode::Require,
        });
        let shown = shown(&config);
        Ok(Self { config, shown, tls })
    }

    /// The TLS settings of a connection that needs them: the system's roots (or the
    /// `sslrootcert` file's), with ring as the provider.
    fn tls_config(&self) -> Result<Option<rustls::ClientConfig>, Failure> {
        let root = match &self.tls {
            Tls::Off => return Ok(None),
            Tls::Prefer { root } | Tls::Required { root } => root,
        };
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::Data(format!("TLS: {e}")))?;
        let config = match root {
            Some(path) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| Failure::Data(format!("sslrootcert {}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| Failure::Data(format!("sslrootcert {}: {e}", path.display())))?;
                    roots.add(cert).map_err(|e| Failure::Data(format!("sslrootcert {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(Failure::Data(format!("sslrootcert {} holds no certificate", path.display())));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                use rustls_platform_verifier::BuilderVerifierExt;
                builder.with_platform_verifier().map_err(|e| Failure::Data(format!("TLS: {e}")))?.with_no_client_auth()
            }
        };
        Ok(Some(config))
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL query or `key=value`
/// form), which ferry handles itself: the rest, and their values.
fn split_tls_options(dsn: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => mode = Some(value.to_owned()),
        "sslrootcert" => root = Some(value.to_owned()),
        _ => unreachable!(),
    };
    let is_tls = |key: &str| key == "sslmode" || key == "sslrootcert";
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let Some((base, query)) = dsn.split_once('?') else { return (dsn.to_owned(), None, None) };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.split_once('=') {
                Some((key, value)) if is_tls(key) => {
                    take(key, value);
                    false
                }
                _ => true,
            })
            .collect();
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return (rest, mode, root);
    }
    let kept: Vec<&str> = dsn
        .split_whitespace()
        .filter(|token| match token.split_once('=') {
            Some((key, value)) if is_tls(key.trim()) => {
                take(key.trim(), value.trim());
                false
            }
            _ => true,
        })
        .collect();
    (kept.join(" "), mode, root)
}

/// `postgres://user@host:port/dbname`: the server as errors and logs name it.
fn shown(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let db = config.get_dbname().map(|d| format!("/{d}")).unwrap_or_default();
    format!("postgres://{user}{}{db}", hosts.join(","))
}

impl Target {
    /// The connection's parameters as libpq's environment variables, for PostgreSQL's own
    /// programs (`pg_dump`): the password stays off every command line.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        use tokio_postgres::config::Host;
        let c = &self.config;
        let mut env = Vec::new();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            env.push(("PGHOST", hosts.join(",")));
        }
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            env.push(("PGPORT", ports.join(",")));
        }
        if let Some(user) = c.get_user() {
            env.push(("PGUSER", user.to_owned()));
        }
        if let Some(password) = c.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
        }
        if let Some(db) = c.get_dbname() {
            env.push(("PGDATABASE", db.to_owned()));
        }
        env
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.shown)
    }
}

/// Connects with `tls` on a thread of its own, which then drives the connection until the client
/// is dropped or the server goes away (the client's next call then fails with "connection
/// closed").
fn connect<T>(config: Config, tls: T) -> Result<Client, Failure>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Send + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ferry-pg".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = send.send(Err(Failure::Data(format!("cannot start the connection's runtime: {e}"))));
                    return;
                }
            };
            runtime.block_on(async move {
                match config.connect(tls).await {
                    Ok((client, connection)) => {
                        let _ = send.send(Ok(client));
                        let _ = connection.await;
                    }
                    Err(e) => {
                        let _ = send.send(Err(Failure::Postgres(e)));
                    }
                }
            });
        })
        .map_err(|e| Failure::Data(e.to_string()))?;
    receive.recv().map_err(|_| Failure::Data("the connection's thread ended".into()))?
}

/// One connection to the server: the client, and the thread that drives its connection (it
/// ends when the client is dropped).
pub struct Connection {
    client: Client,
    target: Target,
}

impl Connection {
    /// Connects to the server (over TLS unless `sslmode=disable` or a unix socket).
    pub fn open(target: &Target) -> Result<Self, StoreError> {
        let err = |error| StoreError { path: target.to_string(), error };
        let unix = target.config.get_hosts().iter().all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        let mut config = target.config.clone();
        let client = match target.tls_config().map_err(err)? {
            Some(tls) if !unix => connect(config, tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
            _ => {
                // No TLS over a unix socket (as libpq): the socket is local.
                config.ssl_mode(SslMode::Disable);
                connect(config, NoTls)
            }
        }
        .map_err(err)?;
        Ok(Self { client, target: target.clone() })
    }

    /// The client, for the calls a store makes.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits for one of the client's futures (any thread, inside a tokio runtime or not).
    pub fn wait<T>(&self, call: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, StoreError> {
        futures_executor::block_on(call).map_err(|e| self.err(e))
    }

    /// A store error that names this server.
    pub fn err(&self, error: impl Into<Failure>) -> StoreError {
        StoreError { path: self.target.to_string(), error: error.into() }
    }

    /// The schema version of the store (0: none yet).
    pub fn version(&self) -> Result<usize, StoreError> {
        let exists = self.wait(self.client.query_one("SELECT to_regclass('ferry_schema') IS NOT NULL", &[]))?;
        if !exists.get::<_, bool>(0) {
            return Ok(0);
        }
        let row = self.wait(self.client.query_one("SELECT coalesce(max(version), 0) FROM ferry_schema", &[]))?;
        Ok(usize::try_from(row.get::<_, i32>(0)).unwrap_or(0))
    }

    /// Runs `body` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T, E: From<StoreError>>(&self, body: impl FnOnce(&Self) -> Result<T, E>) -> Result<T, E> {
        self.wait(self.client.batch_execute("BEGIN"))?;
        match body(self) {
            Ok(value) => {
                self.wait(self.client.batch_execute("COMMIT"))?;
                Ok(value)
            }
            Err(e) => {
                // The transaction is over either way: a failed ROLLBACK means the session is gone.
                let _ = self.wait(self.client.batch_execute("ROLLBACK"));
                Err(e)
            }
        }
    }

    /// Applies the migrations the store lacks, each in its own transaction under the migration
    /// lock (another machine may be applying them at the same moment); refuses a store written
    /// by a newer ferry. True when a step was applied.
    pub fn migrate(&self) -> Result<bool, crate::error::Error> {
        let mut migrated = false;
        loop {
            let applied = self.transaction(|c| -> Result<bool, crate::error::Error> {
                c.wait(c.client.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&MIGRATION_CLASS]))?;
                let version = c.version()?;
                if version > MIGRATIONS.len() {
                    return Err(crate::error::Error::usage(
                        format!(
                            "the store at {} was written by a newer ferry (schema version {version}; this one \
                             knows {})",
                            c.target,
                            MIGRATIONS.len()
                        ),
                        Some("upgrade ferry on this machine"),
                    ));
                }
                if version == MIGRATIONS.len() {
                    return Ok(false);
                }
                c.wait(c.client.batch_execute(MIGRATIONS[version]))?;
                let step = (version + 1) as i32;
                c.wait(c.client.execute(
                    "INSERT INTO ferry_schema (version, applied_at) VALUES ($1, $2)",
                    &[&step, &crate::clock::now()],
                ))?;
                Ok(true)
            })?;
            if !applied {
                return Ok(migrated);
            }
            migrated = true;
        }
    }
}

/// The store's schema in PostgreSQL, one step per version. Never edit a step that has shipped:
/// add one. Timestamps are text (RFC 3339, UTC), as in the embedded store, so that both answer
/// alike.
pub const MIGRATIONS: &[&str] = &[
    // 1: the embedded store's tables as of its version 7, the state machine's triggers, the
    // owner of each creation in flight, and the creation slots.
    r#"
    CREATE TABLE ferry_schema (
        version     integer PRIMARY KEY,
        applied_at  text NOT NULL
    );
    CREATE FUNCTION ferry_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'check_violation';
    END $$;
    CREATE TABLE import_suppliers (
        code        text PRIMARY KEY,
        status      text NOT NULL CHECK (status IN ('ONGOING', 'PAUSED', 'COMPLETE')),
        created_at  text NOT NULL,
        updated_at  text NOT NULL
    );
    CREATE TABLE operations_teams (
        name        text PRIMARY KEY,
        created_at  text NOT NULL
    );
    CREATE TABLE runs (
        id           text PRIMARY KEY,
        command      text NOT NULL,
        pid          bigint NOT NULL,
        started_at   text NOT NULL,
        finished_at  text,
        status       text,
        fingerprint  text,
        committed_at text,
        args         text,
        parent       text REFERENCES runs(id),
        -- The owner key of the connection running it (see create_intents.owner): a run whose
        -- owner lives is running on some machine, not interrupted, and is never resumed.
        owner        integer
    );
    CREATE TABLE import_processes (
        import_supplier         text NOT NULL REFERENCES import_suppliers(code),
        external_account_number text NOT NULL,
        status                  text NOT NULL CHECK (status IN ('STAGED', 'SKIPPED', 'IMPORTED')),
        current_version         bigint,
        skip_reason             text,
        kraken_account_number   text UNIQUE,
        account_created_at      text,
        created_at              text NOT NULL,
        updated_at              text NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    );
    CREATE TABLE staged_versions (
        id                      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        import_supplier         text NOT NULL,
        external_account_number text NOT NULL,
        run_id                  text NOT NULL REFERENCES runs(id),
        location                text NOT NULL,
        payload_hash            text NOT NULL,
        created_at              text NOT NULL,
        account_row             bigint NOT NULL DEFAULT 0,
        rows_hash               text,
        FOREIGN KEY (import_supplier, external_account_number)
            REFERENCES import_processes(import_supplier, external_account_number)
    );
    CREATE INDEX staged_versions_by_run ON staged_versions (run_id);
    CREATE INDEX staged_versions_by_location ON staged_versions (location);
    CREATE TABLE audit (
        id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id                  text NOT NULL REFERENCES runs(id),
        operation               text NOT NULL CHECK (operation IN
            ('validate', 'stage', 'create', 'push_validate', 'push_stage', 'push_create')),
        attempt                 integer NOT NULL,
        import_supplier         text,
        external_account_number text,
        line                    bigint,
        status_code             integer NOT NULL,
        error_code              text,
        body                    text NOT NULL,
        kraken_account_number   text,
        started_at              text NOT NULL,
        finished_at             text NOT NULL,
        request_id              text,
        token_name              text,
        staged_version          bigint,
        payload_hash            text,
        latency_ms              bigint,
        class                   text
    );
    CREATE INDEX audit_by_process ON audit (import_supplier, external_account_number, operation);
    CREATE INDEX audit_by_run ON audit (run_id);
    CREATE TABLE create_intents (
        import_supplier         text NOT NULL,
        external_account_number text NOT NULL,
        run_id                  text NOT NULL REFERENCES runs(id),
        attempt                 integer NOT NULL,
        line                    bigint,
        started_at              text NOT NULL,
        request_id              text,
        token_name              text,
        -- The session advisory lock (class 7423) its process holds while it lives: an intent
        -- whose owner's lock is held belongs to a live worker and is not interrupted.
        owner                   integer NOT NULL,
        PRIMARY KEY (import_supplier, external_account_number)
    );
    CREATE TABLE staged_files (
        location    text NOT NULL,
        name        text NOT NULL,
        bytes       bigint NOT NULL,
        crc32       bigint NOT NULL,
        PRIMARY KEY (location, name)
    );
    CREATE TABLE api_tokens (
        name        text PRIMARY KEY,
        role        text NOT NULL CHECK (role IN ('viewer', 'importer')),
        key_sha256  text NOT NULL UNIQUE,
        created_at  text NOT NULL,
        revoked_at  text
    );
    CREATE TABLE push_intents (
        target                  text NOT NULL,
        import_supplier         text NOT NULL,
        external_account_number text NOT NULL,
        run_id                  text NOT NULL REFERENCES runs(id),
        attempt                 integer NOT NULL,
        request_id              text NOT NULL,
        staged_version          bigint,
        payload_hash            text NOT NULL,
        line                    bigint,
        started_at              text NOT NULL,
        PRIMARY KEY (target, import_supplier, external_account_number)
    );
    CREATE TABLE remote_accounts (
        target                  text NOT NULL,
        import_supplier         text NOT NULL,
        external_account_number text NOT NULL,
        kraken_account_number   text NOT NULL,
        run_id                  text NOT NULL REFERENCES runs(id),
        recorded_at             text NOT NULL,
        PRIMARY KEY (target, import_supplier, external_account_number)
    );

    CREATE TRIGGER import_process_starts_staged BEFORE INSERT ON import_processes
        FOR EACH ROW WHEN (NEW.status <> 'STAGED')
        EXECUTE FUNCTION ferry_refuse('an import process starts STAGED');
    CREATE TRIGGER import_process_transitions BEFORE UPDATE OF status ON import_processes
        FOR EACH ROW WHEN (NOT (
            (OLD.status = 'STAGED' AND NEW.status IN ('STAGED', 'SKIPPED', 'IMPORTED'))
            OR (OLD.status = 'SKIPPED' AND NEW.status = 'STAGED')))
        EXECUTE FUNCTION ferry_refuse('import process transition not allowed');
    CREATE TRIGGER import_process_versions BEFORE UPDATE OF current_version ON import_processes
        FOR EACH ROW WHEN (OLD.current_version IS DISTINCT FROM NEW.current_version
            AND (OLD.status <> 'STAGED' OR NEW.status <> 'STAGED'))
        EXECUTE FUNCTION ferry_refuse('only a STAGED import process takes a new staged version');
    CREATE TRIGGER audit_is_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION ferry_refuse('the audit table is append-only');
    CREATE TRIGGER audit_is_never_truncated BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION ferry_refuse('the audit table is append-only');

    -- One of `lim` creation slots, taken for the rest of the calling transaction; null when
    -- all are held (the caller answers 429). A loop, not a query with LIMIT: a LIMIT does not
    -- promise that the locking function runs on no more rows than it returns.
    CREATE FUNCTION ferry_take_create_slot(lim integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        start integer := floor(random() * lim)::integer;
        s integer;
    BEGIN
        FOR k IN 0 .. lim - 1 LOOP
            s := (start + k) % lim;
            IF pg_try_advisory_xact_lock(7420, s) THEN
                RETURN s;
            END IF;
        END LOOP;
        RETURN NULL;
    END $$;
    -- The slots of this database held now, by whom: for operators and the tests. (Advisory
    -- locks belong to a database: two migrations on one server have 40 slots each.)
    CREATE VIEW ferry_create_slots_held AS
        SELECT l.objid::integer AS slot, l.pid, a.state, a.client_addr
        FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE l.locktype = 'advisory' AND l.classid = 7420 AND l.objsubid = 2 AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());
    "#,
    // 2: up to `wanted` creation slots in one call (a create chunk takes one per account), for
    // the rest of the calling transaction; how many it got.
    r#"
    CREATE FUNCTION ferry_take_create_slots(lim integer, wanted integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        start integer := floor(random() * lim)::integer;
        got integer := 0;
    BEGIN
        FOR k IN 0 .. lim - 1 LOOP
            EXIT WHEN got >= wanted;
            IF pg_try_advisory_xact_lock(7420, (start + k) % lim) THEN
                got := got + 1;
            END IF;
        END LOOP;
        RETURN got;
    END $$;
    "#,
    // 3: the digest of the line each staged version was made from, so that a re-stage of an
    // unchanged line need not hash its account again (issue 15). Older versions have none.
    r#"
    ALTER TABLE staged_versions ADD COLUMN line_hash text;
    "#,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_never_shows_the_password() {
        let t = Target::parse("postgres://ferry:s3cret@db.example:5433/migration?sslmode=disable").unwrap();
        assert_eq!(t.to_string(), "postgres://ferry@db.example:5433/migration");
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = Target::parse("host=/tmp/pg port=54329 user=ferry password=s3cret dbname=m").unwrap();
        assert_eq!(t.to_string(), "postgres://ferry@/tmp/pg:54329/m");
    }

    #[test]
    fn tls_options_are_taken_out_of_both_forms() {
        let (rest, mode, root) =
            split_tls_options("postgres://u:p@h/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem");
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root.as_deref()),
            ("postgres://u:p@h/db?application_name=x", Some("verify-full"), Some("/ca.pem"))
        );
        let (rest, mode, root) = split_tls_options("host=h sslmode=require user=u");
        assert_eq!((rest.as_str(), mode.as_deref(), root), ("host=h user=u", Some("require"), None));
        assert_eq!(Target::parse("host=h user=u").unwrap().tls, Tls::Prefer { root: None });
        assert_eq!(Target::parse("postgres://u@h/d?sslmode=disable").unwrap().tls, Tls::Off);
    }

    #[test]
    fn a_bad_connection_string_is_a_usage_error_that_does_not_repeat_it() {
        let e = Target::parse("postgres://ferry:s3cret@db:notaport/m").unwrap_err();
        let text = format!("{e:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("not valid"), "{text}");
    }
}
