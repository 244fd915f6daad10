//! The effective configuration written back as TOML, with secrets hidden.

use crate::value::{redact_url, ser_duration, ser_path};
use crate::{
    CalendarSettings, HttpSettings, ImportSettings, LogSettings, MailSettings, ReminderSettings,
    ScheduleSettings, Settings,
};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The file layout: top-level keys first, then the sections in the order of the example file.
#[derive(Serialize)]
struct FileView<'a> {
    lang: &'static str,
    time_zone: &'static str,
    #[serde(serialize_with = "ser_path")]
    evidence_dir: &'a Path,
    database: DatabaseView,
    calendar: &'a CalendarSettings,
    reminders: &'a ReminderSettings,
    mail: &'a MailSettings,
    schedule: &'a ScheduleSettings,
    import: &'a ImportSettings,
    http: &'a HttpSettings,
    log: &'a LogSettings,
}

#[derive(Serialize)]
struct DatabaseView {
    url: String,
    pool_size: u32,
    #[serde(serialize_with = "ser_duration")]
    statement_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    busy_timeout: Duration,
}

fn view(s: &Settings) -> FileView<'_> {
    FileView {
        lang: s.lang.as_str(),
        time_zone: s.time_zone.name(),
        evidence_dir: &s.evidence_dir,
        database: DatabaseView {
            url: redact_url(&s.database.url),
            pool_size: s.database.pool_size,
            statement_timeout: s.database.statement_timeout,
            busy_timeout: s.database.busy_timeout,
        },
        calendar: &s.calendar,
        reminders: &s.reminders,
        mail: &s.mail,
        schedule: &s.schedule,
        import: &s.import,
        http: &s.http,
        log: &s.log,
    }
}

pub(crate) fn to_redacted_toml(s: &Settings) -> String {
    let body = toml::to_string(&view(s)).unwrap_or_else(|e| format!("# cannot show: {e}\n"));
    let password_note = match (&s.mail.password, s.mail.password_env.as_str()) {
        (Some(secret), name) => format!(
            "# password = \"{secret}\"  (set from environment variable {name}; never write it here)"
        ),
        (None, "") => "# password: none (mail.password_env is empty)".to_string(),
        (None, name) => format!("# password: none (environment variable {name} is not set)"),
    };
    let mut out = String::from(
        "# Effective rectify configuration (defaults, file and environment combined).\n\
         # Secrets are shown as \"***\".\n",
    );
    for line in body.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[mail]" {
            out.push_str(&password_note);
            out.push('\n');
        }
    }
    out
}
