//! Parsers of single values and the serde glue that applies them while deserializing, so that
//! toml reports the line of a bad value. Every message says what to write instead.

use crate::EscalationStep;
use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use rectify_engine::{Lang, Offset};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Small enums written as lowercase strings.

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) {
                    return Ok($name::$variant);
                })+
                let choices = [$(concat!("\"", $text, "\"")),+];
                Err(format!(
                    "unknown {} `{}`; write one of {}",
                    $what,
                    t,
                    choices.join(", ")
                ))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// `mail.transport`.
    MailTransport, "mail transport", {
        /// Write each message as a `.eml` file into `mail.dir`.
        File => "file",
        /// Send through the SMTP server `mail.host:mail.port`.
        Smtp => "smtp",
    }
);

string_enum!(
    /// `mail.tls`.
    MailTls, "mail TLS mode", {
        /// Plain SMTP.
        None => "none",
        /// Upgrade with STARTTLS.
        StartTls => "starttls",
        /// TLS from the first byte (SMTPS).
        Tls => "tls",
    }
);

string_enum!(
    /// `log.format`.
    LogFormat, "log format", {
        Human => "human",
        Json => "json",
    }
);

string_enum!(
    /// Who an escalation step copies.
    CcTarget, "escalate cc", {
        /// The leader of the responsible unit.
        Leader => "leader",
        /// The rectification office.
        Office => "office",
    }
);

/// The database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

impl DatabaseBackend {
    /// `None` when the URL has neither a `sqlite:` nor a `postgres:`/`postgresql:` scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let lower = url.trim().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Some(DatabaseBackend::Sqlite)
        } else if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            Some(DatabaseBackend::Postgres)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Durations.

/// The longest duration accepted anywhere: a day. Anything longer is a typo.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `"500ms"`, `"30s"`, `"5m"` or `"1h"`. Zero and more than a day are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let how = "write a whole number followed by ms, s, m or h, e.g. \"30s\"";
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{t}` is not a duration; {how}"));
    }
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{t}` is too long; at most 24h"))?;
    let millis = match unit.trim() {
        "ms" => Some(count),
        "s" => count.checked_mul(1000),
        "m" | "min" => count.checked_mul(60_000),
        "h" => count.checked_mul(3_600_000),
        "" => return Err(format!("duration `{t}` has no unit; {how}")),
        _ => return Err(format!("duration `{t}` has an unknown unit; {how}")),
    };
    let duration = millis
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("duration `{t}` is too long; at most 24h"))?;
    if duration.is_zero() {
        return Err(format!("duration `{t}` is zero; {how}"));
    }
    Ok(duration)
}

/// Writes a duration in the largest unit that is exact: `"500ms"`, `"30s"`, `"5m"`, `"2h"`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms != 0 && ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

// ---------------------------------------------------------------------------------------------
// The send window.

