//! Loading: defaults, then the file, then the environment, then validation and path resolution.
//!
//! The file is deserialized on its own first, straight from its text, so toml reports the line of
//! a bad key or value. Each environment override is then checked on its own, so an error names
//! the variable. Only then are both merged into one table and deserialized into [`Settings`].

use crate::error::{ConfigError, Origin};
use crate::value::{DatabaseBackend, percent_encode_path, split_sqlite_url, sqlite_path};
use crate::{DEFAULT_FILE_NAME, DEFAULT_PASSWORD_ENV, Loaded, MailTransport, Secret, Settings};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::{Table, Value};

/// The named environment variables and the keys they set. They win over the generic
/// `RECTIFY__SECTION__KEY` form for the same key.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("RECTIFY_DATABASE", "database.url"),
    ("RECTIFY_LANG", "lang"),
    ("RECTIFY_TIME_ZONE", "time_zone"),
    ("RECTIFY_EVIDENCE_DIR", "evidence_dir"),
    ("RECTIFY_MAIL_TRANSPORT", "mail.transport"),
    ("RECTIFY_MAIL_DIR", "mail.dir"),
    ("RECTIFY_SMTP_HOST", "mail.host"),
    ("RECTIFY_SMTP_PORT", "mail.port"),
    ("RECTIFY_LOG_FORMAT", "log.format"),
    ("RECTIFY_HTTP_LISTEN", "http.listen"),
];

/// The prefix of the generic form `RECTIFY__SECTION__KEY` (or `RECTIFY__KEY` at the top level).
const GENERIC_PREFIX: &str = "RECTIFY__";

const SECTIONS: &[&str] = &[
    "database",
    "calendar",
    "reminders",
    "mail",
    "schedule",
    "import",
    "http",
    "log",
];

/// Loads the configuration.
///
/// * `explicit_file`: a file named by the user (`--config`); it must exist. Without it,
///   `rectify.toml` in `cwd` is read when present, else only defaults and the environment apply.
/// * `env`: the process environment, usually `std::env::vars().collect()`. Only the variables in
///   [`ENV_OVERRIDES`] and those starting with `RECTIFY__` are configuration; other `RECTIFY_*`
///   variables are ignored. The SMTP password is read from the variable named by
///   `mail.password_env`.
/// * `cwd`: the folder that relative paths from defaults and the environment are relative to.
///   Relative paths written in the file are relative to the file's folder.
pub fn load(
    explicit_file: Option<&Path>,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Loaded, ConfigError> {
    let cwd = normalize(&std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf()));
    let file = match explicit_file {
        Some(path) => {
            let path = normalize(&cwd.join(path));
            if !path.exists() {
                return Err(ConfigError::FileNotFound { path });
            }
            Some(path)
        }
        None => Some(cwd.join(DEFAULT_FILE_NAME)).filter(|p| p.is_file()),
    };

    let file_table = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            // Editors on Windows often start UTF-8 files with a byte-order mark; TOML does not.
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            parse_file_text(text, path)?.1
        }
        None => Table::new(),
    };

    let mut table = file_table.clone();
    let mut env_keys = BTreeMap::new();
    for ov in collect_overrides(env)? {
        let value = check_override(&ov, &file_table)?;
        set_key(&mut table, &ov.key, value);
        env_keys.insert(ov.key, ov.var);
    }

    let provenance = Provenance {
        file: file.as_deref(),
        file_table: &file_table,
        env_keys: &env_keys,
    };
    let password_env = password_env_name(&table);
    let mut settings = deserialize_table(table).map_err(|e| {
        let failure = Failure::from(e);
        let origin = provenance.origin(&failure.key);
        failure.into_error(origin, &password_env)
    })?;

    cross_check(&settings, &provenance)?;
    resolve_paths(&mut settings, &provenance, &cwd);
    settings.mail.password = read_secret(&settings.mail.password_env, env);
    Ok(Loaded { settings, file })
}

/// Parses and checks the text of a configuration file: first its TOML syntax, then every key and
/// value, with the line of the first problem. Returns the settings (paths not yet resolved) and
/// the raw table.
pub(crate) fn parse_file_text(text: &str, path: &Path) -> Result<(Settings, Table), ConfigError> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: first_line(e.message()),
        }
    })?;
    let password_env = password_env_name(&table);
    let file_error = |failure: Failure| {
        let line = failure.span.as_ref().map(|s| line_col(text, s.start).0);
        let origin = Origin::File {
            path: path.to_path_buf(),
            line,
        };
        failure.into_error(origin, &password_env)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        file_error(Failure {
            key: String::new(),
            message: e.message().to_string(),
            span: e.span(),
        })
    })?;
    let settings: Settings =
        serde_path_to_error::deserialize(de).map_err(|e| file_error(Failure::from(e)))?;
    Ok((settings, table))
}

