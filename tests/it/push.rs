//! `ferry push`: the real binary against a real `ferry serve` on 127.0.0.1:0, directly and
//! through a fault-injecting proxy written here (it answers for the server, or passes requests
//! on to it and misbehaves around them). Exactly once is counted in the server's store.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Run, count, ferry_with, s, store};
use crate::serve::{Server, TODAY, json, staged_copies};

const SUPPLIER: &str = "TENTACLE_ENERGY";

/// A server work directory with the team `Migration`, and its server.
fn server(dir: &Path) -> (PathBuf, Server) {
    let work = dir.join("server");
    let added = ferry_with(dir, &["team", "add", "Migration", "--workdir", "server"], &[]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    let server = Server::start(&work);
    (work, server)
}

/// The arguments of `ferry push` of a client work directory's supplier to `base`: team
/// `Migration` and every pending account, unless `extra` says otherwise.
fn push_args<'a>(client: &'a Path, base: &'a str, supplier: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["push", "--workdir", s(client), "--base-url", base, "--supplier", supplier];
    args.extend_from_slice(extra);
    if !extra.contains(&"--accounts") {
        args.push("--all-pending");
    }
    if !extra.contains(&"--team") {
        args.extend(["--team", "Migration"]);
    }
    args
}

/// Runs `ferry push` of a client work directory to `base` with the key.
fn push(client: &Path, base: &str, key: &str, extra: &[&str]) -> Run {
    ferry_with(client, &push_args(client, base, SUPPLIER, extra), &[("FERRY_API_TOKEN", key)])
}