/// `reminders.send_window`: reminders go out between `start` and `end`, local time, on working
/// days. `end` is after `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SendWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Default for SendWindow {
    fn default() -> Self {
        SendWindow {
            start: NaiveTime::from_hms_opt(8, 30, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl SendWindow {
    /// Whether `time` is inside the window (start inclusive, end exclusive).
    pub fn contains(&self, time: NaiveTime) -> bool {
        self.start <= time && time < self.end
    }
}

impl FromStr for SendWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("send_window `{t}` is not HH:MM-HH:MM; write e.g. 08:30-18:00");
        let (a, b) = t.split_once('-').ok_or_else(bad)?;
        let parse = |x: &str| {
            let x = x.trim();
            if x.len() != 5 {
                return None;
            }
            NaiveTime::parse_from_str(x, "%H:%M").ok()
        };
        let (start, end) = match (parse(a), parse(b)) {
            (Some(start), Some(end)) => (start, end),
            _ => return Err(bad()),
        };
        if end <= start {
            let verb = if end == start {
                "ends when it starts"
            } else {
                "ends before it starts"
            };
            return Err(format!(
                "send_window {t} {verb}; write e.g. 08:30-18:00 (the end must be later on the same day)"
            ));
        }
        Ok(SendWindow { start, end })
    }
}

impl fmt::Display for SendWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl Serialize for SendWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SendWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks of single values.

pub(crate) fn parse_time_zone(text: &str) -> Result<Tz, String> {
    let t = text.trim();
    t.parse::<Tz>()
        .map_err(|_| format!("unknown time zone `{t}`; use an IANA name such as Asia/Shanghai"))
}

pub(crate) fn check_database_url(url: &str) -> Result<(), String> {
    let forms = "write sqlite://FILE (e.g. sqlite://rectify.db) or \
                 postgres://USER@HOST:5432/DB (postgresql:// works too)";
    let shown = redact_url(url);
    if url.trim() != url || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "database URL `{shown}` contains spaces; {forms}, with spaces in names written as %20"
        ));
    }
    match DatabaseBackend::of_url(url) {
        None if url.is_empty() => Err(format!("database URL is empty; {forms}")),
        None => Err(format!(
            "database URL `{shown}` is neither SQLite nor PostgreSQL; {forms}"
        )),
        Some(DatabaseBackend::Sqlite) => {
            let (path, query) = split_sqlite_url(url);
            let in_memory = query.is_some_and(|q| q.split('&').any(|p| p == "mode=memory"));
            if path.is_empty() && !in_memory {
                Err(format!(
                    "database URL `{shown}` names no SQLite file; write e.g. sqlite://rectify.db"
                ))
            } else {
                Ok(())
            }
        }
        Some(DatabaseBackend::Postgres) => {
            let rest = url.split_once(':').map(|(_, r)| r).unwrap_or_default();
            if !rest.starts_with("//") || rest.len() <= 2 {
                Err(format!(
                    "database URL `{shown}` has no host or database; write e.g. postgres://rectify@localhost:5432/rectify"
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Splits a `sqlite:` URL into its (still percent-encoded) path and its query (without `?`).
pub(crate) fn split_sqlite_url(url: &str) -> (&str, Option<&str>) {
    let scheme_len = "sqlite:".len();
    let rest = url.get(scheme_len..).unwrap_or_default();
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

/// The file of a `sqlite:` URL; `None` for other URLs and for `:memory:`.
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    if DatabaseBackend::of_url(url) != Some(DatabaseBackend::Sqlite) {
        return None;
    }
    let (path, _) = split_sqlite_url(url);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes the characters that would end or corrupt a file path inside a URL.
pub(crate) fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            ' ' => out.push_str("%20"),
            _ => out.push(c),
        }
    }
    out
}

/// Replaces the password of a URL with `***`: `postgres://user:secret@host/db` becomes
/// `postgres://user:***@host/db`, and a `password=` query parameter is hidden the same way.
/// URLs without a password come back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_query(url);
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    out.push_str(&redact_query(&rest[authority_len..]));
    out
}

/// Hides the value of `password=` query parameters.
fn redact_query(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_string();
    };
    let (head, query) = text.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => part.to_string(),
        })
        .collect();
    format!("{head}{}{fragment}", parts.join("&"))
}

pub(crate) fn check_mail_from(text: &str) -> Result<(), String> {
    let how = "write e.g. \"整改办 <zgb@example.gov.cn>\" or \"zgb@example.gov.cn\"";
    if text.contains(['\r', '\n']) {
        return Err(format!("mail.from contains a line break; {how}"));
    }
    let t = text.trim();
    let address = if let Some(open) = t.find('<') {
        let Some(inner) = t[open + 1..].strip_suffix('>') else {
            return Err(format!(
                "mail.from `{t}` has `<` without a closing `>` at the end; {how}"
            ));
        };
        if t[..open].contains(['<', '>', '@']) {
            return Err(format!(
                "mail.from `{t}` has a malformed display name; {how}"
            ));
        }
        inner.trim()
    } else {
        t
    };
    let bad = || format!("mail.from `{t}` is not an email address; {how}");
    if address
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return Err(bad());
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(bad());
    }
    Ok(())
}

pub(crate) fn check_cron(expr: &str) -> Result<(), String> {
    let e = expr.trim();
    let example = "e.g. \"0 */5 * * * *\" (every five minutes) or \"0 0 9 * * Mon-Fri\"";
    let fields = e.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "cron expression `{e}` has {fields} fields; write 6 or 7 fields, seconds first \
             (sec min hour day-of-month month day-of-week [year]), {example}"
        ));
    }
    cron::Schedule::from_str(e).map(|_| ()).map_err(|err| {
        // The parser's message repeats the expression with a caret; its last line is the reason.
        let text = err.to_string();
        let reason = text
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && *l != "^")
            .unwrap_or("unreadable");
        format!("`{e}` is not a valid cron expression: {reason}; write seconds first, {example}")
    })
}

pub(crate) fn check_log_level(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let how = "write trace, debug, info, warn, error or off, or directives such as \
               \"info,rectify=debug\"";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("log.level is empty; {how}"));
    }
    for directive in t.split(',') {
        let directive = directive.trim();
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => "",
            None => directive,
        };
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(format!("unknown log level `{directive}` in `{t}`; {how}"));
        }
    }
    Ok(())
}

pub(crate) fn check_env_name(text: &str) -> Result<(), String> {
    let ok = text.is_empty()
        || (text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !text.starts_with(|c: char| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mail.password_env `{text}` is not an environment variable name; write a name such \
             as \"RECTIFY_SMTP_PASSWORD\" (letters, digits, _), or \"\" for no password"
        ))
    }
}

