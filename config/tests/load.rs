//! Loading the configuration: defaults, file, environment, validation, redaction.

use chrono::{NaiveDate, NaiveTime};
use rectify_config::{
    CcTarget, ConfigError, EscalationStep, LogFormat, MailTls, MailTransport, Origin, SendWindow,
    Settings, load, redact_url,
};
use rectify_engine::{Lang, Offset};
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXAMPLE: &str = include_str!("../rectify.example.toml");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads `text` as `rectify.toml` in a fresh folder with `vars`; returns the error.
fn load_err(text: &str, vars: &[(&str, &str)]) -> (ConfigError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rectify.toml", text);
    let err = load(None, &env(vars), dir.path()).expect_err("this configuration must be refused");
    (err, file)
}

fn load_ok(text: &str, vars: &[(&str, &str)]) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rectify.toml", text);
    match load(None, &env(vars), dir.path()) {
        Ok(loaded) => loaded.settings,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The defaults with their paths resolved against `dir`.
fn defaults_in(dir: &Path) -> Settings {
    let defaults = Settings::default();
    Settings {
        evidence_dir: dir.join("evidence"),
        mail: rectify_config::MailSettings {
            dir: dir.join("mail"),
            ..defaults.mail.clone()
        },
        database: rectify_config::DatabaseSettings {
            url: format!("sqlite://{}", dir.join("rectify.db").display()),
            ..defaults.database.clone()
        },
        ..defaults
    }
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

#[test]
fn defaults_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(None, &[], dir.path()).unwrap();
    assert_eq!(loaded.file, None);
    let s = &loaded.settings;
    assert_eq!(s, &defaults_in(dir.path()));

    assert_eq!(s.lang, Lang::Zh);
    assert_eq!(s.time_zone, chrono_tz::Asia::Shanghai);
    assert_eq!(s.database.pool_size, 8);
    assert_eq!(s.database.statement_timeout, Duration::from_secs(30));
    assert_eq!(s.database.busy_timeout, Duration::from_secs(10));
    assert!(s.calendar.off.is_empty() && s.calendar.work.is_empty());
    assert!(s.calendar.covered_years.is_empty());
    assert_eq!(
        s.reminders.before,
        vec![
            Offset::working_days(7),
            Offset::working_days(3),
            Offset::working_days(1)
        ]
    );
    assert!(s.reminders.on_due);
    assert_eq!(s.reminders.overdue_every, Offset::working_days(2));
    assert_eq!(
        s.reminders.escalate,
        vec![
            EscalationStep {
                after: Offset::working_days(3),
                cc: vec![CcTarget::Leader],
                notice: false
            },
            EscalationStep {
                after: Offset::working_days(10),
                cc: vec![CcTarget::Leader, CcTarget::Office],
                notice: true
            },
        ]
    );
    assert_eq!(s.reminders.ack_within, Offset::working_days(2));
    assert_eq!(s.reminders.progress_every, Offset::working_days(10));
    assert_eq!(s.reminders.yellow_within, Offset::working_days(3));
    assert_eq!(
        s.reminders.send_window,
        SendWindow {
            start: NaiveTime::from_hms_opt(8, 30, 0).unwrap(),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
        }
    );
    assert_eq!(s.mail.from, "整改办 <zgb@example.gov.cn>");
    assert_eq!(s.mail.transport, MailTransport::File);
    assert_eq!(s.mail.host, "127.0.0.1");
    assert_eq!(s.mail.port, 25);
    assert_eq!(s.mail.tls, MailTls::None);
    assert_eq!(s.mail.username, "");
    assert_eq!(s.mail.password_env, "RECTIFY_SMTP_PASSWORD");
    assert_eq!(s.mail.password, None);
    assert_eq!(s.mail.max_connections, 4);
    assert_eq!(s.mail.timeout, Duration::from_secs(30));
    assert_eq!(s.mail.lease, Duration::from_secs(120));
    assert_eq!(s.schedule.remind, "0 */5 * * * *");
    assert_eq!(s.schedule.daily_digest, "0 0 9 * * Mon-Fri");
    assert_eq!(s.schedule.weekly_dispatch, "0 0 9 * * Mon");
    assert_eq!(s.schedule.monthly_notice, "0 0 9 1 * *");
    assert_eq!(s.import.immediate_fix, Offset::working_days(5));
    assert_eq!(s.http.listen, None);
    assert_eq!(s.log.format, LogFormat::Human);
    assert_eq!(s.log.level, "info");
    assert_eq!(
        s.database.sqlite_path(),
        Some(dir.path().join("rectify.db"))
    );
}

#[test]
fn the_example_file_parses_and_matches_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rectify.toml", EXAMPLE);
    let loaded = load(None, &[], dir.path()).unwrap();
    assert_eq!(loaded.file.as_deref(), Some(file.as_path()));
    let mut expected = defaults_in(dir.path());
    // The example shows calendar entries; by default those lists are empty.
    expected.calendar.off = vec![date("2026-12-31")];
    expected.calendar.work = vec![date("2026-12-26")];
    expected.calendar.covered_years = vec![2027];
    assert_eq!(loaded.settings, expected);
}

