//! Staged and run files on shared storage (`--staging`): a `file://` folder, and S3 through a
//! local moto server. Another work directory creates from what one staged, a damaged local copy
//! is fetched again, a run killed after publishing leaves garbage that `ferry gc` removes from
//! the shared storage, and what the store still references stays.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{count, ferry_wd, repo, s};

const SUPPLIER: &str = "TENTACLE_ENERGY";
/// The sample's other supplier.
const OTHER: &str = "NORDLICHT_STROM";

fn create(wd: &Path, env: &[(&str, &str)]) -> crate::harness::Run {
    ferry_wd(wd, &["create", "--supplier", SUPPLIER, "--team", "Migration", "--all-pending"], env)
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The first staged location of the supplier in `wd` (`staging/<supplier>/<run>`).
fn location(wd: &Path) -> PathBuf {
    first_location(&wd.join("staging").join(SUPPLIER))
}

fn first_location(supplier: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(supplier).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    runs.remove(0)
}

/// Stages the sample with shared files in `env`; then, as on a machine that lacks them or
/// whose copy went bad: one supplier's local folder is removed, and another's accounts file is
/// damaged in place (same size). Creating both fetches what is missing or wrong.
fn staged_files_come_back_from(env: &[(&str, &str)], tmp: &Path) {
    let wd = tmp.join("wd");
    let staged = ferry_wd(&wd, &["stage", s(&repo("data/sample.ndjson"))], env);
    assert_eq!(staged.code, 1, "{}", staged.stderr);
    assert_eq!(ferry_wd(&wd, &["team", "add", "Migration"], env).code, 0);
    let (damaged, removed) = (location(&wd), first_location(&wd.join("staging").join(OTHER)));
    let names = files_under(&removed);
    assert!(names.contains(&"accounts.parquet".to_owned()), "{names:?}");
    std::fs::remove_dir_all(&removed).unwrap();
    let accounts = damaged.join("accounts.parquet");
    let original = std::fs::read(&accounts).unwrap();
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&accounts, &bytes).unwrap();

    let created = create(&wd, env);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(created.stderr.contains("201 created"), "{}", created.stderr);
    assert_eq!(std::fs::read(&accounts).unwrap(), original, "the damaged copy was fetched again");
    let other = ferry_wd(&wd, &["create", "--supplier", OTHER, "--team", "Migration", "--all-pending"], env);
    assert!(other.stderr.contains("201 created"), "{}", other.stderr);
    assert_eq!(files_under(&removed), names, "every staged file fetched back, nothing else");
}

/// A run killed after publishing its files and before its store commit, and never resumed (the
/// next night brings another dump): the next run marks it interrupted, and `ferry gc` removes
/// its locations from the shared storage, and only them.
fn killed_stage_leaves_garbage_gc_removes(env: &[(&str, &str)], tmp: &Path, shared_staging: impl Fn() -> Vec<String>) {
    let wd = tmp.join("gc");
    let dump = repo("data/sample.ndjson");
    let lines: Vec<String> = std::fs::read_to_string(&dump).unwrap().lines().map(str::to_owned).collect();
    let yesterday = tmp.join("yesterday.ndjson");
    std::fs::write(&yesterday, lines[..150].join("\n") + "\n").unwrap();
    let mut killed_env = env.to_vec();
    killed_env.push(("FERRY_FAILPOINT", "stage-files-published"));
    let killed = ferry_wd(&wd, &["stage", s(&yesterday)], &killed_env);
    assert_ne!(killed.code, 0, "the failpoint aborts: {}", killed.stderr);
    assert!(killed.stderr.contains("failpoint stage-files-published"), "{}", killed.stderr);
    let orphaned = shared_staging();
    assert!(!orphaned.is_empty(), "published before the kill");
    assert_eq!(count(&wd, "SELECT count(*) FROM staged_versions"), 0, "nothing committed");

    let staged = ferry_wd(&wd, &["stage", s(&dump)], env);
    assert_eq!(staged.code, 1, "{}", staged.stderr);
    let kept = shared_staging().into_iter().filter(|l| !orphaned.contains(l)).collect::<Vec<_>>();
    assert!(!kept.is_empty());

    let dry = ferry_wd(&wd, &["gc", "--dry-run"], env);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    for l in &orphaned {
        assert!(dry.stdout.contains(l.as_str()), "{l} listed: {}", dry.stdout);
    }
    for l in &kept {
        assert!(!dry.stdout.contains(l.as_str()), "{l} is referenced: {}", dry.stdout);
    }
    assert_eq!(shared_staging().len(), orphaned.len() + kept.len(), "a dry run removes nothing");
    let gc = ferry_wd(&wd, &["gc"], env);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert_eq!(shared_staging(), kept);
    // What is left is whole: another work directory creates from it.
    assert_eq!(ferry_wd(&wd, &["team", "add", "Migration"], env).code, 0);
    std::fs::remove_dir_all(wd.join("staging")).unwrap();
    let created = create(&wd, env);
    assert_eq!(created.code, 0, "{}", created.stderr);
}