pub(crate) fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| {
        format!(
            "http.listen `{t}` is not an IP address and port; write e.g. \"127.0.0.1:9100\", \
             or \"\" to turn the HTTP endpoint off"
        )
    })
}

pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    let bad = || format!("`{t}` is not a date; write YYYY-MM-DD, e.g. \"2026-12-31\"");
    if t.len() != 10 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())
}

pub(crate) fn check_escalation(steps: &[EscalationStep]) -> Result<(), String> {
    for (i, step) in steps.iter().enumerate() {
        if step.cc.is_empty() && !step.notice {
            return Err(format!(
                "escalate step {} (after = \"{}\") does nothing; give it cc = [\"leader\"] and/or \
                 notice = true, or remove it",
                i + 1,
                step.after
            ));
        }
    }
    for pair in steps.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.after.unit != b.after.unit {
            return Err(format!(
                "escalate steps mix working days and calendar days (\"{}\" then \"{}\"), so their \
                 order is unclear; write every `after` in the same unit, e.g. \"3wd\" then \"10wd\"",
                a.after, b.after
            ));
        }
        if b.after.count <= a.after.count {
            return Err(format!(
                "escalate steps must be strictly increasing in `after`, but \"{}\" follows \"{}\"; \
                 order them from the earliest, e.g. \"3wd\" then \"10wd\"",
                b.after, a.after
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// serde glue: `deserialize_with` and `serialize_with` helpers.

fn checked<'de, D, T>(d: D, check: impl FnOnce(String) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    check(s).map_err(de::Error::custom)
}

pub(crate) fn de_time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    checked(d, |s| parse_time_zone(&s))
}

pub(crate) fn de_lang<'de, D: Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
    checked(d, |s| {
        s.parse::<Lang>().map_err(|e| {
            e.replace(": use", "; write")
                .replace("`zh` or `en`", "\"zh\" or \"en\"")
        })
    })
}

pub(crate) fn de_dir<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    checked(d, |s| {
        if s.trim().is_empty() {
            Err(
                "the folder is empty; write a path such as \"evidence\" (relative paths are \
                 relative to the configuration file's folder)"
                    .to_string(),
            )
        } else {
            Ok(PathBuf::from(s))
        }
    })
}

pub(crate) fn ser_path<S: Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

pub(crate) fn de_database_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s| check_database_url(&s).map(|()| s))
}

fn de_ranged<'de, D, T>(d: D, min: T, max: T, key: &str, example: T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + fmt::Display + Copy,
{
    let v = T::deserialize(d)?;
    if v < min || v > max {
        return Err(de::Error::custom(format!(
            "{key} = {v} is out of range; write a number from {min} to {max}, e.g. {example}"
        )));
    }
    Ok(v)
}

pub(crate) fn de_pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    de_ranged(d, 1, 256, "pool_size", 8)
}

pub(crate) fn de_max_connections<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    de_ranged(d, 1, 100, "max_connections", 4)
}

pub(crate) fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    de_ranged(d, 1, 65535, "port", 25)
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    checked(d, |s| parse_duration(&s))
}

pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn de_positive_offset<'de, D: Deserializer<'de>>(d: D) -> Result<Offset, D::Error> {
    let o = Offset::deserialize(d)?;
    if o.count == 0 {
        return Err(de::Error::custom(format!(
            "\"{o}\" is zero; this interval must be at least one day, e.g. \"2wd\""
        )));
    }
    Ok(o)
}

pub(crate) fn de_escalation<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<EscalationStep>, D::Error> {
    let steps = Vec::<EscalationStep>::deserialize(d)?;
    check_escalation(&steps).map_err(de::Error::custom)?;
    Ok(steps)
}

pub(crate) fn de_mail_from<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s| check_mail_from(&s).map(|()| s.trim().to_string()))
}

pub(crate) fn de_env_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s| check_env_name(&s).map(|()| s))
}

pub(crate) fn de_cron<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s| check_cron(&s).map(|()| s.trim().to_string()))
}

pub(crate) fn de_log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s| check_log_level(&s).map(|()| s.trim().to_string()))
}

pub(crate) fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    checked(d, |s| parse_listen(&s))
}

pub(crate) fn ser_listen<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(addr) => s.collect_str(addr),
        None => s.serialize_str(""),
    }
}

/// A date written as a quoted string. (A bare TOML date reaches the visitor as a map and is
/// refused with the advice to quote it.)
struct DateVisitor;

impl<'de> Visitor<'de> for DateVisitor {
    type Value = NaiveDate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date in quotes, YYYY-MM-DD, e.g. \"2026-12-31\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NaiveDate, E> {
        parse_date(v).map_err(E::custom)
    }
}

struct Date(NaiveDate);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DateVisitor).map(Date)
    }
}

