//! Settings resolved once, from the command line or a pipeline file, and handed to every stage.
//!
//! Every stage that reads dates needs the same reference date and timezone, and every stage that
//! reads a dump the same schema, threads and chunk size. They are resolved here, once per command,
//! so that no stage picks a default of its own: the defaults live in this file and nowhere else.
//! `ferry reprocess` takes the timezone its parent run recorded (see `commands::reprocess`), so a
//! run made in one timezone is never re-validated in another.

use std::path::Path;

use crate::error::Error;
use crate::rules::RuleContext;
use crate::schema::Schema;

/// The pipeline's timezone when none is given: naive datetimes are read in it, and "today" is
/// today there.
pub const DEFAULT_TIMEZONE: chrono_tz::Tz = chrono_tz::Europe::Berlin;

/// The platform's limit of account creations in flight (the guide's 429 past it).
pub const CREATE_LIMIT: usize = 40;

/// Bytes of input per parallel chunk, cut at the next newline.
pub const DEFAULT_CHUNK_SIZE: usize = 2 << 20;

/// What every stage of one command works with.
pub struct Settings {
    pub schema: Schema,
    /// The reference date and the timezone.
    pub rules: RuleContext,
    /// Worker threads; all cores when `None`.
    pub threads: Option<usize>,
    /// Bytes of input per parallel chunk.
    pub chunk_size: usize,
}

impl Settings {
    /// Settings with `schema`, the reference date (today in the timezone when `None`), the
    /// timezone (the default when `None`) and the default threads and chunk size.
    pub fn new(schema: Schema, today: Option<chrono::NaiveDate>, timezone: Option<chrono_tz::Tz>) -> Self {
        let rules = RuleContext::new(today, timezone.unwrap_or(DEFAULT_TIMEZONE));
        Self { schema, rules, threads: None, chunk_size: DEFAULT_CHUNK_SIZE }
    }

    /// The worker threads and chunk size of the command line (`--threads`, `--chunk-size`).
    pub fn with_ingest(mut self, threads: Option<usize>, chunk_size: usize) -> Self {
        self.threads = threads;
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// The timezone naive datetimes are read in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.rules.tz
    }
}

/// The schema file named on the command line, or the built-in one.
pub fn load_schema(path: Option<&Path>) -> Result<Schema, Error> {
    match path {
        Some(p) => Ok(Schema::load(p)?),
        None => Ok(Schema::builtin()),
    }
}

/// A timezone name of the IANA database (`Europe/Berlin`), for `--timezone`.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        match crate::diagnostics::closest(name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())) {
            Some(n) => format!("unknown timezone {name:?} (did you mean {n:?}?)"),
            None => format!("unknown timezone {name:?}: an IANA name such as Europe/Berlin"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_here() {
        let s = Settings::new(Schema::builtin(), chrono::NaiveDate::from_ymd_opt(2026, 11, 27), None);
        assert_eq!(s.timezone(), DEFAULT_TIMEZONE);
        assert_eq!(s.chunk_size, DEFAULT_CHUNK_SIZE);
        let s = s.with_ingest(Some(2), 0);
        assert_eq!((s.threads, s.chunk_size), (Some(2), 1));
    }

    #[test]
    fn timezones_by_name_with_a_suggestion() {
        assert_eq!(parse_timezone("America/New_York"), Ok(chrono_tz::America::New_York));
        let err = parse_timezone("Europe/Berln").unwrap_err();
        assert!(err.contains("did you mean \"Europe/Berlin\""), "{err}");
    }
}
