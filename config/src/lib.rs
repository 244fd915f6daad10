//! Typed settings of `rectify`.
//!
//! Settings come from four layers, each overriding the one before:
//!
//! 1. built-in defaults (everything works with no file at all);
//! 2. a TOML file: the one named explicitly (`--config`), else `rectify.toml` in the current
//!    folder when it exists;
//! 3. `RECTIFY_*` environment variables: a few named ones (`RECTIFY_DATABASE`, `RECTIFY_LANG`, …)
//!    and the generic form `RECTIFY__SECTION__KEY=value` for any scalar key;
//! 4. validation, path resolution and reading the SMTP secret from the environment.
//!
//! [`load`] runs all of them. Every error names the key, where the bad value came from (the file
//! and line, or the environment variable) and what to write instead. The file format is shown in
//! `rectify.example.toml` next to this crate's `Cargo.toml`.

mod error;
mod load;
mod show;
mod value;

use chrono::NaiveDate;
use chrono_tz::Tz;
use rectify_engine::{Lang, Offset};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Origin};
pub use load::{ENV_OVERRIDES, load};
pub use value::{
    CcTarget, DatabaseBackend, LogFormat, MailTls, MailTransport, SendWindow, format_duration,
    parse_duration, redact_url,
};

/// The example configuration file: every key with its default value and a comment (the
/// `[calendar]` lists show sample entries; by default they are empty).
pub const EXAMPLE_TOML: &str = include_str!("../rectify.example.toml");

/// The name of the file looked for in the current folder when no file is named explicitly.
pub const DEFAULT_FILE_NAME: &str = "rectify.toml";

/// The effective configuration.
///
/// Build it with [`load`]: that applies the file and the environment, validates, resolves relative
/// paths to absolute ones and reads the SMTP secret. `Settings::default()` gives the built-in
/// defaults with their paths still relative (`evidence`, `mail`, `sqlite://rectify.db`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    #[serde(deserialize_with = "value::de_time_zone")]
    pub time_zone: Tz,
    #[serde(deserialize_with = "value::de_lang")]
    pub lang: Lang,
    #[serde(deserialize_with = "value::de_dir")]
    pub evidence_dir: PathBuf,
    pub calendar: CalendarSettings,
    pub reminders: ReminderSettings,
    pub mail: MailSettings,
    pub schedule: ScheduleSettings,
    pub import: ImportSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database: DatabaseSettings::default(),
            time_zone: chrono_tz::Asia::Shanghai,
            lang: Lang::Zh,
            evidence_dir: PathBuf::from("evidence"),
            calendar: CalendarSettings::default(),
            reminders: ReminderSettings::default(),
            mail: MailSettings::default(),
            schedule: ScheduleSettings::default(),
            import: ImportSettings::default(),
            http: HttpSettings::default(),
            log: LogSettings::default(),
        }
    }
}

/// What [`load`] returns: the settings and the file they were read from, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub settings: Settings,
    /// The configuration file that was read (absolute), or `None` when only defaults and the
    /// environment were used.
    pub file: Option<PathBuf>,
}

/// `[database]`.
///
/// `Debug` shows the URL with its password replaced by `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE[?query]` or `postgres://…` / `postgresql://…`. After [`load`] a SQLite URL
    /// names an absolute file: `sqlite:///abs/path/rectify.db`.
    #[serde(deserialize_with = "value::de_database_url")]
    pub url: String,
    /// Connections in the pool, 1..=256.
    #[serde(deserialize_with = "value::de_pool_size")]
    pub pool_size: u32,
    #[serde(deserialize_with = "value::de_duration")]
    pub statement_timeout: Duration,
    /// SQLite busy timeout.
    #[serde(deserialize_with = "value::de_duration")]
    pub busy_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://rectify.db".to_string(),
            pool_size: 8,
            statement_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

impl DatabaseSettings {
    /// Which database the URL names.
    pub fn backend(&self) -> DatabaseBackend {
        DatabaseBackend::of_url(&self.url).unwrap_or(DatabaseBackend::Sqlite)
    }

    /// The SQLite file the URL names (`None` for PostgreSQL and for `:memory:`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        value::sqlite_path(&self.url)
    }

    /// The URL with any password replaced by `***`, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

/// `[calendar]`: the office's own changes to the working-day calendar.
///
/// The defaults are empty lists: an office adds its own days.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarSettings {
    /// Extra days off.
    #[serde(
        deserialize_with = "value::de_dates",
        serialize_with = "value::ser_dates"
    )]
    pub off: Vec<NaiveDate>,
    /// Extra working days.
    #[serde(
        deserialize_with = "value::de_dates",
        serialize_with = "value::ser_dates"
    )]
    pub work: Vec<NaiveDate>,
    /// Years the office has entered itself; with the `off`/`work` lists they count as covered.
    #[serde(deserialize_with = "value::de_years")]
    pub covered_years: Vec<i32>,
}

