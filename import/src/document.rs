//! Turns the plain text of an official document into a draft tree of items.
//!
//! Offices receive inspection-feedback rectification notices (整改通报) and standing-meeting
//! minutes (常务会议纪要) as UTF-8 text. [`parse_document`] reads the document's own numbering
//! and returns a tree (category → problem → measure) for the office to review and assign.
//!
//! # What becomes an item
//!
//! A heading is a numbering mark at the start of a line (after an optional bullet such as `- `):
//!
//! | level               | marks                                            | number segment |
//! |---------------------|--------------------------------------------------|----------------|
//! | [`Level::Chapter`]  | `一、` `十二、` `二十一、`                         | `一` `十二`     |
//! | [`Level::Section`]  | `(一)` `（一）` `㈠`                               | `(一)`          |
//! | [`Level::Point`]    | `1.` `1、` `1．` `１．` `⒈`                        | `1`             |
//! | [`Level::Sub`]      | `(1)` `（1）` `⑴`                                 | `(1)`           |
//! | [`Level::Circled`]  | `①` … `㊿`                                         | `①`             |
//! | [`Level::Inline`]   | `一是` `二要` `十一是`                              | `一`            |
//!
//! Levels nest in that order; a level the document skips is simply absent (a `(1)` right under
//! `3.` is a child of `3.`). A number inside running text is not a heading, and neither are
//! `1.5亿元` (a digit follows the dot), `一、二级公路` (an enumeration `N、N+1`) or `2023年`.
//!
//! Inside a paragraph, a new heading starts after a sentence end (`。；！？`) when it continues
//! a list that is open: `…。二是…` after `一是`, `…。(二)…` after `(一)`. `一是` also starts a
//! list after a colon or a sentence end (`要做好三方面工作：一是…`), and after a colon any list
//! may start at its first number (`负责：(一)…`). `二是` may follow `一是` after a comma too.
//!
//! # Titles
//!
//! A title is the first sentence of the heading's text: the numbering mark, any responsibility
//! clause (`区城管局负责、各相关镇街配合,`) and the terminating `。；：！？` are removed, so **titles
//! never end with `。`**. Spaces and line breaks between Chinese characters are removed
//! (`贸易港带 动作用` → `贸易港带动作用`); a space is kept only between two ASCII letters or digits.
//! A sentence broken over lines is joined up to its end; a title-like heading without
//! punctuation takes at most one following short line without punctuation. Text after the first
//! sentence, and unnumbered paragraphs under a heading, describe progress and are not items.
//!
//! # Responsibility
//!
//! `会议确定,区发改局负责:` (also `会议决定`, `会议明确`, …, or the clause alone on a line ending
//! with a colon) is a decision: it gives the lead unit, responsible leader (`周诚同志牵头` → `周诚`)
//! and cooperating units (`各相关镇街配合`) of the items that follow, until the next decision or
//! a heading of a higher level than those items. A decision that no numbered item follows
//! (`会议确定,区司法局负责,根据…修改完善…。`) is assigned to the item it sits under, usually the
//! meeting topic. A heading that starts with such a clause (`(二)区城管局负责、各相关镇街配合,…`)
//! carries its own assignment, which its children inherit. Several lead units stay in one string
//! as written (`区海洋发展局、综合行政执法局`); cooperating units are split on `、`.
//!
//! # Noise
//!
//! Page markers (`(上接第一版)`, `(下转第三版)`), garbled ASCII runs at the start of a line
//! (`(175.)`), lines of punctuation, page numbers, date lines and lines without any Chinese
//! text are dropped. Everything before the first heading except the document title (bylines,
//! issuers, meeting times, text continued from a previous page) is dropped too. Every dropped
//! line is listed in [`ParsedDocument::dropped_lines`] so a dry run can show what was left out.
//!
//! A document that starts mid-way (continued from a previous page) yields its leading measures
//! and problems at the top level of the tree, in order, with the numbers they carry: the parser
//! does not invent the parents it never saw.

use serde::{Deserialize, Serialize};

/// Inputs larger than this many bytes are refused with [`DocError::TooLarge`].
pub const MAX_INPUT_BYTES: usize = 5 * 1024 * 1024;

/// Longest title, in characters, that may be assembled from several lines.
const MAX_JOINED_TITLE_CHARS: usize = 150;
/// Longest line, in characters, that a title-like heading may take as its continuation.
const MAX_TITLE_CONTINUATION_CHARS: usize = 30;
/// Longest unit or leader name accepted in a responsibility clause.
const MAX_RESPONSIBLE_CHARS: usize = 40;

/// The numbering style that produced an item. Declared, and ordered, from the highest level
/// (`Chapter < Section < … < Inline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `一、`
    Chapter,
    /// `(一)` / `（一）`
    Section,
    /// `1.` / `1、` / `1．`
    Point,
    /// `(1)` / `（1）`
    Sub,
    /// `①`
    Circled,
    /// `一是` / `一要` in running text
    Inline,
}

impl Level {
    /// A short English name, the same as the serde form.
    pub const fn label(self) -> &'static str {
        match self {
            Level::Chapter => "chapter",
            Level::Section => "section",
            Level::Point => "point",
            Level::Sub => "sub",
            Level::Circled => "circled",
            Level::Inline => "inline",
        }
    }
}

/// One draft item: a category, problem or measure as the document numbers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftItem {
    /// The document's own numbering path, segments joined by `.`: `3.(1).一` is the first
    /// `一是` under problem `(1)` of category `3.`.
    pub number: String,
    /// The first sentence of the heading, cleaned; never ends with `。`.
    pub title: String,
    pub level: Level,
    /// Lead unit (牵头单位); several joint lead units stay in one string, separated by `、`.
    pub lead_unit: Option<String>,
    /// Responsible leader (责任领导), without `同志`.
    pub leader: Option<String>,
    /// Cooperating units (配合单位).
    pub co_units: Vec<String>,
    /// 1-based line of the heading in the input.
    pub line: usize,
    pub children: Vec<DraftItem>,
}

