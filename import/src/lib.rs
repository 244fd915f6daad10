//! Import of official documents and ledgers into `rectify`.
//!
//! Architecture invariant: this crate does no I/O. The caller reads the file (and hands over its
//! bytes or cells); the parsers here take text or cells and return data, so every rule is
//! testable on a string.

pub mod decode;
pub mod document;
pub mod ledger;
pub mod numbers;
pub mod units;

pub use document::{DocError, DraftItem, Level, MAX_INPUT_BYTES, ParsedDocument, parse_document};