/// `[reminders]`: the reminder policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReminderSettings {
    /// Reminders this long before the deadline.
    pub before: Vec<Offset>,
    /// A reminder on the day the item is due.
    pub on_due: bool,
    /// Repeat interval once overdue (at least one day).
    #[serde(deserialize_with = "value::de_positive_offset")]
    pub overdue_every: Offset,
    /// Escalation steps after the deadline, strictly increasing in `after`.
    #[serde(deserialize_with = "value::de_escalation")]
    pub escalate: Vec<EscalationStep>,
    /// A unit must acknowledge an assigned item within this (at least one day).
    #[serde(deserialize_with = "value::de_positive_offset")]
    pub ack_within: Offset,
    /// Ask for a progress report this often (at least one day).
    #[serde(deserialize_with = "value::de_positive_offset")]
    pub progress_every: Offset,
    /// An item turns yellow when its deadline is this close.
    pub yellow_within: Offset,
    /// Local time span, on working days, in which reminders are sent.
    pub send_window: SendWindow,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        ReminderSettings {
            before: vec![
                Offset::working_days(7),
                Offset::working_days(3),
                Offset::working_days(1),
            ],
            on_due: true,
            overdue_every: Offset::working_days(2),
            escalate: vec![
                EscalationStep {
                    after: Offset::working_days(3),
                    cc: vec![CcTarget::Leader],
                    notice: false,
                },
                EscalationStep {
                    after: Offset::working_days(10),
                    cc: vec![CcTarget::Leader, CcTarget::Office],
                    notice: true,
                },
            ],
            ack_within: Offset::working_days(2),
            progress_every: Offset::working_days(10),
            yellow_within: Offset::working_days(3),
            send_window: SendWindow::default(),
        }
    }
}

/// One step of `reminders.escalate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// How long after the deadline this step fires.
    pub after: Offset,
    /// Who is copied.
    #[serde(default)]
    pub cc: Vec<CcTarget>,
    /// Whether a formal notice (通报) is issued.
    #[serde(default)]
    pub notice: bool,
}

/// `[mail]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `Name <addr@host>` or `addr@host`.
    #[serde(deserialize_with = "value::de_mail_from")]
    pub from: String,
    pub transport: MailTransport,
    /// Where the `file` transport writes messages.
    #[serde(deserialize_with = "value::de_dir", serialize_with = "value::ser_path")]
    pub dir: PathBuf,
    pub host: String,
    #[serde(deserialize_with = "value::de_port")]
    pub port: u16,
    pub tls: MailTls,
    /// Empty: no SMTP authentication.
    pub username: String,
    /// The name of the environment variable holding the SMTP password (empty: none).
    #[serde(deserialize_with = "value::de_env_name")]
    pub password_env: String,
    /// The SMTP password, read by [`load`] from the variable named by `password_env`.
    /// Never a file key.
    #[serde(skip)]
    pub password: Option<Secret>,
    #[serde(deserialize_with = "value::de_max_connections")]
    pub max_connections: u32,
    #[serde(deserialize_with = "value::de_duration")]
    #[serde(serialize_with = "value::ser_duration")]
    pub timeout: Duration,
    /// How long a message claimed by one `serve` instance stays its own; after that (the
    /// instance died) another instance takes it over. Longer than sending one batch takes.
    #[serde(deserialize_with = "value::de_duration")]
    #[serde(serialize_with = "value::ser_duration")]
    pub lease: Duration,
}

/// The default of `mail.password_env`.
pub const DEFAULT_PASSWORD_ENV: &str = "RECTIFY_SMTP_PASSWORD";

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            from: "整改办 <zgb@example.gov.cn>".to_string(),
            transport: MailTransport::File,
            dir: PathBuf::from("mail"),
            host: "127.0.0.1".to_string(),
            port: 25,
            tls: MailTls::None,
            username: String::new(),
            password_env: DEFAULT_PASSWORD_ENV.to_string(),
            password: None,
            max_connections: 4,
            timeout: Duration::from_secs(30),
            lease: Duration::from_secs(120),
        }
    }
}

/// `[schedule]`: cron expressions (seconds first, 6 or 7 fields), validated with the `cron` crate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSettings {
    #[serde(deserialize_with = "value::de_cron")]
    pub remind: String,
    #[serde(deserialize_with = "value::de_cron")]
    pub daily_digest: String,
    #[serde(deserialize_with = "value::de_cron")]
    pub weekly_dispatch: String,
    #[serde(deserialize_with = "value::de_cron")]
    pub monthly_notice: String,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            remind: "0 */5 * * * *".to_string(),
            daily_digest: "0 0 9 * * Mon-Fri".to_string(),
            weekly_dispatch: "0 0 9 * * Mon".to_string(),
            monthly_notice: "0 0 9 1 * *".to_string(),
        }
    }
}

/// `[import]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportSettings {
    /// The deadline given to 立行立改 rows: this long after the import.
    pub immediate_fix: Offset,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            immediate_fix: Offset::working_days(5),
        }
    }
}

/// `[http]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Where `/healthz` and `/metrics` are served; `None` (written `""`) turns them off.
    #[serde(
        deserialize_with = "value::de_listen",
        serialize_with = "value::ser_listen"
    )]
    pub listen: Option<SocketAddr>,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or directives such as
    /// `info,rectify=debug`.
    #[serde(deserialize_with = "value::de_log_level")]
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Human,
            level: "info".to_string(),
        }
    }
}

/// A secret string. `Debug` and `Display` print `***`; [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call this only where the value is handed to the consumer (the SMTP
    /// client), never to format a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Settings {
    /// The effective configuration as TOML, for `rectify config show`: every key with its value,
    /// the database URL's password and the SMTP secret replaced by `***`. The output is itself a
    /// valid configuration file.
    pub fn to_redacted_toml(&self) -> String {
        show::to_redacted_toml(self)
    }

    /// Parses configuration text alone, without defaults for missing files, environment or path
    /// resolution; `name` is used in error messages. Mostly for tests and tools; use [`load`].
    pub fn from_toml_str(text: &str, name: &Path) -> Result<Settings, ConfigError> {
        load::parse_file_text(text, name).map(|(settings, _)| settings)
    }
}
