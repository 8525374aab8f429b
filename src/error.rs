//! The errors that stop a command: usage, config and environment failures (exit 2).
//!
//! Bad data never appears here: it is a finding. These are rendered only in `main.rs`.

use miette::Diagnostic;

use crate::diagnostics::ConfigError;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// A file could not be read or written; the message names the path. Not a `source`: the
    /// message already carries the cause, and a source would print it a second time.
    #[error("{0}")]
    #[diagnostic(code(ferry::io))]
    Io(std::io::Error),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(Box<ConfigError>),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] crate::store::StoreError),

    /// A file ferry wrote (the store, a staged file) does not hold what ferry wrote: damaged,
    /// truncated, copied without its WAL. Nothing is done with it; the message names it.
    #[error("{message}")]
    #[diagnostic(code(ferry::damaged))]
    Damaged {
        message: String,
        #[help]
        help: Option<String>,
    },

    /// A run that stopped before its end because going on was pointless: a remote API refused
    /// the token, the supplier's migration is not ongoing, the API is unreachable or keeps
    /// failing. What was done is recorded; running the same command again goes on.
    #[error("{message}")]
    #[diagnostic(code(ferry::stopped))]
    Stopped {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(ferry::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<crate::schema::SchemaError> for Error {
    fn from(e: crate::schema::SchemaError) -> Self {
        match e {
            crate::schema::SchemaError::Io(e) => Error::Io(e),
            crate::schema::SchemaError::Invalid(e) => Error::Config(e),
        }
    }
}

impl From<Box<ConfigError>> for Error {
    fn from(e: Box<ConfigError>) -> Self {
        Error::Config(e)
    }
}

impl Error {
    pub fn usage(message: impl Into<String>, help: Option<&str>) -> Self {
        Error::Usage { message: message.into(), help: help.map(str::to_owned) }
    }

    pub fn stopped(message: impl Into<String>, help: &str) -> Self {
        Error::Stopped { message: message.into(), help: Some(help.to_owned()) }
    }

    pub fn damaged(message: impl Into<String>, help: &str) -> Self {
        Error::Damaged { message: message.into(), help: Some(help.to_owned()) }
    }
}

/// How a command that ran to the end came out; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit 0: nothing rejected.
    Clean,
    /// Exit 1: the command completed but the data has errors.
    Rejected,
}

impl ExitStatus {
    pub fn exit_code(self) -> u8 {
        match self {
            ExitStatus::Clean => 0,
            ExitStatus::Rejected => 1,
        }
    }
}