/// The result of [`parse_document`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedDocument {
    /// The document title (`关于…的通报`), when the text before the first item has one.
    pub title: Option<String>,
    pub items: Vec<DraftItem>,
    /// Units not found in the office's directory; filled by the caller, empty here.
    pub unknown_units: Vec<String>,
    /// Lines (1-based) that contributed nothing to the title or the items: page furniture,
    /// bylines, garbled runs and unnumbered body paragraphs. A line that did contribute but had
    /// a page marker or garbled run cut out lists that fragment instead.
    pub dropped_lines: Vec<(usize, String)>,
}

/// Why a document could not be turned into items.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("the document is empty: paste or upload the full text of the notice or minutes")]
    Empty,
    #[error(
        "the document is {bytes} bytes, over the {limit}-byte limit: import it in parts, \
         or only the part that lists the items"
    )]
    TooLarge { bytes: usize, limit: usize },
    #[error(
        "no numbered items (一、 (一) 1. (1) ① 一是) were found: check that this is a \
         rectification notice or meeting minutes and that its numbering survived the copy"
    )]
    NoItems,
    #[error(
        "the input contains binary data at byte {offset}: save the document as plain UTF-8 text \
         (.txt) first; .docx, .pdf and .xlsx files cannot be read directly"
    )]
    Binary { offset: usize },
}

/// Parses the text of an official document into a draft tree of items.
///
/// Pure: no I/O. See the module documentation for the rules.
///
/// ```
/// use rectify_import::{Level, parse_document};
///
/// let text = "3.关于发展理念问题\n(1)着力解决稳经济政策不扎实问题\n一是落实政策。二是加强招引。";
/// let doc = parse_document(text).unwrap();
/// let problem = &doc.items[0].children[0];
/// assert_eq!(problem.number, "3.(1)");
/// assert_eq!(problem.children[1].number, "3.(1).二");
/// assert_eq!(problem.children[1].title, "加强招引");
/// assert_eq!(problem.children[1].level, Level::Inline);
/// ```
pub fn parse_document(text: &str) -> Result<ParsedDocument, DocError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(DocError::TooLarge {
            bytes: text.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    if let Some(offset) = find_binary(text) {
        return Err(DocError::Binary { offset });
    }
    if text.chars().all(|c| c.is_whitespace() || c == '\u{feff}') {
        return Err(DocError::Empty);
    }
    let mut parser = Parser::new(split_lines(text));
    parser.run();
    let doc = parser.finish();
    if doc.items.is_empty() {
        return Err(DocError::NoItems);
    }
    Ok(doc)
}

// ---------------------------------------------------------------------------------------------
// Input checks and lines

/// Byte offset of the first control character that plain text does not contain, or of the
/// first replacement character when many of them show a failed decoding.
fn find_binary(text: &str) -> Option<usize> {
    let mut replacements = 0usize;
    let mut first_replacement = None;
    let mut chars = 0usize;
    for (offset, c) in text.char_indices() {
        chars += 1;
        if c == '\u{fffd}' {
            replacements += 1;
            first_replacement.get_or_insert(offset);
        } else if c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{0b}' | '\u{0c}') {
            return Some(offset);
        }
    }
    if replacements >= 8 && replacements * 100 >= chars {
        first_replacement
    } else {
        None
    }
}

/// Splits on `\n`, `\r\n` and a lone `\r`, the way an editor numbers lines.
fn split_lines(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut current = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => lines.push(std::mem::take(&mut current)),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    lines.push(current);
    lines
        .into_iter()
        .enumerate()
        .map(|(i, chars)| Line::clean(i + 1, &chars))
        .collect()
}

struct Line {
    /// 1-based line number.
    no: usize,
    /// The line as written, trimmed, for the dropped-lines report.
    raw: String,
    /// The line with page markers, bullets and garbled runs removed, trimmed.
    orig: Vec<char>,
    /// `orig` with each character normalised by [`norm`]; same length.
    norm: Vec<char>,
    /// Noise cut out of a line that is otherwise kept.
    fragments: Vec<String>,
    /// Whether the line contributed to the title or the items.
    used: bool,
}

impl Line {
    fn clean(no: usize, chars: &[char]) -> Line {
        let chars: Vec<char> = chars.iter().copied().filter(|&c| c != '\u{feff}').collect();
        let raw: String = trim(&chars).iter().collect();
        let mut fragments = Vec::new();
        let mut orig = remove_page_markers(&chars, &mut fragments);
        loop {
            let before = orig.len();
            orig = trim(&orig).to_vec();
            orig = strip_bullet(&orig).to_vec();
            orig = strip_garbled_start(&orig, &mut fragments);
            if orig.len() == before {
                break;
            }
        }
        let norm = orig.iter().map(|&c| norm(c)).collect();
        Line {
            no,
            raw,
            orig,
            norm,
            fragments,
            used: false,
        }
    }
}