pub(crate) fn de_dates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
    let dates = Vec::<Date>::deserialize(d)?;
    Ok(dates.into_iter().map(|Date(x)| x).collect())
}

pub(crate) fn ser_dates<S: Serializer>(dates: &[NaiveDate], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(dates.iter().map(|x| x.format("%Y-%m-%d").to_string()))
}

pub(crate) fn de_years<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    let years = Vec::<i32>::deserialize(d)?;
    if let Some(y) = years.iter().find(|y| !(2000..=2100).contains(*y)) {
        return Err(de::Error::custom(format!(
            "covered year {y} is out of range; write four-digit years from 2000 to 2100, e.g. [2027]"
        )));
    }
    Ok(years)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "s",
            "30",
            "30x",
            "0s",
            "25h",
            "99999999999999999999s",
            "-1s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for text in ["500ms", "30s", "5m", "2h", "1500ms", "90s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn send_windows() {
        let w: SendWindow = "08:30-18:00".parse().unwrap();
        assert_eq!(w, SendWindow::default());
        assert_eq!(w.to_string(), "08:30-18:00");
        assert!(w.contains(NaiveTime::from_hms_opt(8, 30, 0).unwrap()));
        assert!(!w.contains(NaiveTime::from_hms_opt(18, 0, 0).unwrap()));
        let err = "18:00-08:30".parse::<SendWindow>().unwrap_err();
        assert!(err.contains("ends before it starts"), "{err}");
        assert!(err.contains("08:30-18:00"), "{err}");
        assert!("08:30-08:30".parse::<SendWindow>().is_err());
        assert!("8:30-18:00".parse::<SendWindow>().is_err());
        assert!("08:30".parse::<SendWindow>().is_err());
        assert!("25:00-26:00".parse::<SendWindow>().is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://user:secret@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@host:5432/db?sslmode=require"),
            "postgres://u:***@host:5432/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://user@host/db?password=x&sslmode=disable"),
            "postgres://user@host/db?password=***&sslmode=disable"
        );
        for plain in [
            "postgres://user@host/db",
            "postgresql://host/db",
            "sqlite://rectify.db",
            "sqlite:///var/lib/rectify.db?mode=rwc",
            "sqlite::memory:",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }

    #[test]
    fn database_urls() {
        for ok in [
            "sqlite://rectify.db",
            "sqlite:rectify.db",
            "sqlite:///abs/x.db?mode=rwc",
            "sqlite::memory:",
            "postgres://u@h:5432/db",
            "postgresql://h/db",
        ] {
            assert_eq!(check_database_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "mysql://h/db",
            "rectify.db",
            "sqlite://",
            "postgres:db",
            "sqlite:// a.db",
        ] {
            assert!(check_database_url(bad).is_err(), "{bad}");
        }
        let err = check_database_url("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains("sqlite://") && err.contains("postgres://"),
            "{err}"
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://a%20b.db?mode=rwc"),
            Some("a b.db".into())
        );
        assert_eq!(sqlite_path("sqlite:///x/y.db"), Some("/x/y.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
        assert_eq!(percent_encode_path("/a b/c?#%"), "/a%20b/c%3F%23%25");
        assert_eq!(percent_decode("/a%20b/c%3F%23%25%zz"), "/a b/c?#%%zz");
    }

    #[test]
    fn mail_from() {
        for ok in [
            "整改办 <zgb@example.gov.cn>",
            "zgb@example.gov.cn",
            "\"Office\" <a.b@mail.example.org>",
        ] {
            assert_eq!(check_mail_from(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "zgb",
            "zgb@localhost",
            "a@b@c.d",
            "@example.com",
            "Name <zgb@example.gov.cn",
            "zgb@example.gov.cn\r\nBcc: x@y.z",
            "Name <a b@c.d>",
        ] {
            assert!(check_mail_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cron_expressions() {
        for ok in [
            "0 */5 * * * *",
            "0 0 9 * * Mon-Fri",
            "0 0 9 * * Mon",
            "0 0 9 1 * *",
            "0 0 9 1 * * 2027",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for bad in ["*/5 * * * *", "@daily", "0 0 25 * * *", "0 0 9 * * Funday"] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_levels() {
        for ok in [
            "info",
            "DEBUG",
            "info,rectify=debug",
            "warn,sqlx::query=off",
        ] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["", "inof", "rectify=loud", "=info"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_parse() {
        assert_eq!("SMTP".parse::<MailTransport>(), Ok(MailTransport::Smtp));
        assert_eq!("starttls".parse::<MailTls>(), Ok(MailTls::StartTls));
        let err = "boss".parse::<CcTarget>().unwrap_err();
        assert!(
            err.contains("`boss`") && err.contains("\"leader\""),
            "{err}"
        );
    }
}
