//! `ferry token`: add, list and revoke the API tokens of `ferry serve`.

use crate::cli::{TokenArgs, TokenCommand};
use crate::engine::tokens::{self, Role};
use crate::error::{Error, ExitStatus};

pub(super) fn run(args: TokenArgs) -> Result<ExitStatus, Error> {
    let mut store = crate::store::open(&args.workdir.resolve()?)?;
    match args.command {
        TokenCommand::Add { name, role } => {
            let role = Role::parse(&role).expect("clap allows only the roles");
            let key = tokens::add(store.as_mut(), &name, role)?;
            println!("{key}");
            eprintln!("added {} token {name:?}; its key is above, shown this once", role.as_str());
        }
        TokenCommand::List { json } => {
            let all = store.tokens()?;
            if json {
                for t in &all {
                    println!("{}", serde_json::to_string(t).expect("a token serialises"));
                }
            } else if all.is_empty() {
                eprintln!("no API tokens yet; add one with `ferry token add NAME --role viewer|importer`");
            } else {
                println!("{:<32} {:<9} {:<26} revoked_at", "name", "role", "created_at");
                for t in &all {
                    let revoked = t.revoked_at.as_deref().unwrap_or("-");
                    println!("{:<32} {:<9} {:<26} {revoked}", t.name, t.role, t.created_at);
                }
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name)? {
                return Err(Error::usage(format!("no live token named {:?}", crate::text::escape(&name)), None));
            }
            eprintln!("revoked token {name:?}");
        }
    }
    Ok(ExitStatus::Clean)
}
