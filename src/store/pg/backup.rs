//! `ferry backup` of a PostgreSQL store: `pg_dump` of the store's database in its custom format
//! (one consistent snapshot, taken while other machines write; restore with `pg_restore`),
//! written to a temporary name that is synced and renamed.

use std::path::Path;

use super::Target;
use crate::error::Error;

pub(super) fn dump(target: &Target, dest: &Path) -> Result<(), Error> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "ferry.dump".to_owned());
    let tmp = dest.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut command = std::process::Command::new("pg_dump");
    command.args(["--format=custom", "--no-owner", "--file"]).arg(&tmp);
    // The connection's parameters through libpq's environment: the password never appears on a
    // command line another user could read.
    for (key, value) in target.libpq_env() {
        command.env(key, value);
    }
    let out = command.output().map_err(|e| {
        Error::usage(
            format!("cannot run pg_dump to back up the store at {target}: {e}"),
            Some("install PostgreSQL's client programs (Debian: postgresql-client) on this machine"),
        )
    })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::usage(
            format!("pg_dump of the store at {target} failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
            None,
        ));
    }
    fs_err::File::open(&tmp)?.sync_all()?;
    fs_err::rename(&tmp, dest)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::workdir::sync_dir(parent)?;
    }
    Ok(())
}
