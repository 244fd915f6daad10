//! `serve`, `remind preview|run` and `outbox list|retry`: the binary's side of the notifier.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rectify_config::{CcTarget, MailTls, MailTransport};
use rectify_engine::Lang;
use rectify_engine::light::LightPolicy;
use rectify_engine::remind::{Cc, EscalationStep, ReminderPolicy};
use rectify_notifier::{
    Clock, DispatchConfig, Dispatcher, Job, Mailer, Schedules, Service, Stats, TlsMode,
    TransportConfig,
};
use rectify_schema::{Planner, Store};
use serde_json::json;

use crate::app::App;
use crate::cli::{OutboxCmd, RemindCmd};
use crate::commands::calendar_for;
use crate::error::{CliError, CliResult, InLang};
use crate::output;

pub fn policy(app: &App) -> ReminderPolicy {
    let r = &app.settings.reminders;
    ReminderPolicy {
        before: r.before.clone(),
        on_due: r.on_due,
        overdue_every: r.overdue_every,
        escalate: r
            .escalate
            .iter()
            .map(|s| EscalationStep {
                after: s.after,
                cc: s
                    .cc
                    .iter()
                    .map(|c| match c {
                        CcTarget::Leader => Cc::Leader,
                        CcTarget::Office => Cc::Office,
                    })
                    .collect(),
                notice: s.notice,
            })
            .collect(),
        ack_within: r.ack_within,
        progress_every: r.progress_every,
    }
}

pub fn light_policy(app: &App) -> LightPolicy {
    let r = &app.settings.reminders;
    LightPolicy {
        yellow_within: r.yellow_within,
        ack_within: r.ack_within,
        progress_every: r.progress_every,
    }
}

pub fn planner(app: &App) -> Planner {
    Planner {
        policy: policy(app),
        calendar: Arc::new(calendar_for(app)),
        tz: app.tz,
    }
}

fn transport(app: &App) -> TransportConfig {
    let m = &app.settings.mail;
    match m.transport {
        MailTransport::File => TransportConfig::File { dir: m.dir.clone() },
        MailTransport::Smtp => TransportConfig::Smtp {
            host: m.host.clone(),
            port: m.port,
            tls: match m.tls {
                MailTls::None => TlsMode::None,
                MailTls::StartTls => TlsMode::StartTls,
                MailTls::Tls => TlsMode::Tls,
            },
            username: m.username.clone(),
            password: m.password.as_ref().map(|s| s.expose().to_string()),
            max_connections: m.max_connections,
            timeout: m.timeout,
        },
    }
}

pub fn dispatcher(app: &App, store: Store) -> CliResult<Dispatcher> {
    dispatcher_with(app, store, &transport(app))
}

/// A dispatcher with an explicit transport (the demo writes its mail into its own folder).
pub fn dispatcher_with(
    app: &App,
    store: Store,
    transport: &TransportConfig,
) -> CliResult<Dispatcher> {
    let planner = planner(app);
    let mailer = Mailer::new(transport).map_err(|e| {
        CliError::bad(
            app.lang,
            format!("邮件设置有误:{e}"),
            format!("mail settings: {e}"),
        )
    })?;
    let w = &app.settings.reminders.send_window;
    let instance = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "rectify".into()),
        std::process::id()
    );
    Ok(Dispatcher::new(
        store,
        mailer,
        DispatchConfig {
            lang: app.lang,
            tz: app.tz,
            from: app.settings.mail.from.clone(),
            window: (w.start, w.end),
            policy: planner.policy.clone(),
            light: light_policy(app),
            calendar: planner.calendar.clone(),
            lease: app.settings.mail.lease,
            max_connections: app.settings.mail.max_connections as usize,
            instance,
            sender: app
                .lang
                .pick("整改办", "The rectification office")
                .to_string(),
        },
    ))
}

fn parse_at(app: &App, at: Option<&str>) -> CliResult<DateTime<Utc>> {
    match at {
        None => Ok(app.now),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                CliError::bad(
                    app.lang,
                    format!("--at 的值“{s}”不是 RFC 3339 时间;请写成 2026-03-02T09:00:00+08:00"),
                    format!(
                        "--at `{s}` is not an RFC 3339 time; write e.g. 2026-03-02T09:00:00+08:00"
                    ),
                )
            }),
    }
}