/// The `--staging` setting of a shared folder.
fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// The staged locations (`staging/<supplier>/<run>`) under a folder.
fn locations_in(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(&root.join("staging"))
        .into_iter()
        .filter_map(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            (parts.len() == 3).then(|| format!("staging/{}/{}", parts[0], parts[1]))
        })
        .collect();
    out.dedup();
    out
}

#[test]
fn a_file_url_shares_staged_files() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let url = file_url(&shared);
    let env = [("FERRY_STAGING", url.as_str())];
    staged_files_come_back_from(&env, tmp.path());
    let published = files_under(&shared);
    assert!(published.iter().any(|f| f.starts_with("staging/") && f.ends_with("/manifest.json")), "{published:?}");
    assert!(published.iter().any(|f| f.starts_with("runs/") && f.ends_with("/outcomes.parquet")), "{published:?}");
    assert!(published.iter().any(|f| f.starts_with("runs/") && f.ends_with("/findings.parquet")), "{published:?}");

    let gc_shared = tmp.path().join("gc-shared");
    let url = file_url(&gc_shared);
    let env = [("FERRY_STAGING", url.as_str())];
    killed_stage_leaves_garbage_gc_removes(&env, tmp.path(), || locations_in(&gc_shared));
}

#[test]
fn a_bad_staging_setting_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for (url, says) in [
        ("ftp://host/x", "not an s3:// or file:// URL"),
        ("file://relative/dir", "needs an absolute path"),
        ("s3:///prefix", "no bucket"),
    ] {
        let run = ferry_wd(tmp.path(), &["supplier", "list"], &[("FERRY_STAGING", url)]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{url}: {}", run.stderr);
    }
}

/// A staged file the store records but the shared storage lost: exit 2, naming it.
#[test]
fn a_staged_file_missing_everywhere_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let url = file_url(&shared);
    let env = [("FERRY_STAGING", url.as_str())];
    let wd = tmp.path().join("wd");
    assert_eq!(ferry_wd(&wd, &["stage", s(&repo("data/sample.ndjson"))], &env).code, 1);
    assert_eq!(ferry_wd(&wd, &["team", "add", "Migration"], &env).code, 0);
    let local = location(&wd);
    let relative = local.strip_prefix(&wd).unwrap().join("accounts.parquet");
    std::fs::remove_file(wd.join(&relative)).unwrap();
    std::fs::remove_file(shared.join(&relative)).unwrap();
    let created = create(&wd, &env);
    assert_eq!(created.code, 2, "{}", created.stderr);
    assert!(created.stderr.contains("is not on the shared storage"), "{}", created.stderr);
    assert!(created.stderr.contains("accounts.parquet"), "{}", created.stderr);
}

/// moto's S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The moto server, when the machine has it (`FERRY_MOTO_SERVER` or `moto_server` on PATH).
/// With `FERRY_S3_TESTS=1` (CI) its absence is a failure, not a skip.
fn moto() -> Option<Moto> {
    let program = std::env::var("FERRY_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawned = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var("FERRY_S3_TESTS").as_deref() == Ok("1") => {
            panic!("FERRY_S3_TESTS=1 but {program} does not start: {e}")
        }
        Err(e) => {
            eprintln!("skipping the S3 test: {program} does not start ({e}); .ci/run installs moto");
            return None;
        }
    };
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not listen on {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let made = ureq::put(&format!("{}/ferry", moto.endpoint)).send_empty();
    assert!(made.is_ok(), "creating the bucket: {made:?}");
    Some(moto)
}

