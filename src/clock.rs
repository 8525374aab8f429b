//! The clock: timestamps and run ids, for the store, the work directory and the commands alike
//! (no backend owns the time).

/// Now, as RFC 3339 UTC with milliseconds: fixed width, so that text order is time order.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new run id: the UTC time to the second, then 4 random hex digits. Ids alone do not order
/// runs that start within one second; their `started_at` does.
pub fn new_run_id() -> String {
    format!("{}-{:04x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_sort_as_text() {
        let (a, b) = (super::now(), super::now());
        assert_eq!(a.len(), "2026-11-27T02:15:00.000Z".len());
        assert!(a <= b);
        let id = super::new_run_id();
        assert_eq!(id.len(), "20261127T021500Z-3f9a".len(), "{id}");
    }
}