fn deserialize_table(
    table: Table,
) -> Result<Settings, serde_path_to_error::Error<toml::de::Error>> {
    serde_path_to_error::deserialize(table)
}

// ---------------------------------------------------------------------------------------------
// Environment overrides.

struct Override {
    var: String,
    /// Dotted key: `lang` or `database.url`.
    key: String,
    raw: String,
}

fn collect_overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    let mut generic = Vec::new();
    let mut named = Vec::new();
    for (name, raw) in env {
        if let Some(rest) = name.strip_prefix(GENERIC_PREFIX) {
            let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::BadEnvName {
                    var: name.clone(),
                    message:
                        "does not name a configuration key; write RECTIFY__SECTION__KEY=value \
                              with two underscores between the parts (e.g. \
                              RECTIFY__DATABASE__POOL_SIZE=4), or RECTIFY__KEY=value for a \
                              top-level key (e.g. RECTIFY__LANG=en)"
                            .to_string(),
                });
            }
            if let [section] = parts.as_slice()
                && SECTIONS.contains(&section.as_str())
            {
                return Err(ConfigError::BadEnvName {
                    var: name.clone(),
                    message: format!(
                        "names the section [{section}], not a key; write \
                         RECTIFY__{}__KEY=value for one of its keys (see rectify.example.toml)",
                        section.to_ascii_uppercase()
                    ),
                });
            }
            generic.push(Override {
                var: name.clone(),
                key: parts.join("."),
                raw: raw.clone(),
            });
        } else if let Some((_, key)) = ENV_OVERRIDES.iter().find(|(var, _)| var == name) {
            named.push(Override {
                var: name.clone(),
                key: (*key).to_string(),
                raw: raw.clone(),
            });
        }
    }
    generic.extend(named);
    Ok(generic)
}

/// The TOML values an environment value may stand for, most specific first: `4` is tried as an
/// integer and then as the text "4"; a value that is not a TOML literal is text.
fn candidates(raw: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(mut t) = format!("v = {raw}").parse::<Table>()
        && t.len() == 1
        && let Some(v) = t.remove("v")
        && !matches!(v, Value::Datetime(_) | Value::Table(_))
    {
        out.push(v);
    }
    let text = Value::String(raw.to_string());
    if !out.contains(&text) {
        out.push(text);
    }
    out
}

/// Checks one override on its own, so that a bad value is blamed on its variable.
fn check_override(ov: &Override, file_table: &Table) -> Result<Value, ConfigError> {
    let mut first_failure = None;
    for value in candidates(&ov.raw) {
        let mut table = Table::new();
        set_key(&mut table, &ov.key, value.clone());
        match deserialize_table(table) {
            Ok(_) => return Ok(value),
            Err(e) => {
                first_failure.get_or_insert(Failure::from(e));
            }
        }
    }
    let origin = Origin::Env {
        var: ov.var.clone(),
    };
    let failure = first_failure.unwrap_or(Failure {
        key: ov.key.clone(),
        message: "has no usable value".to_string(),
        span: None,
    });
    Err(failure.into_error(origin, &password_env_name(file_table)))
}

fn set_key(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((section, rest)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                set_key(inner, rest, value);
            }
        }
    }
}

fn get_key<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((section, rest)) => get_key(table.get(section)?.as_table()?, rest),
    }
}

/// The environment variable that sets `key`: the named one if there is one, else the generic
/// form.
fn env_name_for(key: &str) -> String {
    ENV_OVERRIDES
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(var, _)| (*var).to_string())
        .unwrap_or_else(|| format!("{GENERIC_PREFIX}{}", key.replace('.', "__").to_uppercase()))
}

fn password_env_name(table: &Table) -> String {
    match get_key(table, "mail.password_env") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => DEFAULT_PASSWORD_ENV.to_string(),
    }
}

fn read_secret(name: &str, env: &[(String, String)]) -> Option<Secret> {
    if name.is_empty() {
        return None;
    }
    env.iter()
        .rev()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| Secret::new(v.clone()))
}

