//! `ferry supplier`: list import suppliers, or change a supplier's migration status.

use crate::cli::{SupplierArgs, SupplierCommand};
use crate::error::{Error, ExitStatus};
use crate::rules::formats;
use crate::schema::Check;
use crate::store::MigrationStatus;

pub(super) fn run(args: SupplierArgs) -> Result<ExitStatus, Error> {
    let mut store = crate::store::open(&args.workdir.resolve()?)?;
    let (code, status) = match args.command {
        SupplierCommand::List { json } => {
            let suppliers = store.suppliers()?;
            if json {
                for s in &suppliers {
                    println!("{}", serde_json::to_string(s).expect("a supplier serialises"));
                }
            } else if suppliers.is_empty() {
                eprintln!("no import suppliers yet in {}", args.workdir.workdir.display());
            } else {
                println!("{:<32} {:<9} updated_at", "code", "status");
                for s in &suppliers {
                    println!("{:<32} {:<9} {}", crate::text::escape(&s.code), s.status.as_str(), s.updated_at);
                }
            }
            return Ok(ExitStatus::Clean);
        }
        SupplierCommand::Pause { code } => (code, MigrationStatus::Paused),
        SupplierCommand::Resume { code } => (code, MigrationStatus::Ongoing),
        SupplierCommand::Complete { code } => (code, MigrationStatus::Complete),
    };
    // Staging decides against the supplier statuses it read when it started: a change waits
    // for no run, it fails at once while one holds the work directory.
    let _lock = args.workdir.resolve()?.lock("supplier")?;
    if !formats::passes(Check::ImportSupplier, &code) {
        return Err(Error::usage(
            formats::detail(Check::ImportSupplier, &code),
            Some("supplier codes look like TENTACLE_ENERGY"),
        ));
    }
    match store.set_supplier_status(&code, status)? {
        Some(before) if before == status => eprintln!("{code} is already {status}"),
        Some(before) => eprintln!("{code}: {before} -> {status}"),
        None => eprintln!("{code}: new supplier, {status}"),
    }
    Ok(ExitStatus::Clean)
}
