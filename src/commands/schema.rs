//! `ferry schema`: check a schema file.

use crate::cli::{SchemaArgs, SchemaCommand};
use crate::error::{Error, ExitStatus};

pub(super) fn run(args: SchemaArgs) -> Result<ExitStatus, Error> {
    match args.command {
        SchemaCommand::Check { file } => {
            let schema = crate::settings::load_schema(file.as_deref())?;
            let mut out = format!(
                "schema {} version {}: {} tables, {} rules, sha256 {}\n",
                schema.name,
                schema.version,
                schema.tables.len(),
                schema.rules.len(),
                schema.hash
            );
            for table in &schema.tables {
                let path = match &table.parent {
                    Some((parent, list)) => format!("{}.{list}", schema.table(*parent).name),
                    None => "(root)".to_owned(),
                };
                out.push_str(&format!("  {:<40} {:>3} columns  {path}\n", table.name, table.columns.len()));
            }
            print!("{out}");
            Ok(ExitStatus::Clean)
        }
        SchemaCommand::Docs { file } => {
            let schema = crate::settings::load_schema(file.as_deref())?;
            print!("{}", crate::schema::docs::markdown(&schema));
            Ok(ExitStatus::Clean)
        }
    }
}
