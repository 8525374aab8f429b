//! `ferry serve`: the real binary on 127.0.0.1:0, a real HTTP client (ureq), no mocks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::{example_dump, ferry, ferry_in, repo, s};

pub(crate) const TODAY: &str = "2026-11-27";
const VALIDATE: &str = "/v1/data-import/validate-account/";

/// A running `ferry serve`, stopped (SIGKILL) when dropped. Requests carry an importer token's
/// key unless `key` is changed.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    agent: ureq::Agent,
    pub(crate) key: Option<String>,
    /// Everything the server printed on stderr so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Makes a token in a work directory (the server must not run); its key.
fn token(workdir: &Path, name: &str, role: &str) -> String {
    token_in(workdir, name, role, &[])
}

/// Makes a token in the store a server with environment `env` uses.
fn token_in(workdir: &Path, name: &str, role: &str, env: &[(&str, &str)]) -> String {
    let made = crate::harness::ferry_wd(workdir, &["token", "add", name, "--role", role], env);
    assert_eq!(made.code, 0, "{}", made.stderr);
    made.stdout.trim().to_owned()
}

impl Server {
    pub(crate) fn start(workdir: &Path) -> Server {
        Self::start_with(workdir, &[])
    }

    fn start_with(workdir: &Path, env: &[(&str, &str)]) -> Server {
        Self::launch(workdir, env, &[])
    }

    pub(crate) fn launch(workdir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = token_in(workdir, &format!("importer-{n}"), "importer", env);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--listen", "127.0.0.1:0", "--today", TODAY, "--workdir", s(workdir)])
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "ferry serve stopped before it listened");
            if let Some(address) = line.trim().strip_prefix("listening on ") {
                break address.to_owned();
            }
        };
        // Keep reading its log, so that it never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(line.clone()));
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { child, base, agent, key: Some(key), log }
    }

    /// A create request for one account of TENTACLE_ENERGY: the status, the body and the
    /// Retry-After header.
    pub(crate) fn create(&self, account: &str) -> (u16, String, Option<String>) {
        let mut response = self
            .agent
            .post(format!("{}{CREATE}", self.base))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Token {}", self.key.as_ref().unwrap()))
            .send(&create_body(account, "Migration", false)[..])
            .unwrap();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap(), retry)
    }

    pub(crate) fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let (status, body, _) = self.post_as(path, content_type, body, None);
        (status, body)
    }

    /// A POST with `x-request-id` when given; the status, the body and the `x-request-id` the
    /// server answered with.
    fn post_as(&self, path: &str, content_type: &str, body: &[u8], id: Option<&str>) -> (u16, String, String) {
        let mut request = self.agent.post(format!("{}{path}", self.base)).header("Content-Type", content_type);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Token {key}"));
        }
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        let mut response = request.send(body).unwrap();
        let answered = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap(), answered.unwrap_or_default())
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Token {key}"));
        }
        let mut response = request.call().unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    }

    /// The server's log once it holds `text` (its lines are read on another thread), at most 5 s.
    fn log_with(&self, text: &str) -> String {
        for _ in 0..100 {
            let log = self.log.lock().unwrap().clone();
            if log.contains(text) {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the server's log never said {text:?}: {}", self.log.lock().unwrap());
    }

    /// Sends `request` as it is over a new connection; the response's head and body.
    fn raw(&self, request: &str) -> (String, String) {
        self.exchange(&[request.as_bytes()])
    }

    /// POSTs `size` bytes of JSON-looking text chunked (no declared length), 1 MiB at a time,
    /// stopping when the server stops reading; the response's head and body.
    fn chunked(&self, path: &str, size: usize) -> (String, String) {
        let key = self.key.clone().unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Token {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, " ".repeat(1 << 20));
        let mut parts = vec![head.as_bytes()];
        parts.extend(std::iter::repeat_n(chunk.as_bytes(), size >> 20));
        parts.push(b"0\r\n\r\n");
        self.exchange(&parts)
    }

    /// Writes `parts` over a new connection (until the server stops reading), then reads the
    /// whole response: its head and body.
    fn exchange(&self, parts: &[&[u8]]) -> (String, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.base.trim_start_matches("http://")).unwrap();
        for part in parts {
            if stream.write_all(part).is_err() {
                break;
            }
        }
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.to_owned(), body.to_owned())
    }

    /// SIGTERM, then the exit code.
    pub(crate) fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The guide's example gets the CLI's 400, the corrected copy its 200: the same bodies as
