//! The PostgreSQL store against a real server: a throwaway cluster from the machine's
//! PostgreSQL, one per test binary, with a database per test.
//!
//! The cluster is made with `initdb` and started with `pg_ctl` (as the `postgres` user through
//! `runuser` when the tests run as root: PostgreSQL refuses to run as root), listening on a unix
//! socket in its own temporary directory only. A watchdog process stops it and removes the
//! directory when the test binary exits, however it exits. Without PostgreSQL installed these
//! tests say so and pass, unless `FERRY_PG_TESTS=1` (which `.ci/run` sets): then they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry::store::pg::{Connection, Target};

use crate::harness::{repo, s};

/// A running throwaway cluster.
struct Cluster {
    socket_dir: PathBuf,
    port: u16,
}

/// The port in the socket's name; the socket directory is the cluster's own, so any will do.
const PORT: u16 = 54329;

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FERRY_PG_BIN") {
        return Some(dir.into());
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(PathBuf::from)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A command of the PostgreSQL installation, as the `postgres` user when we are root.
fn pg_command(bin: &Path, program: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    fn start() -> Result<Self, String> {
        Self::start_with(PORT, "-c listen_addresses=''", |_| Ok(()))
    }

    /// A cluster on `port` with more server options; `prepare` runs on its directory (owned by
    /// the server's user) before the server starts.
    fn start_with(port: u16, options: &str, prepare: impl FnOnce(&Path) -> Result<(), String>) -> Result<Self, String> {
        let bin = bin_dir().ok_or("no PostgreSQL installation (initdb) found")?;
        let root = is_root();
        let dir = tempfile::Builder::new().prefix("ferry-pg.").tempdir().map_err(|e| e.to_string())?.keep();
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres"]).arg(&dir);
                    c
                },
                "chown the cluster directory",
            );
        }
        let data = dir.join("data");
        let mut initdb = pg_command(&bin, "initdb", root);
        initdb.arg("-D").arg(&data).args([
            "-U",
            "ferry",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        prepare(&dir)?;
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown the cluster directory",
            );
        }
        let options = format!(
            "{} -k {} -p {port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=200 -c client_connection_check_interval=1s",
            options.replace("{dir}", &dir.display().to_string()),
            dir.display()
        );
        let mut start = pg_command(&bin, "pg_ctl", root);
        start.arg("-D").arg(&data).arg("-l").arg(dir.join("server.log")).args(["-w", "-o", &options, "start"]);
        run(start, "pg_ctl start");
        // The watchdog: when this test binary is gone, stop the server and remove its directory.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate -w stop \
             >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if root { "runuser -u postgres -- " } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("the cluster's watchdog: {e}"))?;
        Ok(Self { socket_dir: dir, port })
    }

    fn dsn(&self, db: &str) -> String {
        format!("host={} port={} user=ferry dbname={db}", self.socket_dir.display(), self.port)
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// A new, empty database on the test binary's cluster: its connection string. None (after
/// saying why) when there is no PostgreSQL here and `FERRY_PG_TESTS` does not demand one.
pub(crate) fn database() -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = match CLUSTER.get_or_init(Cluster::start) {
        Ok(cluster) => cluster,
        Err(why) if std::env::var("FERRY_PG_TESTS").as_deref() != Ok("1") => {
            eprintln!("skipped: {why} (set FERRY_PG_TESTS=1 to make this a failure)");
            return None;
        }
        Err(why) => panic!("FERRY_PG_TESTS=1 but no PostgreSQL cluster: {why}"),
    };
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = Connection::open(&Target::parse(&cluster.dsn("postgres")).unwrap()).unwrap();
    admin.wait(admin.client().batch_execute(&format!("CREATE DATABASE {name}"))).unwrap();
    Some(cluster.dsn(&name))
}

fn connect(dsn: &str) -> Connection {
    Connection::open(&Target::parse(dsn).unwrap()).unwrap()
}