pub async fn remind(app: &App, c: RemindCmd) -> CliResult {
    let store = app.open_planned().await?;
    let d = dispatcher(app, store)?;
    let (at, dry) = match &c {
        RemindCmd::Preview { at } => (parse_at(app, at.as_deref())?, true),
        RemindCmd::Run { at } => (parse_at(app, at.as_deref())?, false),
    };
    let started = std::time::Instant::now();
    let report = d.plan_pass(at, dry).await.lang(app.lang)?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let (delivery, timing) = if dry {
        (None, None)
    } else {
        let token = format!("cli-{}", std::process::id());
        let (r, t) = d.deliver_timed(at, &token).await.lang(app.lang)?;
        d.store.release_leases(&token).await.lang(app.lang)?;
        (Some(r), Some(t))
    };
    let deliver_seconds = started.elapsed().as_secs_f64();
    let l = app.lang;
    if app.json() {
        println!(
            "{}",
            json!({
                "at": at,
                "not_run": report.not_run,
                "messages": report.messages.iter().map(|m| json!({
                    "message_id": m.message_id, "kind": m.kind, "unit": m.unit_code,
                    "to": m.to, "cc": m.cc, "subject": m.subject,
                })).collect::<Vec<_>>(),
                "reminders": report.reminders_queued,
                "skipped": report.skipped.iter().map(|(id, why)| json!({"reminder": id, "reason": why})).collect::<Vec<_>>(),
                "sent": delivery.as_ref().map(|d| d.sent),
                "retried": delivery.as_ref().map(|d| d.retried),
                "failed": delivery.as_ref().map(|d| d.failed),
                "plan_seconds": plan_seconds,
                "deliver_seconds": deliver_seconds,
                // Of which: sending and recording each message, then settling reminder rows.
                "send_seconds": timing.map(|t| t.sending.as_secs_f64()),
                "settle_seconds": timing.map(|t| t.settling.as_secs_f64()),
            })
        );
        return Ok(());
    }
    if let Some(why) = &report.not_run {
        println!("{}{why}", l.pick("未发送:", "nothing sent: "));
    }
    for m in &report.messages {
        println!("{} {}", l.pick("收件:", "To:"), m.to.join(", "));
        if !m.cc.is_empty() {
            println!("{} {}", l.pick("抄送:", "Cc:"), m.cc.join(", "));
        }
        println!("{} {}", l.pick("主题:", "Subject:"), m.subject);
        if dry {
            println!("{}", m.body_text.trim_end());
        }
        println!();
    }
    match l {
        Lang::Zh => println!(
            "{} 封邮件,{} 条提醒;跳过 {} 条",
            report.messages.len(),
            report.reminders_queued,
            report.skipped.len()
        ),
        Lang::En => println!(
            "{} message(s), {} reminder(s); {} skipped",
            report.messages.len(),
            report.reminders_queued,
            report.skipped.len()
        ),
    }
    if let Some(d) = delivery {
        match l {
            Lang::Zh => println!("已发送 {},待重试 {},失败 {}", d.sent, d.retried, d.failed),
            Lang::En => println!(
                "sent {}, to retry {}, failed {}",
                d.sent, d.retried, d.failed
            ),
        }
    }
    Ok(())
}