/// `ferry validate --account`, byte for byte the bodies of `--emit outcomes`.
#[test]
fn validate_answers_as_the_cli_does() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("work"));
    for (example, status) in [("guide-account.json", 400), ("account.json", 200)] {
        let path = repo(&format!("data/examples/{example}"));
        let (code, body) = server.post(VALIDATE, "application/json", &std::fs::read(&path).unwrap());
        assert_eq!(code, status, "{example}: {body}");
        let cli = ferry(&["validate", "--account", s(&path), "--today", TODAY]);
        assert_eq!(json(&body), json(&cli.stdout), "{example}");
        // The same line as a dump: the same bytes in, the same body out (a json field keeps
        // its text as given, so the request is the dump's line).
        let dump = example_dump(tmp.path(), example);
        let (_, line_body) = server.post(VALIDATE, "application/json", &std::fs::read(&dump).unwrap());
        let outcomes = ferry(&["validate", s(&dump), "--emit", "outcomes", "--today", TODAY]);
        let outcome = json(outcomes.stdout.trim());
        assert_eq!(line_body, outcome["body"].to_string(), "{example}: byte for byte");
        if status == 400 {
            assert_eq!(json(&body)["errors"].as_array().unwrap().len(), 8, "the guide example's 8 errors");
        }
    }
}