// ---------------------------------------------------------------------------------------------
// Where a value came from.

struct Provenance<'a> {
    file: Option<&'a Path>,
    file_table: &'a Table,
    env_keys: &'a BTreeMap<String, String>,
}

impl Provenance<'_> {
    /// The origin of the setting at `key` (a dotted path, possibly with list indices).
    fn origin(&self, key: &str) -> Origin {
        let root = setting_key(key);
        if let Some(var) = self.env_keys.get(&root) {
            return Origin::Env { var: var.clone() };
        }
        match self.file {
            Some(path) if get_key(self.file_table, &root).is_some() => Origin::File {
                path: path.to_path_buf(),
                line: None,
            },
            _ => Origin::Default,
        }
    }
}

/// `reminders.escalate[1].after` → `reminders.escalate`: the key a user writes.
fn setting_key(key: &str) -> String {
    let plain = key.split('[').next().unwrap_or_default();
    let mut parts = plain.split('.');
    match (parts.next(), parts.next()) {
        (Some(first), Some(second)) if SECTIONS.contains(&first) => format!("{first}.{second}"),
        (Some(first), _) => first.to_string(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Turning a deserialization failure into a message.

struct Failure {
    key: String,
    message: String,
    span: Option<Range<usize>>,
}

impl From<serde_path_to_error::Error<toml::de::Error>> for Failure {
    fn from(e: serde_path_to_error::Error<toml::de::Error>) -> Self {
        let key = e.path().to_string();
        let inner = e.into_inner();
        Failure {
            key: if key == "." { String::new() } else { key },
            message: first_line(inner.message()),
            span: inner.span(),
        }
    }
}

impl Failure {
    fn into_error(self, origin: Origin, password_env: &str) -> ConfigError {
        let Failure { key, message, .. } = self;
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if key == "mail.password" {
                return ConfigError::PasswordInConfig {
                    origin,
                    password_env: password_env.to_string(),
                };
            }
            return ConfigError::UnknownKey {
                advice: unknown_key_advice(&key, rest),
                origin,
                key,
            };
        }
        let generic = [
            "invalid type",
            "invalid value",
            "invalid length",
            "missing field",
        ]
        .iter()
        .any(|p| message.starts_with(p));
        let message = if generic && message.contains("expected struct") {
            let name = setting_key(&key);
            format!(
                "`{name}` is a section, not a single value; write [{name}] on its own line \
                 followed by its keys, as in rectify.example.toml"
            )
        } else if generic {
            match example(&key, &origin) {
                Some(example) => format!("{message}; write e.g. {example}"),
                None => format!("{message}; see rectify.example.toml for the expected form"),
            }
        } else {
            message
        };
        ConfigError::Invalid {
            origin,
            key: if key.is_empty() {
                "(whole file)".to_string()
            } else {
                key
            },
            message,
        }
    }
}

/// `rest` is serde's message after "unknown field `": "x`, expected one of `a`, `b`".
fn unknown_key_advice(key: &str, rest: &str) -> String {
    let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
    let place = if parent.is_empty() {
        "at the top level".to_string()
    } else if parent.contains("escalate[") {
        "in an escalate step".to_string()
    } else {
        format!("in [{parent}]")
    };
    let allowed = match rest.split_once(", expected ") {
        Some((_, list)) => list.trim_start_matches("one of ").to_string(),
        None => "none".to_string(),
    };
    let allowed = if allowed.starts_with("there are no fields") {
        "none".to_string()
    } else {
        allowed
    };
    format!(
        "the keys allowed {place} are {allowed}; check the spelling against rectify.example.toml"
    )
}

/// An example assignment for `key`, from the example file: `pool_size = 8` in a file,
/// `RECTIFY__DATABASE__POOL_SIZE=8` in the environment.
fn example(key: &str, origin: &Origin) -> Option<String> {
    let name = setting_key(key);
    let examples: Table = crate::EXAMPLE_TOML.parse().ok()?;
    let value = get_key(&examples, &name)?;
    let leaf = name.rsplit('.').next().unwrap_or(&name);
    Some(match origin {
        Origin::Env { .. } => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}={text}", env_name_for(&name))
        }
        _ => format!("`{leaf} = {value}`"),
    })
}

fn first_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// Checks across keys, and paths.

