//! Turns raw CLI arguments and the environment into validated settings, once, before anything
//! runs; opens the store; knows the clock and the acting operator.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rectify_config::{Loaded, Settings};
use rectify_engine::{Actor, Lang, Role};
use rectify_schema::{ConnectSettings, Store, StoreError};

use crate::cli::{Cli, Format};
use crate::error::{CliError, CliResult, InLang};

pub struct App {
    pub settings: Settings,
    pub config_file: Option<std::path::PathBuf>,
    pub lang: Lang,
    pub tz: Tz,
    pub format: Format,
    pub operator: Option<String>,
    pub now: DateTime<Utc>,
}

/// The language to complain in before the configuration is loaded.
pub fn early_lang(cli_lang: Option<&str>) -> Lang {
    cli_lang
        .map(str::to_string)
        .or_else(|| std::env::var("RECTIFY_LANG").ok())
        .and_then(|l| l.parse().ok())
        .unwrap_or_default()
}

/// `RECTIFY_NOW` fixes the clock (RFC 3339), for tests and demos.
pub fn clock(lang: Lang) -> CliResult<DateTime<Utc>> {
    match std::env::var("RECTIFY_NOW") {
        Ok(s) if !s.trim().is_empty() => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                CliError::bad(
                    lang,
                    format!("环境变量 RECTIFY_NOW 的值“{s}”不是 RFC 3339 时间;请写成 2026-03-01T09:00:00+08:00"),
                    format!("RECTIFY_NOW=`{s}` is not an RFC 3339 time; write e.g. 2026-03-01T09:00:00+08:00"),
                )
            }),
        _ => Ok(Utc::now()),
    }
}

impl App {
    pub fn load(cli: &Cli) -> CliResult<App> {
        let lang0 = early_lang(cli.lang.as_deref());
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        // Command-line options win over the file and the environment: hand them to the config
        // loader as the environment variables they stand for, so they are validated the same way.
        if let Some(db) = &cli.database {
            env.retain(|(k, _)| k != "RECTIFY_DATABASE");
            env.push(("RECTIFY_DATABASE".into(), db.clone()));
        }
        if let Some(l) = &cli.lang {
            env.retain(|(k, _)| k != "RECTIFY_LANG");
            env.push(("RECTIFY_LANG".into(), l.clone()));
        }
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::system(format!("cannot read the current folder: {e}")))?;
        let Loaded { settings, file } = rectify_config::load(cli.config.as_deref(), &env, &cwd)
            .map_err(|e| {
                CliError::bad(
                    lang0,
                    format!("配置有误:{e}"),
                    format!("configuration error: {e}"),
                )
            })?;
        let lang = settings.lang;
        Ok(App {
            tz: settings.time_zone,
            lang,
            format: cli.format,
            operator: cli.operator.clone(),
            now: clock(lang)?,
            config_file: file,
            settings,
        })
    }

    /// Today in the office's time zone: deadlines are local calendar dates.
    pub fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.tz).date_naive()
    }

    pub fn connect_settings(&self) -> ConnectSettings {
        let db = &self.settings.database;
        ConnectSettings {
            url: db.url.clone(),
            pool_size: db.pool_size,
            busy_timeout: db.busy_timeout,
            statement_timeout: db.statement_timeout,
            evidence_dir: self.settings.evidence_dir.clone(),
        }
    }

    /// Opens the database without checking its schema (for `init`).
    pub async fn open_raw(&self) -> CliResult<Store> {
        if let Some(path) = self.settings.database.sqlite_path()
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            return Err(CliError::bad(
                self.lang,
                format!(
                    "数据库文件所在的文件夹 {} 不存在;请先创建它,或换一个路径",
                    parent.display()
                ),
                format!(
                    "the folder {} for the database file does not exist; create it or choose another path",
                    parent.display()
                ),
            ));
        }
        Store::connect(&self.connect_settings()).await.map_err(|e| {
            CliError::system(match self.lang {
                Lang::Zh => format!(
                    "无法连接数据库 {}:{};请检查 --database / RECTIFY_DATABASE 和数据库服务",
                    self.settings.database.redacted_url(),
                    e.message(Lang::En)
                ),
                Lang::En => format!(
                    "cannot open the database {}: {}; check --database / RECTIFY_DATABASE and that the server is running",
                    self.settings.database.redacted_url(),
                    e.message(Lang::En)
                ),
            })
        })
    }

    /// Opens the database and checks it has been initialised.
    pub async fn open(&self) -> CliResult<Store> {
        let store = self.open_raw().await?;
        store.ensure_ready().await.lang(self.lang)?;
        Ok(store)
    }

    /// Opens the database with the reminder planner of this configuration: every command that
    /// changes an item re-plans its reminders in the same transaction.
    pub async fn open_planned(&self) -> CliResult<Store> {
        Ok(self
            .open()
            .await?
            .with_planner(crate::remind_cmd::planner(self)))
    }

    /// The acting operator: `--as`, else `RECTIFY_OPERATOR`, else the only admin if there is
    /// exactly one.
    pub async fn actor(&self, store: &Store) -> CliResult<Actor> {
        if let Some(name) = &self.operator {
            return match store.find_operator(name).await {
                Ok(o) => Ok(o.actor()),
                Err(StoreError::NotFound { .. }) => Err(CliError::bad(
                    self.lang,
                    format!(
                        "操作员“{name}”不存在;用 `rectify operator list` 查看,或用 `rectify operator add` 添加"
                    ),
                    format!(
                        "operator `{name}` does not exist; see `rectify operator list` or add it with `rectify operator add`"
                    ),
                )),
                Err(e) => Err(CliError::from_store(e, self.lang)),
            };
        }
        let admins: Vec<_> = store
            .list_operators()
            .await
            .lang(self.lang)?
            .into_iter()
            .filter(|o| o.role == Role::Admin)
            .collect();
        match admins.as_slice() {
            [only] => Ok(only.actor()),
            _ => Err(CliError::bad(
                self.lang,
                "请用 --as 操作员 (或环境变量 RECTIFY_OPERATOR) 说明由谁操作",
                "say who is acting with --as OPERATOR (or RECTIFY_OPERATOR)",
            )),
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}
