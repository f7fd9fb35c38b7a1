//! Typed results: what a verification checked, and what it found.
//!
//! Every verifier in this crate returns `Result<_, E>` with a typed error `E` that has a stable
//! `code()`. A [`Report`] collects the checks a tool ran over one receipt, each with its code,
//! a line a person reads, and the detail of a failure, so that `opal verify`, the SDK and the
//! explorer print and serialize the same thing.

use serde::Serialize;

/// A typed verification failure: a stable code (for scripts and for consensus decisions, never
/// the message text) and a message for people.
pub trait Failure: std::fmt::Display {
    fn code(&self) -> &'static str;
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check (stable: `signatures`, `readable_fields`, `outputs`, `zk_proof`, ...).
    pub id: &'static str,
    /// What was checked, in words.
    pub check: String,
    pub ok: bool,
    /// The failure's code (empty when it passed).
    pub code: &'static str,
    /// What was found: why it failed, or what it passed against.
    pub detail: String,
}

/// The checks run over one receipt, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Record a check that passed.
    pub fn pass(&mut self, id: &'static str, check: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check {
            id,
            check: check.into(),
            ok: true,
            code: "",
            detail: detail.into(),
        });
    }

    /// Record a check that failed with `code`.
    pub fn fail(
        &mut self,
        id: &'static str,
        check: impl Into<String>,
        code: &'static str,
        detail: impl Into<String>,
    ) {
        self.checks.push(Check {
            id,
            check: check.into(),
            ok: false,
            code,
            detail: detail.into(),
        });
    }

    /// Record the outcome of a verifier: `Ok(detail)` passes, a typed failure fails with its
    /// code and message.
    pub fn record<E: Failure>(
        &mut self,
        id: &'static str,
        check: impl Into<String>,
        outcome: Result<String, E>,
    ) {
        match outcome {
            Ok(detail) => self.pass(id, check, detail),
            Err(e) => {
                let msg = e.to_string();
                self.fail(id, check, e.code(), msg)
            }
        }
    }

    /// Whether every check passed (and at least one ran: an empty report proves nothing).
    pub fn valid(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}