#[test]
fn the_shipped_example_file_is_valid_on_its_own() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rectify.example.toml");
    let loaded = load(Some(&path), &[], Path::new("/")).unwrap();
    assert_eq!(loaded.file.as_deref(), Some(path.as_path()));
    assert_eq!(
        loaded.settings.evidence_dir,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("evidence")
    );
}

#[test]
fn the_effective_configuration_round_trips_through_toml() {
    let dir = tempfile::tempdir().unwrap();
    let custom = EXAMPLE
        .replace("lang = \"zh\"", "lang = \"en\"")
        .replace("\"08:30-18:00\"", "\"09:00-17:30\"")
        .replace("listen = \"\"", "listen = \"127.0.0.1:9100\"")
        .replace("transport = \"file\"", "transport = \"smtp\"")
        .replace(
            "statement_timeout = \"30s\"",
            "statement_timeout = \"1500ms\"",
        );
    write(dir.path(), "rectify.toml", &custom);
    let first = load(None, &[], dir.path()).unwrap().settings;
    assert_eq!(first.lang, Lang::En);
    assert_eq!(first.http.listen, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(
        first.database.statement_timeout,
        Duration::from_millis(1500)
    );

    let shown = first.to_redacted_toml();
    let other = tempfile::tempdir().unwrap();
    let again = write(other.path(), "shown.toml", &shown);
    let second = load(Some(&again), &[], other.path()).unwrap().settings;
    assert_eq!(second, first, "shown:\n{shown}");

    // Defaults round-trip too.
    let defaults = load(None, &[], other.path()).unwrap().settings;
    let shown = defaults.to_redacted_toml();
    write(other.path(), "rectify.toml", &shown);
    assert_eq!(load(None, &[], other.path()).unwrap().settings, defaults);
}

#[test]
fn relative_paths_in_the_file_are_relative_to_its_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let file = write(
        conf.path(),
        "etc/office.toml",
        "evidence_dir = \"files/evidence\"\n\
         [database]\nurl = \"sqlite://data/../db/rectify.db?mode=rwc\"\n\
         [mail]\ndir = \"./outbox\"\n",
    );
    let s = load(Some(&file), &[], cwd.path()).unwrap().settings;
    let etc = conf.path().join("etc");
    assert_eq!(s.evidence_dir, etc.join("files/evidence"));
    assert_eq!(s.mail.dir, etc.join("outbox"));
    assert_eq!(
        s.database.url,
        format!("sqlite://{}?mode=rwc", etc.join("db/rectify.db").display())
    );
    assert_eq!(s.database.sqlite_path(), Some(etc.join("db/rectify.db")));

    // An explicit file given relative to cwd is found there.
    let rel = write(cwd.path(), "conf/r.toml", "evidence_dir = \"ev\"\n");
    let loaded = load(Some(Path::new("conf/r.toml")), &[], cwd.path()).unwrap();
    assert_eq!(loaded.file.as_deref(), Some(rel.as_path()));
    assert_eq!(loaded.settings.evidence_dir, cwd.path().join("conf/ev"));
    // Keys the file does not set keep defaults relative to cwd.
    assert_eq!(loaded.settings.mail.dir, cwd.path().join("mail"));

    // Absolute paths stay as written.
    let s = load_ok("evidence_dir = \"/srv/evidence\"\n", &[]);
    assert_eq!(s.evidence_dir, Path::new("/srv/evidence"));
}

