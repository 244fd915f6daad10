//! Validation of free text typed by users: titles, notes, reasons. Checked at the engine boundary
//! so an empty title or a megabyte of text cannot exist past it.

use crate::transition::Refusal;

/// Longest title accepted, in characters. Real measures run to a few hundred characters.
pub const MAX_TITLE_CHARS: usize = 2_000;
/// Longest note, reason or progress text accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 20_000;
/// Longest short name (unit code, unit name, operator, leader, number), in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A title: one line, not empty, no control characters (a title ends up in email subjects).
pub fn title(field: &'static str, text: &str) -> Result<String, Refusal> {
    single_line(field, text, MAX_TITLE_CHARS)
}

/// A short name such as a unit code or a leader's name.
pub fn name(field: &'static str, text: &str) -> Result<String, Refusal> {
    single_line(field, text, MAX_NAME_CHARS)
}

/// A note or reason: may span lines, not empty, no other control characters.
pub fn note(field: &'static str, text: &str) -> Result<String, Refusal> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Refusal::Empty { field });
    }
    let chars = t.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(Refusal::TooLong {
            field,
            chars,
            limit: MAX_NOTE_CHARS,
        });
    }
    if let Some(c) = t
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Refusal::ControlChar {
            field,
            code: c as u32,
        });
    }
    // Normalise line ends so the stored text (and its hash) does not depend on the platform.
    Ok(t.replace("\r\n", "\n").replace('\r', "\n"))
}

/// An optional note: `None` or empty stays `None`, anything else must be a valid note.
pub fn optional_note(field: &'static str, text: Option<&str>) -> Result<Option<String>, Refusal> {
    match text {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(None),
        Some(t) => note(field, t).map(Some),
    }
}

fn single_line(field: &'static str, text: &str, limit: usize) -> Result<String, Refusal> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Refusal::Empty { field });
    }
    let chars = t.chars().count();
    if chars > limit {
        return Err(Refusal::TooLong {
            field,
            chars,
            limit,
        });
    }
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(Refusal::ControlChar {
            field,
            code: c as u32,
        });
    }
    Ok(t.to_string())
}