/// Every malformed request gets its status and a JSON body, and the server keeps serving.
#[test]
fn bad_requests_are_json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("work"));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (VALIDATE, "text/plain", b"{}".to_vec(), 415, "unsupported_media_type"),
        (VALIDATE, "application/json", b"nope".to_vec(), 400, "account_failed_validation"),
        (VALIDATE, "application/json", b"[1, 2]".to_vec(), 400, "account_failed_validation"),
        (VALIDATE, "application/json", b"".to_vec(), 400, "account_failed_validation"),
        (VALIDATE, "application/json; charset=utf-8", vec![0xff, 0xfe], 400, "account_failed_validation"),
        ("/v1/data-import/nothing-here/", "application/json", b"{}".to_vec(), 404, "not_found"),
        ("/healthz", "application/json", b"{}".to_vec(), 405, "method_not_allowed"),
    ];
    for (path, content_type, body, status, code) in cases {
        let (got, text) = server.post(path, content_type, &body);
        assert_eq!(got, status, "{path} {content_type}: {text}");
        assert_eq!(json(&text)["code"], code, "{path} {content_type}");
    }
    assert_eq!(server.get("/healthz"), (200, r#"{"status":"ok"}"#.to_owned()));
    // A 64 MiB body is refused from its Content-Length, before the server reads it.
    let (head, body) = server.raw(&format!(
        "POST {VALIDATE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        64 << 20
    ));
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(json(&body)["code"], "request_too_large");
    // A 64 MiB body without a declared length is cut at the limit as it is read: the server's
    // memory does not grow by the body.
    let memory = |field: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap().to_owned();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let (rss, peak) = (memory("VmRSS:"), memory("VmHWM:"));
    let (head, body) = server.chunked(VALIDATE, 64 << 20);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(json(&body)["code"], "request_too_large");
    assert!(memory("VmHWM:") <= peak.max(rss + (32 << 20)), "the server's peak memory grew by the body");
}

/// Status and lists answer from the store as `ferry status` and `ferry list --json` do; the
/// server holds the lock, so a CLI writer is refused while it runs and works after SIGTERM.
#[test]
fn status_and_lists_come_from_the_store_and_the_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let dump = example_dump(tmp.path(), "account.json");
    let staged = ferry_in(tmp.path(), &["stage", s(&dump), "--today", TODAY, "--workdir", "work"]);
    assert_eq!(staged.code, 0, "{}", staged.stderr);
    let server = Server::start(&work);
    let (code, body) = server.get("/v1/data-import/account-transfer-status/TENTACLE_ENERGY/EXTERNAL-1234/");
    assert_eq!((code, json(&body)), (200, serde_json::json!({ "status": "UNKNOWN", "kraken_account_number": "" })));
    let cli = ferry_in(tmp.path(), &["status", "--supplier", "TENTACLE_ENERGY", "EXTERNAL-1234", "--workdir", "work"]);
    assert_eq!(body, cli.stdout.trim(), "the CLI's body, byte for byte");
    let (code, body) = server.get("/v1/data-import/account-transfer-status/TENTACLE_ENERGY/NOPE/");
    assert_eq!(code, 404, "{body}");
    assert!(json(&body)["detail"].as_str().unwrap().contains("NOPE"));
    for (which, n) in [("all", 1), ("pending", 1), ("imported", 0)] {
        let (code, body) = server.get(&format!("/v1/data-import/{which}-account-import-processes/TENTACLE_ENERGY/"));
        assert_eq!(code, 200);
        let entries = json(&body);
        assert_eq!(entries.as_array().unwrap().len(), n, "{which}: {body}");
        let cli =
            ferry_in(tmp.path(), &["list", which, "--supplier", "TENTACLE_ENERGY", "--json", "--workdir", "work"]);
        let cli: Vec<Value> = cli.stdout.lines().map(json).collect();
        assert_eq!(entries, Value::Array(cli), "{which}");
    }
    let refused = ferry_in(tmp.path(), &["stage", s(&dump), "--today", TODAY, "--workdir", "work"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("ferry serve"), "{}", refused.stderr);
    let second = ferry_in(tmp.path(), &["serve", "--listen", "127.0.0.1:0", "--workdir", "work"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert_eq!(server.get("/readyz").0, 200);
    assert_eq!(server.terminate(), 0);
    let after = ferry_in(tmp.path(), &["stage", s(&dump), "--today", TODAY, "--workdir", "work"]);
    assert_eq!(after.code, 0, "the lock went with the server: {}", after.stderr);
}

const STAGE: &str = "/v1/data-import/account-import-process/create-or-update/";
const CREATE: &str = "/v1/data-import/account-import-process/process/";

/// A dump of `n` copies of the example account, numbered `{prefix}-0` onwards.
pub(crate) fn copies(prefix: &str, n: usize) -> String {
    let text = std::fs::read_to_string(repo("data/examples/account.json")).unwrap();
    let base: Value = serde_json::from_str(&text).unwrap();
    (0..n)
        .map(|i| {
            let mut a = base.clone();
            a["external_account_number"] = Value::from(format!("{prefix}-{i}"));
            format!("{a}\n")
        })
        .collect()
}

/// A work directory in `dir` with `n` copies of the example account staged (`copies`) and the
/// team `Migration`.
pub(crate) fn staged_copies(dir: &Path, prefix: &str, n: usize) -> std::path::PathBuf {
    let dump = format!("{}.ndjson", prefix.to_lowercase());
    std::fs::write(dir.join(&dump), copies(prefix, n)).unwrap();
    assert_eq!(ferry_in(dir, &["stage", &dump, "--today", TODAY, "--workdir", "work"]).code, 0);
    assert_eq!(ferry_in(dir, &["team", "add", "Migration", "--workdir", "work"]).code, 0);
    dir.join("work")
}

fn create_body(account: &str, team: &str, dry_run: bool) -> Vec<u8> {
    serde_json::json!({
        "external_account_number": account,
        "import_supplier_code": "TENTACLE_ENERGY",
        "operations_team_name": team,
        "dry_run": dry_run,
    })
    .to_string()
    .into_bytes()
}

/// Stage and create through the API: every outcome of the guide, with the bodies the CLI's
/// stage and create give, and the store changed only by what is not a dry run.
#[test]
fn stage_and_create_answer_as_the_guide_says() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    assert_eq!(ferry_in(tmp.path(), &["team", "add", "Migration", "--workdir", "work"]).code, 0);
    let server = Server::launch(&work, &[], &["--log-format", "json"]);
    let account = std::fs::read(repo("data/examples/account.json")).unwrap();
    let (code, body, id) = server.post_as(STAGE, "application/json", &account, Some("stage-1"));
    assert_eq!(id, "stage-1", "the caller's request id comes back");
    assert_eq!(
        (code, json(&body)),
        (201, serde_json::json!({"import_supplier": "TENTACLE_ENERGY", "external_account_number": "EXTERNAL-1234"}))
    );
    assert_eq!(server.post(STAGE, "application/json", &account).0, 200, "an update");
    let guide = std::fs::read(repo("data/examples/guide-account.json")).unwrap();
    let (code, body) = server.post(STAGE, "application/json", &guide);
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("account_failed_validation")));

    let (code, body) = server.post(CREATE, "application/json", &create_body("EXTERNAL-1234", "Migration", true));
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("dry_run_rolled_back")), "{body}");
    let (_, status) = server.get("/v1/data-import/account-transfer-status/TENTACLE_ENERGY/EXTERNAL-1234/");
    assert_eq!(json(&status)["status"], "UNKNOWN", "a dry run changes nothing");
    let (code, body) = server.post(CREATE, "application/json", &create_body("EXTERNAL-1234", "Nobody", false));
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("operations_team_name_does_not_exist")));
    let (code, body) = server.post(CREATE, "application/json", &create_body("NOT-STAGED", "Migration", false));
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("import_process_does_not_exist")));
    let (code, body, created_by) =
        server.post_as(CREATE, "application/json", &create_body("EXTERNAL-1234", "Migration", false), None);
    assert_eq!(code, 201, "{body}");
    assert_eq!(created_by.len(), 16, "a request id of the server's own: {created_by}");
    let number = json(&body)["kraken_account_number"].as_str().unwrap().to_owned();
    assert!(number.len() == 10 && number.starts_with("A-"), "{number}");
    let (code, body) = server.post(CREATE, "application/json", &create_body("EXTERNAL-1234", "Migration", false));
    assert_eq!(code, 400);
    assert_eq!(json(&body)["kraken_account_number"], number.as_str(), "already imported, with both numbers");
    assert_eq!(json(&body)["external_account_number"], "EXTERNAL-1234");
    let (code, body) = server.post(STAGE, "application/json", &account);
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("account_import_process_already_imported")));
    let (_, status) = server.get("/v1/data-import/account-transfer-status/TENTACLE_ENERGY/EXTERNAL-1234/");
    assert_eq!(json(&status), serde_json::json!({"status": "COMPLETED", "kraken_account_number": number}));
    let (code, body) = server.post(CREATE, "application/json", b"{\"external_account_number\": 5}");
    assert_eq!((code, json(&body)["code"].as_str()), (400, Some("invalid_request")));
    let server_log = server.log.clone();
    assert_eq!(server.terminate(), 0);
    let count = |sql: &str| crate::harness::count(&work, sql);
    assert_eq!(count("SELECT COUNT(*) FROM audit WHERE operation = 'create' AND status_code = 201"), 1);
    // Every outcome in the audit names its request and the token it came with.
    let tagged = "SELECT COUNT(*) FROM audit WHERE request_id = 'stage-1' AND status_code = 201 AND token_name LIKE 'importer-%'";
    assert_eq!(count(tagged), 1);
    let created = format!("SELECT COUNT(*) FROM audit WHERE request_id = '{created_by}' AND status_code = 201");
    assert_eq!(count(&created), 1);
    assert_eq!(count("SELECT COUNT(*) FROM audit WHERE request_id IS NULL OR token_name IS NULL"), 0);
    // The request log is one JSON object per request, with the token's name and never its key.
    let log = server_log.lock().unwrap().clone();
    let lines: Vec<Value> = log.lines().filter(|l| l.starts_with('{')).map(json).collect();
    let staged = lines.iter().find(|l| l["request_id"] == "stage-1").expect("the stage request's line");
    assert_eq!((staged["status"].as_u64(), staged["method"].as_str()), (Some(201), Some("POST")));
    assert!(staged["token"].as_str().unwrap().starts_with("importer-"), "{staged}");
    assert!(!log.contains("ferry_"), "never a key");
}