#[test]
fn environment_paths_are_relative_to_cwd() {
    let cwd = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let file = write(
        conf.path(),
        "r.toml",
        "evidence_dir = \"ev\"\n[mail]\ndir = \"m\"\n[database]\nurl = \"sqlite://f.db\"\n",
    );
    let vars = env(&[
        ("RECTIFY_EVIDENCE_DIR", "env-ev"),
        ("RECTIFY_MAIL_DIR", "env-mail"),
        ("RECTIFY_DATABASE", "sqlite:env.db"),
    ]);
    let s = load(Some(&file), &vars, cwd.path()).unwrap().settings;
    assert_eq!(s.evidence_dir, cwd.path().join("env-ev"));
    assert_eq!(s.mail.dir, cwd.path().join("env-mail"));
    assert_eq!(
        s.database.url,
        format!("sqlite://{}", cwd.path().join("env.db").display())
    );
}

#[test]
fn each_named_environment_variable_overrides_the_file() {
    let vars = [
        (
            "RECTIFY_DATABASE",
            "postgres://rectify@db.example:5432/rectify",
        ),
        ("RECTIFY_LANG", "en"),
        ("RECTIFY_TIME_ZONE", "Asia/Urumqi"),
        ("RECTIFY_EVIDENCE_DIR", "/data/evidence"),
        ("RECTIFY_MAIL_TRANSPORT", "smtp"),
        ("RECTIFY_MAIL_DIR", "/data/mail"),
        ("RECTIFY_SMTP_HOST", "smtp.example.gov.cn"),
        ("RECTIFY_SMTP_PORT", "587"),
        ("RECTIFY_LOG_FORMAT", "json"),
        ("RECTIFY_HTTP_LISTEN", "127.0.0.1:9100"),
    ];
    let s = load_ok(EXAMPLE, &vars);
    assert_eq!(s.database.url, "postgres://rectify@db.example:5432/rectify");
    assert_eq!(
        s.database.backend(),
        rectify_config::DatabaseBackend::Postgres
    );
    assert_eq!(s.lang, Lang::En);
    assert_eq!(s.time_zone, chrono_tz::Asia::Urumqi);
    assert_eq!(s.evidence_dir, Path::new("/data/evidence"));
    assert_eq!(s.mail.transport, MailTransport::Smtp);
    assert_eq!(s.mail.dir, Path::new("/data/mail"));
    assert_eq!(s.mail.host, "smtp.example.gov.cn");
    assert_eq!(s.mail.port, 587);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.http.listen, Some("127.0.0.1:9100".parse().unwrap()));

    // One at a time, each changes its key from the default.
    let dir = tempfile::tempdir().unwrap();
    let plain = load(None, &[], dir.path()).unwrap().settings;
    for (var, value) in vars {
        let one = load(None, &env(&[(var, value)]), dir.path())
            .unwrap()
            .settings;
        assert_ne!(one, plain, "{var} changed nothing");
    }

    // An empty RECTIFY_HTTP_LISTEN turns the endpoint off again.
    let s = load_ok(
        "[http]\nlisten = \"127.0.0.1:9100\"\n",
        &[("RECTIFY_HTTP_LISTEN", "")],
    );
    assert_eq!(s.http.listen, None);
}

#[test]
fn generic_environment_variables_set_any_scalar_key() {
    let s = load_ok(
        EXAMPLE,
        &[
            ("RECTIFY__REMINDERS__YELLOW_WITHIN", "2wd"),
            ("RECTIFY__DATABASE__POOL_SIZE", "4"),
            ("RECTIFY__REMINDERS__ON_DUE", "false"),
            ("RECTIFY__REMINDERS__SEND_WINDOW", "09:00-17:00"),
            ("RECTIFY__SCHEDULE__REMIND", "0 */10 * * * *"),
            ("RECTIFY__MAIL__USERNAME", "12345"),
            ("RECTIFY__MAIL__TLS", "starttls"),
            ("RECTIFY__MAIL__LEASE", "5s"),
            ("RECTIFY__LANG", "en"),
            ("RECTIFY__LOG__LEVEL", "debug"),
            ("RECTIFY__IMPORT__IMMEDIATE_FIX", "3d"),
            ("RECTIFY__REMINDERS__BEFORE", "[\"5wd\", \"1wd\"]"),
        ],
    );
    assert_eq!(s.reminders.yellow_within, Offset::working_days(2));
    assert_eq!(s.database.pool_size, 4);
    assert!(!s.reminders.on_due);
    assert_eq!(s.reminders.send_window.to_string(), "09:00-17:00");
    assert_eq!(s.schedule.remind, "0 */10 * * * *");
    assert_eq!(s.mail.username, "12345");
    assert_eq!(s.mail.tls, MailTls::StartTls);
    assert_eq!(s.mail.lease, Duration::from_secs(5));
    assert_eq!(s.lang, Lang::En);
    assert_eq!(s.log.level, "debug");
    assert_eq!(s.import.immediate_fix, Offset::calendar_days(3));
    assert_eq!(
        s.reminders.before,
        vec![Offset::working_days(5), Offset::working_days(1)]
    );

    // The named variable wins over the generic one for the same key.
    let s = load_ok("", &[("RECTIFY_LANG", "en"), ("RECTIFY__LANG", "zh")]);
    assert_eq!(s.lang, Lang::En);
}

