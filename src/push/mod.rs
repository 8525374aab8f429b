//! The client side of the guide's API, for `ferry push` (issue 14): sending staged accounts to a
//! Kraken-compatible API through its validate, stage and create endpoints, at most 40 in
//! flight, exactly once across kills. It starts from the classification of every answer
//! ([`classify`]), on which the sender's window, its retries and the reconciliation of
//! interrupted creates are decided.

pub mod classify;
pub mod client;
pub mod run;
pub mod window;
