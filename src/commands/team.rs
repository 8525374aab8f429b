//! `ferry team`: add or list operations teams.

use crate::cli::{TeamArgs, TeamCommand};
use crate::error::{Error, ExitStatus};

/// Team names are free text, but not blank and at most this long.
const MAX_NAME: usize = 255;

pub(super) fn run(args: TeamArgs) -> Result<ExitStatus, Error> {
    let mut store = crate::store::open(&args.workdir.resolve()?)?;
    match args.command {
        TeamCommand::Add { name } => {
            if name.trim().is_empty() || name.chars().count() > MAX_NAME {
                return Err(Error::usage(
                    format!("a team name is 1 to {MAX_NAME} characters, not blank: {name:?}"),
                    None,
                ));
            }
            if store.add_team(&name)? {
                eprintln!("added team {name:?}");
            } else {
                eprintln!("team {name:?} already exists");
            }
        }
        TeamCommand::List { json } => {
            let teams = store.teams()?;
            if json {
                for t in &teams {
                    println!("{}", serde_json::to_string(t).expect("a team serialises"));
                }
            } else if teams.is_empty() {
                eprintln!(
                    "no operations teams yet in {}; add one with `ferry team add NAME`",
                    args.workdir.workdir.display()
                );
            } else {
                println!("{:<40} created_at", "name");
                for t in &teams {
                    println!("{:<40} {}", crate::text::escape(&t.name), t.created_at);
                }
            }
        }
    }
    Ok(ExitStatus::Clean)
}