/// Removes `(上接第一版)`, `(下转第三版)`, `(接上页)` and similar markers anywhere in the line.
fn remove_page_markers(chars: &[char], fragments: &mut Vec<String>) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if matches!(norm(chars[i]), '(' | '【' | '〔' | '[')
            && let Some(len) = page_marker_len(&chars[i..])
        {
            fragments.push(chars[i..i + len].iter().collect());
            i += len;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Length of a page marker starting at `chars[0]` (an opening bracket), if it is one.
fn page_marker_len(chars: &[char]) -> Option<usize> {
    let close = chars
        .iter()
        .take(15)
        .position(|&c| matches!(norm(c), ')' | '】' | '〕' | ']'))?;
    let inner: Vec<char> = chars[1..close]
        .iter()
        .copied()
        .filter(|&c| !is_space(c))
        .collect();
    let is_marker = (1..=12).contains(&inner.len())
        && inner.iter().any(|c| matches!(c, '接' | '转' | '续'))
        && inner.last().is_some_and(|c| matches!(c, '版' | '页'));
    is_marker.then_some(close + 1)
}

/// Strips one leading list bullet (`- `, `• `, `●` …).
fn strip_bullet(chars: &[char]) -> &[char] {
    let Some(&first) = chars.first() else {
        return chars;
    };
    let next_is_space = chars.get(1).is_some_and(|&c| is_space(c));
    let is_bullet = match norm(first) {
        '-' | '*' | '+' | '–' | '—' => next_is_space,
        '•' | '·' | '●' | '○' | '■' | '□' | '▪' | '◆' | '◇' | '►' | '▶' | '➢' | '➤' | '√' | '✓' => {
            true
        }
        _ => false,
    };
    if is_bullet { &chars[1..] } else { chars }
}

/// Strips a garbled ASCII run such as `(175.)` or `[3]` at the start of the line. `(12)` is a
/// heading and stays.
fn strip_garbled_start(chars: &[char], fragments: &mut Vec<String>) -> Vec<char> {
    let Some(&open) = chars.first() else {
        return Vec::new();
    };
    let open = norm(open);
    if open != '(' && open != '[' {
        return chars.to_vec();
    }
    let Some(close) = chars
        .iter()
        .take(14)
        .position(|&c| matches!(norm(c), ')' | ']'))
    else {
        return chars.to_vec();
    };
    let inner: Vec<char> = chars[1..close].iter().map(|&c| norm(c)).collect();
    let garbled = !inner.is_empty()
        && inner
            .iter()
            .all(|c| c.is_ascii() && !c.is_ascii_alphabetic() && *c != '(')
        && inner.iter().any(|c| !c.is_ascii_whitespace())
        && !(open == '(' && inner.iter().all(char::is_ascii_digit));
    if !garbled {
        return chars.to_vec();
    }
    fragments.push(chars[..=close].iter().collect());
    chars[close + 1..].to_vec()
}

// ---------------------------------------------------------------------------------------------
// Characters

/// Maps full-width ASCII forms (`（１．，：`) to ASCII and every kind of space to `' '`, so
/// that both forms match the same way. Titles keep the characters as written.
fn norm(c: char) -> char {
    match c {
        '\u{3000}' | '\u{00a0}' | '\t' | '\u{0b}' | '\u{0c}' | '\u{2028}' | '\u{2029}' => ' ',
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
        _ => c,
    }
}

fn is_space(c: char) -> bool {
    norm(c) == ' ' || c.is_whitespace()
}

fn trim(chars: &[char]) -> &[char] {
    let start = chars
        .iter()
        .position(|&c| !is_space(c))
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |e| e + 1);
    &chars[start..end.max(start)]
}

fn skip_spaces(n: &[char], mut pos: usize) -> usize {
    while pos < n.len() && n[pos] == ' ' {
        pos += 1;
    }
    pos
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{f900}'..='\u{faff}'
        | '\u{20000}'..='\u{2ffff}' | '〇')
}

/// Sentence punctuation that makes a line read as prose rather than as a title.
fn is_prose_punct(c: char) -> bool {
    matches!(c, '。' | ',' | ';' | ':' | '、' | '!' | '?')
}

fn starts_with(n: &[char], pos: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| n.get(pos + k) == Some(&c))
}

fn ends_with(n: &[char], s: &str) -> bool {
    let len = s.chars().count();
    n.len() >= len && starts_with(n, n.len() - len, s)
}

// ---------------------------------------------------------------------------------------------
// Numerals and numbering marks

fn cjk_digit(c: char) -> Option<u32> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn is_cjk_numeral(c: char) -> bool {
    cjk_digit(c).is_some() || c == '十' || c == '百'
}

/// Parses a Chinese numeral from 1 to 999 in its standard form (`十二`, `二十一`, `一百零五`).
fn parse_cjk_number(s: &[char]) -> Option<u32> {
    let digit = |i: usize| s.get(i).and_then(|&c| cjk_digit(c)).filter(|d| *d > 0);
    let mut total = 0;
    let mut i = 0;
    if let Some(d) = digit(0)
        && s.get(1) == Some(&'百')
    {
        total += d * 100;
        i = 2;
        if matches!(s.get(i), Some('零' | '〇')) {
            i += 1;
        }
    }
    if s.get(i) == Some(&'十') {
        total += 10;
        i += 1;
    } else if let Some(d) = digit(i)
        && s.get(i + 1) == Some(&'十')
    {
        total += d * 10;
        i += 2;
    }
    if let Some(d) = digit(i) {
        total += d;
        i += 1;
    }
    (i == s.len() && total > 0).then_some(total)
}

fn cjk_number_text(value: u32) -> String {
    const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    let digit = |d: u32| DIGITS[(d % 10) as usize];
    match value {
        0..=9 => digit(value).to_string(),
        10..=19 => format!(
            "十{}",
            if value == 10 {
                String::new()
            } else {
                digit(value).to_string()
            }
        ),
        _ => {
            let units = if value.is_multiple_of(10) {
                String::new()
            } else {
                digit(value).to_string()
            };
            format!("{}十{}", digit(value / 10), units)
        }
    }
}

#[derive(Debug, Clone)]
struct Marker {
    level: Level,
    value: u32,
    /// The number segment as written, without punctuation: `三`, `(一)`, `1`, `(1)`, `①`.
    segment: String,
    /// Index just past the mark.
    end: usize,
}

fn numeral_run(n: &[char], pos: usize) -> usize {
    n[pos.min(n.len())..]
        .iter()
        .take_while(|&&c| is_cjk_numeral(c))
        .count()
}