#[test]
fn other_rectify_variables_are_ignored() {
    let s = load_ok(
        "",
        &[
            ("RECTIFY_NOW", "2026-01-05T09:00:00+08:00"),
            ("RECTIFY_OPERATOR", "张三"),
            ("RECTIFY_CONFIG", "/nowhere.toml"),
            ("RECTIFY_TEST_DATABASE_URL", "not a url"),
            ("RECTIFY_SOMETHING_ELSE", "x"),
            ("PATH", "/usr/bin"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = load(None, &[], dir.path()).unwrap().settings;
    assert_eq!(s.lang, plain.lang);
    assert_eq!(s.reminders, plain.reminders);
    assert_eq!(s.mail.password, None);
}

#[test]
fn the_smtp_password_comes_from_the_named_variable() {
    let s = load_ok("", &[("RECTIFY_SMTP_PASSWORD", "s3cr3t-smtp")]);
    assert_eq!(
        s.mail.password.as_ref().map(|p| p.expose()),
        Some("s3cr3t-smtp")
    );

    let s = load_ok(
        "[mail]\npassword_env = \"OFFICE_MAIL_PW\"\n",
        &[
            ("RECTIFY_SMTP_PASSWORD", "not-this"),
            ("OFFICE_MAIL_PW", "but-this"),
        ],
    );
    assert_eq!(
        s.mail.password.as_ref().map(|p| p.expose()),
        Some("but-this")
    );

    let s = load_ok(
        "[mail]\npassword_env = \"\"\n",
        &[("RECTIFY_SMTP_PASSWORD", "x")],
    );
    assert_eq!(s.mail.password, None);
}

#[test]
fn secrets_never_show() {
    let text = "[database]\nurl = \"postgres://u:hunter2@h/db\"\n\
                [mail]\ntransport = \"smtp\"\nusername = \"zgb\"\n";
    let s = load_ok(text, &[("RECTIFY_SMTP_PASSWORD", "smtp-Secret-42")]);
    assert_eq!(s.database.url, "postgres://u:hunter2@h/db");
    assert_eq!(
        s.mail.password.as_ref().map(|p| p.expose()),
        Some("smtp-Secret-42")
    );

    let shown = s.to_redacted_toml();
    let debug = format!("{s:?}");
    let pretty = format!("{s:#?}");
    for out in [&shown, &debug, &pretty] {
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("smtp-Secret-42"), "{out}");
    }
    assert!(shown.contains("url = \"postgres://u:***@h/db\""), "{shown}");
    assert!(shown.contains("RECTIFY_SMTP_PASSWORD"), "{shown}");
    assert!(debug.contains("postgres://u:***@h/db"), "{debug}");
    assert!(debug.contains("***"), "{debug}");
    let secret = rectify_config::Secret::new("abc");
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(secret.expose(), "abc");

    // From the environment too.
    let s = load_ok(
        "",
        &[("RECTIFY_DATABASE", "postgresql://u:hunter2@h:5432/db")],
    );
    assert!(!s.to_redacted_toml().contains("hunter2"));
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(
        redact_url("postgres://user:secret@host/db"),
        "postgres://user:***@host/db"
    );
    assert_eq!(
        redact_url("postgres://user@host/db"),
        "postgres://user@host/db"
    );

    // And an error about a bad URL does not echo its password.
    let (err, _) = load_err("[database]\nurl = \"mysql://u:hunter2@h/db\"\n", &[]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let (err, _) = load_err("", &[("RECTIFY_DATABASE", "mysql://u:hunter2@h/db")]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

// ------------------------------------------------------------------------------------------
// Bad input.

fn assert_mentions(err: &ConfigError, parts: &[&str]) {
    let text = err.to_string();
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
}

#[test]
fn an_unknown_top_level_key_names_the_file_and_line() {
    let (err, file) = load_err("lang = \"zh\"\n\nremindres = 3\n", &[]);
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            &file.display().to_string(),
            "unknown key `remindres`",
            "at line 3",
            "`reminders`",
            "rectify.example.toml",
        ],
    );
    assert_eq!(
        err.origin(),
        Some(&Origin::File {
            path: file,
            line: Some(3)
        })
    );
}

#[test]
fn an_unknown_key_in_a_section_names_the_section() {
    let (err, file) = load_err("[reminders]\non_due = true\nyelow_within = \"3wd\"\n", &[]);
    assert_mentions(
        &err,
        &[
            &file.display().to_string(),
            "unknown key `reminders.yelow_within`",
            "at line 3",
            "in [reminders]",
            "`yellow_within`",
        ],
    );
    let (err, _) = load_err(
        "[reminders]\nescalate = [{ after = \"3wd\", cc = [\"leader\"], bcc = [] }]\n",
        &[],
    );
    assert_mentions(&err, &["unknown key", "bcc", "escalate step", "at line 2"]);
}

#[test]
fn a_bad_offset_is_refused() {
    let (err, _) = load_err("[reminders]\n\nyellow_within = \"3x\"\n", &[]);
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            "`reminders.yellow_within`",
            "at line 3",
            "`3x`",
            "e.g. `3wd`",
        ],
    );
    let (err, _) = load_err("[reminders]\nbefore = [\"7wd\", \"3x\"]\n", &[]);
    assert_mentions(&err, &["reminders.before[1]", "`3x`", "at line 2"]);
    let (err, _) = load_err("[reminders]\noverdue_every = \"0wd\"\n", &[]);
    assert_mentions(&err, &["reminders.overdue_every", "at least one day"]);
    let (err, _) = load_err("[reminders]\nyellow_within = 3\n", &[]);
    assert_mentions(
        &err,
        &[
            "reminders.yellow_within",
            "write e.g. `yellow_within = \"3wd\"`",
        ],
    );
}

#[test]
fn an_invalid_cron_expression_is_refused() {
    let (err, _) = load_err("[schedule]\ndaily_digest = \"0 0 25 * * *\"\n", &[]);
    assert_mentions(
        &err,
        &[
            "`schedule.daily_digest`",
            "at line 2",
            "not a valid cron expression",
            "seconds first",
            "Hours must be",
        ],
    );
    let (err, _) = load_err("[schedule]\nremind = \"*/5 * * * *\"\n", &[]);
    assert_mentions(&err, &["`schedule.remind`", "5 fields", "6 or 7 fields"]);
}

#[test]
fn a_send_window_ending_before_it_starts_is_refused() {
    let (err, _) = load_err("[reminders]\nsend_window = \"18:00-08:30\"\n", &[]);
    assert_mentions(
        &err,
        &[
            "`reminders.send_window`",
            "at line 2",
            "send_window 18:00-08:30 ends before it starts; write e.g. 08:30-18:00",
        ],
    );
    let (err, _) = load_err("[reminders]\nsend_window = \"8h-18h\"\n", &[]);
    assert_mentions(&err, &["HH:MM-HH:MM"]);
}

#[test]
fn an_unknown_time_zone_is_refused() {
    let (err, file) = load_err("time_zone = \"Asia/Shanghia\"\n", &[]);
    assert_mentions(
        &err,
        &[
            &file.display().to_string(),
            "`time_zone`",
            "at line 1",
            "unknown time zone `Asia/Shanghia`; use an IANA name such as Asia/Shanghai",
        ],
    );
}

#[test]
fn an_unknown_escalation_target_is_refused() {
    let (err, _) = load_err(
        "[reminders]\nescalate = [\n  { after = \"3wd\", cc = [\"leader\", \"boss\"] },\n]\n",
        &[],
    );
    assert_mentions(
        &err,
        &[
            "reminders.escalate[0].cc[1]",
            "at line 3",
            "unknown escalate cc `boss`",
            "\"leader\"",
            "\"office\"",
        ],
    );
}

#[test]
fn escalation_steps_must_increase() {
    let (err, _) = load_err(
        "[reminders]\nescalate = [\n  { after = \"10wd\", cc = [\"leader\"] },\n  { after = \"3wd\", cc = [\"office\"] },\n]\n",
        &[],
    );
    assert_mentions(
        &err,
        &[
            "`reminders.escalate`",
            "strictly increasing",
            "\"3wd\" follows \"10wd\"",
        ],
    );
    let (err, _) = load_err(
        "[reminders]\nescalate = [{ after = \"3wd\", cc = [\"leader\"] }, { after = \"5d\", notice = true }]\n",
        &[],
    );
    assert_mentions(&err, &["same unit"]);
    let (err, _) = load_err("[reminders]\nescalate = [{ after = \"3wd\" }]\n", &[]);
    assert_mentions(&err, &["does nothing"]);
    let (err, _) = load_err("[reminders]\nescalate = [{ cc = [\"leader\"] }]\n", &[]);
    assert_mentions(&err, &["missing field `after`", "write e.g."]);
}

#[test]
fn a_password_key_in_the_file_is_refused() {
    let (err, file) = load_err("[mail]\nusername = \"zgb\"\npassword = \"hunter2\"\n", &[]);
    assert!(
        matches!(err, ConfigError::PasswordInConfig { .. }),
        "{err:?}"
    );
    assert_mentions(
        &err,
        &[
            &file.display().to_string(),
            "`mail.password`",
            "at line 3",
            "RECTIFY_SMTP_PASSWORD",
        ],
    );
    assert!(!err.to_string().contains("hunter2"));
    let (err, _) = load_err(
        "[mail]\npassword_env = \"OFFICE_PW\"\npassword = \"x\"\n",
        &[],
    );
    assert_mentions(&err, &["environment variable OFFICE_PW"]);
    let (err, _) = load_err("", &[("RECTIFY__MAIL__PASSWORD", "hunter2")]);
    assert_mentions(
        &err,
        &[
            "environment variable RECTIFY__MAIL__PASSWORD",
            "RECTIFY_SMTP_PASSWORD",
        ],
    );
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(Some(Path::new("nope.toml")), &[], dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            &dir.path().join("nope.toml").display().to_string(),
            "does not exist",
            "--config",
        ],
    );
    // A folder is not a file.
    let err = load(Some(dir.path()), &[], dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let s = load_ok("\u{feff}lang = \"en\"\n", &[]);
    assert_eq!(s.lang, Lang::En);
}

#[test]
fn rectify_toml_in_cwd_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rectify.toml", "lang = \"en\"\n");
    let loaded = load(None, &[], dir.path()).unwrap();
    assert_eq!(loaded.file, Some(file));
    assert_eq!(loaded.settings.lang, Lang::En);
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "RECTIFY__DATABASE__POOL_SIZE",
            "abc",
            &[
                "RECTIFY__DATABASE__POOL_SIZE",
                "RECTIFY__DATABASE__POOL_SIZE=8",
            ],
        ),
        ("RECTIFY__DATABASE__POOL_SIZE", "0", &["1 to 256"]),
        (
            "RECTIFY_SMTP_PORT",
            "smtp",
            &["RECTIFY_SMTP_PORT", "RECTIFY_SMTP_PORT=25"],
        ),
        (
            "RECTIFY_LANG",
            "fr",
            &["RECTIFY_LANG", "`fr`", "\"zh\" or \"en\""],
        ),
        (
            "RECTIFY_TIME_ZONE",
            "Asia/Shanghia",
            &["RECTIFY_TIME_ZONE", "IANA"],
        ),
        (
            "RECTIFY_DATABASE",
            "mysql://h/db",
            &["RECTIFY_DATABASE", "sqlite://", "postgres://"],
        ),
        (
            "RECTIFY_MAIL_TRANSPORT",
            "pigeon",
            &["RECTIFY_MAIL_TRANSPORT", "\"smtp\""],
        ),
        ("RECTIFY_HTTP_LISTEN", "localhost:9100", &["127.0.0.1:9100"]),
        ("RECTIFY_LOG_FORMAT", "xml", &["\"json\""]),
        ("RECTIFY__REMINDERS__YELLOW_WITHIN", "3x", &["`3x`", "3wd"]),
        (
            "RECTIFY__REMINDERS__SEND_WINDOW",
            "18:00-08:30",
            &["ends before it starts"],
        ),
        ("RECTIFY__SCHEDULE__REMIND", "@daily", &["6 or 7 fields"]),
    ];
    for (var, value, parts) in cases {
        let (err, file) = load_err("lang = \"zh\"\n", &[(var, value)]);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("environment variable {var}")),
            "{var}={value}: {text}"
        );
        assert!(!text.contains(&file.display().to_string()), "{text}");
        assert_mentions(&err, parts);
        assert_eq!(
            err.origin(),
            Some(&Origin::Env {
                var: var.to_string()
            })
        );
    }
}

