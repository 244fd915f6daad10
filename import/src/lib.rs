//! Import of official documents into `rectify`.
//!
//! Architecture invariant: this crate does no I/O. The caller reads the file (and decodes it to
//! UTF-8); the parsers here take text and return data, so every rule is testable on a string.

pub mod document;

pub use document::{DocError, DraftItem, Level, MAX_INPUT_BYTES, ParsedDocument, parse_document};
