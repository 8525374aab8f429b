//! What `ferry push` makes of one answer from a Kraken-compatible API: the classification table
//! of issue 14, one arm per row, each with its unit test.
//!
//! The table decides whether an account is done, waits for a fix, stops the whole run, shrinks
//! the window of requests in flight, is retried, or must be looked up through the status
//! endpoint before anything is sent again. That last class exists for creates only: a create
//! whose answer was lost after the request went out may have created the account, and sending
//! it again blindly is how bulk loaders make duplicates.

use std::time::Duration;

use crate::guide::Code;

/// Which of the guide's operations a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Validate,
    Stage,
    Create,
}

impl Operation {
    /// Its name in audit rows (`push_<name>`) and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Validate => "validate",
            Operation::Stage => "stage",
            Operation::Create => "create",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Operation::Validate, Operation::Stage, Operation::Create].into_iter().find(|o| o.name() == name)
    }
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP response: status, body, and the `Retry-After` header when there was one.
    Response { status: u16, body: String, retry_after: Option<String> },
    /// Nothing was sent: the connection was refused, the name did not resolve, TLS failed.
    NotSent,
    /// The request went out and no answer came: a timeout or a reset after sending.
    Lost,
}

/// What to do about an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// The operation succeeded; for a create, the new account's number.
    Done { kraken_account_number: Option<String> },
    /// An account the platform already has (a create, or a stage of it, answered "already
    /// imported" with its number): done, with its number. A push that lost track of a create
    /// (its answer lost, or its status looked up before the target ran it) learns it here.
    AlreadyImported { kraken_account_number: String },
    /// A dry run that would have created the account.
    DryRunOk,
    /// The account waits for a fix (its data, its staging, its team); sending it again
    /// changes nothing. `code` is the guide's code, or the HTTP status when there is none.
    Terminal { code: String },
    /// No point sending the rest: bad credentials, or the supplier's migration is not ongoing.
    StopRun { why: String },
    /// 429: halve the window, and retry this account after `retry_after` when the server said
    /// (else after one of ours completes).
    Window { retry_after: Option<Duration> },
    /// Not processed: retry (within the retry budget).
    Transient,
    /// Maybe processed: look the account up through the status endpoint before any re-send.
    Ambiguous,
}

/// The longest wait a `Retry-After` may ask for.
pub const MOST_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The few top-level fields of an answer's JSON body that decide anything, read once per
/// answer. The rest of the body is skipped, not built: a validate 200 echoes the whole account.
/// A field that is absent or not a string, and every field of a body that is not a JSON object,
/// is `None`; of a key given twice, the last counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    pub code: Option<String>,
    pub detail: Option<String>,
    pub kraken_account_number: Option<String>,
    /// The transfer status endpoint's `status`.
    pub status: Option<String>,
}