#[test]
fn migrations_apply_once_even_from_two_machines_at_once() {
    let Some(dsn) = database() else { return };
    let both: Vec<bool> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2).map(|_| s.spawn(|| connect(&dsn).migrate().unwrap())).collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(both.contains(&true), "the steps were applied: {both:?}");
    let c = connect(&dsn);
    assert!(!c.migrate().unwrap(), "a migrated store has nothing to apply");
    let steps = ferry::store::pg::MIGRATIONS.len();
    assert_eq!(c.version().unwrap(), steps);
    let applied: i64 = c.wait(c.client().query_one("SELECT count(*) FROM ferry_schema", &[])).unwrap().get(0);
    assert_eq!(applied, steps as i64, "each step once, whichever machine applied it");
}

#[test]
fn a_store_from_a_newer_ferry_is_refused() {
    let Some(dsn) = database() else { return };
    let c = connect(&dsn);
    c.migrate().unwrap();
    c.wait(c.client().batch_execute("INSERT INTO ferry_schema VALUES (999, 'later')")).unwrap();
    let e = format!("{:?}", c.migrate().unwrap_err());
    assert!(e.contains("written by a newer ferry (schema version 999"), "{e}");
}

/// The state machine of docs/operations.md is the database's own: what the store's code never
/// does is refused even when someone does it by hand.
#[test]
fn the_database_refuses_what_the_state_machine_forbids() {
    let Some(dsn) = database() else { return };
    let c = connect(&dsn);
    c.migrate().unwrap();
    let ok = |sql: &str| c.wait(c.client().batch_execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let refused = |sql: &str, why: &str| {
        let e = c.wait(c.client().batch_execute(sql)).expect_err(sql).to_string();
        assert!(e.contains(why) && e.contains("(PostgreSQL: 23514)"), "{sql}: {e}");
    };
    ok("INSERT INTO import_suppliers VALUES ('S', 'ONGOING', 't', 't');
        INSERT INTO runs (id, command, pid, started_at) VALUES ('r', 'stage', 1, 't')");
    refused(
        "INSERT INTO import_processes (import_supplier, external_account_number, status, created_at, updated_at)
         VALUES ('S', 'A1', 'IMPORTED', 't', 't')",
        "an import process starts STAGED",
    );
    ok("INSERT INTO import_processes (import_supplier, external_account_number, status, created_at, updated_at)
        VALUES ('S', 'A1', 'STAGED', 't', 't');
        UPDATE import_processes SET status = 'SKIPPED' WHERE external_account_number = 'A1'");
    refused("UPDATE import_processes SET status = 'IMPORTED'", "import process transition not allowed");
    refused(
        "UPDATE import_processes SET current_version = 7",
        "only a STAGED import process takes a new staged version",
    );
    ok("UPDATE import_processes SET status = 'STAGED'; UPDATE import_processes SET status = 'IMPORTED'");
    refused("UPDATE import_processes SET status = 'STAGED'", "import process transition not allowed");
    ok("INSERT INTO audit (run_id, operation, attempt, status_code, body, started_at, finished_at)
        VALUES ('r', 'stage', 1, 200, '{}', 't', 't')");
    refused("UPDATE audit SET body = 'x'", "the audit table is append-only");
    refused("DELETE FROM audit", "the audit table is append-only");
    refused("TRUNCATE audit", "the audit table is append-only");
}

/// Takes a slot in an open transaction on `c`; None when all `limit` are held.
fn take_slot(c: &Connection, limit: i32) -> Option<i32> {
    c.wait(c.client().batch_execute("BEGIN")).unwrap();
    let row = c.wait(c.client().query_one("SELECT ferry_take_create_slot($1)", &[&limit])).unwrap();
    row.get(0)
}

fn slots_held(c: &Connection) -> i64 {
    c.wait(c.client().query_one("SELECT count(*) FROM ferry_create_slots_held", &[])).unwrap().get(0)
}

#[test]
fn forty_slots_across_connections_the_41st_is_refused_and_an_ended_one_comes_back() {
    let Some(dsn) = database() else { return };
    let admin = connect(&dsn);
    admin.migrate().unwrap();
    let holders: Vec<Connection> = (0..40).map(|_| connect(&dsn)).collect();
    let mut taken: Vec<i32> = holders.iter().map(|c| take_slot(c, 40).expect("a free slot")).collect();
    taken.sort_unstable();
    assert_eq!(taken, (0..40).collect::<Vec<_>>(), "every slot once");
    assert_eq!(slots_held(&admin), 40);
    let late = connect(&dsn);
    assert_eq!(take_slot(&late, 40), None, "the 41st gets none");
    late.wait(late.client().batch_execute("ROLLBACK")).unwrap();
    // A commit gives its slot back; a dropped connection (its session ends) gives its slot back.
    holders[3].wait(holders[3].client().batch_execute("COMMIT")).unwrap();
    assert!(take_slot(&late, 40).is_some(), "a committed slot is free again");
    drop(holders);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while slots_held(&admin) > 1 {
        assert!(std::time::Instant::now() < deadline, "slots of closed sessions come back");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A holder killed with SIGKILL, idle in its transaction or in the middle of a statement: the
/// server notices (the socket closes; `client_connection_check_interval` for a running
/// statement) and the slot comes back within seconds.
#[test]
fn a_killed_holder_gives_its_slot_back_within_seconds() {
    let Some(dsn) = database() else { return };
    let admin = connect(&dsn);
    admin.migrate().unwrap();
    let Some(psql) = bin_dir().map(|b| b.join("psql")).filter(|p| p.exists()) else {
        panic!("psql is part of every PostgreSQL installation this test runs with");
    };
    for (what, script) in [
        ("idle in its transaction", "BEGIN; SELECT ferry_take_create_slot(40);\n"),
        ("inside a statement", "BEGIN; SELECT ferry_take_create_slot(40); SELECT pg_sleep(600);\n"),
    ] {
        let mut holder = Command::new(&psql)
            .args(["-X", "-q", "-d", &dsn])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        holder.stdin.as_mut().unwrap().write_all(script.as_bytes()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while slots_held(&admin) == 0 {
            assert!(std::time::Instant::now() < deadline, "{what}: psql took a slot");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        holder.kill().unwrap();
        holder.wait().unwrap();
        let killed = std::time::Instant::now();
        while slots_held(&admin) > 0 {
            assert!(killed.elapsed() < std::time::Duration::from_secs(5), "{what}: the slot came back");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("{what}: slot back {:?} after SIGKILL", killed.elapsed());
    }
}

/// One query's single integer answer.
fn count(dsn: &str, sql: &str) -> i64 {
    let c = connect(dsn);
    c.wait(c.client().query_one(sql, &[])).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

const SUPPLIERS: [&str; 3] = ["ALPEN_GAS", "NORDLICHT_STROM", "TENTACLE_ENERGY"];

/// The sample staged through the binary into the store at `dsn`, from the work directory
/// `<tmp>/work` (returned): 196 new staged versions, 4 accounts rejected.
fn staged_sample(dsn: &str, tmp: &Path) -> PathBuf {
    let wd = tmp.join("work");
    let staged = crate::harness::ferry_wd(&wd, &["stage", s(&repo("data/sample.ndjson"))], &[("FERRY_STORE", dsn)]);
    assert_eq!(staged.code, 1, "{}", staged.stderr);
    assert!(staged.stderr.contains("196 new staged versions"), "{}", staged.stderr);
    wd
}

/// The sample staged and created through the real binary with `--store` pointing at PostgreSQL:
/// the same outcomes as with the embedded store, and nothing of it in the work directory.
#[test]
fn the_sample_stages_and_creates_on_postgres() {
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wd = staged_sample(&dsn, tmp.path());
    let env = [("FERRY_STORE", dsn.as_str())];
    assert!(!wd.join("ferry.db").exists(), "the store is the server, not a file in the work directory");
    // Every version records its line's hash; one without (an older ferry's) takes it when a
    // re-stage finds its account identical, and a re-stage adds no version either way.
    let hashed = "SELECT count(line_hash) FROM staged_versions";
    assert_eq!(count(&dsn, hashed), 196);
    let c = connect(&dsn);
    c.wait(c.client().execute("UPDATE staged_versions SET line_hash = NULL WHERE id % 2 = 0", &[])).unwrap();
    assert!(count(&dsn, hashed) < 196);
    for _ in 0..2 {
        let again = crate::harness::ferry_wd(&wd, &["stage", s(&repo("data/sample.ndjson"))], &env);
        assert_eq!(again.code, 1, "{}", again.stderr);
        assert_eq!((count(&dsn, "SELECT count(*) FROM staged_versions"), count(&dsn, hashed)), (196, 196));
    }
    assert_eq!(crate::harness::ferry_wd(&wd, &["team", "add", "Migration"], &env).code, 0);
    for supplier in SUPPLIERS {
        let created = crate::harness::ferry_wd(
            &wd,
            &["create", "--supplier", supplier, "--team", "Migration", "--all-pending"],
            &env,
        );
        assert_eq!(created.code, 0, "{supplier}: {}", created.stderr);
    }
    assert_eq!(count(&dsn, "SELECT count(*) FROM import_processes WHERE status = 'IMPORTED'"), 196);
    assert_eq!(count(&dsn, "SELECT count(*) FROM record_accounts"), 196);
    assert_eq!(count(&dsn, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201"), 196);
    assert_eq!(count(&dsn, "SELECT count(*) FROM create_intents"), 0);
    let check = crate::harness::ferry_wd(&wd, &["check"], &env);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let listed = crate::harness::ferry_wd(&wd, &["supplier", "list", "--json"], &env);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stderr);
}

/// Two machines' work directories `a` and `b` in `tmp` on one store: `dump` staged from `a`
/// (with the exit code `code`), the team Migration added, and the staged files copied to `b`
/// (the staged files every create machine needs).
fn two_machines(dsn: &str, tmp: &Path, dump: &Path, code: i32) -> (PathBuf, PathBuf) {
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let env = [("FERRY_STORE", dsn)];
    let staged = crate::harness::ferry_wd(&a, &["stage", s(dump), "--today", crate::serve::TODAY], &env);
    assert_eq!(staged.code, code, "{}", staged.stderr);
    assert_eq!(crate::harness::ferry_wd(&a, &["team", "add", "Migration"], &env).code, 0);
    std::fs::create_dir_all(&b).unwrap();
    assert!(Command::new("cp").arg("-r").arg(a.join("staging")).arg(b.join("staging")).status().unwrap().success());
    (a, b)
}

/// Two machines creating the same supplier from one store at the same time (each with its own
/// work directory holding a copy of the staged files): every account is created once, by one of
/// them, and the other finds it no longer STAGED.
#[test]
fn two_create_workers_on_one_store_create_each_account_once() {
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_machines(&dsn, tmp.path(), &repo("data/sample.ndjson"), 1);
    let env = [("FERRY_STORE", dsn.as_str())];
    let runs: Vec<crate::harness::Run> = std::thread::scope(|scope| {
        let workers: Vec<_> = [&a, &b]
            .into_iter()
            .map(|wd| {
                scope.spawn(|| {
                    crate::harness::ferry_wd(
                        wd,
                        &["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending"],
                        &env,
                    )
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for run in &runs {
        assert!(run.code == 0 || run.code == 1, "{}{}", run.stdout, run.stderr);
    }
    let staged_for_tentacle = "SELECT count(*) FROM import_processes WHERE import_supplier = 'TENTACLE_ENERGY'";
    let accounts = count(&dsn, staged_for_tentacle);
    assert!(accounts > 0);
    assert_eq!(
        count(
            &dsn,
            "SELECT count(*) FROM import_processes WHERE import_supplier = 'TENTACLE_ENERGY' AND status = 'IMPORTED'"
        ),
        accounts,
        "every account created"
    );
    assert_eq!(count(&dsn, "SELECT count(*) FROM record_accounts"), accounts, "each account's records once");
    assert_eq!(
        count(
            &dsn,
            "SELECT count(*) FROM (SELECT external_account_number FROM audit
             WHERE operation = 'create' AND status_code = 201 GROUP BY 1 HAVING count(*) > 1) twice"
        ),
        0,
        "no account created twice"
    );
    assert_eq!(count(&dsn, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201"), accounts);
}

/// Two `ferry serve` instances on one store. While other instances hold the store's 40 creation
/// slots (40 open transactions here), creates to either server are answered 429 at once, with
/// Retry-After, although each server's own limit has room. Then 100 concurrent creates spread
/// over both, each chunk held for 2 s: at no moment are more than 40 creations in flight on the
/// store, every request is 201 or 429, and each created account exists once.
#[test]
fn two_servers_on_one_store_hold_forty_creations_in_flight_in_all() {
    use crate::serve::Server;
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("c.ndjson");
    std::fs::write(&dump, crate::serve::copies("C", 100)).unwrap();
    let (a, b) = two_machines(&dsn, tmp.path(), &dump, 0);
    let held = [("FERRY_STORE", dsn.as_str()), ("FERRY_FAILPOINT", "create-chunk=sleep:2000")];
    let servers = [Server::launch(&a, &held, &[]), Server::launch(&b, &held, &[])];

    let holders: Vec<Connection> = (0..40).map(|_| connect(&dsn)).collect();
    for h in &holders {
        assert!(take_slot(h, 40).is_some());
    }
    let refused: Vec<(u16, String, Option<String>)> =
        (0..4).map(|i| servers[i % 2].create(&format!("C-{i}"))).collect();
    drop(holders);
    for (code, body, retry) in &refused {
        assert_eq!(*code, 429, "{body}");
        assert!(body.contains("in flight on this store's instances"), "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
    }

    let watching = std::sync::atomic::AtomicBool::new(true);
    let (answers, most) = std::thread::scope(|threads| {
        let watcher = threads.spawn(|| {
            let c = connect(&dsn);
            let mut most = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(slots_held(&c));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            most
        });
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let server = &servers[i % 2];
                threads.spawn(move || server.create(&format!("C-{i}")))
            })
            .collect();
        let answers: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        (answers, watcher.join())
    });
    let answers: Vec<_> = answers.into_iter().map(|a| a.unwrap()).collect();
    let most = most.unwrap();
    let codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(most <= 40, "at most 40 creations in flight on the store, saw {most}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 429), "{codes:?}");
    let accepted = codes.iter().filter(|c| **c == 201).count() as i64;
    // Reads run on a few connections of each server at once (not one, not one per request).
    let statuses: Vec<(u16, String)> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..60)
            .map(|i| {
                let server = &servers[i % 2];
                threads.spawn(move || {
                    server.get(&format!("/v1/data-import/account-transfer-status/TENTACLE_ENERGY/C-{}/", i % 100))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|(code, _)| *code == 200), "{statuses:?}");
    let backends = count(
        &dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
    );
    // Each server: its writer, the writer's second connection, at most 4 readers; and this query.
    assert!((3..=2 * (2 + 4) + 1).contains(&backends), "{backends} connections");
    for server in servers {
        assert_eq!(server.terminate(), 0);
    }
    assert_eq!(count(&dsn, "SELECT count(*) FROM import_processes WHERE status = 'IMPORTED'"), accepted);
    assert_eq!(count(&dsn, "SELECT count(DISTINCT kraken_account_number) FROM record_accounts"), accepted);
    eprintln!("two servers: {accepted} of 100 created, the rest 429; at most {most} creations in flight");
}

/// `kill -9` of one of two create workers while its chunk is in flight: its slots come back,
/// the other worker creates every account (the killed chunk's accounts once its transaction is
/// gone), the next command records each interrupted attempt once, and no account is created
/// twice.
#[test]
fn a_killed_create_worker_is_recovered_by_the_other() {
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_machines(&dsn, tmp.path(), &repo("data/sample.ndjson"), 1);
    let env = [("FERRY_STORE", dsn.as_str())];
    let create = ["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending", "--workdir"];
    let mut killed = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(create)
        .arg(&a)
        .env("FERRY_STORE", &dsn)
        .env("FERRY_FAILPOINT", "create-chunk=sleep:60000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = connect(&dsn);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Its first chunk is 40 accounts (written in two halves at once, on two connections): wait
    // until all of them hold their slots, so that every intent is in.
    while slots_held(&c) < 40 {
        assert!(std::time::Instant::now() < deadline, "the first worker's chunk holds slots");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let in_flight = count(&dsn, "SELECT count(*) FROM create_intents");
    assert!(in_flight > 0);
    let other = std::thread::spawn({
        let (b, dsn) = (b.clone(), dsn.clone());
        move || crate::harness::ferry_wd(&b, &create[..create.len() - 1], &[("FERRY_STORE", dsn.as_str())])
    });
    // The other worker has started (its run is recorded, and it looked for interrupted
    // creations right after) while the first is alive: it must leave the first one's alone.
    while count(&dsn, "SELECT count(*) FROM runs WHERE command = 'create'") < 2 {
        assert!(std::time::Instant::now() < deadline, "the second worker started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    killed.kill().unwrap();
    killed.wait().unwrap();
    let other = other.join().unwrap();
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(!other.stderr.contains("interrupted before they committed"), "a live worker's creations: {}", other.stderr);
    assert_eq!(slots_held(&c), 0, "the killed worker's slots came back");
    let accounts = count(&dsn, "SELECT count(*) FROM import_processes WHERE import_supplier = 'TENTACLE_ENERGY'");
    let imported =
        "SELECT count(*) FROM import_processes WHERE import_supplier = 'TENTACLE_ENERGY' AND status = 'IMPORTED'";
    assert_eq!(count(&dsn, imported), accounts, "the other worker created every account");
    // The next command on the store records what the dead worker left in flight, once.
    // It resumes the dead worker's run (its owner is gone), whose outcomes are then the 500s.
    let rerun = crate::harness::ferry_wd(&a, &create[..create.len() - 1], &env);
    assert_eq!(rerun.code, 1, "{}", rerun.stderr);
    assert!(rerun.stderr.contains("resuming run"), "{}", rerun.stderr);
    assert!(rerun.stderr.contains(&format!("{in_flight} creations were interrupted")), "{}", rerun.stderr);
    let again = crate::harness::ferry_wd(&b, &create[..create.len() - 1], &env);
    assert!(!again.stderr.contains("interrupted before they committed"), "{}", again.stderr);
    let interrupted = "SELECT count(*) FROM audit WHERE operation = 'create' AND error_code = 'creation_interrupted'";
    assert_eq!(count(&dsn, interrupted), in_flight, "each interrupted attempt audited once");
    assert_eq!(count(&dsn, "SELECT count(*) FROM create_intents"), 0);
    assert_eq!(count(&dsn, "SELECT count(*) FROM audit WHERE operation = 'create' AND status_code = 201"), accounts);
    assert_eq!(count(&dsn, "SELECT count(DISTINCT kraken_account_number) FROM record_accounts"), accounts);
}

/// Two machines staging overlapping dumps into one store at the same time: stage runs take
/// turns (the store's stage lock), and every account ends with one process whose current
/// version is its own.
#[test]
fn two_machines_staging_overlapping_dumps_leave_one_current_version_per_account() {
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<String> =
        std::fs::read_to_string(repo("data/sample.ndjson")).unwrap().lines().map(str::to_owned).collect();
    let (first, second) = (tmp.path().join("first.ndjson"), tmp.path().join("second.ndjson"));
    std::fs::write(&first, lines[..150].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[50..].join("\n") + "\n").unwrap();
    let runs: Vec<crate::harness::Run> = std::thread::scope(|threads| {
        let workers: Vec<_> = [(&first, "a"), (&second, "b")]
            .into_iter()
            .map(|(dump, wd)| {
                let (dsn, wd) = (dsn.as_str(), tmp.path().join(wd));
                threads.spawn(move || crate::harness::ferry_wd(&wd, &["stage", s(dump)], &[("FERRY_STORE", dsn)]))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for run in &runs {
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    }
    assert_eq!(count(&dsn, "SELECT count(*) FROM runs WHERE command = 'stage' AND committed_at IS NOT NULL"), 2);
    assert_eq!(count(&dsn, "SELECT count(*) FROM import_processes"), 196, "each valid account once");
    assert_eq!(
        count(
            &dsn,
            "SELECT count(*) FROM import_processes p LEFT JOIN staged_versions v ON v.id = p.current_version
             WHERE v.id IS NULL OR v.import_supplier <> p.import_supplier
                OR v.external_account_number <> p.external_account_number"
        ),
        0,
        "every current version is its own account's"
    );
    // The overlap was staged by both, as a new version then an unchanged one (or two versions).
    assert!(count(&dsn, "SELECT count(*) FROM staged_versions") >= 196);
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl").current_dir(dir).args(args).output().map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// A CA and a server certificate for `localhost` signed by it, in `dir`.
fn certificates(dir: &Path) -> Result<(), String> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ferry test CA"],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
}

/// TLS over TCP: with `sslmode=verify-full` and the CA in `sslrootcert` the connection is
/// encrypted; without a root that trusts the server's certificate it is refused (also for
/// `require`: ferry always checks the certificate); `sslmode=disable` is plain.
#[test]
fn tls_connections_check_the_server_certificate() {
    if database().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cluster = Cluster::start_with(
        port,
        "-c listen_addresses=localhost -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
        certificates,
    )
    .unwrap();
    let ca = cluster.socket_dir.join("ca.pem");
    let tcp =
        |mode: &str| format!("postgres://ferry@localhost:{port}/postgres?sslmode={mode}&sslrootcert={}", ca.display());
    let encrypted = |dsn: &str| -> Result<bool, String> {
        let target = Target::parse(dsn).map_err(|e| format!("{e:?}"))?;
        let c = Connection::open(&target).map_err(|e| e.to_string())?;
        let row = c.wait(c.client().query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]));
        Ok(row.map_err(|e| e.to_string())?.get(0))
    };
    assert_eq!(encrypted(&tcp("verify-full")), Ok(true));
    assert_eq!(encrypted(&tcp("require")), Ok(true));
    let untrusted = encrypted(&format!("postgres://ferry@localhost:{port}/postgres?sslmode=require")).unwrap_err();
    assert!(untrusted.contains("certificate"), "{untrusted}");
    assert_eq!(encrypted(&format!("postgres://ferry@localhost:{port}/postgres?sslmode=disable")), Ok(false));
    let wrong_mode = encrypted(&format!("postgres://ferry@localhost:{port}/postgres?sslmode=sometimes")).unwrap_err();
    assert!(wrong_mode.contains("sslmode=sometimes is not one of"), "{wrong_mode}");
    // Through the binary: a command works on the store over TLS.
    let tmp = tempfile::tempdir().unwrap();
    let listed =
        crate::harness::ferry_wd(tmp.path(), &["team", "add", "Migration"], &[("FERRY_STORE", &tcp("verify-full"))]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
}

/// `ferry check` and `ferry backup` on a PostgreSQL store: check runs the state machine's
/// invariants there too and names what a hand edit broke; backup is a pg_dump archive that
/// pg_restore reads.
#[test]
fn check_and_backup_work_on_postgres() {
    let Some(dsn) = database() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let wd = staged_sample(&dsn, tmp.path());
    let env = [("FERRY_STORE", dsn.as_str())];
    let sound = crate::harness::ferry_wd(&wd, &["check"], &env);
    assert_eq!(sound.code, 0, "{}{}", sound.stdout, sound.stderr);
    let dest = tmp.path().join("store.dump");
    let backup = crate::harness::ferry_wd(&wd, &["backup", s(&dest)], &env);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    assert!(!backup.stderr.contains("password"), "{}", backup.stderr);
    let listed = Command::new("pg_restore").arg("--list").arg(&dest).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("TABLE public import_processes"));
    // A process set IMPORTED by hand, without a Kraken account number or a create 201.
    let c = connect(&dsn);
    c.wait(c.client().batch_execute(
        "UPDATE import_processes SET status = 'IMPORTED'
         WHERE external_account_number = (SELECT min(external_account_number) FROM import_processes)",
    ))
    .unwrap();
    let broken = crate::harness::ferry_wd(&wd, &["check"], &env);
    assert_eq!(broken.code, 2, "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stdout.contains("an IMPORTED process without its Kraken account number"), "{}", broken.stdout);
}