fn cross_check(s: &Settings, provenance: &Provenance<'_>) -> Result<(), ConfigError> {
    if let Some(day) = s.calendar.off.iter().find(|d| s.calendar.work.contains(d)) {
        return Err(ConfigError::Invalid {
            origin: provenance.origin("calendar.work"),
            key: "calendar.work".to_string(),
            message: format!(
                "{} is both a day off (calendar.off) and a working day (calendar.work); keep it \
                 in one of the two lists",
                day.format("%Y-%m-%d")
            ),
        });
    }
    if s.mail.transport == MailTransport::Smtp && s.mail.host.trim().is_empty() {
        return Err(ConfigError::Invalid {
            origin: provenance.origin("mail.host"),
            key: "mail.host".to_string(),
            message: "is empty but mail.transport is \"smtp\"; write the SMTP server, e.g. \
                      host = \"smtp.example.gov.cn\", or use transport = \"file\""
                .to_string(),
        });
    }
    Ok(())
}

/// Makes `evidence_dir`, `mail.dir` and a SQLite database file absolute: relative to the file's
/// folder when the file set them, else relative to `cwd`.
fn resolve_paths(s: &mut Settings, provenance: &Provenance<'_>, cwd: &Path) {
    let file_dir = provenance.file.and_then(Path::parent);
    let base = |key: &str| -> PathBuf {
        match (provenance.origin(key), file_dir) {
            (Origin::File { .. }, Some(dir)) => dir.to_path_buf(),
            _ => cwd.to_path_buf(),
        }
    };
    s.evidence_dir = normalize(&base("evidence_dir").join(&s.evidence_dir));
    s.mail.dir = normalize(&base("mail.dir").join(&s.mail.dir));
    s.database.url = resolve_sqlite_url(&s.database.url, &base("database.url"));
}

/// `sqlite://rectify.db?mode=rwc` with base `/srv/x` → `sqlite:///srv/x/rectify.db?mode=rwc`.
/// Other URLs, and in-memory SQLite, are returned unchanged.
pub(crate) fn resolve_sqlite_url(url: &str, base: &Path) -> String {
    if DatabaseBackend::of_url(url) != Some(DatabaseBackend::Sqlite) {
        return url.to_string();
    }
    let Some(file) = sqlite_path(url) else {
        return url.to_string();
    };
    let (_, query) = split_sqlite_url(url);
    let absolute = normalize(&base.join(file));
    let mut out = format!(
        "sqlite://{}",
        percent_encode_path(&absolute.to_string_lossy())
    );
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Removes `.` and resolves `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_resolve() {
        let base = Path::new("/srv/office");
        assert_eq!(
            resolve_sqlite_url("sqlite://rectify.db", base),
            "sqlite:///srv/office/rectify.db"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite:data/../r.db?mode=rwc", base),
            "sqlite:///srv/office/r.db?mode=rwc"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite:///var/lib/r.db", base),
            "sqlite:///var/lib/r.db"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite://my%20db.db", base),
            "sqlite:///srv/office/my%20db.db"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite::memory:", base),
            "sqlite::memory:"
        );
        assert_eq!(
            resolve_sqlite_url("postgres://u@h/db", base),
            "postgres://u@h/db"
        );
    }

    #[test]
    fn env_values_become_toml_values() {
        assert_eq!(
            candidates("4"),
            vec![Value::Integer(4), Value::String("4".into())]
        );
        assert_eq!(
            candidates("true"),
            vec![Value::Boolean(true), Value::String("true".into())]
        );
        assert_eq!(candidates("2wd"), vec![Value::String("2wd".into())]);
        assert_eq!(
            candidates("0 */5 * * * *"),
            vec![Value::String("0 */5 * * * *".into())]
        );
        assert_eq!(
            candidates("2026-12-31"),
            vec![Value::String("2026-12-31".into())]
        );
        assert_eq!(
            candidates("1\nv = 2"),
            vec![Value::String("1\nv = 2".into())]
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            setting_key("reminders.escalate[1].after"),
            "reminders.escalate"
        );
        assert_eq!(setting_key("lang"), "lang");
        assert_eq!(setting_key("database.url"), "database.url");
        assert_eq!(env_name_for("database.url"), "RECTIFY_DATABASE");
        assert_eq!(
            env_name_for("reminders.yellow_within"),
            "RECTIFY__REMINDERS__YELLOW_WITHIN"
        );
        assert_eq!(line_col("a\nbc\nd", 4), (2, 3));
    }
}
