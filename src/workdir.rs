//! The work directory: where the store and every run's files live, the lock that
//! keeps it to one writer, and the failpoints that crash tests use.
//!
//! ```text
//! ferry.db                                   the store
//! ferry.lock                                 held by the one process writing (run and pid inside)
//! runs/<run-id>/findings.parquet             every finding of the run
//! runs/<run-id>/outcomes.parquet             the run's audit rows
//! runs/<run-id>/quarantine/<table>.parquet   rows of the accounts that failed validation
//! staging/<supplier>/<run-id>/<table>.parquet  typed rows of the accounts a run staged
//! ```
//!
//! With `--staging URL` ([`crate::files`]) the files under `staging/` and `runs/` are also
//! published to object storage at the same relative keys, and this folder is a cache of them:
//! what it lacks, or holds damaged, is fetched before it is read.
//!
//! Every path component that comes from data is confined: `<supplier>` is
//! [`supplier_component`], an encoding that is the code itself for every valid supplier code
//! and a safe, distinct name for anything else (`..`, `/tmp/x`, 10,000 characters), whatever
//! the rule severities say. A location read back from the store is checked again before use
//! ([`Workdir::staged_path`]), so that not even a damaged store can point ferry outside.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Paths inside one work directory, and where its store is.
#[derive(Debug, Clone)]
pub struct Workdir {
    pub root: PathBuf,
    /// A PostgreSQL store shared with other machines; none for the embedded one
    /// (`<root>/ferry.db`).
    pub store: Option<crate::store::pg::Target>,
    /// Where staged and run files are also published so that other machines read them
    /// (`--staging`); none when the work directory is their only place.
    pub files: Option<std::sync::Arc<crate::files::SharedFiles>>,
}

impl Workdir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned(), store: None, files: None }
    }

    /// A work directory whose store is `store` (`postgres://…`), or its own when none, and
    /// whose files are also published to `staging` (`s3://…`, `file://…`) when given. Empty
    /// settings count as none (`FERRY_STORE=` means the embedded store).
    pub fn open(root: &Path, store: Option<&str>, staging: Option<&str>) -> Result<Self, Error> {
        let given = |s: &&str| !s.trim().is_empty();
        let store = store.filter(given).map(crate::store::pg::Target::parse).transpose()?;
        let files = staging.filter(given).map(crate::files::SharedFiles::open).transpose()?.map(std::sync::Arc::new);
        Ok(Self { root: root.to_owned(), store, files })
    }

    /// The store as messages name it: its file, or its server without the password.
    pub fn store_name(&self) -> String {
        match &self.store {
            Some(target) => target.to_string(),
            None => self.root.join("ferry.db").display().to_string(),
        }
    }

    /// Whether the store exists yet (a PostgreSQL store is made on first use, as ferry.db is).
    pub fn has_store(&self) -> bool {
        self.store.is_some() || self.root.join("ferry.db").exists()
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id)
    }

    /// Relative to the root: what the store records as a staged version's location.
    pub fn staging_location(supplier: &str, run_id: &str) -> String {
        format!("staging/{}/{run_id}", supplier_component(supplier))
    }

    /// The folder of a staged location the store recorded, refused (exit 2) unless it is a
    /// plain relative path under `staging/`: no `..`, no root, no drive, no backslash.
    pub fn staged_path(&self, location: &str) -> Result<PathBuf, Error> {
        let parts: Vec<&str> = location.split('/').collect();
        let confined = parts.len() == 3
            && parts[0] == "staging"
            && parts[1..].iter().all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains(['\\', ':']));
        if !confined {
            return Err(Error::usage(
                format!(
                    "the store records a staged location outside {}: {:?}",
                    self.staging_root().display(),
                    location
                ),
                Some(
                    "nothing is read from it. ferry before 2026-12-07 wrote such locations for supplier codes that \
                     are paths; stage those accounts again. Otherwise the store was changed by hand or is damaged \
                     (`ferry check`)",
                ),
            ));
        }
        Ok(self.root.join(location))
    }

    pub fn staging_root(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Takes the work directory's lock for `command`, or fails at once (exit 2) naming the
    /// process that holds it. The lock goes with the process: a crash never leaves it behind.
    pub fn lock(&self, command: &str) -> Result<WorkdirLock, Error> {
        self.try_lock(command)?.map_err(|holder| self.busy(holder.as_ref()))
    }

    /// Takes the lock, or says who holds it (`None` when its holder wrote no record yet).
    pub fn try_lock(&self, command: &str) -> Result<Result<WorkdirLock, Option<Holder>>, Error> {
        fs_err::create_dir_all(&self.root)?;
        let path = self.root.join("ferry.lock");
        let mut file = fs_err::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.file().try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.read_to_string(&mut text)?;
                return Ok(Err(Holder::parse(&text)));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::Io(io::Error::new(e.kind(), format!("locking {}: {e}", path.display()))));
            }
        }
        let mut lock = WorkdirLock { file: file.into_parts().0, command: command.to_owned() };
        lock.describe(None)?;
        Ok(Ok(lock))
    }

    /// The error of a work directory whose lock `holder` holds.
    pub fn busy(&self, holder: Option<&Holder>) -> Error {
        let who =
            holder.map_or_else(|| "another ferry process holds its lock".to_owned(), |h| h.sentence("holds the lock"));
        Error::usage(
            format!("{} is in use: {who}", self.root.display()),
            Some("one ferry writes to a work directory at a time; wait for it, or use another --workdir"),
        )
    }
}

