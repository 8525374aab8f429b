//! The store through the operator commands: suppliers and teams in `<workdir>/ferry.db`.

use crate::harness::{ferry, s};

#[test]
fn supplier_status_moves_and_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("work");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--workdir", s(&wd)]);
        ferry(&all)
    };
    assert_eq!(run(&["supplier", "list"]).stdout, "", "a new store has no suppliers");
    assert!(wd.join("ferry.db").exists(), "the store is created on first use");
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
    let tmp = tempfile::tempdir().unwrap();
    let wd = s(tmp.path());
    assert_eq!(ferry(&["team", "add", "Migration A", "--workdir", wd]).stderr.trim(), "added team \"Migration A\"");
    assert_eq!(
        ferry(&["team", "add", "Migration A", "--workdir", wd]).stderr.trim(),
        "team \"Migration A\" already exists"
    );
    assert_eq!(ferry(&["team", "add", "  ", "--workdir", wd]).code, 2);
    let list = ferry(&["team", "list", "--json", "--workdir", wd]);
    let names: Vec<String> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Migration A"]);
}
