//! Hostile input and damaged files (issue 19): each attack that once got through, through the
//! real binary.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Run, example_dump, ferry_in, s};

const TODAY: &str = "2026-11-27";

/// `n` copies of the corrected example account, the i-th changed by `edit(i, account)`, as a dump.
fn dump(dir: &Path, name: &str, n: usize, edit: impl Fn(usize, &mut Value)) -> PathBuf {
    let example = example_dump(dir, "account.json");
    let base: Value = serde_json::from_str(std::fs::read_to_string(&example).unwrap().trim()).unwrap();
    let mut text = String::new();
    for i in 0..n {
        let mut account = base.clone();
        edit(i, &mut account);
        text.push_str(&serde_json::to_string(&account).unwrap());
        text.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn pipeline(dir: &Path, dump: &Path, stages: &str, severity: &str) -> PathBuf {
    let path = dir.join("hostile.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"hostile\"\nworkdir = \"work\"\nstages = [{stages}]\n[source]\npaths = [{:?}]\n\
             [severity]\n{severity}\n[create]\nteam = \"Migration\"\ncreate_team = true\n",
            s(dump)
        ),
    )
    .unwrap();
    path
}

fn run(dir: &Path, pipeline: &Path) -> Run {
    ferry_in(dir, &["run", s(pipeline), "--today", TODAY])
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Supplier codes that are paths (`../../escaped`, `.`, `A\B`, `/tmp/x`, 10,000 characters), with
/// their rule turned off: everything lands inside the work directory, the run succeeds, and `gc`
/// selects nothing that a committed version references.
#[test]
fn supplier_codes_never_leave_the_work_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // The run's directory is two levels down, so that `../../escaped` would land in `tmp`.
    let home = tmp.path().join("a/b");
    std::fs::create_dir_all(&home).unwrap();
    let outside = tmp.path().join(format!("x-{}", std::process::id()));
    let long = "L".repeat(10_000);
    let codes: Vec<String> = vec![
        "../../escaped".into(),
        ".".into(),
        "A\\B".into(),
        format!("{}/y", outside.display()),
        long,
        "ACME".into(),
    ];
    let dump = dump(&home, "suppliers.ndjson", codes.len(), |i, a| {
        a["import_supplier"] = Value::from(codes[i].clone());
        a["external_account_number"] = Value::from(format!("H-{i}"));
    });
    let p = pipeline(&home, &dump, "\"stage\", \"create\"", "invalid_import_supplier = \"off\"\nmax_length = \"off\"");
    let before: Vec<PathBuf> = files(tmp.path()).into_iter().filter(|f| !f.starts_with("a/b")).collect();
    let r = run(&home, &p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after: Vec<PathBuf> = files(tmp.path()).into_iter().filter(|f| !f.starts_with("a/b")).collect();
    assert_eq!(before, after, "nothing written outside the run's directory");
    assert!(!outside.exists());
    let work = home.join("work");
    let staged: Vec<PathBuf> = files(&work.join("staging"));
    assert!(staged.iter().all(|f| f.components().count() == 3), "staging/<supplier>/<run>/<table>: {staged:?}");
    assert_eq!(crate::harness::count(&work, "SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 6);
    let gc = ferry_in(&home, &["gc", "--dry-run", "--workdir", "work"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert_eq!(gc.stdout, "", "gc selects nothing that is referenced");
}

/// Control characters in an account number: `invalid_characters` by default; with the rule off
/// the account is staged, and `ferry list` and `ferry status` print it escaped, on one line.
#[test]
fn control_characters_are_refused_and_never_printed_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let nasty = "N-1\u{1b}[2J\nACME  N-2  COMPLETED\u{202e}";
    let dump = dump(tmp.path(), "nasty.ndjson", 1, |_, a| a["external_account_number"] = Value::from(nasty));
    let v = ferry_in(tmp.path(), &["validate", s(&dump), "--today", TODAY, "--emit", "outcomes"]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let outcome: Value = serde_json::from_str(v.stdout.trim()).unwrap();
    assert_eq!(outcome["body"]["errors"][0]["code"], "invalid_characters", "{}", v.stdout);
    assert!(!v.stderr.contains('\u{1b}'), "{}", v.stderr);

    let p = pipeline(tmp.path(), &dump, "\"stage\"", "invalid_characters = \"off\"");
    let r = run(tmp.path(), &p);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = ferry_in(tmp.path(), &["list", "all", "--supplier", "TENTACLE_ENERGY", "--workdir", "work"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.stdout.lines().count(), 2, "a header and one row: {:?}", list.stdout);
    assert!(list.stdout.contains("N-1\\u{1b}[2J\\nACME  N-2  COMPLETED\\u{202e}"), "{:?}", list.stdout);
    assert!(!list.stdout.contains(['\u{1b}', '\u{202e}']));
    let status =
        ferry_in(tmp.path(), &["status", "--supplier", "TENTACLE_ENERGY", nasty, "--verbose", "--workdir", "work"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(!status.stderr.contains(['\u{1b}', '\u{202e}']), "{:?}", status.stderr);
}

/// The report's sample accounts show personal data masked, however a detail quotes it (escaped,
/// cut to its head), and report.md shows data only inside code spans.
#[test]
fn the_report_masks_names_and_renders_no_markup_from_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = dump(tmp.path(), "names.ndjson", 3, |i, a| {
        a["external_account_number"] = Value::from(format!("R-{i}"));
        match i {
            0 => a["customers"][0]["given_name"] = Value::from("Zacharias\u{7}"),
            1 => a["customers"][0]["family_name"] = Value::from(format!("Zettelmeyer {}", "x".repeat(300))),
            _ => a["billing_postcode"] = Value::from("<img src=x onerror=alert(1)>|`"),
        }
    });
    let path = tmp.path().join("report.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"names\"\nworkdir = \"work\"\nstages = [\"validate\"]\nreport = [\"html\", \"json\", \"md\"]\n\
             [source]\npaths = [{:?}]\n",
            s(&dump)
        ),
    )
    .unwrap();
    let r = run(tmp.path(), &path);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let runs = tmp.path().join("work/runs");
    let report_dir = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("report.md").exists())
        .expect("a report");
    for name in ["report.md", "report.json", "report.html"] {
        let text = std::fs::read_to_string(report_dir.join(name)).unwrap();
        assert!(text.contains("R-0") && text.contains("R-1"), "{name} has the sample accounts");
        for secret in ["acharias", "ettelmeyer"] {
            assert!(!text.contains(secret), "{name} shows {secret}");
        }
    }
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    let shown: Vec<&str> = md.lines().filter(|l| l.contains("onerror")).collect();
    assert!(!shown.is_empty());
    for line in shown {
        assert!(!outside_code_spans(line).contains("onerror"), "outside a code span: {line}");
    }
    let html = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    assert!(!html.contains("<img"), "html escapes data");
}

/// A Markdown line without its code spans: a run of n backticks opens one, the next run of
/// exactly n closes it (CommonMark); an unclosed run is literal text.
fn outside_code_spans(line: &str) -> String {
    let b: Vec<char> = line.chars().collect();
    let run_at = |i: usize| b[i..].iter().take_while(|c| **c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != '`' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let n = run_at(i);
        let mut j = i + n;
        let close = loop {
            if j >= b.len() {
                break None;
            }
            if b[j] == '`' {
                let m = run_at(j);
                if m == n {
                    break Some(j + m);
                }
                j += m;
            } else {
                j += 1;
            }
        };
        match close {
            Some(end) => i = end,
            None => {
                out.extend(&b[i..i + n]);
                i += n;
            }
        }
    }
    out
}

/// Stages `n` variants of the example account (account numbers `S-i`) into `work` under `dir`.
fn staged(dir: &Path, n: usize, address: &str) -> PathBuf {
    let dump = dump(dir, "staged.ndjson", n, |i, a| {
        a["external_account_number"] = Value::from(format!("S-{i}"));
        a["billing_address1"] = Value::from(address);
    });
    let r = ferry_in(dir, &["stage", s(&dump), "--today", TODAY, "--workdir", "work"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = ferry_in(dir, &["team", "add", "Migration", "--workdir", "work"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    dir.join("work")
}

/// The one run folder of a work directory's staged supplier.
fn staged_dir(work: &Path) -> PathBuf {
    let supplier = std::fs::read_dir(work.join("staging")).unwrap().next().unwrap().unwrap().path();
    std::fs::read_dir(supplier).unwrap().next().unwrap().unwrap().path()
}

fn create(dir: &Path) -> Run {
    create_with(dir, &[], &[])
}

/// `ferry create` of every pending account of the example's supplier, with more arguments and
/// environment variables.
fn create_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec![
        "create",
        "--supplier",
        "TENTACLE_ENERGY",
        "--team",
        "Migration",
        "--all-pending",
        "--today",
        TODAY,
        "--workdir",
        "work",
    ];
    args.extend(extra);
    crate::harness::ferry_with(dir, &args, env)
}

/// Flipped bytes in a staged file: create refuses before creating anything, naming the file.
#[test]
fn a_damaged_staged_file_is_named_and_nothing_is_created_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged(tmp.path(), 5, "Hauptstr. 1");
    let file = staged_dir(&work).join("readings.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, bytes).unwrap();
    let r = create(tmp.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("readings.parquet") && r.stderr.contains("damaged"), "{}", r.stderr);
    assert_eq!(crate::harness::count(&work, "SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 0);
}

/// A staged file that decodes but holds other rows (swapped in from another work directory),
/// with no checksums recorded (a store from before they were): the rows hash names the account.
#[test]
fn staged_rows_that_read_back_differently_stop_create() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged(tmp.path(), 3, "Hauptstr. 1");
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_work = staged(&other, 3, "Nebenstr. 2");
    std::fs::copy(staged_dir(&other_work).join("accounts.parquet"), staged_dir(&work).join("accounts.parquet"))
        .unwrap();
    crate::harness::store(&work).execute("DELETE FROM staged_files", []).unwrap();
    let r = create(tmp.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not hold what was") && r.stderr.contains("account S-0"), "{}", r.stderr);
    assert_eq!(crate::harness::count(&work, "SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 0);
}

/// `n` bytes of `path` flipped at positions a seeded generator picks (the same every run).
fn flip(path: &Path, n: usize, seed: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut state = seed;
    for _ in 0..n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = (state >> 33) as usize % bytes.len();
        bytes[at] ^= 1 << ((state >> 20) % 8);
    }
    std::fs::write(path, bytes).unwrap();
}

/// 100 flipped bytes in ferry.db: every command that opens the store, reader or writer, stops
/// with exit 2 naming it, and nothing is created; `ferry check` says what is wrong.
#[test]
fn a_damaged_store_is_refused_by_readers_and_writers() {
    for seed in 1..=3 {
        let tmp = tempfile::tempdir().unwrap();
        let work = staged(tmp.path(), 40, "Hauptstr. 1");
        flip(&work.join("ferry.db"), 100, seed);
        let commands: &[&[&str]] = &[
            &["list", "all", "--supplier", "TENTACLE_ENERGY"],
            &["status", "--supplier", "TENTACLE_ENERGY", "S-1"],
            &["supplier", "list"],
            &["create", "--supplier", "TENTACLE_ENERGY", "--team", "Migration", "--all-pending", "--today", TODAY],
            &["stage", "staged.ndjson", "--today", TODAY],
            &["gc", "--dry-run"],
            &["check"],
        ];
        for args in commands {
            let mut all = args.to_vec();
            all.extend(["--workdir", "work"]);
            let r = ferry_in(tmp.path(), &all);
            assert_eq!(r.code, 2, "seed {seed}, {args:?}: {}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains("ferry.db") || r.stdout.contains("ferry.db"), "{args:?}: {}", r.stderr);
        }
    }
}

/// An older copy of ferry.db put back (or ferry.db copied without its WAL while ferry ran) is
/// refused: using it would create again accounts that it does not know were created.
#[test]
fn a_store_older_than_its_work_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged(tmp.path(), 5, "Hauptstr. 1");
    let backup = tmp.path().join("before-create.db");
    let b = ferry_in(tmp.path(), &["backup", s(&backup), "--workdir", "work"]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(create(tmp.path()).code, 0);
    std::fs::copy(&backup, work.join("ferry.db")).unwrap();
    let r = create(tmp.path());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("older than its work directory"), "{}", r.stderr);
    assert!(r.stderr.contains("ferry.seal"), "it says how to go on: {}", r.stderr);
    check_says(tmp.path(), "older than its work directory");
}

/// `ferry check` exits 2 and names `problem` on stdout.
fn check_says(dir: &Path, problem: &str) {
    let c = ferry_in(dir, &["check", "--workdir", "work"]);
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(c.stdout.contains(problem), "{}", c.stdout);
}

/// Killed during create, then ferry.db-wal lost: either the store had everything (the run
/// resumes and no account is created twice) or it is refused. Never a silent re-creation.
#[test]
fn a_store_without_its_wal_never_creates_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged(tmp.path(), 60, "Hauptstr. 1");
    let killed = create_with(tmp.path(), &["--concurrency", "10"], &[("FERRY_FAILPOINT", "create-chunk=hit:4")]);
    assert_ne!(killed.code, 0);
    let _ = std::fs::remove_file(work.join("ferry.db-wal"));
    let _ = std::fs::remove_file(work.join("ferry.db-shm"));
    let r = create(tmp.path());
    if r.code == 2 {
        assert!(r.stderr.contains("ferry.db"), "{}", r.stderr);
        return;
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let twice = crate::harness::count(
        &work,
        "SELECT COUNT(*) FROM (SELECT external_account_number FROM audit WHERE operation = 'create' \
         AND status_code = 201 GROUP BY 1 HAVING COUNT(*) > 1)",
    );
    assert_eq!(twice, 0);
}

/// `ferry backup` while the store is in use gives a complete store; `ferry check` passes on a
/// sound work directory and names a damaged staged file.
#[test]
fn a_backup_is_a_whole_store_and_check_names_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let work = staged(tmp.path(), 5, "Hauptstr. 1");
    let c = ferry_in(tmp.path(), &["check", "--workdir", "work"]);
    assert_eq!(c.code, 0, "{}{}", c.stdout, c.stderr);
    assert!(c.stderr.contains("no problems (1 staged locations, 5 staged accounts read back)"), "{}", c.stderr);
    let dest = tmp.path().join("copy.db");
    let b = ferry_in(tmp.path(), &["backup", s(&dest), "--workdir", "work"]);
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(ferry_in(tmp.path(), &["backup", s(&dest), "--workdir", "work"]).code, 2, "never overwrites");
    let restored = tmp.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&dest, restored.join("ferry.db")).unwrap();
    let list = ferry_in(tmp.path(), &["list", "pending", "--supplier", "TENTACLE_ENERGY", "--workdir", "restored"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.stdout.lines().count(), 6, "{}", list.stdout);
    flip(&staged_dir(&work).join("customers.parquet"), 8, 7);
    check_says(tmp.path(), "customers.parquet is damaged");
}

/// `ferry run` killed during create and run again: the killed create run is closed as
/// interrupted (what it created stays created, its outcomes are exported) and the rest are
/// created in a new create run, as the README says; every account is created exactly once.
#[test]
fn a_pipeline_killed_during_create_finishes_in_a_new_create_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dump =
        dump(tmp.path(), "night.ndjson", 60, |i, a| a["external_account_number"] = Value::from(format!("N-{i}")));
    let path = tmp.path().join("night.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"night\"\nworkdir = \"work\"\nstages = [\"stage\", \"create\"]\n[source]\npaths = [{:?}]\n\
             [create]\nteam = \"Migration\"\ncreate_team = true\nconcurrency = 10\n",
            s(&dump)
        ),
    )
    .unwrap();
    let killed = crate::harness::ferry_with(
        tmp.path(),
        &["run", s(&path), "--today", TODAY],
        &[("FERRY_FAILPOINT", "create-chunk=hit:3")],
    );
    assert_ne!(killed.code, 0);
    let again = run(tmp.path(), &path);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("was interrupted; the accounts it created stay created"), "{}", again.stderr);
    let work = tmp.path().join("work");
    let count = |sql: &str| crate::harness::count(&work, sql);
    assert_eq!(count("SELECT COUNT(*) FROM runs WHERE command = 'create' AND status = 'interrupted'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM runs WHERE command = 'create' AND status <> 'interrupted'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM import_processes WHERE status = 'IMPORTED'"), 60);
    assert_eq!(
        count("SELECT COUNT(*) FROM audit WHERE operation = 'create' AND status_code = 201"),
        60,
        "each account created once"
    );
}