/// The longest supplier folder name; longer encodings keep a prefix and add a hash.
const MAX_COMPONENT: usize = 96;

/// A supplier code as one safe folder name. `A`–`Z`, `0`–`9`, `_` and `-` stay as they are (so
/// a valid code is its own folder, and folders from before this encoding keep their names);
/// every other byte becomes `%XX`, which keeps lower and upper case apart on file systems that
/// fold case and leaves no `.`, `/` or `\`. The empty code is `%`. An encoding longer than
/// 96 bytes keeps its first 64 and adds `~` and 16 hex digits of the code's SHA-256. No two
/// codes share a folder: `%` is always an escape and `~` appears only before the hash.
pub fn supplier_component(supplier: &str) -> String {
    use std::fmt::Write as _;
    if supplier.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(supplier.len());
    for b in supplier.bytes() {
        if b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.len() > MAX_COMPONENT {
        let mut cut = 64;
        while out.as_bytes()[cut - 1] == b'%' || (cut >= 2 && out.as_bytes()[cut - 2] == b'%') {
            cut -= 1;
        }
        let digest = <sha2::Sha256 as sha2::Digest>::digest(supplier.as_bytes());
        out.truncate(cut);
        out.push('~');
        for b in &digest[..8] {
            let _ = write!(out, "{b:02x}");
        }
    }
    out
}

/// Who holds a work directory's lock, as the lock file records it: a sentence for people, then
/// this record as one JSON line for the process that is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// The subcommand (`stage`, `create`, `run`, ...).
    pub command: String,
    pub run_id: Option<String>,
    pub pid: u32,
    pub since: String,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        text.lines().find_map(|line| serde_json::from_str(line).ok())
    }

    /// `run R of `ferry C` (pid P) {verb} since T`.
    pub fn sentence(&self, verb: &str) -> String {
        let run = self.run_id.as_ref().map(|r| format!("run {r} of ")).unwrap_or_default();
        format!("{run}`ferry {}` (pid {}) {verb} since {}", self.command, self.pid, self.since)
    }
}

/// The held lock of a work directory; released when dropped or when the process ends.
#[derive(Debug)]
pub struct WorkdirLock {
    file: File,
    command: String,
}

impl WorkdirLock {
    /// Records who holds the lock, for the message a second process gets.
    pub fn describe(&mut self, run_id: Option<&str>) -> io::Result<()> {
        let holder = Holder {
            command: self.command.clone(),
            run_id: run_id.map(str::to_owned),
            pid: std::process::id(),
            since: crate::clock::now(),
        };
        let record = serde_json::to_string(&holder).map_err(io::Error::other)?;
        let text = format!("{}\n{record}\n", holder.sentence("holds the lock"));
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

/// The environment variable naming a failpoint (tests only): `NAME` aborts the process
/// there, `NAME=hit:N` aborts the N-th time it gets there, `NAME=sleep:MILLIS` pauses there,
/// `NAME=panic` panics there (for the server's test that a failed handler is a JSON 500).
pub const FAILPOINT_VAR: &str = "FERRY_FAILPOINT";

/// Aborts the process, as a kill would, when `FERRY_FAILPOINT` names this point (or pauses
/// it, with `=sleep:MILLIS`). The crash tests use it to stop ferry between the steps whose
/// order makes a run safe to kill, and the lock test to hold a run open.
pub fn failpoint(name: &str) {
    static HITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some((point, action)) = failpoint_setting() else { return };
    if point != name {
        return;
    }
    let action = action.as_deref().unwrap_or("abort");
    if action == "panic" {
        panic!("failpoint {name}");
    }
    if let Some(ms) = action.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return;
    }
    if let Some(n) = action.strip_prefix("hit:").and_then(|n| n.parse::<usize>().ok())
        && HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 < n
    {
        return;
    }
    eprintln!("ferry: failpoint {name}: aborting");
    std::process::abort();
}

/// True when `FERRY_FAILPOINT` is `NAME=KEY` for this point and key: a test makes one
/// chosen item fail (the account `KEY` of a create chunk, say) to check that nothing else does.
pub fn failpoint_for(name: &str, key: &str) -> bool {
    failpoint_setting().is_some_and(|(point, value)| point == name && value.as_deref() == Some(key))
}

/// `FERRY_FAILPOINT` as (point, what follows `=`), read once: failpoints sit on hot paths
/// (one per created account).
fn failpoint_setting() -> Option<&'static (String, Option<String>)> {
    static SETTING: std::sync::OnceLock<Option<(String, Option<String>)>> = std::sync::OnceLock::new();
    SETTING
        .get_or_init(|| {
            let value = std::env::var_os(FAILPOINT_VAR)?.to_string_lossy().into_owned();
            Some(match value.split_once('=') {
                Some((point, action)) => (point.to_owned(), Some(action.to_owned())),
                None => (value, None),
            })
        })
        .as_ref()
}