pub async fn outbox(app: &App, c: OutboxCmd) -> CliResult {
    let store = app.open().await?;
    match c {
        OutboxCmd::List { state } => {
            if let Some(s) = &state
                && !["pending", "sending", "sent", "failed"].contains(&s.as_str())
            {
                return Err(CliError::bad(
                    app.lang,
                    format!("未知状态“{s}”;可选 pending、sending、sent、failed"),
                    format!("unknown state `{s}`: use pending, sending, sent or failed"),
                ));
            }
            let rows = store.list_outbox(state.as_deref()).await.lang(app.lang)?;
            if app.json() {
                println!(
                    "{}",
                    json!(rows.iter().map(|m| json!({
                        "id": m.id, "message_id": m.message_id, "kind": m.kind, "unit": m.unit_code,
                        "to": serde_json::from_str::<serde_json::Value>(&m.to_addrs).unwrap_or_default(),
                        "subject": m.subject, "state": m.state, "attempts": m.attempts,
                        "last_error": m.last_error, "created_at": m.created_at, "sent_at": m.sent_at,
                    })).collect::<Vec<_>>())
                );
            } else {
                let l = app.lang;
                let mut t = output::Table::new(&[
                    "ID",
                    l.pick("状态", "State"),
                    l.pick("次数", "Tries"),
                    l.pick("收件", "To"),
                    l.pick("主题", "Subject"),
                    l.pick("错误", "Error"),
                ]);
                for m in rows {
                    let to: Vec<String> = serde_json::from_str(&m.to_addrs).unwrap_or_default();
                    t.row(vec![
                        m.id.to_string(),
                        m.state,
                        m.attempts.to_string(),
                        to.join(", "),
                        output::ellipsize(&m.subject, 40),
                        output::ellipsize(m.last_error.as_deref().unwrap_or("-"), 40),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        OutboxCmd::Retry { id } => {
            store.retry_outbox(id, app.now).await.lang(app.lang)?;
            println!(
                "{}",
                match app.lang {
                    Lang::Zh => format!("邮件 {id} 已重新排队"),
                    Lang::En => format!("message {id} queued again"),
                }
            );
        }
    }
    Ok(())
}

pub fn init_logging(app: &App, format: Option<&str>) -> CliResult {
    use tracing_subscriber::EnvFilter;
    let json = match format {
        Some("json") => true,
        Some("human") => false,
        Some(other) => {
            return Err(CliError::bad(
                app.lang,
                format!("未知日志格式“{other}”;可选 human 或 json"),
                format!("unknown log format `{other}`: use human or json"),
            ));
        }
        None => app.settings.log.format == rectify_config::LogFormat::Json,
    };
    let filter =
        EnvFilter::try_new(&app.settings.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let r = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
    r.map_err(|e| CliError::system(format!("logging: {e}")))
}

pub async fn serve(app: &App, log_format: Option<String>) -> CliResult {
    init_logging(app, log_format.as_deref())?;
    // Take over SIGTERM/SIGINT before anything else, so a stop request during start-up is a
    // clean stop, not the default kill.
    let shutdown = shutdown_signal()?;
    // Retry opening the database: at boot it may not be up yet.
    let store = {
        let mut wait = Duration::from_millis(500);
        loop {
            match app.open_planned().await {
                Ok(s) => break s,
                Err(e) if e.class == rectify_schema::ErrorClass::System => {
                    tracing::error!(error = %e.message, retry_in_ms = wait.as_millis() as u64, "database not reachable");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let s = &app.settings.schedule;
    let schedules = Schedules::parse(&[
        (Job::Remind, s.remind.as_str()),
        (Job::DailyDigest, s.daily_digest.as_str()),
        (Job::WeeklyDispatch, s.weekly_dispatch.as_str()),
        (Job::MonthlyNotice, s.monthly_notice.as_str()),
    ])
    .map_err(CliError::bad_input)?;
    let clock = match std::env::var("RECTIFY_NOW") {
        Ok(v) if !v.trim().is_empty() => Clock::starting_at(app.now),
        _ => Clock::real(),
    };
    let d = dispatcher(app, store)?;
    tracing::info!(
        database = %app.settings.database.redacted_url(),
        mail = ?app.settings.mail.transport,
        instance = %d.cfg.instance,
        "rectify serve started"
    );
    let cal = calendar_for(app);
    for y in [
        chrono::Datelike::year(&app.today()),
        chrono::Datelike::year(&app.today()) + 1,
    ] {
        if !cal.covers(y) {
            tracing::warn!(
                "{}",
                rectify_engine::calendar::uncovered_warning(y, app.lang == Lang::Zh)
            );
        }
    }
    let stats = Arc::new(Stats::default());
    let http_stop = Arc::new(tokio::sync::Notify::new());
    if let Some(addr) = app.settings.http.listen {
        let bound =
            rectify_notifier::http::spawn(addr, d.store.clone(), stats.clone(), http_stop.clone())
                .await
                .map_err(|e| {
                    CliError::bad(
                        app.lang,
                        format!(
                            "无法在 {addr} 上提供 /healthz 和 /metrics:{e};请检查 [http] listen"
                        ),
                        format!(
                            "cannot serve /healthz and /metrics on {addr}: {e}; check [http] listen"
                        ),
                    )
                })?;
        tracing::info!(%bound, "serving /healthz and /metrics");
    }
    let listen_url = (app.settings.database.backend() == rectify_config::DatabaseBackend::Postgres)
        .then(|| app.settings.database.url.clone());
    let service = Service {
        dispatcher: d,
        schedules,
        clock,
        notify: Arc::new(tokio::sync::Notify::new()),
        poll: Duration::from_secs(60),
        stats,
        listen_url,
    };
    service.run(shutdown).await.lang(app.lang)?;
    http_stop.notify_waiters();
    Ok(())
}

/// Registers the stop signals now and returns the future that completes on the first of them.
fn shutdown_signal() -> CliResult<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CliError::system(format!("cannot handle SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| CliError::system(format!("cannot handle SIGINT: {e}")))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutdown requested: finishing sends in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown requested: finishing sends in flight");
        })
    }
}
