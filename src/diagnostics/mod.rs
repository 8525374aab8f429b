//! Diagnostics for configuration files (the schema now, pipelines later).
//!
//! A config file is checked in full before anything runs: every problem is collected as a
//! [`Problem`] with the byte span it is about, and all of them are reported together in one
//! [`ConfigError`], rendered by miette with the offending lines underlined and a `help:` line
//! where the fix is known ("did you mean `billing_address1`?").

pub mod walk;

use std::ops::Range;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// One problem in a config file, located by its byte span.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    pub message: String,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl Problem {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { label: "here".to_owned(), message, span: span.into(), help: None }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `x`?" when one of `candidates` is close to `given`.
    pub fn suggest<'a>(self, given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match closest(given, candidates) {
            Some(best) => self.help(format!("did you mean `{best}`?")),
            None => self,
        }
    }
}

/// The candidate closest to `given`, if it is close enough to be a plausible typo.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Every problem of one config file, reported at once.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{what} {path} has {count} problem{s}", count = problems.len(), s = if problems.len() == 1 { "" } else { "s" })]
#[diagnostic(code(ferry::config::invalid))]
pub struct ConfigError {
    pub what: &'static str,
    pub path: String,
    #[source_code]
    pub src: NamedSource<String>,
    #[related]
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn new(what: &'static str, path: &str, text: &str, problems: Vec<Problem>) -> Self {
        Self { what, path: path.to_owned(), src: NamedSource::new(path, text.to_owned()), problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["billing_address1", "billing_postcode", "customers"];
        assert_eq!(closest("billing_adress1", keys), Some("billing_address1"));
        assert_eq!(closest("zzz", keys), None);
    }
}