/// An error message as one line: its words, without the frame miette draws around them.
fn flat(stderr: &str) -> String {
    stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

/// The server's imported accounts of a supplier: external → Kraken account number.
fn imported_on(server: &Server, supplier: &str) -> BTreeMap<String, String> {
    let (status, body) = server.get(&format!("/v1/data-import/imported-account-import-processes/{supplier}/"));
    assert_eq!(status, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["external_account_number"].as_str().unwrap().to_owned(),
                e["kraken_account_number"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The numbers the client recorded for a supplier: external → Kraken account number.
fn recorded_by(client: &Path, supplier: &str) -> BTreeMap<String, String> {
    let conn = store(client);
    let mut stmt = conn
        .prepare(
            "SELECT external_account_number, kraken_account_number FROM remote_accounts WHERE import_supplier = ?1",
        )
        .unwrap();
    stmt.query_map([supplier], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// How many times the server created each account (its 201 create audit rows), at most.
fn most_creations(server_wd: &Path) -> i64 {
    count(
        server_wd,
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM audit WHERE operation = 'create'
             AND status_code = 201 GROUP BY import_supplier, external_account_number)",
    )
}

/// The example dump staged in a client work directory, pushed through validate, stage and
/// create: the server holds exactly the staged accounts, each once, with the numbers the client
/// recorded; a second push sends nothing; `ferry list imported` and `ferry status` show them.
#[test]
fn the_example_dump_reaches_the_server_once_with_the_numbers_the_client_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = crate::harness::repo("data/sample.ndjson");
    let staged = ferry_with(tmp.path(), &["stage", s(&dump), "--today", TODAY, "--workdir", "client"], &[]);
    assert_eq!(staged.code, 1, "four accounts of the sample are invalid: {}", staged.stderr);
    let client = tmp.path().join("client");
    let (server_wd, server) = server(tmp.path());
    let key = server.key.clone().unwrap();
    let mut total = 0;
    for supplier in ["TENTACLE_ENERGY", "NORDLICHT_STROM", "ALPEN_GAS"] {
        let args = push_args(&client, &server.base, supplier, &[]);
        let run = ferry_with(tmp.path(), &args, &[("FERRY_API_TOKEN", &key)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains(&key), "the key is never printed");
        let on_server = imported_on(&server, supplier);
        assert_eq!(on_server, recorded_by(&client, supplier), "{supplier}");
        let staged_here = count(
            &client,
            &format!(
                "SELECT count(*) FROM import_processes WHERE import_supplier = '{supplier}' AND status = 'STAGED'"
            ),
        );
        assert_eq!(on_server.len() as i64, staged_here, "{supplier}: every staged account, no other");
        total += on_server.len();
        // Nothing is sent twice.
        let again = ferry_with(tmp.path(), &args, &[("FERRY_API_TOKEN", &key)]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(
            again.stderr.contains(&format!("{} created on the target before", on_server.len())),
            "{}",
            again.stderr
        );
    }
    assert_eq!(total, 196);
    assert_eq!(most_creations(&server_wd), 1);
    // Every attempt is audited with what it sent and got, each request id the server saw.
    assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE operation LIKE 'push_%'"), 3 * 196);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM audit WHERE operation LIKE 'push_%' AND (request_id IS NULL OR payload_hash IS NULL
                 OR staged_version IS NULL OR class IS NULL OR latency_ms IS NULL OR body = '')"
        ),
        0
    );
    let server_ids: HashSet<String> = {
        let conn = store(&server_wd);
        let mut stmt = conn.prepare("SELECT request_id FROM audit WHERE operation IN ('stage', 'create')").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let client_ids: HashSet<String> = {
        let conn = store(&client);
        let mut stmt = conn.prepare("SELECT request_id FROM audit WHERE operation LIKE 'push_%'").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(server_ids.len(), 2 * 196);
    assert!(server_ids.is_subset(&client_ids), "every request the server answered is in the client's audit");
    // The run's outcomes carry them too.
    let runs = std::fs::read_dir(client.join("runs")).unwrap().count();
    assert!(runs >= 7, "a stage run and six pushes: {runs}");
    // The remote numbers are shown where a user looks.
    let (ext, number) = recorded_by(&client, SUPPLIER).into_iter().next().unwrap();
    let listed = ferry_with(tmp.path(), &["list", "imported", "--supplier", SUPPLIER, "--workdir", "client"], &[]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains(&number), "{}", listed.stdout);
    let status = ferry_with(tmp.path(), &["status", "--supplier", SUPPLIER, &ext, "--workdir", "client"], &[]);
    assert!(status.stderr.contains(&number) && status.stderr.contains(&server.base), "{}", status.stderr);
}

/// What the proxy does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// Every other create gets 429 (with `Retry-After: 1` when set) without reaching the server.
    RefuseEveryOtherCreate { retry_after: bool },
    /// The first create of each account reaches the server, which creates it; then the
    /// connection is closed without an answer.
    DropAfterCreate,
    /// The first create of each account is held for 3 s, not passed on, and the connection
    /// closed.
    StallFirstCreate,
    /// Every request gets 401.
    Unauthorized,
    /// Every stage request gets the guide's 400 for a paused supplier.
    SupplierPaused,
    /// Every request passes (the HTTPS proxy).
    None,
}

#[derive(Default)]
struct Stats {
    creates: AtomicUsize,
    creates_in_flight: AtomicUsize,
    most_creates_in_flight: AtomicUsize,
    refused: AtomicUsize,
    faulted: Mutex<HashSet<String>>,
}

/// A proxy on 127.0.0.1:0 in front of `upstream`, injecting `fault`.
struct Proxy {
    base: String,
    stats: Arc<Stats>,
}

impl Proxy {
    fn start(upstream: &str, fault: Fault) -> Proxy {
        Self::listen(upstream, fault, None)
    }

    /// An HTTPS proxy on localhost in front of `upstream`, with the test certificate of
    /// tests/fixtures/tls (signed by its own CA, which no system trusts).
    fn start_tls(upstream: &str) -> Proxy {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = crate::harness::repo("tests/fixtures/tls");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(tls.join("server.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(tls.join("server.key")).unwrap();
        #[allow(deprecated)] // ring, as ferry's client uses it
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::listen(upstream, Fault::None, Some(Arc::new(config)))
    }

    /// Accepts connections on a free loopback port, each served on a thread of its own, over
    /// TLS when `tls` is given.
    fn listen(upstream: &str, fault: Fault, tls: Option<Arc<rustls::ServerConfig>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let stats = Arc::new(Stats::default());
        let (upstream, kept) = (upstream.to_owned(), stats.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (upstream, stats, tls) = (upstream.clone(), kept.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config).unwrap();
                        serve_connection(rustls::StreamOwned::new(connection, stream), &upstream, fault, &stats);
                    }
                    None => serve_connection(stream, &upstream, fault, &stats),
                });
            }
        });
        Proxy { base, stats }
    }
}

/// One request as read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

fn respond(stream: &mut impl Write, status: u16, body: &str, retry_after: Option<&str>) -> std::io::Result<()> {
    let extra = retry_after.map(|r| format!("retry-after: {r}\r\n")).unwrap_or_default();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Passes a request on to the server; its status, body and `Retry-After`.
fn forward(upstream: &str, request: &Request) -> (u16, String, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{upstream}{}", request.path);
    let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let response = if request.method == "GET" {
        let mut r = agent.get(&url);
        for name in ["authorization", "x-request-id"] {
            if let Some(v) = header(name) {
                r = r.header(name, v);
            }
        }
        r.call()
    } else {
        let mut r = agent.post(&url);
        for name in ["authorization", "x-request-id", "content-type"] {
            if let Some(v) = header(name) {
                r = r.header(name, v);
            }
        }
        r.send(&request.body[..])
    };
    let mut response = response.unwrap();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap(), retry_after)
}

fn serve_connection(stream: impl Read + Write, upstream: &str, fault: Fault, stats: &Stats) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let writer = reader.get_mut();
        let create = request.path.ends_with("/account-import-process/process/");
        let stage = request.path.ends_with("/account-import-process/create-or-update/");
        let account = serde_json::from_slice::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|v| v["external_account_number"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let first_time = |stats: &Stats| stats.faulted.lock().unwrap().insert(account.clone());
        if create {
            let n = stats.creates_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            stats.most_creates_in_flight.fetch_max(n, Ordering::SeqCst);
        }
        let n = if create { stats.creates.fetch_add(1, Ordering::SeqCst) } else { 0 };
        let result = match fault {
            Fault::Unauthorized => respond(writer, 401, r#"{"detail": "Invalid token."}"#, None),
            Fault::SupplierPaused if stage => respond(
                writer,
                400,
                &format!(
                    r#"{{"detail": "Migration for import supplier {SUPPLIER} is paused.", "code": "import_supplier_migration_not_ongoing"}}"#
                ),
                None,
            ),
            Fault::RefuseEveryOtherCreate { retry_after } if create && n % 2 == 0 => {
                stats.refused.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"detail": "Too many creates in flight.", "code": "concurrency_limit_exceeded"}"#;
                respond(writer, 429, body, retry_after.then_some("1"))
            }
            Fault::DropAfterCreate if create && first_time(stats) => {
                let _ = forward(upstream, &request);
                stats.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            Fault::StallFirstCreate if create && first_time(stats) => {
                std::thread::sleep(Duration::from_secs(3));
                stats.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            _ => {
                let (status, body, retry_after) = forward(upstream, &request);
                respond(writer, status, &body, retry_after.as_deref())
            }
        };
        if create {
            stats.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        if result.is_err() {
            return;
        }
    }
}

/// A client with `n` staged copies of the example account and a server, behind a proxy.
fn through_proxy(dir: &Path, n: usize, fault: Fault) -> (PathBuf, PathBuf, Server, Proxy) {
    let client = staged_copies(dir, "P", n);
    let (server_wd, server) = server(dir);
    let proxy = Proxy::start(&server.base, fault);
    (client, server_wd, server, proxy)
}

/// 429 to every other create, with and without `Retry-After`: every account ends created, each
/// once; the client halves its window and never has more creates in flight than the limit.
#[test]
fn a_server_that_refuses_every_other_create_gets_each_account_once() {
    for retry_after in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let n = 60;
        let (client, server_wd, server, proxy) =
            through_proxy(tmp.path(), n, Fault::RefuseEveryOtherCreate { retry_after });
        let key = server.key.clone().unwrap();
        let run = push(&client, &proxy.base, &key, &["--operations", "stage,create"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(imported_on(&server, SUPPLIER).len(), n);
        assert_eq!(imported_on(&server, SUPPLIER), recorded_by(&client, SUPPLIER));
        assert_eq!(most_creations(&server_wd), 1);
        let refused = proxy.stats.refused.load(Ordering::SeqCst);
        assert!(refused >= n / 2, "{refused}");
        assert!(proxy.stats.most_creates_in_flight.load(Ordering::SeqCst) <= 40);
        assert!(run.stderr.contains(&format!("429s {refused}")), "{}", run.stderr);
        assert_eq!(
            count(&client, "SELECT count(*) FROM audit WHERE operation = 'push_create' AND status_code = 429"),
            refused as i64
        );
        assert_eq!(count(&client, "SELECT count(*) FROM push_intents"), 0);
    }
}

/// A real `ferry serve` with `--create-limit 4`: its 429s (with `Retry-After: 1`) shrink the
/// window; every account ends created once.
#[test]
fn a_server_with_a_small_create_limit_gets_each_account_once() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 40;
    let client = staged_copies(tmp.path(), "L", n);
    let work = tmp.path().join("server");
    assert_eq!(ferry_with(tmp.path(), &["team", "add", "Migration", "--workdir", "server"], &[]).code, 0);
    let server = Server::launch(&work, &[], &["--create-limit", "4"]);
    let run = push(&client, &server.base, &server.key.clone().unwrap(), &["--operations", "stage,create"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(imported_on(&server, SUPPLIER).len(), n);
    assert_eq!(imported_on(&server, SUPPLIER), recorded_by(&client, SUPPLIER));
    assert_eq!(most_creations(&work), 1);
    let refused = count(&client, "SELECT count(*) FROM audit WHERE operation = 'push_create' AND status_code = 429");
    assert!(refused > 0, "the limit was reached");
    assert!(run.stderr.contains(&format!("429s {refused}")), "{}", run.stderr);
    let window = json(&std::fs::read_to_string(push_file(&client)).unwrap());
    assert!(window["window"].as_array().unwrap().iter().any(|w| w[1].as_u64().unwrap() < 40), "{window}");
}

/// The push.json of the one push run of a client work directory.
fn push_file(client: &Path) -> PathBuf {
    std::fs::read_dir(client.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("push.json"))
        .find(|p| p.is_file())
        .unwrap()
}

/// A create the server made whose answer never came is looked up, not sent again.
#[test]
fn a_dropped_answer_to_a_create_is_looked_up_not_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 12;
    let (client, server_wd, server, proxy) = through_proxy(tmp.path(), n, Fault::DropAfterCreate);
    let key = server.key.clone().unwrap();
    let run = push(&client, &proxy.base, &key, &["--operations", "stage,create"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(imported_on(&server, SUPPLIER), recorded_by(&client, SUPPLIER));
    assert_eq!(imported_on(&server, SUPPLIER).len(), n);
    assert_eq!(most_creations(&server_wd), 1);
    assert_eq!(proxy.stats.creates.load(Ordering::SeqCst), n, "no create was sent twice");
    assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE class = 'ambiguous'"), n as i64);
    assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE class = 'reconciled_completed'"), n as i64);
}

/// A create that stalls past the timeout is looked up; the server never saw it, so it is sent
/// again, and created once.
#[test]
fn a_stalled_create_is_looked_up_then_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 5;
    let (client, server_wd, server, proxy) = through_proxy(tmp.path(), n, Fault::StallFirstCreate);
    let key = server.key.clone().unwrap();
    let run = push(&client, &proxy.base, &key, &["--operations", "stage,create", "--timeout", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(imported_on(&server, SUPPLIER).len(), n);
    assert_eq!(imported_on(&server, SUPPLIER), recorded_by(&client, SUPPLIER));
    assert_eq!(most_creations(&server_wd), 1);
    assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE class = 'reconciled_unknown'"), n as i64);
    assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE operation = 'push_create' AND attempt = 2"), n as i64);
}

/// 401 and a paused supplier stop the run at once (exit 2), naming why; nothing is created.
#[test]
fn refused_credentials_and_a_paused_supplier_stop_the_run() {
    for (fault, says) in
        [(Fault::Unauthorized, "the API refused the token (401)"), (Fault::SupplierPaused, "is paused")]
    {
        let tmp = tempfile::tempdir().unwrap();
        let (client, server_wd, server, proxy) = through_proxy(tmp.path(), 30, fault);
        let key = server.key.clone().unwrap();
        let run = push(&client, &proxy.base, &key, &[]);
        assert_eq!(run.code, 2, "{fault:?}: {}", run.stderr);
        assert!(flat(&run.stderr).contains(says), "{fault:?}: {}", run.stderr);
        assert!(run.stderr.contains("the push stopped"), "{}", run.stderr);
        assert_eq!(proxy.stats.creates.load(Ordering::SeqCst), 0);
        assert_eq!(count(&server_wd, "SELECT count(*) FROM import_processes"), 0);
        // It stopped at once: no account went past the refused operation.
        assert_eq!(count(&client, "SELECT count(*) FROM audit WHERE operation = 'push_create'"), 0);
        let refused = if fault == Fault::Unauthorized { "push_validate" } else { "push_stage" };
        let sent = count(&client, &format!("SELECT count(*) FROM audit WHERE operation = '{refused}'"));
        assert!((1..=40).contains(&sent), "{sent}");
        assert_eq!(count(&client, "SELECT count(*) FROM runs WHERE command = 'push' AND status = 'stopped'"), 1);
    }
}

/// An unreachable target spends the retry budget (many accounts) or outlasts --give-up-after
/// (a few) and stops, naming it.
#[test]
fn an_unreachable_target_stops_the_run_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let client = staged_copies(tmp.path(), "U", 50);
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let run = push(&client, &base, "k", &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let said = flat(&run.stderr);
    assert!(said.contains("retry budget is spent") && said.contains("cannot be reached"), "{said}");
    let few = ["--accounts", "few.txt", "--give-up-after", "1"];
    std::fs::write(client.join("few.txt"), "U-1\nU-2\n").unwrap();
    let run = push(&client, &base, "k", &few);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(flat(&run.stderr).contains("nothing has gone through for"), "{}", run.stderr);
    assert_eq!(count(&client, "SELECT count(*) FROM runs WHERE command = 'push' AND status = 'stopped'"), 2);
    // Plain HTTP leaves this machine only when asked.
    let run = push(&client, "http://192.0.2.1:8080", "k", &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--insecure-http"), "{}", run.stderr);
}

/// kill -9 of a 2,000-account push at several moments, then the same command again until it
/// finishes: each account created exactly once on the server, the numbers the client recorded
/// are the server's, every create the server answered is in the client's audit, no intent left.
#[test]
fn a_push_killed_at_several_moments_creates_each_account_once() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 2000;
    let client = staged_copies(tmp.path(), "K", n);
    let (server_wd, server) = server(tmp.path());
    let key = server.key.clone().unwrap();
    let args = push_args(&client, &server.base, SUPPLIER, &["--operations", "stage,create"]);
    let mut kills = 0;
    for after_ms in [400, 900, 1500, 2500] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(&args)
            .env("FERRY_API_TOKEN", &key)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 2, "the push was killed while it ran ({kills} times)");
    let mut said = Vec::new();
    for _ in 0..3 {
        let run = ferry_with(tmp.path(), &args, &[("FERRY_API_TOKEN", &key)]);
        said.push(run.stderr);
        if run.code == 0 {
            break;
        }
    }
    assert!(said.len() < 3, "the same command again finishes the job: {said:#?}");
    let on_server = imported_on(&server, SUPPLIER);
    assert_eq!(on_server.len(), n);
    assert_eq!(on_server, recorded_by(&client, SUPPLIER));
    assert_eq!(most_creations(&server_wd), 1);
    assert_eq!(count(&client, "SELECT count(*) FROM push_intents"), 0);
    let client_ids: HashSet<String> = {
        let conn = store(&client);
        let mut stmt = conn.prepare("SELECT request_id FROM audit WHERE operation = 'push_create'").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let conn = store(&server_wd);
    let mut stmt = conn.prepare("SELECT request_id FROM audit WHERE operation = 'create'").unwrap();
    let server_ids: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let missing: Vec<&String> = server_ids.iter().filter(|id| !client_ids.contains(*id)).collect();
    assert!(missing.is_empty(), "creates the server answered that the client has no audit row of: {missing:?}");
    // Every account's creation is in the client's audit: its 201, its status lookup, or the
    // "already imported" a later stage or create got (a create the target ran after the
    // killed push's intent was looked up and found UNKNOWN).
    assert_eq!(
        count(
            &client,
            "SELECT count(DISTINCT external_account_number) FROM audit WHERE
                 (operation = 'push_create' AND class IN ('done', 'reconciled_completed', 'already_imported'))
                 OR (operation = 'push_stage' AND class = 'already_imported')"
        ),
        n as i64
    );
}

/// A pipeline with a push stage sends what it staged; its manifest counts the accounts created
/// on the target and its report has the push section with the window chart.
#[test]
fn a_pipeline_pushes_what_it_staged_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server_wd, server) = server(tmp.path());
    std::fs::write(tmp.path().join("key.txt"), format!("{}\n", server.key.clone().unwrap())).unwrap();
    let sample = crate::harness::repo("data/sample.ndjson");
    let pipeline = format!(
        "name = \"nightly\"\nworkdir = \"client\"\nstages = [\"validate\", \"stage\", \"push\"]\n\
         [source]\npaths = [{:?}]\n[push]\nbase_url = {:?}\nteam = \"Migration\"\ntoken_file = \"key.txt\"\n",
        s(&sample),
        server.base
    );
    std::fs::write(tmp.path().join("nightly.toml"), &pipeline).unwrap();
    let run = ferry_with(tmp.path(), &["run", "nightly.toml", "--today", TODAY], &[]);
    assert_eq!(run.code, 1, "four accounts of the sample are rejected: {}", run.stderr);
    let total: usize =
        ["TENTACLE_ENERGY", "NORDLICHT_STROM", "ALPEN_GAS"].iter().map(|s| imported_on(&server, s).len()).sum();
    assert_eq!(total, 196);
    let runs = tmp.path().join("client/runs");
    let dir = manifest_dir(&runs);
    let manifest = json(&std::fs::read_to_string(dir.join("manifest.json")).unwrap());
    assert_eq!(manifest["funnel"]["created"], 196, "{manifest}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("## Push: TENTACLE_ENERGY to"), "{md}");
    assert!(md.contains("| create | 201 | created | 100 |"), "{md}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("aria-label=\"window over time\""));
    // Create here and push there: one or the other.
    let both = pipeline.replace("\"stage\", \"push\"", "\"stage\", \"create\", \"push\"");
    std::fs::write(tmp.path().join("both.toml"), both).unwrap();
    let run = ferry_with(tmp.path(), &["run", "both.toml"], &[]);
    assert_eq!(run.code, 2);
    assert!(flat(&run.stderr).contains("not both"), "{}", run.stderr);
}

/// The folder of the one pipeline run (the one with a manifest) under `runs`.
fn manifest_dir(runs: &Path) -> PathBuf {
    std::fs::read_dir(runs).unwrap().map(|e| e.unwrap().path()).find(|p| p.join("manifest.json").is_file()).unwrap()
}

/// HTTPS: with the target's CA given (--ca-cert) the push goes through TLS and creates every
/// account; without it the certificate is refused and the push stops, having created nothing.
#[test]
fn https_needs_a_trusted_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let client = staged_copies(tmp.path(), "T", 8);
    let (_server_wd, server) = server(tmp.path());
    let proxy = Proxy::start_tls(&server.base);
    let key = server.key.clone().unwrap();
    let run = push(&client, &proxy.base, &key, &["--give-up-after", "1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(proxy.stats.creates.load(Ordering::SeqCst), 0);
    let ca = crate::harness::repo("tests/fixtures/tls/ca.pem");
    let run = push(&client, &proxy.base, &key, &["--ca-cert", s(&ca)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(imported_on(&server, SUPPLIER).len(), 8);
    assert_eq!(imported_on(&server, SUPPLIER), recorded_by(&client, SUPPLIER));
    assert_eq!(proxy.stats.creates.load(Ordering::SeqCst), 8);
}