/// Writes a small text file whole or not at all: a temporary name (`.<name>.tmp`, which `ferry
/// gc` removes when a kill leaves it), synced, renamed, the folder synced. A newline is added at
/// the end.
pub fn write_synced(path: &Path, text: &str) -> Result<(), crate::error::Error> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    fs_err::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Syncs a directory, so that renames inside it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let wd = Workdir::new(dir.path());
        let mut first = wd.lock("create").unwrap();
        first.describe(Some("20261127T021500Z-3f9a")).unwrap();
        let holder = wd.try_lock("stage").unwrap().unwrap_err().expect("the holder's record");
        assert_eq!(holder.command, "create");
        assert_eq!(holder.run_id.as_deref(), Some("20261127T021500Z-3f9a"));
        assert_eq!(holder.pid, std::process::id());
        let message = wd.busy(Some(&holder)).to_string();
        assert!(message.contains("run 20261127T021500Z-3f9a of `ferry create` (pid"), "{message}");
        drop(first);
        assert!(wd.try_lock("stage").unwrap().is_ok(), "the lock goes with its holder");
    }

    #[test]
    fn supplier_folders_are_safe_and_distinct() {
        assert_eq!(supplier_component("ACME_ENERGY"), "ACME_ENERGY", "a valid code is its own folder");
        assert_eq!(
            supplier_component("../../escaped"),
            "%2E%2E%2F%2E%2E%2Fescaped".replace("escaped", "%65%73%63%61%70%65%64")
        );
        assert_eq!(supplier_component("."), "%2E");
        assert_eq!(supplier_component(""), "%");
        assert_eq!(supplier_component("A\\B"), "A%5CB");
        assert_ne!(supplier_component("acme"), supplier_component("ACME"), "case-folding file systems");
        let long = "X".repeat(10_000);
        let folded = supplier_component(&long);
        assert!(folded.len() <= MAX_COMPONENT, "{}", folded.len());
        assert_ne!(folded, supplier_component(&"X".repeat(9_999)));
        // A cut never splits an escape.
        for pad in 0..4 {
            let code = format!("{}{}", "A".repeat(pad), "é".repeat(60));
            let c = supplier_component(&code);
            let (head, _) = c.split_once('~').unwrap();
            assert!(head.len() >= 60 && head.rsplit('%').next().unwrap().len() >= 2, "{c}");
        }
        for code in ["ACME", "../../escaped", ".", "", "A\\B", "/tmp/x", &long, "a:b", "ACME\u{202E}"] {
            let wd = Workdir::new(Path::new("/w"));
            let location = Workdir::staging_location(code, "20261127T021500Z-3f9a");
            assert_eq!(wd.staged_path(&location).unwrap(), Path::new("/w").join(&location), "{code:?}");
        }
    }

    #[test]
    fn a_recorded_location_outside_staging_is_refused() {
        let wd = Workdir::new(Path::new("/w"));
        for location in [
            "staging/../../x/r",
            "/tmp/x/r",
            "staging/./r",
            "staging/A\\B/r",
            "runs/r/x",
            "staging/A/r/x",
            "staging//r",
        ] {
            assert!(wd.staged_path(location).is_err(), "{location}");
        }
    }
}