fn ascii_digit_run(n: &[char], pos: usize) -> usize {
    n[pos.min(n.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count()
}

/// Recognises a numbering mark at `n[pos]` (normalised characters).
fn parse_marker(n: &[char], pos: usize) -> Option<Marker> {
    let c = *n.get(pos)?;
    if let Some(marker) = single_char_marker(c, pos) {
        return Some(marker);
    }
    if c == '(' {
        let start = pos + 1;
        let run = numeral_run(n, start);
        if run > 0 && n.get(start + run) == Some(&')') {
            let value = parse_cjk_number(&n[start..start + run])?;
            let written: String = n[start..start + run].iter().collect();
            return Some(Marker {
                level: Level::Section,
                value,
                segment: format!("({written})"),
                end: start + run + 1,
            });
        }
        let digits = ascii_digit_run(n, start);
        if (1..=3).contains(&digits) && n.get(start + digits) == Some(&')') {
            let written: String = n[start..start + digits].iter().collect();
            let value = written.parse::<u32>().ok().filter(|v| *v > 0)?;
            return Some(Marker {
                level: Level::Sub,
                value,
                segment: format!("({written})"),
                end: start + digits + 1,
            });
        }
        return None;
    }
    if c.is_ascii_digit() {
        let digits = ascii_digit_run(n, pos);
        let delimiter = *n.get(pos + digits)?;
        let next_is_digit = n.get(pos + digits + 1).is_some_and(char::is_ascii_digit);
        if digits > 3 || !matches!(delimiter, '.' | '、') || next_is_digit {
            return None;
        }
        let written: String = n[pos..pos + digits].iter().collect();
        let value = written.parse::<u32>().ok().filter(|v| *v > 0)?;
        return Some(Marker {
            level: Level::Point,
            value,
            segment: written,
            end: pos + digits + 1,
        });
    }
    let run = numeral_run(n, pos);
    if run == 0 {
        return None;
    }
    let value = parse_cjk_number(&n[pos..pos + run])?;
    let written: String = n[pos..pos + run].iter().collect();
    let after = pos + run;
    match n.get(after) {
        Some('、') => {
            // `一、二级公路`, `二、三产业`: an enumeration, not a heading.
            let next = after + 1;
            let next_run = numeral_run(n, next);
            let next_value = n[next..next + next_run]
                .iter()
                .all(|c| !matches!(c, '零' | '〇'))
                .then(|| parse_cjk_number(&n[next..next + next_run]))
                .flatten();
            if next_value == Some(value + 1) {
                return None;
            }
            Some(Marker {
                level: Level::Chapter,
                value,
                segment: written,
                end: after + 1,
            })
        }
        Some(&word @ ('是' | '要')) if run <= 3 => {
            let follower = n.get(after + 1).copied().unwrap_or(' ');
            // Words such as `三要素`, `一要求`, `一是否`.
            const AFTER_YAO: &str = "素求点件务领害员项闻紧旨义职塞冲道案犯事";
            let is_word = match word {
                '是' => matches!(follower, '否' | '非'),
                _ => AFTER_YAO.contains(follower),
            };
            (!is_word).then_some(Marker {
                level: Level::Inline,
                value,
                segment: written,
                end: after + 1,
            })
        }
        _ => None,
    }
}

fn single_char_marker(c: char, pos: usize) -> Option<Marker> {
    let code = c as u32;
    let (level, value, segment) = match c {
        '①'..='⑳' => (Level::Circled, code - 0x245f, c.to_string()),
        '㉑'..='㉟' => (Level::Circled, code - 0x3251 + 21, c.to_string()),
        '㊱'..='㊿' => (Level::Circled, code - 0x32b1 + 36, c.to_string()),
        '⑴'..='⒇' => {
            let value = code - 0x2473;
            (Level::Sub, value, format!("({value})"))
        }
        '⒈'..='⒛' => {
            let value = code - 0x2487;
            (Level::Point, value, value.to_string())
        }
        '㈠'..='㈩' => {
            let value = code - 0x321f;
            (
                Level::Section,
                value,
                format!("({})", cjk_number_text(value)),
            )
        }
        _ => return None,
    };
    Some(Marker {
        level,
        value,
        segment,
        end: pos + 1,
    })
}

// ---------------------------------------------------------------------------------------------
// Responsibility clauses and decisions

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Assignment {
    lead: Option<String>,
    leader: Option<String>,
    co: Vec<String>,
}

impl Assignment {
    fn is_empty(&self) -> bool {
        self.lead.is_none() && self.leader.is_none() && self.co.is_empty()
    }

    fn of(item: &DraftItem) -> Assignment {
        Assignment {
            lead: item.lead_unit.clone(),
            leader: item.leader.clone(),
            co: item.co_units.clone(),
        }
    }

    /// `self` where it says something, `base` elsewhere. Cooperating units go with the lead
    /// unit they were named with.
    fn over(&self, base: &Assignment) -> Assignment {
        let leader = self.leader.clone().or_else(|| base.leader.clone());
        if self.lead.is_some() {
            return Assignment {
                lead: self.lead.clone(),
                leader,
                co: self.co.clone(),
            };
        }
        Assignment {
            lead: base.lead.clone(),
            leader,
            co: if self.co.is_empty() {
                base.co.clone()
            } else {
                self.co.clone()
            },
        }
    }
}

struct Clause {
    assignment: Assignment,
    /// Index just past the clause and its delimiter.
    end: usize,
    /// Index of the clause's last delimiter (or of the line end): the clause text is
    /// `start..text_end`.
    text_end: usize,
    /// Whether the clause ended with a colon.
    colon: bool,
}

/// Parses a responsibility clause at `start`: comma-separated parts such as `周诚同志牵头`,
/// `区生态环境分局负责`, `区城管局负责、各相关镇街配合`, `相关单位配合`.
fn parse_clause(orig: &[char], n: &[char], start: usize) -> Option<Clause> {
    let mut assignment = Assignment::default();
    let mut matched = None;
    let mut p = start;
    while p < n.len() {
        let q = (p..n.len())
            .find(|&i| matches!(n[i], ',' | ':'))
            .unwrap_or(n.len());
        if !apply_clause_part(&orig[p..q], &mut assignment) {
            break;
        }
        let colon = n.get(q) == Some(&':');
        matched = Some(Clause {
            assignment: Assignment::default(),
            end: (q + 1).min(n.len()),
            text_end: q,
            colon,
        });
        if colon {
            break;
        }
        p = q + 1;
    }
    matched.map(|clause| Clause {
        assignment,
        ..clause
    })
}

fn apply_clause_part(part: &[char], assignment: &mut Assignment) -> bool {
    let part = trim(part);
    let part = part.strip_prefix(&['由']).unwrap_or(part);
    let normed: Vec<char> = part.iter().map(|&c| norm(c)).collect();
    if part.is_empty()
        // room for the keywords around the name (`牵头负责`, `协助配合`)
        || part.len() > MAX_RESPONSIBLE_CHARS + 6
        || normed
            .iter()
            .any(|&c| matches!(c, '。' | ';' | '!' | '?' | '(' | ')'))
    {
        return false;
    }
    let text: String = part.iter().collect();
    // `区城管局负责、各相关镇街配合`
    if let Some((lead, rest)) = text.split_once("负责、") {
        let Some(co) = strip_any_suffix(rest, &["配合", "协助", "参与"]) else {
            return false;
        };
        let (Some(lead), co_units) = (responsible_name(lead), split_units(co)) else {
            return false;
        };
        if co_units.is_empty() {
            return false;
        }
        assignment.lead = Some(lead);
        assignment.co = co_units;
        return true;
    }
    if let Some(who) = strip_any_suffix(&text, &["牵头负责", "负总责", "负责", "牵头"]) {
        let Some(name) = responsible_name(who) else {
            return false;
        };
        if is_person(who) {
            assignment.leader = Some(name);
        } else if assignment.lead.is_none() {
            assignment.lead = Some(name);
        } else {
            assignment.co.push(name);
        }
        return true;
    }
    if let Some(co) = strip_any_suffix(&text, &["协助配合", "配合", "协助", "协同", "参与"])
    {
        let units = split_units(co);
        if units.is_empty() {
            return false;
        }
        assignment.co.extend(units);
        return true;
    }
    false
}

fn strip_any_suffix<'a>(text: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    suffixes.iter().find_map(|s| text.strip_suffix(s))
}

/// A unit or person name as written, without `同志`; `None` when it is empty, too long, or reads
/// as part of a sentence (`明确专人负责`, `要负责`).
fn responsible_name(text: &str) -> Option<String> {
    const VERBS: [&str; 12] = [
        "明确", "落实", "压实", "加强", "建立", "确保", "指定", "安排", "实行", "坚持", "专人",
        "谁",
    ];
    let text = text.trim();
    let text = text.strip_suffix("同志").unwrap_or(text).trim();
    let len = text.chars().count();
    let sentence_like = text.contains(['要', '的']) || VERBS.iter().any(|v| text.starts_with(v));
    ((1..=MAX_RESPONSIBLE_CHARS).contains(&len) && !sentence_like).then(|| text.to_string())
}

fn split_units(text: &str) -> Vec<String> {
    text.split('、')
        .filter_map(responsible_name)
        .collect::<Vec<_>>()
}

/// `周诚同志`, `周诚`, `周诚、夏鹏` name people; `区城管局`, `各相关镇街` name units.
fn is_person(text: &str) -> bool {
    let text = text.trim();
    if text.ends_with("同志") {
        return true;
    }
    const UNIT_ENDINGS: &str = "局委办部院心镇街司室所处站队会厅组团社校馆区县市府署行科";
    text.split('、').all(|name| {
        let chars: Vec<char> = name.chars().collect();
        (2..=4).contains(&chars.len())
            && chars.iter().all(|&c| is_cjk(c))
            && chars.last().is_some_and(|&c| !UNIT_ENDINGS.contains(c))
    })
}

const DECISION_KEYWORDS: [&str; 7] = [
    "会议研究确定",
    "会议研究决定",
    "会议确定",
    "会议决定",
    "会议明确",
    "会议议定",
    "经研究确定",
];

fn decision_keyword_len(n: &[char], pos: usize) -> Option<usize> {
    DECISION_KEYWORDS
        .iter()
        .find(|k| starts_with(n, pos, k))
        .map(|k| k.chars().count())
}

/// A decision starts with a keyword (`会议确定`), or, at the start of a line, is a bare clause
/// that introduces items (`周诚同志牵头,区生态环境分局负责:`).
fn is_decision_start(line: &Line, pos: usize, at_line_start: bool) -> bool {
    if decision_keyword_len(&line.norm, pos).is_some() {
        return true;
    }
    at_line_start
        && parse_clause(&line.orig, &line.norm, pos)
            .is_some_and(|c| c.colon || skip_spaces(&line.norm, c.end) >= line.norm.len())
}

// ---------------------------------------------------------------------------------------------
// Noise and titles

fn is_noise(n: &[char]) -> bool {
    if !n.iter().any(|c| c.is_alphanumeric()) || !n.iter().any(|&c| is_cjk(c)) {
        return true;
    }
    let page_number = n.iter().any(|c| matches!(c, '页' | '版'))
        && n.iter().all(|&c| {
            c.is_ascii_digit()
                || is_cjk_numeral(c)
                || matches!(
                    c,
                    '第' | '页' | '版' | '共' | '/' | '-' | '—' | '_' | '·' | ' '
                )
        });
    let date = n.contains(&'年')
        && n.iter().all(|&c| {
            c.is_ascii_digit()
                || is_cjk_numeral(c)
                || matches!(c, '年' | '月' | '日' | '号' | '-' | '/' | '.' | ' ')
        });
    page_number || date
}

const TITLE_ENDINGS: [&str; 21] = [
    "通报", "通知", "纪要", "决定", "意见", "报告", "方案", "办法", "清单", "台账", "批复", "请示",
    "函", "要点", "规划", "计划", "细则", "公告", "通告", "决议", "汇报",
];

fn has_title_ending(n: &[char]) -> bool {
    TITLE_ENDINGS.iter().any(|e| ends_with(n, e))
}

fn is_title_candidate(n: &[char]) -> bool {
    (4..=80).contains(&n.len())
        && !n.iter().any(|&c| is_prose_punct(c))
        && (starts_with(n, 0, "关于") || has_title_ending(n))
}

/// End of the first sentence in `n[start..limit]`: the index of its `。；！？` or colon.
fn sentence_end(n: &[char], start: usize, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    for i in start..limit.min(n.len()) {
        match n[i] {
            '《' => depth += 1,
            '》' => depth = depth.saturating_sub(1),
            '。' | ';' | '!' | '?' if depth == 0 => return Some(i),
            ':' if depth == 0 => {
                let between_digits = i > 0
                    && n[i - 1].is_ascii_digit()
                    && n.get(i + 1).is_some_and(char::is_ascii_digit);
                if !between_digits {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Cleans a title: whitespace and line breaks inside Chinese text removed, a single space kept
/// between ASCII words, leading and trailing punctuation (including `。`) removed.
fn clean_title(chars: &[char]) -> String {
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let mut pending_space = false;
    for &c in chars {
        if is_space(c) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space
            && out.last().is_some_and(char::is_ascii_alphanumeric)
            && c.is_ascii_alphanumeric()
        {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    let is_edge_punct =
        |c: char| matches!(norm(c), '。' | ';' | ',' | ':' | '、' | '!' | '?' | '.');
    while out.last().is_some_and(|&c| is_edge_punct(c)) {
        out.pop();
    }
    let lead = out.iter().take_while(|&&c| is_edge_punct(c)).count();
    out[lead..].iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The parser

/// What starts at a position: a heading or a decision.
enum Unit {
    Heading(Marker),
    Decision,
}

/// Why a position may start a unit inside running text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Boundary {
    Sentence,
    Comma,
    Colon,
}

struct Open {
    item: DraftItem,
    value: u32,
    id: usize,
}

struct Decision {
    assignment: Assignment,
    /// The decision ended with a colon or a line end: numbered items follow.
    expects_items: bool,
    /// The open item the decision sits under (id, level); `None` at the top.
    anchor: Option<(usize, Level)>,
    /// Id of the first item created after the decision.
    first_id: usize,
    /// Level of the first item that followed it; a higher heading ends the decision.
    governs: Option<Level>,
    applied: usize,
}

struct Parser {
    lines: Vec<Line>,
    next_line: usize,
    stack: Vec<Open>,
    roots: Vec<DraftItem>,
    decision: Option<Decision>,
    next_id: usize,
    title: Option<String>,
    started: bool,
}

/// Where the next unit starts: line index, character index, unit.
type Next = Option<(usize, usize, Unit)>;

impl Parser {
    fn new(lines: Vec<Line>) -> Parser {
        Parser {
            lines,
            next_line: 0,
            stack: Vec::new(),
            roots: Vec::new(),
            decision: None,
            next_id: 0,
            title: None,
            started: false,
        }
    }

    fn run(&mut self) {
        while self.next_line < self.lines.len() {
            let li = self.next_line;
            self.next_line += 1;
            self.process_line(li);
        }
        self.end_decision();
        while !self.stack.is_empty() {
            self.pop();
        }
    }

    fn finish(self) -> ParsedDocument {
        let mut dropped_lines = Vec::new();
        for line in self.lines {
            if line.raw.is_empty() {
                continue;
            }
            if line.used {
                dropped_lines.extend(line.fragments.into_iter().map(|f| (line.no, f)));
            } else {
                dropped_lines.push((line.no, line.raw));
            }
        }
        ParsedDocument {
            title: self.title,
            items: self.roots,
            unknown_units: Vec::new(),
            dropped_lines,
        }
    }

    fn unit_at_line_start(&self, li: usize) -> Option<Unit> {
        let line = &self.lines[li];
        if let Some(marker) = parse_marker(&line.norm, 0) {
            return Some(Unit::Heading(marker));
        }
        is_decision_start(line, 0, true).then_some(Unit::Decision)
    }

    fn process_line(&mut self, li: usize) {
        if self.lines[li].norm.is_empty() {
            return;
        }
        if let Some(unit) = self.unit_at_line_start(li) {
            self.process_units(li, 0, unit);
            return;
        }
        if is_noise(&self.lines[li].norm) {
            return;
        }
        if !self.started && self.title.is_none() && self.try_title(li) {
            return;
        }
        if let Some((pos, unit)) = self.find_split(li, 0) {
            self.process_units(li, pos, unit);
        }
    }

    fn process_units(&mut self, li: usize, pos: usize, unit: Unit) {
        let mut next = Some((li, pos, unit));
        while let Some((li, pos, unit)) = next {
            next = match unit {
                Unit::Heading(marker) => self.heading(li, marker),
                Unit::Decision => self.decision(li, pos),
            };
        }
    }

    /// The document title, possibly over two lines (`关于…整改` / `进展情况的通报`).
    fn try_title(&mut self, li: usize) -> bool {
        let line = &self.lines[li];
        if !is_title_candidate(&line.norm) {
            return false;
        }
        let mut chars = line.orig.clone();
        if starts_with(&line.norm, 0, "关于")
            && !has_title_ending(&line.norm)
            && let Some(next) = self.lines.get(li + 1)
            && next.norm.len() <= 40
            && !next.norm.iter().any(|&c| is_prose_punct(c))
            && has_title_ending(&next.norm)
            && parse_marker(&next.norm, 0).is_none()
        {
            chars.push('\n');
            chars.extend(&next.orig);
            self.lines[li + 1].used = true;
            self.next_line = self.next_line.max(li + 2);
        }
        self.title = Some(clean_title(&chars));
        self.lines[li].used = true;
        true
    }

    /// The first place in `lines[li]` from `from` where running text starts a unit.
    fn find_split(&self, li: usize, from: usize) -> Option<(usize, Unit)> {
        let n = &self.lines[li].norm;
        let mut depth = 0usize;
        for i in from..n.len() {
            let boundary = match n[i] {
                '《' => {
                    depth += 1;
                    None
                }
                '》' => {
                    depth = depth.saturating_sub(1);
                    None
                }
                '。' | ';' | '!' | '?' => Some(Boundary::Sentence),
                ',' => Some(Boundary::Comma),
                ':' => Some(Boundary::Colon),
                _ => None,
            };
            if depth > 0 {
                continue;
            }
            if let Some(boundary) = boundary {
                let q = skip_spaces(n, i + 1);
                if let Some(unit) = self.split_unit(li, q, boundary) {
                    return Some((q, unit));
                }
            }
        }
        None
    }

    fn split_unit(&self, li: usize, pos: usize, boundary: Boundary) -> Option<Unit> {
        let n = &self.lines[li].norm;
        if boundary == Boundary::Sentence && decision_keyword_len(n, pos).is_some() {
            return Some(Unit::Decision);
        }
        let marker = parse_marker(n, pos)?;
        let top = self.stack.last();
        let continues = if marker.level == Level::Inline {
            match top {
                Some(t) if t.item.level == Level::Inline => {
                    boundary != Boundary::Colon && marker.value == t.value + 1
                }
                _ => boundary != Boundary::Comma && marker.value == 1,
            }
        } else {
            match boundary {
                Boundary::Sentence => self
                    .stack
                    .iter()
                    .rev()
                    .find(|o| o.item.level == marker.level)
                    .is_some_and(|o| marker.value == o.value + 1),
                Boundary::Colon => {
                    marker.value == 1 && top.is_none_or(|t| t.item.level < marker.level)
                }
                Boundary::Comma => false,
            }
        };
        continues.then_some(Unit::Heading(marker))
    }

    /// A heading at `lines[li]`, mark `marker`. Returns the next unit, if one follows.
    fn heading(&mut self, li: usize, marker: Marker) -> Next {
        self.started = true;
        self.lines[li].used = true;
        let line = &self.lines[li];
        let len = line.norm.len();
        let text_start = skip_spaces(&line.norm, marker.end);
        let clause = parse_clause(&line.orig, &line.norm, text_start);
        let (own, body_start, clause_title) = match clause {
            Some(clause) => (
                clause.assignment,
                skip_spaces(&line.norm, clause.end),
                clean_title(&line.orig[text_start..clause.text_end]),
            ),
            None => (Assignment::default(), text_start, String::new()),
        };
        self.push(marker.level, marker.value, marker.segment, own, line.no);

        // `(一)周诚同志牵头,区生态环境分局负责:1.…` — a list follows the clause directly.
        if !clause_title.is_empty()
            && let Some(next) = parse_marker(&self.lines[li].norm, body_start)
        {
            self.set_title(clause_title);
            return Some((li, body_start, Unit::Heading(next)));
        }

        let split = self.find_split(li, body_start);
        let limit = split.as_ref().map_or(len, |(p, _)| *p);
        let (title, continuation) = self.title_from(li, body_start, limit, marker.level);
        self.set_title(if title.is_empty() {
            clause_title
        } else {
            title
        });
        if let Some((pos, unit)) = split {
            return Some((li, pos, unit));
        }
        let (line, pos) = continuation?;
        self.find_split(line, pos).map(|(p, unit)| (line, p, unit))
    }

    fn set_title(&mut self, title: String) {
        if let Some(top) = self.stack.last_mut() {
            top.item.title = title;
        }
    }

    /// The title of a heading whose text runs over `lines[li][start..limit]`. When the
    /// sentence continues on later lines they are consumed; the second value is then where the
    /// rest of the last consumed line starts.
    fn title_from(
        &mut self,
        li: usize,
        start: usize,
        limit: usize,
        level: Level,
    ) -> (String, Option<(usize, usize)>) {
        let line = &self.lines[li];
        if let Some(end) = sentence_end(&line.norm, start, limit) {
            return (clean_title(&line.orig[start..end]), None);
        }
        let text = line.orig[start..limit].to_vec();
        if limit < line.norm.len() {
            return (clean_title(&text), None);
        }
        let sentence_like = level == Level::Inline || line.norm[start..].contains(&',');
        if text.is_empty() || sentence_like {
            // A measure's sentence may cross the blank lines of a page layout; a numbered
            // heading's only continues on the very next line.
            let max_blanks = match level {
                Level::Inline => 2,
                _ if text.is_empty() => 1,
                _ => 0,
            };
            if let Some((joined, last, rest)) = self.continue_sentence(li, &text, max_blanks) {
                self.consume_through(li, last);
                return (clean_title(&joined), Some((last, rest)));
            }
            if text.is_empty()
                && let Some(next) = self.lines.get(li + 1)
                && !next.norm.is_empty()
                && !self.starts_unit_or_noise(li + 1)
            {
                let title = clean_title(&next.orig);
                self.consume_through(li, li + 1);
                return (title, None);
            }
            return (clean_title(&text), None);
        }
        // A title-like heading broken over two lines: `(4)着力解决生态文明建设成效` / `不明显问题`.
        if let Some(next) = self.lines.get(li + 1)
            && !next.norm.is_empty()
            && next.norm.len() <= MAX_TITLE_CONTINUATION_CHARS
            && !next.norm.iter().any(|&c| is_prose_punct(c))
            && !self.starts_unit_or_noise(li + 1)
        {
            let mut joined = text;
            joined.push('\n');
            joined.extend(&next.orig);
            self.consume_through(li, li + 1);
            return (clean_title(&joined), None);
        }
        (clean_title(&text), None)
    }

    fn starts_unit_or_noise(&self, li: usize) -> bool {
        self.unit_at_line_start(li).is_some() || is_noise(&self.lines[li].norm)
    }

    /// Joins the lines after `li` to `text` up to the first sentence end, crossing at most
    /// `max_blanks` blank lines at a time. Returns the joined text, the last line used and where
    /// its rest starts.
    fn continue_sentence(
        &self,
        li: usize,
        text: &[char],
        max_blanks: usize,
    ) -> Option<(Vec<char>, usize, usize)> {
        let mut joined = text.to_vec();
        let mut blanks = 0;
        for k in li + 1..self.lines.len() {
            let line = &self.lines[k];
            if line.norm.is_empty() {
                blanks += 1;
                if blanks > max_blanks {
                    return None;
                }
                continue;
            }
            blanks = 0;
            if self.starts_unit_or_noise(k) {
                return None;
            }
            joined.push('\n');
            if let Some(end) = sentence_end(&line.norm, 0, line.norm.len()) {
                joined.extend(&line.orig[..end]);
                return (joined.len() <= MAX_JOINED_TITLE_CHARS).then_some((joined, k, end + 1));
            }
            joined.extend(&line.orig);
            if joined.len() > MAX_JOINED_TITLE_CHARS {
                return None;
            }
        }
        None
    }

    fn consume_through(&mut self, from: usize, last: usize) {
        for line in &mut self.lines[from..=last] {
            line.used = true;
        }
        self.next_line = self.next_line.max(last + 1);
    }

    /// A decision at `lines[li][pos..]`. Returns the next unit, if one follows.
    fn decision(&mut self, li: usize, pos: usize) -> Next {
        let line = &self.lines[li];
        let n = &line.norm;
        let mut p = pos;
        if let Some(len) = decision_keyword_len(n, pos) {
            p = skip_spaces(n, pos + len);
            if matches!(n.get(p), Some(',' | ':')) {
                p += 1;
            }
            p = skip_spaces(n, p);
        }
        let clause = parse_clause(&line.orig, n, p);
        let (assignment, after) = match clause {
            Some(clause) => (clause.assignment, skip_spaces(n, clause.end)),
            None => (Assignment::default(), p),
        };
        let next_marker = parse_marker(n, after);
        let expects_items = after >= n.len() || next_marker.is_some();

        self.end_decision();
        if assignment.is_empty() && !expects_items {
            // `会议确定,根据…` without anyone responsible: running text.
            return self.find_split(li, after).map(|(p, unit)| (li, p, unit));
        }
        self.lines[li].used = true;
        // A decision is not part of a measure's text.
        while self
            .stack
            .last()
            .is_some_and(|o| o.item.level == Level::Inline)
        {
            self.pop();
        }
        self.decision = Some(Decision {
            assignment,
            expects_items,
            anchor: self.stack.last().map(|o| (o.id, o.item.level)),
            first_id: self.next_id,
            governs: None,
            applied: 0,
        });
        if let Some(marker) = next_marker {
            return Some((li, after, Unit::Heading(marker)));
        }
        self.find_split(li, after).map(|(p, unit)| (li, p, unit))
    }

    /// Ends the current decision; one that no item followed goes to the item it sits under.
    fn end_decision(&mut self) {
        let Some(decision) = self.decision.take() else {
            return;
        };
        if decision.applied > 0 || decision.assignment.is_empty() {
            return;
        }
        if let Some((anchor, _)) = decision.anchor
            && let Some(open) = self.stack.iter_mut().find(|o| o.id == anchor)
        {
            let merged = Assignment::of(&open.item).over(&decision.assignment);
            open.item.lead_unit = merged.lead;
            open.item.leader = merged.leader;
            open.item.co_units = merged.co;
        }
    }

    fn push(&mut self, level: Level, value: u32, segment: String, own: Assignment, line: usize) {
        if let Some(decision) = &self.decision {
            let ends = match decision.governs {
                Some(governed) => level < governed,
                None => {
                    !decision.expects_items
                        && decision.anchor.is_none_or(|(_, anchor)| level <= anchor)
                }
            };
            if ends {
                self.end_decision();
            }
        }
        while self.stack.last().is_some_and(|o| o.item.level >= level) {
            self.pop();
        }
        let parent = self
            .stack
            .last()
            .map(|o| Assignment::of(&o.item))
            .unwrap_or_default();
        let inherited = match &mut self.decision {
            Some(decision) => {
                decision.governs.get_or_insert(level);
                decision.applied += 1;
                let parent_has_it = self.stack.last().is_some_and(|o| o.id >= decision.first_id);
                if parent_has_it {
                    parent
                } else {
                    decision.assignment.over(&parent)
                }
            }
            None => parent,
        };
        let assignment = own.over(&inherited);
        let number = match self.stack.last() {
            Some(parent) => format!("{}.{}", parent.item.number, segment),
            None => segment,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.stack.push(Open {
            item: DraftItem {
                number,
                title: String::new(),
                level,
                lead_unit: assignment.lead,
                leader: assignment.leader,
                co_units: assignment.co,
                line,
                children: Vec::new(),
            },
            value,
            id,
        });
    }

    fn pop(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        if let Some(decision) = &mut self.decision
            && decision.anchor.is_some_and(|(id, _)| id == open.id)
        {
            decision.anchor = None;
        }
        match self.stack.last_mut() {
            Some(parent) => parent.item.children.push(open.item),
            None => self.roots.push(open.item),
        }
    }
}

#[cfg(test)]
mod tests;