impl Fields {
    /// The fields of a response's body (none for an answer that never came).
    pub fn of(answer: &Answer) -> Self {
        match answer {
            Answer::Response { body, .. } => serde_json::from_str(body).unwrap_or_default(),
            Answer::NotSent | Answer::Lost => Self::default(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Fields, M::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "code" => &mut fields.code,
                        "detail" => &mut fields.detail,
                        "kraken_account_number" => &mut fields.kraken_account_number,
                        "status" => &mut fields.status,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<serde_json::Value>()?.as_str().map(str::to_owned);
                }
                Ok(fields)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The classification table.
pub fn classify(operation: Operation, answer: &Answer, dry_run: bool) -> Class {
    classify_fields(operation, answer, &Fields::of(answer), dry_run)
}

/// The classification table, for an answer whose body's [`Fields`] were read already.
pub fn classify_fields(operation: Operation, answer: &Answer, fields: &Fields, dry_run: bool) -> Class {
    let (status, retry_after) = match answer {
        Answer::NotSent => return Class::Transient,
        Answer::Lost if operation == Operation::Create => return Class::Ambiguous,
        // Validate and stage are idempotent: sending them again is safe.
        Answer::Lost => return Class::Transient,
        Answer::Response { status, retry_after, .. } => (*status, retry_after.as_deref()),
    };
    let code = fields.code.as_deref();
    let number = fields.kraken_account_number.as_deref().filter(|k| !k.is_empty());
    let detail = fields.detail.as_deref();
    match status {
        200 | 201 => Class::Done { kraken_account_number: fields.kraken_account_number.clone() },
        400 if number.is_some() => {
            Class::AlreadyImported { kraken_account_number: number.unwrap_or_default().to_owned() }
        }
        400 if code == Some(Code::DryRunRolledBack.as_str()) && dry_run => Class::DryRunOk,
        400 if code == Some(Code::SupplierNotOngoing.as_str()) => {
            Class::StopRun { why: detail.unwrap_or("the supplier's migration is not ongoing").to_owned() }
        }
        401 | 403 => {
            Class::StopRun { why: format!("the API refused the token ({status}): {}", detail.unwrap_or_default()) }
        }
        429 => Class::Window { retry_after: retry_after.and_then(parse_retry_after) },
        // A gateway answered: the request never reached the API.
        502..=504 => Class::Transient,
        500 if operation == Operation::Create => Class::Ambiguous,
        500..=599 => Class::Transient,
        _ => Class::Terminal { code: code.map_or_else(|| status.to_string(), str::to_owned) },
    }
}

/// A `Retry-After` value: seconds, or an HTTP date; clamped to [0, [`MOST_RETRY_AFTER`]].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MOST_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::Operation::{Create, Stage, Validate};
    use super::*;

    fn response(status: u16, body: serde_json::Value) -> Answer {
        Answer::Response { status, body: body.to_string(), retry_after: None }
    }

    fn error(status: u16, code: &str) -> Answer {
        response(status, serde_json::json!({ "detail": "d", "code": code }))
    }

    #[test]
    fn created_is_done_with_the_number() {
        let answer = response(201, serde_json::json!({ "kraken_account_number": "A-1A2B3C4D" }));
        assert_eq!(classify(Create, &answer, false), Class::Done { kraken_account_number: Some("A-1A2B3C4D".into()) });
        let staged = response(201, serde_json::json!({ "import_supplier": "S", "external_account_number": "E" }));
        assert_eq!(classify(Stage, &staged, false), Class::Done { kraken_account_number: None });
        assert_eq!(
            classify(Validate, &response(200, serde_json::json!({})), false),
            Class::Done { kraken_account_number: None }
        );
    }

    #[test]
    fn already_imported_is_done_with_the_number() {
        let answer = response(
            400,
            serde_json::json!({ "detail": "d", "code": Code::AlreadyImported.as_str(),
                "external_account_number": "E", "kraken_account_number": "A-00000001" }),
        );
        assert_eq!(
            classify(Create, &answer, false),
            Class::AlreadyImported { kraken_account_number: "A-00000001".into() }
        );
        // Staging an imported account answers the same: the account is done on the target.
        assert_eq!(
            classify(Stage, &answer, false),
            Class::AlreadyImported { kraken_account_number: "A-00000001".into() }
        );
        // Without a number it is no proof of anything: terminal.
        let bare = error(400, Code::AlreadyImported.as_str());
        assert!(matches!(classify(Stage, &bare, false), Class::Terminal { .. }));
    }

    #[test]
    fn the_dry_run_sentence_is_a_dry_run_ok() {
        assert_eq!(classify(Create, &error(400, "dry_run_rolled_back"), true), Class::DryRunOk);
        // Not asked for: the server did something else than it was told.
        assert!(matches!(classify(Create, &error(400, "dry_run_rolled_back"), false), Class::Terminal { .. }));
    }

    #[test]
    fn validation_staging_and_team_400s_wait_for_a_fix() {
        for code in
            [Code::AccountFailedValidation, Code::NotStaged, Code::TeamUnknown, Code::Skipped, Code::RecordRejected]
        {
            let class = classify(Create, &error(400, code.as_str()), false);
            assert_eq!(class, Class::Terminal { code: code.as_str().to_owned() });
        }
    }

    #[test]
    fn a_supplier_not_ongoing_stops_the_run() {
        let class = classify(Stage, &error(400, Code::SupplierNotOngoing.as_str()), false);
        assert_eq!(class, Class::StopRun { why: "d".into() });
    }

    #[test]
    fn bad_credentials_stop_the_run() {
        for status in [401, 403] {
            assert!(matches!(classify(Validate, &error(status, "x"), false), Class::StopRun { .. }), "{status}");
        }
    }

    #[test]
    fn too_large_wrong_type_and_not_found_are_terminal() {
        for (status, code) in [(413, "request_too_large"), (415, "unsupported_media_type"), (404, "not_found")] {
            assert_eq!(classify(Stage, &error(status, code), false), Class::Terminal { code: code.into() });
        }
        let plain = Answer::Response { status: 404, body: "<html>".into(), retry_after: None };
        assert_eq!(classify(Stage, &plain, false), Class::Terminal { code: "404".into() });
    }

    #[test]
    fn a_429_is_a_window_signal_with_its_retry_after() {
        let answer = Answer::Response { status: 429, body: "{}".into(), retry_after: Some("2".into()) };
        assert_eq!(classify(Create, &answer, false), Class::Window { retry_after: Some(Duration::from_secs(2)) });
        assert_eq!(
            classify(Create, &error(429, "concurrency_limit_exceeded"), false),
            Class::Window { retry_after: None }
        );
    }

    #[test]
    fn unsent_requests_and_gateway_errors_are_transient() {
        assert_eq!(classify(Create, &Answer::NotSent, false), Class::Transient);
        for status in [502, 503, 504] {
            assert_eq!(classify(Create, &error(status, "x"), false), Class::Transient, "{status}");
        }
        assert_eq!(classify(Stage, &error(500, "server_error"), false), Class::Transient);
    }

    #[test]
    fn a_lost_answer_or_a_500_on_create_is_ambiguous() {
        assert_eq!(classify(Create, &Answer::Lost, false), Class::Ambiguous);
        assert_eq!(classify(Create, &error(500, "server_error"), false), Class::Ambiguous);
        // Validate and stage can be sent again safely.
        assert_eq!(classify(Validate, &Answer::Lost, false), Class::Transient);
        assert_eq!(classify(Stage, &Answer::Lost, false), Class::Transient);
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_clamped() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("86400"), Some(MOST_RETRY_AFTER));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO), "past: at once");
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = parse_retry_after(&soon).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_the_deciding_fields_are_read_as_a_value_tree_would_give_them() {
        let fields = |body: &str| Fields::of(&Answer::Response { status: 200, body: body.into(), retry_after: None });
        let account = r#"{"customers": [{"code": "x"}], "code": "c", "detail": 7, "kraken_account_number": null,
            "\u0073tatus": "COMPLETED", "code": "last"}"#;
        assert_eq!(
            fields(account),
            Fields {
                code: Some("last".into()),
                detail: None,
                kraken_account_number: None,
                status: Some("COMPLETED".into())
            }
        );
        for not_an_object in ["[\"c\", \"d\", \"k\", \"s\"]", "\"code\"", "", "{\"code\": \"c\"} trailing"] {
            assert_eq!(fields(not_an_object), Fields::default(), "{not_an_object}");
        }
        assert_eq!(Fields::of(&Answer::Lost), Fields::default());
    }
}
