//! `ferry validate`: every rule over a dump, or the validate operation on one account.

use crate::cli::ValidateArgs;
use crate::engine::validate::{validate_account, validate_dump};
use crate::error::{Error, ExitStatus};
use crate::guide::Status;
use crate::settings::Settings;

pub(super) fn run(args: ValidateArgs) -> Result<ExitStatus, Error> {
    let schema = crate::settings::load_schema(args.ingest.schema.as_deref())?;
    let settings = Settings::new(schema, args.reference.today, args.reference.timezone)
        .with_ingest(args.ingest.threads, args.ingest.chunk_size);
    if let Some(path) = &args.account {
        // The validate endpoint on the command line: the body to stdout, the status to stderr.
        let text = fs_err::read_to_string(path)?;
        let Some(result) = validate_account(&settings, &text) else {
            return Err(Error::usage(
                format!("{} holds no JSON object", path.display()),
                Some("the file must hold one account object"),
            ));
        };
        let value: serde_json::Value = serde_json::from_str(&result.body).expect("bodies are JSON");
        println!("{}", serde_json::to_string_pretty(&value).expect("a Value serialises"));
        let status = if result.status == 200 { Status::Ok } else { Status::BadRequest };
        eprintln!("{}", status.line());
        return Ok(if status == Status::Ok { ExitStatus::Clean } else { ExitStatus::Rejected });
    }
    let dump = args.dump.as_deref().expect("clap requires a dump without --account");
    let tally = validate_dump(&settings, dump, args.out.as_deref(), args.emit)?;
    Ok(if tally.rejected_lines > 0 { ExitStatus::Rejected } else { ExitStatus::Clean })
}
