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
    pub schema: std::sync::Arc<Schema>,
    /// The reference date and the timezone.
    pub rules: RuleContext,
    /// Worker threads; all cores when `None`.
    pub threads: Option<usize>,
    /// Bytes of input per parallel chunk.
    pub chunk_size: usize,
    /// Whether the reference date was given (`--today`) rather than taken from the clock.
    pub fixed_today: bool,
}

impl Settings {
    /// Settings with `schema`, the reference date (today in the timezone when `None`), the
    /// timezone (the default when `None`) and the default threads and chunk size.
    pub fn new(schema: Schema, today: Option<chrono::NaiveDate>, timezone: Option<chrono_tz::Tz>) -> Self {
        let rules = RuleContext::new(today, timezone.unwrap_or(DEFAULT_TIMEZONE));
        Self {
            schema: std::sync::Arc::new(schema),
            rules,
            threads: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            fixed_today: today.is_some(),
        }
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

    /// These settings on today's date, when the reference date follows the clock and the day
    /// has changed since they were made; `None` while they still hold.
    fn moved_to_today(&self) -> Option<Settings> {
        let today = RuleContext::new(None, self.rules.tz);
        (!self.fixed_today && today.today != self.rules.today).then(|| Settings {
            schema: self.schema.clone(),
            rules: today,
            threads: self.threads,
            chunk_size: self.chunk_size,
            fixed_today: false,
        })
    }
}

/// The settings of a front end that runs for days (`ferry serve`): unless `--today` fixed the
/// reference date, "today" moves on at midnight in the timezone, so that a date of birth of
/// today, say, is judged on the day the request comes, not on the day the server started.
pub struct LiveSettings {
    current: std::sync::Mutex<std::sync::Arc<Settings>>,
}

impl LiveSettings {
    pub fn new(settings: Settings) -> Self {
        Self { current: std::sync::Mutex::new(std::sync::Arc::new(settings)) }
    }

    /// The settings for work starting now.
    pub fn now(&self) -> std::sync::Arc<Settings> {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(moved) = current.moved_to_today() {
            *current = std::sync::Arc::new(moved);
        }
        current.clone()
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

    #[test]
    fn live_settings_move_to_the_new_day_unless_today_was_given() {
        let schema = || load_schema(None).unwrap();
        let mut started = Settings::new(schema(), None, None);
        let today = started.rules.today;
        started.rules.today = today.pred_opt().unwrap();
        let live = LiveSettings::new(started);
        assert_eq!(live.now().rules.today, today, "the day the server started was yesterday");
        let fixed_day = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let fixed = LiveSettings::new(Settings::new(schema(), Some(fixed_day), None));
        assert_eq!(fixed.now().rules.today, fixed_day, "--today stays");
    }
}
