//! One file per subcommand, each thin: parse the arguments, resolve the settings, open the work
//! directory, call one engine operation ([`crate::engine`]), print.

mod check;
mod create;
mod flatten;
mod gc;
mod generate;
mod process;
mod push;
mod report;
mod reprocess;
mod run;
mod schema;
mod serve;
mod stage;
mod status;
mod supplier;
mod team;
mod token;
mod validate;

use crate::cli::{Cli, Command};
use crate::error::{Error, ExitStatus};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Report(args) => report::run(args),
        Command::Flatten(args) => flatten::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Supplier(args) => supplier::run(args),
        Command::Team(args) => team::run(args),
        Command::Token(args) => token::run(args),
        Command::Stage(args) => stage::run(args),
        Command::Create(args) => create::run(args),
        Command::Reprocess(args) => reprocess::run(args),
        Command::Skip(args) => process::skip(args),
        Command::Unskip(args) => process::unskip(args),
        Command::Status(args) => status::status(args),
        Command::List(args) => status::list(args),
        Command::Gc(args) => gc::run(args),
        Command::Check(args) => check::check(args),
        Command::Backup(args) => check::backup(args),
        Command::Serve(args) => serve::run(args),
        Command::Push(args) => push::run(args),
    }
}