#[test]
fn an_unknown_generic_variable_is_an_error() {
    let (err, _) = load_err("", &[("RECTIFY__REMINDERS__YELOW_WITHIN", "2wd")]);
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_mentions(
        &err,
        &[
            "environment variable RECTIFY__REMINDERS__YELOW_WITHIN",
            "unknown key `reminders.yelow_within`",
            "`yellow_within`",
        ],
    );
    let (err, _) = load_err("", &[("RECTIFY__NOPE__X", "1")]);
    assert_mentions(&err, &["RECTIFY__NOPE__X", "unknown key `nope`"]);
    let (err, _) = load_err("", &[("RECTIFY__DATABASE", "x")]);
    assert_mentions(&err, &["RECTIFY__DATABASE", "section [database]"]);
    let (err, _) = load_err("", &[("RECTIFY__A__B__C", "x")]);
    assert_mentions(&err, &["RECTIFY__A__B__C", "RECTIFY__SECTION__KEY"]);
}

#[test]
fn other_bad_values_are_refused() {
    let cases: &[(&str, &[&str])] = &[
        ("lang = \"fr\"\n", &["`lang`", "`fr`"]),
        (
            "lang = zh\n",
            &["TOML syntax error", "at line 1", "double quotes"],
        ),
        (
            "[database]\nurl = \"mysql://h/db\"\n",
            &["`database.url`", "sqlite://FILE"],
        ),
        (
            "[database]\npool_size = 0\n",
            &["`database.pool_size`", "1 to 256"],
        ),
        (
            "[database]\npool_size = \"8\"\n",
            &["write e.g. `pool_size = 8`"],
        ),
        (
            "[database]\nbusy_timeout = \"10\"\n",
            &["`database.busy_timeout`", "no unit"],
        ),
        ("database = \"x\"\n", &["`database` is a section"]),
        (
            "[mail]\nfrom = \"zgb\"\n",
            &["`mail.from`", "not an email address"],
        ),
        ("[mail]\ntls = \"ssl\"\n", &["`mail.tls`", "\"starttls\""]),
        (
            "[mail]\nport = 70000\n",
            &["`mail.port`", "write e.g. `port = 25`"],
        ),
        (
            "[mail]\ntransport = \"smtp\"\nhost = \"\"\n",
            &["`mail.host`", "is empty"],
        ),
        (
            "[calendar]\noff = [\"2026-13-01\"]\n",
            &["calendar.off[0]", "YYYY-MM-DD"],
        ),
        (
            "[calendar]\noff = [2026-12-31]\n",
            &["calendar.off[0]", "in quotes"],
        ),
        (
            "[calendar]\noff = [\"2026-12-26\"]\nwork = [\"2026-12-26\"]\n",
            &["`calendar.work`", "2026-12-26", "both"],
        ),
        (
            "[calendar]\ncovered_years = [27]\n",
            &["calendar.covered_years", "2000 to 2100"],
        ),
        (
            "[http]\nlisten = \"9100\"\n",
            &["`http.listen`", "127.0.0.1:9100"],
        ),
        ("[log]\nlevel = \"verbose\"\n", &["`log.level`", "verbose"]),
        ("evidence_dir = \"\"\n", &["`evidence_dir`", "empty"]),
    ];
    for (text, parts) in cases {
        let (err, file) = load_err(text, &[]);
        let shown = err.to_string();
        assert!(
            shown.contains(&file.display().to_string()),
            "{text:?}: {shown}"
        );
        assert_mentions(&err, parts);
    }
}

#[test]
fn the_readme_shows_the_complete_example_file() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(rectify_config::EXAMPLE_TOML),
        "README.md must contain config/rectify.example.toml verbatim; copy it again"
    );
}