/// 100 concurrent creates while the writer is held back (each chunk pauses 2 s): exactly the
/// limit get through, the rest get 429 at once with Retry-After; every accepted one is then 201
/// and each account exists once.
#[test]
fn creates_past_the_limit_get_429_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged_copies(tmp.path(), "C", 100);
    let server = Server::start_with(&work, &[("FERRY_FAILPOINT", "create-chunk=sleep:2000")]);
    let answers: Vec<(u16, String, Option<String>)> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let server = &server;
                threads.spawn(move || server.create(&format!("C-{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted = answers.iter().filter(|(code, _, _)| *code == 201).count();
    let refused: Vec<_> = answers.iter().filter(|(code, _, _)| *code == 429).collect();
    assert_eq!((accepted, refused.len()), (40, 60), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    for (_, body, retry) in refused {
        assert_eq!(json(body)["code"], "concurrency_limit_exceeded");
        assert_eq!(retry.as_deref(), Some("1"));
    }
    let (code, metrics) = server.get("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("ferry_creates_refused_total 60"), "{metrics}");
    let answered = format!("ferry_http_requests_total{{route=\"{CREATE}\",status=\"429\"}} 60");
    assert!(metrics.contains(&answered), "{metrics}");
    let count = |sql: &str| crate::harness::count(&work, sql);
    assert_eq!(server.terminate(), 0);
    assert_eq!(count("SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 40);
    assert_eq!(count("SELECT COUNT(DISTINCT kraken_account_number) FROM import_processes"), 40);
}

/// Every endpoint but /healthz wants a live token: none or a wrong key is 401, a viewer may not
/// stage or create (403), a token revoked while the server runs is refused at once, and no key
/// is ever printed in the server's log.
#[test]
fn tokens_guard_every_endpoint_but_healthz() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let viewer = token(&work, "viewer", "viewer");
    let mut server = Server::start(&work);
    let importer = server.key.clone().unwrap();
    let account = std::fs::read(repo("data/examples/account.json")).unwrap();
    for (key, status, code) in [
        (None, 401, "not_authenticated"),
        (Some("ferry_0000".to_owned()), 401, "authentication_failed"),
        (Some(viewer.clone()), 403, "permission_denied"),
    ] {
        server.key = key;
        let (got, body) = server.post(STAGE, "application/json", &account);
        assert_eq!((got, json(&body)["code"].as_str()), (status, Some(code)), "{body}");
    }
    assert_eq!(server.get("/healthz").0, 200, "no token needed");
    assert_eq!(server.post(VALIDATE, "application/json", &account).0, 200, "a viewer validates");
    assert_eq!(server.get("/readyz").0, 200, "and reads");
    let revoked = ferry(&["token", "revoke", "viewer", "--workdir", s(&work)]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    // The server remembers a key for at most a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while server.get("/readyz").0 != 401 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(server.get("/readyz").0, 401, "revoked while the server runs, within a second");
    server.key = Some(importer.clone());
    assert_eq!(server.post(STAGE, "application/json", &account).0, 201);
    let list = ferry(&["token", "list", "--json", "--workdir", s(&work)]);
    assert!(!list.stdout.contains("ferry_"), "never a key: {}", list.stdout);
    assert_eq!(list.stdout.lines().count(), 2);
    let log = server.log_with(&format!("POST {STAGE} 201"));
    // Every response carries a request id, the caller's when it gives a sane one.
    let mut response =
        server.agent.get(format!("{}/healthz", server.base)).header("x-request-id", "push-7.1").call().unwrap();
    assert_eq!(response.headers().get("x-request-id").unwrap(), "push-7.1");
    let _ = response.body_mut().read_to_string();
    let response = server.agent.get(format!("{}/healthz", server.base)).header("x-request-id", "a b").call().unwrap();
    let id = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    server.log_with("push-7.1 GET /healthz 200");
    assert!(!log.contains(&importer) && !log.contains(&viewer), "{log}");
}

/// kill -9 while creates are in flight; restart, send them all again: every account exists
/// exactly once, and the audit shows the interrupted attempts.
#[test]
fn a_server_killed_with_creates_in_flight_creates_each_account_once() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged_copies(tmp.path(), "K", 30);
    let send_all = |server: &Server| -> Vec<u16> {
        std::thread::scope(|threads| {
            let handles: Vec<_> = (0..30)
                .map(|i| {
                    threads.spawn(move || {
                        let request = server
                            .agent
                            .post(format!("{}{CREATE}", server.base))
                            .header("Content-Type", "application/json")
                            .header("Authorization", format!("Token {}", server.key.as_ref().unwrap()));
                        request
                            .send(&create_body(&format!("K-{i}"), "Migration", false)[..])
                            .map_or(0, |r| r.status().as_u16())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    {
        let mut held = Server::start_with(&work, &[("FERRY_FAILPOINT", "create-chunk=sleep:5000")]);
        let killer = std::thread::spawn({
            let (pid, base, key) = (held.child.id(), held.base.clone(), held.key.clone().unwrap());
            move || {
                // The chunk's intents are committed before it is written: IN_PROGRESS meanwhile.
                std::thread::sleep(std::time::Duration::from_millis(1500));
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let in_progress = (0..30)
                    .filter(|i| {
                        let url = format!("{base}/v1/data-import/account-transfer-status/TENTACLE_ENERGY/K-{i}/");
                        let mut r = agent.get(url).header("Authorization", format!("Token {key}")).call().unwrap();
                        r.body_mut().read_to_string().unwrap().contains("IN_PROGRESS")
                    })
                    .count();
                Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
                in_progress
            }
        });
        let answers = send_all(&held);
        assert!(killer.join().unwrap() > 0, "accounts in flight show IN_PROGRESS");
        assert!(answers.iter().all(|code| *code != 201), "nothing committed before the kill: {answers:?}");
        let _ = held.child.wait();
        held.key = None;
    }
    let server = Server::start(&work);
    let answers = send_all(&server);
    assert!(answers.iter().all(|code| *code == 201), "{answers:?}");
    assert_eq!(send_all(&server), vec![400; 30], "already imported");
    assert_eq!(server.terminate(), 0);
    let count = |sql: &str| crate::harness::count(&work, sql);
    assert_eq!(count("SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 30);
    assert_eq!(count("SELECT COUNT(*) FROM audit WHERE operation = 'create' AND status_code = 201"), 30);
    let interrupted = "SELECT COUNT(*) FROM audit WHERE error_code = 'creation_interrupted' AND request_id IS NOT NULL";
    assert!(count(interrupted) > 0, "the interrupted attempts, each with the request that sent it");
    assert_eq!(
        count("SELECT COUNT(*) FROM runs WHERE command = 'create' AND status = 'interrupted'"),
        1,
        "the killed server's run"
    );
    let closed = "SELECT COUNT(*) FROM runs WHERE command = 'create' AND status = 'rejected'";
    assert_eq!(count(closed), 1, "the second server's run, closed as it stopped (with its already-imported 400s)");
}

/// Creates sent in the reverse of their staged order, from 8 clients, over more accounts than
/// the server keeps read: every account is created once, from its own rows, and all of them
/// land in one create run, closed with its outcomes when the server stops.
#[test]
fn creates_in_any_order_are_one_run_with_every_outcome() {
    const N: usize = 1300;
    let tmp = tempfile::tempdir().unwrap();
    let work = staged_copies(tmp.path(), "R", N);
    let server = Server::start(&work);
    use std::sync::atomic::Ordering::SeqCst;
    let next = std::sync::atomic::AtomicUsize::new(N);
    let answers: Vec<u16> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                threads.spawn(|| {
                    let mut codes = Vec::new();
                    let take = |n: usize| n.checked_sub(1);
                    while let Ok(n) = next.fetch_update(SeqCst, SeqCst, take) {
                        let body = create_body(&format!("R-{}", n - 1), "Migration", false);
                        codes.push(server.post(CREATE, "application/json", &body).0);
                    }
                    codes
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers.len(), N);
    assert!(answers.iter().all(|code| *code == 201), "{:?}", answers.iter().filter(|c| **c != 201).collect::<Vec<_>>());
    // The list streams page by page (1,000 a page): all of them, as the CLI lists them.
    let (code, body) = server.get("/v1/data-import/imported-account-import-processes/TENTACLE_ENERGY/");
    assert_eq!(code, 200);
    let listed = json(&body);
    assert_eq!(listed.as_array().unwrap().len(), N);
    let cli =
        ferry_in(tmp.path(), &["list", "imported", "--supplier", "TENTACLE_ENERGY", "--json", "--workdir", "work"]);
    assert_eq!(listed, Value::Array(cli.stdout.lines().map(json).collect()));
    assert_eq!(server.get("/v1/data-import/pending-account-import-processes/TENTACLE_ENERGY/"), (200, "[]".to_owned()));
    assert_eq!(server.terminate(), 0);
    let count = |sql: &str| crate::harness::count(&work, sql);
    assert_eq!(
        count("SELECT COUNT(DISTINCT kraken_account_number) FROM import_processes WHERE status = 'IMPORTED'"),
        N as i64
    );
    assert_eq!(count("SELECT COUNT(*) FROM runs WHERE command = 'create' AND status = 'clean'"), 1);
    assert_eq!(count("SELECT COUNT(DISTINCT run_id) FROM audit WHERE operation = 'create'"), 1);
    let exported = std::fs::read_dir(work.join("runs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("outcomes.parquet").exists())
        .count();
    assert_eq!(exported, 2, "the stage run's outcomes and the create run's");
}

/// A panic in a handler is that request's JSON 500, and the server goes on serving.
#[test]
fn a_failed_handler_is_a_json_500_and_the_server_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(&tmp.path().join("work"), &[("FERRY_FAILPOINT", "serve-validate=panic")]);
    let account = std::fs::read(repo("data/examples/account.json")).unwrap();
    for _ in 0..3 {
        let (code, body) = server.post(VALIDATE, "application/json", &account);
        assert_eq!((code, json(&body)["code"].as_str()), (500, Some("server_error")), "{body}");
    }
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/v1/data-import/all-account-import-processes/X/"), (200, "[]".to_owned()));
}

/// Kraken account numbers and times differ from run to run: an example and an answer are the
/// same when they are the same but for those.
fn without_run_values(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() == 10 && s.starts_with("A-") => Value::from("A-XXXXXXXX"),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Value::from("<time>"),
        Value::Array(items) => Value::Array(items.iter().map(without_run_values).collect()),
        Value::Object(fields) => fields.iter().map(|(k, v)| (k.clone(), without_run_values(v))).collect(),
        other => other.clone(),
    }
}

/// docs/openapi.json is what the server does: its replay scenario (`x-ferry-replay`), run in
/// order against a real server, gets every documented status and exactly every documented
/// example, every request example is sent, every operation is called, and the server serves
/// the document itself.
#[test]
fn the_openapi_document_is_what_the_server_answers() {
    let text = std::fs::read_to_string(repo("docs/openapi.json")).unwrap();
    let doc = json(&text);
    let operations: std::collections::HashMap<&str, (&str, &str, &Value)> =
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, methods)| {
                methods.as_object().unwrap().iter().map(move |(method, op)| {
                    (op["operationId"].as_str().unwrap(), (method.as_str(), path.as_str(), op))
                })
            })
            .collect();
    // The work directory the examples were recorded on.
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let stage_examples = &operations["stageAccount"].2["requestBody"]["content"]["application/json"]["examples"];
    let setup: String = ["skipped_account", "paused_supplier_account"]
        .iter()
        .map(|name| format!("{}\n", stage_examples[name]["value"]))
        .collect();
    std::fs::write(tmp.path().join("setup.ndjson"), setup).unwrap();
    for args in [
        vec!["team", "add", "Migration"],
        vec!["stage", "setup.ndjson", "--today", TODAY],
        vec!["skip", "--supplier", "TENTACLE_ENERGY", "SKIPPED-1"],
        vec!["supplier", "pause", "PAUSED_ENERGY"],
    ] {
        let done = ferry_in(tmp.path(), &[args.as_slice(), &["--workdir", "work"]].concat());
        assert_eq!(done.code, 0, "{args:?}: {}", done.stderr);
    }
    let viewer = token(&work, "viewer", "viewer");
    let mut server = Server::launch(&work, &[("FERRY_FAILPOINT", "create-chunk=sleep:1500")], &["--create-limit", "1"]);
    let importer = server.key.clone();
    let mut used: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    let mut called = std::collections::HashSet::new();
    let send = |server: &Server, step: &Value| -> (u16, String) {
        let (method, path, op) = operations[step["operation"].as_str().unwrap()];
        let mut path = path.to_owned();
        for (name, value) in step["params"].as_object().into_iter().flatten() {
            path = path.replace(&format!("{{{name}}}"), value.as_str().unwrap());
        }
        let body = match (&step["body_text"], &step["request"]) {
            (Value::String(text), _) => Some(text.clone().into_bytes()),
            (_, Value::String(name)) => {
                let example = &op["requestBody"]["content"]["application/json"]["examples"][name]["value"];
                assert!(!example.is_null(), "no request example {name}");
                Some(example.to_string().into_bytes())
            }
            _ => None,
        };
        match (method, body) {
            ("post", Some(body)) => {
                let content_type = step["content_type"].as_str().unwrap_or("application/json");
                server.post(&path, content_type, &body)
            }
            ("get", None) => server.get(&path),
            other => panic!("a step the test cannot send: {other:?}"),
        }
    };
    for step in doc["x-ferry-replay"].as_array().unwrap() {
        let name = step["operation"].as_str().unwrap();
        called.insert(name);
        server.key = match step["auth"].as_str() {
            Some("none") => None,
            Some("viewer") => Some(viewer.clone()),
            Some("wrong") => Some(format!("ferry_{}", "0".repeat(64))),
            _ => importer.clone(),
        };
        if let Some(request) = step["request"].as_str() {
            used.insert((name.to_owned(), format!("request {request}")));
        }
        let (status, body) = std::thread::scope(|threads| {
            // A create held in the writer (the failpoint) fills the limit of 1.
            let holder = step["hold"].as_str().map(|hold| {
                let held = serde_json::json!({ "operation": name, "request": hold });
                let server = &server;
                let send = &send;
                let handle = threads.spawn(move || send(server, &held));
                std::thread::sleep(std::time::Duration::from_millis(500));
                handle
            });
            let answer = send(&server, step);
            if let Some(holder) = holder {
                holder.join().unwrap();
            }
            answer
        });
        let expected = step["status"].as_u64().unwrap() as u16;
        assert_eq!(status, expected, "{step}: {body}");
        let documented = &operations[name].2["responses"][expected.to_string()];
        assert!(documented.is_object(), "{name} does not document {expected}");
        if let Some(example) = step["response"].as_str() {
            used.insert((name.to_owned(), format!("{expected} {example}")));
            let value = &documented["content"]["application/json"]["examples"][example]["value"];
            assert!(!value.is_null(), "{name} {expected} has no example {example}");
            assert_eq!(without_run_values(&json(&body)), without_run_values(value), "{step}");
        }
        if name == "openapi" {
            assert_eq!(body, text, "the server serves this document");
        }
    }
    for (name, (_, _, op)) in &operations {
        assert!(called.contains(name), "the replay never calls {name}");
        let requests = op["requestBody"]["content"]["application/json"]["examples"].as_object();
        for request in requests.into_iter().flat_map(|e| e.keys()) {
            let key = (name.to_string(), format!("request {request}"));
            assert!(used.contains(&key), "a request example the replay never sends: {key:?}");
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            for example in
                response["content"]["application/json"]["examples"].as_object().into_iter().flat_map(|e| e.keys())
            {
                let key = (name.to_string(), format!("{status} {example}"));
                assert!(used.contains(&key), "an example the replay never gets: {key:?}");
            }
        }
    }
    server.key = importer;
    assert_eq!(server.terminate(), 0);
}