/// The staged locations in moto's bucket, through its ListObjectsV2 (read by the test, not by
/// ferry's client).
fn locations_in_bucket(endpoint: &str, prefix: &str) -> Vec<String> {
    let xml = ureq::get(&format!("{endpoint}/ferry?list-type=2&prefix={prefix}/staging/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let mut out: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .filter_map(|k| {
            let parts: Vec<&str> = k.strip_prefix(&format!("{prefix}/"))?.split('/').collect();
            (parts.len() == 4).then(|| parts[..3].join("/"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn s3_shares_staged_files() {
    let Some(moto) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let env = [
        ("FERRY_STAGING", "s3://ferry/nightly"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "eu-central-1"),
    ];
    staged_files_come_back_from(&env, tmp.path());
    let mut gc_env = env.to_vec();
    gc_env[0] = ("FERRY_STAGING", "s3://ferry/gc");
    killed_stage_leaves_garbage_gc_removes(&gc_env, tmp.path(), || locations_in_bucket(&moto.endpoint, "gc"));
}

/// Two machines on one PostgreSQL store and one shared folder: the second creates from what the
/// first staged, with no copy made by hand.
#[test]
fn another_machine_creates_from_shared_staged_files() {
    let Some(dsn) = crate::pg::database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(&tmp.path().join("shared"));
    let env = [("FERRY_STORE", dsn.as_str()), ("FERRY_STAGING", url.as_str())];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let staged = ferry_wd(&a, &["stage", s(&repo("data/sample.ndjson"))], &env);
    assert_eq!(staged.code, 1, "{}", staged.stderr);
    assert_eq!(ferry_wd(&a, &["team", "add", "Migration"], &env).code, 0);
    let created = create(&b, &env);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(created.stderr.contains("201 created"), "{}", created.stderr);
    assert_eq!(files_under(&location(&b)), files_under(&location(&a)));
    let gc = ferry_wd(&b, &["gc", "--dry-run"], &env);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stderr.contains("would remove 0 paths"), "{}", gc.stderr);
}

/// A pipeline with `staging = "file://…"` publishes its run, and a second machine on the same
/// store reports on it: the manifests and the steps' files come from the shared storage.
#[test]
fn a_pipeline_publishes_its_run_and_another_machine_reports_on_it() {
    let Some(dsn) = crate::pg::database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let pipeline = tmp.path().join("nightly.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"nightly\"\nworkdir = \"a\"\nstaging = \"file://{}\"\nstages = [\"validate\", \"stage\", \"create\"]\n\
             report = [\"md\"]\n[source]\npaths = [\"{}\"]\n[create]\nteam = \"Migration\"\ncreate_team = true\n",
            shared.display(),
            s(&repo("data/sample.ndjson"))
        ),
    )
    .unwrap();
    let env = [("FERRY_STORE", dsn.as_str())];
    let ran = crate::harness::ferry_with(tmp.path(), &["run", s(&pipeline)], &env);
    assert_eq!(ran.code, 1, "4 rejected: {}", ran.stderr);
    let published = files_under(&shared);
    assert!(published.iter().any(|f| f.starts_with("runs/") && f.ends_with("/manifest.json")), "{published:?}");
    assert!(published.iter().any(|f| f.ends_with("/report.md")), "{published:?}");

    let url = file_url(&shared);
    let env = [("FERRY_STORE", dsn.as_str()), ("FERRY_STAGING", url.as_str())];
    let b = tmp.path().join("b");
    let report = ferry_wd(&b, &["report", "--latest", "--format", "md", "--stdout"], &env);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let local =
        crate::harness::ferry_wd(&tmp.path().join("a"), &["report", "--latest", "--format", "md", "--stdout"], &env);
    assert_eq!(report.stdout, local.stdout, "the same report on both machines");
    assert!(
        report.stdout.contains("account_failed_validation") || report.stdout.contains("rejected"),
        "{}",
        report.stdout
    );
}
