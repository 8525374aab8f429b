//! The store through the operator commands: suppliers and teams, in `<workdir>/ferry.db` and in
//! a PostgreSQL store (one test body, both backends).

use crate::harness::ferry_wd;

/// The environment of each backend: the embedded store, then PostgreSQL when the test binary
/// has a cluster (see `pg.rs`).
fn backends() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mut all = vec![("sqlite", Vec::new())];
    if let Some(dsn) = crate::pg::database() {
        all.push(("postgres", vec![("FERRY_STORE", dsn)]));
    }
    all
}

#[test]
fn supplier_status_moves_and_is_listed() {
    for (backend, env) in backends() {
        supplier_status_moves_and_is_listed_on(backend, &env);
    }
}

fn supplier_status_moves_and_is_listed_on(backend: &str, env: &[(&str, String)]) {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = |args: &[&str]| ferry_wd(&wd, args, &env);
    assert_eq!(run(&["supplier", "list"]).stdout, "", "{backend}: a new store has no suppliers");
    assert_eq!(wd.join("ferry.db").exists(), backend == "sqlite", "the embedded store is created on first use");
    let paused = run(&["supplier", "pause", "TENTACLE_ENERGY"]);
    assert_eq!((paused.code, paused.stderr.trim()), (0, "TENTACLE_ENERGY: new supplier, PAUSED"));
    assert_eq!(run(&["supplier", "resume", "TENTACLE_ENERGY"]).stderr.trim(), "TENTACLE_ENERGY: PAUSED -> ONGOING");
    assert_eq!(run(&["supplier", "resume", "TENTACLE_ENERGY"]).stderr.trim(), "TENTACLE_ENERGY is already ONGOING");
    assert_eq!(run(&["supplier", "complete", "ALPEN_GAS"]).code, 0);
    let list = run(&["supplier", "list", "--json"]);
    let rows: Vec<serde_json::Value> = list.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pairs: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["code"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(pairs, [("ALPEN_GAS", "COMPLETE"), ("TENTACLE_ENERGY", "ONGOING")]);
    let bad = run(&["supplier", "pause", "tentacle"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("is not a valid import supplier code"), "{}", bad.stderr);
}

#[test]
fn teams_are_added_once() {
    for (_, env) in backends() {
        teams_are_added_once_on(&env);
    }
}

fn teams_are_added_once_on(env: &[(&str, String)]) {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = |args: &[&str]| ferry_wd(wd, args, &env);
    assert_eq!(run(&["team", "add", "Migration A"]).stderr.trim(), "added team \"Migration A\"");
    assert_eq!(run(&["team", "add", "Migration A"]).stderr.trim(), "team \"Migration A\" already exists");
    assert_eq!(run(&["team", "add", "  "]).code, 2);
    let list = run(&["team", "list", "--json"]);
    let names: Vec<String> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Migration A"]);
}

/// `FERRY_STORE=` (empty) is the embedded store; a PostgreSQL store that cannot be reached is
/// exit 2, named without its password, with a hint about the server rather than the file.
#[test]
fn an_empty_store_setting_is_the_embedded_store_and_an_unreachable_one_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let added = ferry_wd(&wd, &["team", "add", "Migration A"], &[("FERRY_STORE", "")]);
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(wd.join("ferry.db").exists());
    let unreachable = ferry_wd(&wd, &["team", "list"], &[("FERRY_STORE", "postgres://ferry:s3cret@127.0.0.1:1/none")]);
    assert_eq!(unreachable.code, 2, "{}", unreachable.stderr);
    let said = unreachable.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("store postgres://ferry@127.0.0.1:1/none:"), "{said}");
    assert!(said.contains("is the PostgreSQL server reachable"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
}

/// `create --accounts` on both backends: the listed accounts looked up together (PostgreSQL
/// answers them in one query), with the same outcomes in the order listed: a pending account is
/// created once even when listed twice, an imported one is already imported, an unknown one has
/// no import process.
#[test]
fn create_of_listed_accounts_answers_alike_on_both_backends() {
    let mut outcomes = Vec::new();
    for (backend, env) in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let wd = tmp.path().join("work");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = |args: &[&str]| ferry_wd(&wd, args, &env);
        assert_eq!(run(&["stage", crate::harness::s(&crate::harness::repo("data/sample.ndjson"))]).code, 1);
        assert_eq!(run(&["team", "add", "Migration"]).code, 0);
        let pending = run(&["list", "pending", "--supplier", "TENTACLE_ENERGY", "--json"]);
        let accounts: Vec<String> = pending
            .stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["external_account_number"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(accounts.len() > 3, "{backend}: {}", pending.stderr);
        let first = tmp.path().join("first.txt");
        std::fs::write(&first, format!("{}\n", accounts[0])).unwrap();
        let create = |file: &std::path::Path| {
            run(&[
                "create",
                "--supplier",
                "TENTACLE_ENERGY",
                "--team",
                "Migration",
                "--accounts",
                crate::harness::s(file),
            ])
        };
        assert_eq!(create(&first).code, 0, "{backend}");
        let listed = tmp.path().join("listed.txt");
        std::fs::write(
            &listed,
            format!("{}\nNOT-STAGED-1\n{}\n{}\n{}\n", accounts[2], accounts[0], accounts[1], accounts[2]),
        )
        .unwrap();
        let created = create(&listed);
        assert_eq!(created.code, 1, "{backend}: {}", created.stderr);
        let lines: Vec<String> =
            created.stderr.lines().filter(|l| l.trim_start().starts_with(['2', '4'])).map(str::to_owned).collect();
        outcomes.push((backend, lines));
    }
    let (_, sqlite) = &outcomes[0];
    assert!(sqlite.iter().any(|l| l.contains("201 created") && l.trim_end().ends_with('2')), "{sqlite:?}");
    assert!(sqlite.iter().any(|l| l.contains("account_import_process_already_imported")), "{sqlite:?}");
    assert!(sqlite.iter().any(|l| l.contains("import_process_does_not_exist")), "{sqlite:?}");
    for (backend, lines) in &outcomes[1..] {
        assert_eq!(lines, sqlite, "{backend} answers as sqlite does");
    }
}
