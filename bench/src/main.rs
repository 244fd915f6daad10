//! `cargo run --release -p rectify-bench -- [--quick] [--pg URL] [--only due,commands,…]`
//!
//! Generates synthetic rounds (units with emails, items with deadlines spread over months, a
//! share overdue), runs each scenario on SQLite (and PostgreSQL when a URL is given), and prints
//! one table. Every ratio is measured against its reference in the same run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::light::LightPolicy;
use rectify_engine::remind::ReminderPolicy;
use rectify_engine::{Actor, Command as Cmd, Lang, Role};
use rectify_notifier::testing::SmtpServer;
use rectify_notifier::{DispatchConfig, Dispatcher, Mailer, TransportConfig};
use rectify_schema::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use rectify_schema::{ConnectSettings, Planner, Store};

struct Row {
    scenario: String,
    measured: String,
    target: String,
    verdict: String,
}

struct Args {
    quick: bool,
    pg: Option<String>,
    bin: PathBuf,
    /// Scenarios to run (`--only idle,due,commands,serve,import,instances`); empty: all.
    only: Vec<String>,
}

/// The scenario names `--only` takes.
const SCENARIOS: [&str; 6] = ["idle", "due", "commands", "serve", "import", "instances"];

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn parse_args() -> Args {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--measure-child") {
        measure_child(&raw[1..]);
    }
    if raw.first().map(String::as_str) == Some("--write-ledger") {
        write_ledger(&raw[1..]);
    }
    let mut a = Args {
        quick: false,
        pg: None,
        // The `rectify` binary built next to this runner (same profile).
        bin: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rectify")))
            .unwrap_or_else(|| PathBuf::from("target/release/rectify")),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--quick" => a.quick = true,
            "--pg" => a.pg = it.next(),
            // Absolute: the children run in scenario folders of their own.
            "--bin" => {
                a.bin = it
                    .next()
                    .map(|b| std::path::absolute(&b).unwrap_or_else(|_| PathBuf::from(b)))
                    .unwrap_or(a.bin)
            }
            "--only" => {
                for name in it.next().unwrap_or_default().split(',') {
                    if !SCENARIOS.contains(&name) {
                        eprintln!(
                            "unknown scenario `{name}` after --only: use a comma-separated list of {}",
                            SCENARIOS.join(", ")
                        );
                        std::process::exit(2);
                    }
                    a.only.push(name.to_string());
                }
            }
            "ALL" => {}
            other => {
                eprintln!(
                    "unknown argument `{other}`: use [--quick] [--pg URL] [--bin PATH] [--only {}] [ALL]",
                    SCENARIOS.join(",")
                );
                std::process::exit(2);
            }
        }
    }
    a
}

/// Monday 2026-03-02 10:00 in Shanghai: a working day inside the send window.
fn pass_time() -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("valid time")
        .with_timezone(&Utc)
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date")
}

fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// A median with its range, `d` decimals: "0.68 (0.63–0.71)"; the median alone for one run.
fn spread((m, lo, hi): (f64, f64, f64), d: usize, runs: usize) -> String {
    if runs > 1 {
        format!("{m:.d$} ({lo:.d$}–{hi:.d$})")
    } else {
        format!("{m:.d$}")
    }
}

/// What a row of `runs` repeated runs starts with ("median (min–max) of 3 runs: ").
fn of_runs(runs: usize, what: &str) -> String {
    if runs > 1 {
        format!("median (min–max) of {runs} {what}: ")
    } else {
        String::new()
    }
}

async fn open(url: &str, dir: &Path) -> Store {
    let mut s = ConnectSettings::new(url, dir.join("evidence"));
    s.pool_size = 4;
    let store = Store::connect(&s).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.with_planner(Planner::default())
}

fn ph(backend: DbBackend, n: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${n}")
    } else {
        "?".into()
    }
}

/// Bulk-generates `units` units, one round and `items` assigned items (deadlines spread over six
/// months from `today`, `overdue_share` already overdue) with `due_now` reminder rows due today and
/// the rest of the reminders in the future. Raw multi-row inserts: this is data setup, not the
/// thing measured.
async fn generate(store: &Store, units: usize, items: usize, due_now: usize) {
    let db = store.db();
    let b = store.backend();
    let now = pass_time();
    let txn = db.begin().await.expect("begin");
    for u in 0..units {
        let sql = format!(
            "INSERT INTO units (code, name, parent_code, emails, leader, leader_email, aliases, created_at) VALUES ({}, {}, NULL, {}, NULL, NULL, '[]', {})",
            ph(b, 1),
            ph(b, 2),
            ph(b, 3),
            ph(b, 4)
        );
        txn.execute_raw(Statement::from_sql_and_values(
            b,
            sql,
            [
                format!("U{u:04}").into(),
                format!("单位{u:04}").into(),
                format!("[\"u{u:04}@example.gov.cn\"]").into(),
                now.into(),
            ],
        ))
        .await
        .expect("unit");
    }
    txn.execute_unprepared("INSERT INTO rounds (code, title, source, created_at) VALUES ('B1', '基准轮次', 'inspection', '2026-01-01 00:00:00+00:00')")
        .await
        .ok();
    txn.commit().await.expect("commit");

    let chunk = 500;
    let mut id = 0usize;
    while id < items {
        let txn = db.begin().await.expect("begin");
        let n = chunk.min(items - id);
        let mut item_rows = Vec::with_capacity(n);
        let mut rem_rows = Vec::with_capacity(n * 2);
        for k in 0..n {
            let i = id + k + 1;
            let unit = format!("U{:04}", i % units);
            let due = today() + chrono::Duration::days(((i * 37) % 180) as i64 + 1);
            let t = "2026-02-01 00:00:00+00:00";
            item_rows.push(format!(
                "({i}, 'B1', NULL, '{i}', '事项{i}', '{unit}', '[]', NULL, '{due}', 'in_progress', 3, 1, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{t}', '{t}', '{t}', NULL, NULL, NULL, 2, 'x')"
            ));
            let send_on = if i <= due_now {
                today()
            } else {
                (due - chrono::Duration::days(3)).max(today() + chrono::Duration::days(1))
            };
            rem_rows.push(format!(
                "({i}, 'before', 1, 1, '{send_on}', 'pending', NULL, NULL, '{t}', '{t}')"
            ));
            rem_rows.push(format!(
                "({i}, 'on_due', 0, 1, '{due}', 'pending', NULL, NULL, '{t}', '{t}')"
            ));
        }
        let ts = |s: &str| {
            if b == DbBackend::Postgres {
                s.replace(
                    "'2026-02-01 00:00:00+00:00'",
                    "'2026-02-01 00:00:00+00:00'::timestamptz",
                )
            } else {
                s.to_string()
            }
        };
        txn.execute_unprepared(&ts(&format!(
            "INSERT INTO items (id, round_code, parent_id, number, title, lead_unit, co_units, leader, deadline, state, version, deadline_version, send_backs, reassignments, cadence, ext_to, ext_reason, ext_requested_by, merged_into, progress_percent, last_progress, created_at, assigned_at, acknowledged_at, last_progress_at, submitted_at, closed_at, head_seq, head_hash) VALUES {}",
            item_rows.join(",")
        )))
        .await
        .expect("items");
        txn.execute_unprepared(&ts(&format!(
            "INSERT INTO reminders (item_id, kind, step, deadline_version, send_on, state, reason, outbox_id, created_at, updated_at) VALUES {}",
            rem_rows.join(",")
        )))
        .await
        .expect("reminders");
        txn.commit().await.expect("commit");
        id += n;
    }
    if b == DbBackend::Postgres {
        db.execute_unprepared(
            "SELECT setval(pg_get_serial_sequence('items','id'), (SELECT max(id) FROM items))",
        )
        .await
        .ok();
        // VACUUM too: autovacuum would otherwise vacuum the freshly inserted tables (their
        // insert counts pass its threshold) in the middle of whatever is measured next.
        db.execute_unprepared("VACUUM ANALYZE").await.ok();
    } else {
        db.execute_unprepared("ANALYZE").await.ok();
    }
}

fn dispatcher(store: Store, transport: TransportConfig, max_connections: usize) -> Dispatcher {
    Dispatcher::new(
        store,
        Mailer::new(&transport).expect("mailer"),
        DispatchConfig {
            lang: Lang::Zh,
            tz: chrono_tz::Asia::Shanghai,
            from: "整改办 <zgb@example.gov.cn>".into(),
            window: (
                chrono::NaiveTime::from_hms_opt(8, 30, 0).expect("t"),
                chrono::NaiveTime::from_hms_opt(18, 0, 0).expect("t"),
            ),
            policy: ReminderPolicy::default(),
            light: LightPolicy::default(),
            calendar: Arc::new(WorkCalendar::china()),
            lease: Duration::from_secs(120),
            max_connections,
            instance: "bench".into(),
            sender: "整改办".into(),
        },
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rectify-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

/// CPU seconds spent so far by every process of the machine (user, nice, system, irq,
/// softirq, steal: the first line of /proc/stat, in clock ticks of 1/100 s).
fn machine_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&k| ticks.get(k))
        .sum();
    Some(busy / 100.0)
}

/// CPU time (user + system, s) a process has used so far, from `/proc/PID/stat`.
fn process_cpu(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, may hold spaces): state is field 3, utime 14.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU time used so far by each live process named `name` (e.g. the PostgreSQL server's), by
/// pid.
fn cpu_of_named(name: &str) -> HashMap<String, f64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .filter_map(|pid| process_cpu(&pid).map(|t| (pid, t)))
        .collect()
}

/// CPU time the processes named like those in `before` used since it was taken: each live
/// process's growth (a new one's whole time); one that exited meanwhile is not counted.
fn cpu_since(name: &str, before: &HashMap<String, f64>) -> f64 {
    cpu_of_named(name)
        .iter()
        .map(|(pid, t)| t - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn idle_pass(
    rows: &mut Vec<Row>,
    sizes: &[usize],
    reps: usize,
    label: &str,
    url_for: &dyn Fn(&Path) -> String,
) {
    let mut medians = Vec::new();
    for &n in sizes {
        let dir = tmpdir(&format!("idle{n}"));
        let url = url_for(&dir);
        let store = open(&url, &dir).await;
        generate(&store, 200, n, 0).await;
        let d = dispatcher(
            store.clone(),
            TransportConfig::File {
                dir: dir.join("mail"),
            },
            4,
        );
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let r = d.plan_pass(pass_time(), false).await.expect("pass");
            assert!(
                r.messages.is_empty(),
                "idle pass sent something: {:?}",
                r.messages.iter().map(|m| &m.subject).collect::<Vec<_>>()
            );
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (med, min, max) = median(&mut times);
        medians.push((n, med));
        rows.push(Row {
            scenario: format!("idle pass, {n} open items ({label})"),
            measured: format!("{med:.2} ms (min {min:.2}, max {max:.2})"),
            target: if n >= 1_000_000 {
                "≤ 5 ms median".into()
            } else {
                "-".into()
            },
            verdict: if n >= 1_000_000 {
                verdict(med <= 5.0)
            } else {
                "-".into()
            },
        });
        // The same database may serve the next size (PostgreSQL): empty it.
        for t in ["reminders", "items", "units", "rounds", "outbox"] {
            let _ = store
                .db()
                .execute_unprepared(&format!("DELETE FROM {t}"))
                .await;
        }
        let _ = store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    if medians.len() > 1 {
        let (n0, t0) = medians[0];
        let (n1, t1) = medians[medians.len() - 1];
        let ratio = t1 / t0.max(1e-6);
        rows.push(Row {
            scenario: format!("idle pass growth {n0}→{n1} ({label})"),
            measured: format!("{ratio:.2}×"),
            target: "≤ 2×".into(),
            verdict: verdict(ratio <= 2.0),
        });
    }
}

fn verdict(ok: bool) -> String {
    if ok { "met".into() } else { "MISSED".into() }
}

/// The due pass, as the real binary from process start: 10,000 items due across 200 units into
/// a local SMTP server; and the reference: trivial messages over the same transport settings.
/// `runs` times, each on a fresh copy of the same generated database, each ratio against the
/// references measured right after it; the rows give the median and the range.
async fn due_pass(rows: &mut Vec<Row>, args: &Args, items: usize, units: usize, runs: usize) {
    let dir = tmpdir("due");
    let template = dir.join("template");
    std::fs::create_dir_all(&template).expect("tmp");
    let url = format!("sqlite://{}", template.join("rectify.db").display());
    let store = open(&url, &template).await;
    generate(&store, units, items, items).await;
    let _ = store.close().await;
    let mut done = Vec::with_capacity(runs);
    for k in 0..runs {
        let run = dir.join(format!("run{k}"));
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).expect("tmp");
        for f in ["rectify.db", "rectify.db-wal", "rectify.db-shm"] {
            if template.join(f).exists() {
                std::fs::copy(template.join(f), run.join(f)).expect("copy the generated round");
            }
        }
        match due_pass_once(args, &run, units).await {
            Ok(r) => done.push(r),
            Err(e) => {
                rows.push(failed("due pass", e));
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&run);
    }
    let n = done.len();
    let pick = |f: &dyn Fn(&DueRun) -> f64| {
        let mut v: Vec<f64> = done.iter().map(f).collect();
        median(&mut v)
    };
    let wall = pick(&|r| r.wall);
    let plan = pick(&|r| r.plan_s);
    let send = pick(&|r| r.send_s);
    let settle = pick(&|r| r.settle_s);
    let rss = pick(&|r| r.rss_mb);
    let rate = pick(&|r| r.emails_per_s);
    let trivial = pick(&|r| r.trivial_per_s);
    let same = pick(&|r| r.same_per_s);
    let ratio = pick(&|r| r.emails_per_s / r.trivial_per_s);
    let same_share = pick(&|r| r.same_per_s / r.trivial_per_s);
    let of_same = pick(&|r| r.emails_per_s / r.same_per_s);
    let got = done.iter().map(|r| r.got).min().unwrap_or(0);
    let sent = done.iter().map(|r| r.sent).min().unwrap_or(0);
    let avg_kb = pick(&|r| r.avg_kb).0;
    let range = |v, d| spread(v, d, n);
    let pct = |(m, lo, hi): (f64, f64, f64)| range((m * 100.0, lo * 100.0, hi * 100.0), 0);
    let of_runs = of_runs(n, "runs");
    rows.push(Row {
        scenario: format!("due pass: {items} items, {units} units (binary, from process start)"),
        measured: format!(
            "{of_runs}{} s ({} s planning, {} s sending, {} s settling reminder rows), {:.0} items/s, {got} digests received ({sent} reported sent) in every run",
            range(wall, 2),
            range(plan, 2),
            range(send, 2),
            range(settle, 2),
            items as f64 / wall.0
        ),
        target: "≤ 2 s, ≥ 5000 items/s".into(),
        verdict: verdict(wall.0 <= 2.0 && got == units),
    });
    rows.push(Row {
        scenario: "due pass peak RSS".into(),
        measured: format!("{of_runs}{} MB", range(rss, 1)),
        target: "≤ 64 MB".into(),
        verdict: verdict(rss.0 <= 64.0),
    });
    rows.push(Row {
        scenario: "due pass emails/s vs trivial messages (same transport, same connections)".into(),
        measured: format!(
            "{of_runs}{}/s vs {}/s = {}%; the same digests ({avg_kb:.1} KB each) re-sent by the transport alone: {}/s = {}% of trivial, so the pass reaches {}% of the transport on these messages",
            range(rate, 0),
            range(trivial, 0),
            pct(ratio),
            range(same, 0),
            pct(same_share),
            pct(of_same)
        ),
        target: "≥ 50%".into(),
        verdict: verdict(ratio.0 >= 0.5),
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// One due pass's figures.
struct DueRun {
    wall: f64,
    plan_s: f64,
    send_s: f64,
    settle_s: f64,
    rss_mb: f64,
    got: usize,
    sent: usize,
    emails_per_s: f64,
    trivial_per_s: f64,
    same_per_s: f64,
    avg_kb: f64,
}

/// One due pass over the round in `dir`, and its references right after it: trivial messages
/// (the reference), and the very digests the pass sent, re-sent by the transport alone
/// (no database, no rendering): what the transport itself reaches on messages of that size.
/// Same server kind, same connection count, fresh connections.
async fn due_pass_once(args: &Args, dir: &Path, units: usize) -> Result<DueRun, String> {
    let url = format!("sqlite://{}", dir.join("rectify.db").display());
    let smtp = SmtpServer::start()
        .await
        .map_err(|e| format!("smtp: {e}"))?;
    let conns = 4;
    let out_path = dir.join("remind-run.json");
    let (wall, rss_kib) = run_measured(
        Command::new(&args.bin)
            .args([
                "--database",
                &url,
                "--format",
                "json",
                "remind",
                "run",
                "--at",
                &pass_time().to_rfc3339(),
            ])
            .env("RECTIFY_MAIL_TRANSPORT", "smtp")
            .env("RECTIFY_SMTP_HOST", "127.0.0.1")
            .env("RECTIFY_SMTP_PORT", smtp.port().to_string())
            .env("RECTIFY__MAIL__MAX_CONNECTIONS", conns.to_string())
            .env("RECTIFY_EVIDENCE_DIR", dir.join("evidence"))
            .env_remove("RECTIFY_DATABASE")
            .env_remove("RECTIFY_NOW")
            .current_dir(dir),
        Some(&out_path),
    )?;
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap_or_default();
    let got = smtp.received().len();
    let sent = report["sent"].as_u64().unwrap_or(0) as usize;
    let deliver_s = report["deliver_seconds"].as_f64().unwrap_or(wall).max(1e-6);
    // Sending: until the last message was accepted and recorded; the settling of reminder
    // rows after it is bookkeeping, reported apart.
    let send_s = report["send_seconds"]
        .as_f64()
        .unwrap_or(deliver_s)
        .max(1e-6);
    let received = smtp.received();
    let avg_kb = received.iter().map(|r| r.data.len()).sum::<usize>() as f64
        / received.len().max(1) as f64
        / 1024.0;
    let trivial: Vec<_> = (0..units.max(200))
        .map(rectify_notifier::testing::trivial_mail)
        .collect();
    let same: Vec<_> = received
        .iter()
        .enumerate()
        .map(|(i, r)| rectify_notifier::mail::OutgoingMail {
            message_id: format!("<same{i}@bench>"),
            from: "整改办 <zgb@example.gov.cn>".into(),
            to: r.rcpts.clone(),
            cc: vec![],
            subject: r.subject().unwrap_or_default(),
            text: r.text(),
            html: r.html(),
        })
        .collect();
    Ok(DueRun {
        wall,
        plan_s: report["plan_seconds"].as_f64().unwrap_or(0.0),
        send_s,
        settle_s: report["settle_seconds"].as_f64().unwrap_or(0.0),
        rss_mb: rss_kib as f64 / 1024.0,
        got,
        sent,
        emails_per_s: got as f64 / send_s,
        trivial_per_s: send_rate(trivial, conns).await,
        same_per_s: send_rate(same, conns).await,
        avg_kb,
    })
}

/// Messages per second the plain SMTP transport reaches sending `mails` to a fresh loopback
/// server over `conns` connections.
async fn send_rate(mails: Vec<rectify_notifier::mail::OutgoingMail>, conns: usize) -> f64 {
    let smtp = SmtpServer::start().await.expect("smtp");
    let mailer =
        rectify_notifier::testing::plain_mailer(smtp.port(), conns as u32, Duration::from_secs(30));
    let n = mails.len();
    let t = Instant::now();
    let mut futs = Vec::new();
    for mail in mails {
        let m = mailer.clone();
        futs.push(tokio::spawn(async move { m.send(&mail).await }));
    }
    for f in futs {
        let _ = f.await;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    smtp.stop();
    rate
}

/// Lifecycle commands through the store vs raw single-row insert transactions, same database.
/// The two alternate in rounds (commands and as many raw inserts) and the ratio is taken per
/// round, so a machine whose load changes during the run changes both sides alike; the figure
/// is the median round. The commands are progress reports on items that carry the plan the
/// store wrote for them: each report re-keys the item's silence reminder, so it writes the
/// item, its event and a reminder row.
async fn commands(rows: &mut Vec<Row>, n: usize, label: &str, url: &str, dir: &Path) {
    let store = open(url, dir).await;
    generate(&store, 10, n, 0).await;
    let admin = Actor {
        name: "bench".into(),
        role: Role::Admin,
        unit: None,
    };
    let db = store.db();
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, note TEXT)",
    )
    .await
    .expect("raw table");
    let b = store.backend();
    // The items carry the reminder plan the store writes for them (as an import or an
    // assignment leaves them), so a command re-plans only what it changes.
    let ids: Vec<i64> = (1..=n as i64).collect();
    store
        .replan_items(&ids, today(), pass_time())
        .await
        .expect("plan");
    // Many short rounds, each side first in every other one: a burst of load on the machine
    // (this one is a VM whose host takes its cores away at times) falls into few rounds, and
    // neither side always follows the other.
    let rounds = 40;
    let per_round = (n / rounds).max(1);
    let (mut cmd_rates, mut raw_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let ids = round * per_round + 1..=(round + 1) * per_round;
        let commands = async {
            let t = Instant::now();
            for i in ids.clone() {
                store
                    .apply(
                        i as i64,
                        &Cmd::Progress {
                            note: format!("进展{i}"),
                            percent: Some(50),
                            evidence: vec![],
                        },
                        &admin,
                        pass_time(),
                        today(),
                    )
                    .await
                    .expect("apply");
            }
            per_round as f64 / t.elapsed().as_secs_f64()
        };
        let raw = async {
            let t = Instant::now();
            for i in ids.clone() {
                let txn = db.begin().await.expect("begin");
                txn.execute_raw(Statement::from_sql_and_values(
                    b,
                    format!(
                        "INSERT INTO bench_raw (id, note) VALUES ({}, {})",
                        ph(b, 1),
                        ph(b, 2)
                    ),
                    [(i as i64).into(), format!("进展{i}").into()],
                ))
                .await
                .expect("raw insert");
                txn.commit().await.expect("commit");
            }
            per_round as f64 / t.elapsed().as_secs_f64()
        };
        let (cmd_rate, raw_rate) = if round % 2 == 0 {
            let c = commands.await;
            (c, raw.await)
        } else {
            let r = raw.await;
            (commands.await, r)
        };
        cmd_rates.push(cmd_rate);
        raw_rates.push(raw_rate);
        ratios.push(cmd_rate / raw_rate);
    }
    let (ratio, lo, hi) = median(&mut ratios);
    let (cmd_rate, _, _) = median(&mut cmd_rates);
    let (raw_rate, _, _) = median(&mut raw_rates);
    rows.push(Row {
        scenario: format!("commands vs raw insert transactions ({label})"),
        measured: format!(
            "{cmd_rate:.0}/s vs {raw_rate:.0}/s: {:.0}% (median of {rounds} alternating rounds of {per_round}; min {:.0}%, max {:.0}%)",
            ratio * 100.0,
            lo * 100.0,
            hi * 100.0
        ),
        target: "≥ 50%".into(),
        verdict: verdict(ratio >= 0.5),
    });
    let _ = store.close().await;
}

/// `serve` idle over a large database: peak RSS after a few seconds.
async fn service_memory(rows: &mut Vec<Row>, args: &Args, n: usize) {
    let dir = tmpdir("serve");
    let url = format!("sqlite://{}", dir.join("rectify.db").display());
    let store = open(&url, &dir).await;
    generate(&store, 200, n, 0).await;
    let _ = store.close().await;
    let child = Command::new(&args.bin)
        .args(["--database", &url, "serve"])
        .env("RECTIFY_NOW", pass_time().to_rfc3339())
        .env("RECTIFY__SCHEDULE__REMIND", "*/1 * * * * *")
        .env("RECTIFY_MAIL_DIR", dir.join("mail"))
        .env_remove("RECTIFY_DATABASE")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        rows.push(Row {
            scenario: "service memory".into(),
            measured: "cannot start the binary".into(),
            target: "-".into(),
            verdict: "MISSED".into(),
        });
        return;
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hwm = vm_hwm_kib(child.id()).unwrap_or(-1);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    rows.push(Row {
        scenario: format!("serve idle, {n} open items: peak RSS"),
        measured: format!("{:.1} MB", hwm as f64 / 1024.0),
        target: "≤ 64 MB".into(),
        verdict: verdict(hwm > 0 && hwm <= 64 * 1024),
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a child to its end with stdout to `out` (or nowhere); its wall time and own peak RSS
/// (KiB), or its standard error when it failed.
///
/// The child is started by a small copy of this runner (`--measure-child`), not by the runner
/// itself: a child spawned with vfork/posix_spawn shares its parent's address space until it
/// execs, and Linux carries that address space's high-water mark into the child's `ru_maxrss`,
/// so every child of a runner holding a large ledger "peaked" at the runner's size.
fn run_measured(cmd: &mut Command, out: Option<&Path>) -> Result<(f64, i64), String> {
    let tag = format!(
        "{}-{}",
        std::process::id(),
        MEASURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let err_path = std::env::temp_dir().join(format!("rectify-bench-{tag}.err"));
    let usage_path = std::env::temp_dir().join(format!("rectify-bench-{tag}.rusage"));
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let stdout = match out {
        Some(p) => Stdio::from(std::fs::File::create(p).map_err(|e| e.to_string())?),
        None => Stdio::null(),
    };
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut wrapper = Command::new(me);
    wrapper
        .arg("--measure-child")
        .arg(&usage_path)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        wrapper.current_dir(d);
    }
    let t = Instant::now();
    let status = wrapper
        .stdout(stdout)
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (build it with cargo build --release)"))?;
    let wall = t.elapsed().as_secs_f64();
    let usage = std::fs::read_to_string(&usage_path).unwrap_or_default();
    let _ = std::fs::remove_file(&usage_path);
    if !status.success() {
        let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
        return Err(format!("{cmd:?} failed: {}", msg.trim()));
    }
    match std::env::var_os("RECTIFY_BENCH_LOGS") {
        // Kept under the logs folder (see `instances`), named by the run's tag.
        Some(d) => {
            let _ = std::fs::rename(&err_path, Path::new(&d).join(format!("run-{tag}.err")));
        }
        None => {
            let _ = std::fs::remove_file(&err_path);
        }
    }
    let rss = usage
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{cmd:?}: the measuring wrapper reported no peak RSS ({usage:?})"))?;
    Ok((wall, rss))
}

static MEASURED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `--measure-child FILE PROGRAM ARGS…`: runs PROGRAM with this process's stdio and
/// environment, writes its own peak RSS (KiB, from `wait4`) to FILE, and exits with its code.
/// Runs in a fresh, small process, so the child's figure is the child's alone.
fn measure_child(args: &[String]) -> ! {
    let [file, program, rest @ ..] = args else {
        eprintln!("--measure-child FILE PROGRAM [ARGS…]");
        std::process::exit(2);
    };
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot run {program}: {e}");
            std::process::exit(127);
        }
    };
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills the structs we own; `child` is not waited on
    // again (dropping a `Child` does not wait).
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let _ = std::fs::write(file, usage.ru_maxrss.to_string());
    if r < 0 || !libc::WIFEXITED(status) {
        std::process::exit(1);
    }
    std::process::exit(libc::WEXITSTATUS(status));
}

/// `--write-ledger DIR [ROWS]`: writes the import scenario's ledger (100,000 rows unless told)
/// as DIR/ledger.csv and DIR/ledger.xlsx and exits, so an import can be profiled by hand
/// (`RECTIFY_NOW` as the runner sets it: 2026-03-02T02:00:00Z).
fn write_ledger(args: &[String]) -> ! {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("--write-ledger DIR [ROWS]");
        std::process::exit(2);
    };
    let n = match args.get(1).map(|s| s.parse::<usize>()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("--write-ledger DIR [ROWS]: ROWS is a positive number of ledger rows");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let ledger = ledger_rows(n);
    write_csv(&dir.join("ledger.csv"), &ledger);
    write_xlsx(&dir.join("ledger.xlsx"), &ledger);
    println!("{}", dir.display());
    std::process::exit(0);
}

/// Runs `run` `reps` times: the wall times and the largest peak RSS, or the first failure.
fn repeat(
    reps: usize,
    mut run: impl FnMut() -> Result<(f64, i64), String>,
) -> Result<(Vec<f64>, i64), String> {
    let mut times = Vec::with_capacity(reps);
    let mut rss = 0;
    for _ in 0..reps {
        let (t, r) = run()?;
        times.push(t);
        rss = rss.max(r);
    }
    Ok((times, rss))
}

/// The row of a scenario that could not run.
fn failed(scenario: &str, why: String) -> Row {
    Row {
        scenario: scenario.to_string(),
        measured: format!("failed: {why}"),
        target: "-".into(),
        verdict: "MISSED".into(),
    }
}

/// A ledger as offices keep them: ten categories in blocks, problems of one to five measures,
/// 200 lead units named by name, deadlines over the months of 2026 (a share already passed),
/// the status column mixed (empty, 未完成, 已完成, 正在推进). Deterministic.
fn ledger_rows(n: usize) -> Vec<[String; 7]> {
    let mut rows = Vec::with_capacity(n);
    let mut seed: u64 = 0x2026_1123;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let states = ["", "", "未完成", "已完成", "正在推进"];
    let (mut i, mut p) = (0usize, 0usize);
    while i < n {
        let cat = format!("问题类别{}", i * 10 / n + 1);
        p += 1;
        for _ in 0..=next(5) {
            if i >= n {
                break;
            }
            i += 1;
            rows.push([
                i.to_string(),
                cat.clone(),
                format!("具体问题{p}:有关工作推进不够扎实"),
                format!("整改措施{i}:建立健全长效机制并抓好落实"),
                format!("单位{:03}", next(200) + 1),
                format!("2026-{:02}-28", next(12) + 1),
                states[next(states.len() as u64) as usize].to_string(),
            ]);
        }
    }
    rows
}

const LEDGER_HEADER: [&str; 7] = [
    "序号",
    "问题类别",
    "具体问题",
    "整改措施",
    "牵头单位",
    "完成时限",
    "完成情况",
];

fn write_csv(path: &Path, rows: &[[String; 7]]) {
    let mut s = LEDGER_HEADER.join(",");
    s.push('\n');
    for r in rows {
        s.push_str(&r.join(","));
        s.push('\n');
    }
    std::fs::write(path, s).expect("write csv");
}

fn write_xlsx(path: &Path, rows: &[[String; 7]]) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in LEDGER_HEADER.iter().enumerate() {
        ws.write_string(0, c as u16, *h).expect("header");
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, c as u16, v).expect("cell");
        }
    }
    wb.save(path).expect("write xlsx");
}

/// `rectify` with the bench's environment on `url`, in `dir`.
fn rectify(args: &Args, url: &str, dir: &Path) -> Command {
    let mut c = Command::new(&args.bin);
    c.args(["--database", url])
        .env("RECTIFY_NOW", pass_time().to_rfc3339())
        .env("RECTIFY_MAIL_DIR", dir.join("mail"))
        .env("RECTIFY_EVIDENCE_DIR", dir.join("evidence"))
        .env_remove("RECTIFY_DATABASE")
        .env_remove("RECTIFY_CONFIG")
        .current_dir(dir);
    c
}

/// A fresh database (SQLite in `dir`, or a PostgreSQL URL) with the office and round B.
fn fresh(args: &Args, url: &str, dir: &Path) -> Result<(), String> {
    run_measured(
        rectify(args, url, dir).args(["init", "--admin", "office"]),
        None,
    )?;
    run_measured(
        rectify(args, url, dir).args(["round", "add", "B", "--title", "基准台账"]),
        None,
    )?;
    Ok(())
}

/// A fresh database at `url`, then `import ledger FILE` into it, measured.
fn fresh_import(args: &Args, url: &str, dir: &Path, file: &Path) -> Result<(f64, i64), String> {
    fresh(args, url, dir)?;
    run_measured(
        rectify(args, url, dir).args([
            "import",
            "ledger",
            &file.display().to_string(),
            "--round",
            "B",
            "--create-units",
        ]),
        None,
    )
}

/// A checkpoint on the PostgreSQL server: what earlier scenarios left in its buffers is
/// written now, not during the next measured run.
async fn checkpoint(pg: &str) {
    if let Ok(db) = rectify_schema::sea_orm::Database::connect(pg).await {
        let _ = db.execute_unprepared("CHECKPOINT").await;
        let _ = db.close().await;
    }
}

/// PostgreSQL's own floor for an import: the rows the import at `imported` wrote (units,
/// items, events, reminders) read out with `COPY TO`, then written into a fresh database by
/// `COPY FROM` alone, in one transaction, timed from BEGIN to COMMIT. No parsing, no
/// validation, no ids to reserve: what the server needs to take those rows on this machine
/// now. Returns the time and the row count.
async fn pg_copy_floor(
    args: &Args,
    pg: &str,
    imported: &str,
    dir: &Path,
) -> Result<(f64, usize), String> {
    use futures_util::TryStreamExt;
    use rectify_schema::sea_orm::sqlx::{Connection, postgres::PgConnection};
    let err = |e: rectify_schema::sea_orm::sqlx::Error| e.to_string();
    let tables = ["units", "items", "events", "reminders"];
    let mut data = Vec::with_capacity(tables.len());
    let mut rows = 0;
    {
        let mut from = PgConnection::connect(imported).await.map_err(err)?;
        for t in tables {
            let mut out = Vec::new();
            let mut stream = from
                .copy_out_raw(&format!("COPY {t} TO STDOUT"))
                .await
                .map_err(err)?;
            while let Some(chunk) = stream.try_next().await.map_err(err)? {
                out.extend_from_slice(&chunk);
            }
            drop(stream);
            if t != "units" {
                rows += out.iter().filter(|b| **b == b'\n').count();
            }
            data.push(out);
        }
        let _ = from.close().await;
    }
    let (url, dropdb) = pg_db_named(pg, "_floor")
        .await
        .ok_or("cannot create a PostgreSQL database")?;
    let timed = async {
        fresh(args, &url, dir)?;
        checkpoint(pg).await;
        let mut to = PgConnection::connect(&url).await.map_err(err)?;
        let t = Instant::now();
        rectify_schema::sea_orm::sqlx::query("BEGIN")
            .execute(&mut to)
            .await
            .map_err(err)?;
        for (table, bytes) in tables.iter().zip(&data) {
            let mut copy = to
                .copy_in_raw(&format!("COPY {table} FROM STDIN"))
                .await
                .map_err(err)?;
            copy.send(bytes.as_slice()).await.map_err(err)?;
            copy.finish().await.map_err(err)?;
        }
        rectify_schema::sea_orm::sqlx::query("COMMIT")
            .execute(&mut to)
            .await
            .map_err(err)?;
        let took = t.elapsed().as_secs_f64();
        let _ = to.close().await;
        Ok::<f64, String>(took)
    }
    .await;
    dropdb().await;
    Ok((timed?, rows))
}

/// `import ledger` of an `n`-row ledger (CSV and XLSX), `reps` runs each on fresh databases;
/// then the progress notice (md, html) over what the last CSV import made. Returns nothing;
/// rows are pushed to the table.
async fn import_and_report(
    rows: &mut Vec<Row>,
    args: &Args,
    n: usize,
    reps: usize,
    pg: Option<&str>,
) {
    let dir = tmpdir("import");
    let ledger = ledger_rows(n);
    let csv = dir.join("ledger.csv");
    let xlsx = dir.join("ledger.xlsx");
    write_csv(&csv, &ledger);
    write_xlsx(&xlsx, &ledger);
    drop(ledger);
    let targets = [(&csv, "CSV", 10.0), (&xlsx, "XLSX", 20.0)];
    for (file, kind, target) in targets {
        let runs = repeat(reps, || {
            let _ = std::fs::remove_file(dir.join("rectify.db"));
            let url = format!("sqlite://{}", dir.join("rectify.db").display());
            fresh_import(args, &url, &dir, file)
        });
        let (mut times, rss) = match runs {
            Ok(r) => r,
            Err(e) => {
                rows.push(failed(&format!("bulk import {kind}"), e));
                continue;
            }
        };
        let (med, min, max) = median(&mut times);
        rows.push(Row {
            scenario: format!("bulk import: {n}-row ledger, {kind} (SQLite, binary)"),
            measured: format!(
                "{med:.2} s median (min {min:.2}, max {max:.2}, {reps} runs), peak RSS {:.0} MB",
                rss as f64 / 1024.0
            ),
            target: format!("≤ {target:.0} s"),
            verdict: verdict(med <= target),
        });
    }
    // The report over what the last XLSX import made (the same items as the CSV's).
    let url = format!("sqlite://{}", dir.join("rectify.db").display());
    for fmt in ["md", "html"] {
        let out = dir.join(format!("report.{fmt}"));
        let runs = repeat(reps, || {
            run_measured(
                rectify(args, &url, &dir).args([
                    "report",
                    "--round",
                    "B",
                    "-o",
                    &out.display().to_string(),
                ]),
                None,
            )
        });
        let (mut times, rss) = match runs {
            Ok(r) => r,
            Err(e) => {
                rows.push(failed(&format!("report {fmt}"), e));
                continue;
            }
        };
        let (med, min, max) = median(&mut times);
        let size = std::fs::metadata(dir.join(format!("report.{fmt}")))
            .map(|m| m.len())
            .unwrap_or(0);
        rows.push(Row {
            scenario: format!("report {fmt} over the imported round (SQLite, binary)"),
            measured: format!(
                "{med:.2} s median (min {min:.2}, max {max:.2}), peak RSS {:.0} MB, {:.1} MB written",
                rss as f64 / 1024.0,
                size as f64 / 1e6
            ),
            target: "≤ 3 s, ≤ 200 MB".into(),
            verdict: verdict(med <= 3.0 && rss <= 200 * 1024),
        });
    }
    if let Some(pg) = pg {
        // Each run on a fresh database of its own.
        let mut runs: Result<(Vec<f64>, i64), String> = Ok((Vec::with_capacity(reps), 0));
        let mut floor = None;
        for _ in 0..reps {
            let Some((url, drop)) = pg_db(pg).await else {
                runs = Err("cannot create a PostgreSQL database".into());
                break;
            };
            checkpoint(pg).await;
            let run = fresh_import(args, &url, &dir, &csv);
            if floor.is_none() && run.is_ok() {
                floor = Some(pg_copy_floor(args, pg, &url, &dir).await);
            }
            drop().await;
            match (run, &mut runs) {
                (Ok((t, r)), Ok((times, rss))) => {
                    times.push(t);
                    *rss = (*rss).max(r);
                }
                (Err(e), _) => {
                    runs = Err(e);
                    break;
                }
                _ => break,
            }
        }
        rows.push(match runs {
            Ok((mut times, rss)) => {
                let (med, min, max) = median(&mut times);
                Row {
                    scenario: format!("bulk import: {n}-row ledger, CSV (PostgreSQL, binary)"),
                    measured: format!(
                        "{med:.2} s median (min {min:.2}, max {max:.2}, {reps} runs), peak RSS {:.0} MB; {}",
                        rss as f64 / 1024.0,
                        match floor {
                            Some(Ok((t, rows))) => format!(
                                "the server's floor: the same {rows} rows written by COPY alone, in one transaction, {t:.2} s (the import takes {:.2}× that)",
                                med / t
                            ),
                            Some(Err(e)) => format!("the server's floor not measured: {e}"),
                            None => "the server's floor not measured".into(),
                        }
                    ),
                    target: "≤ 10 s".into(),
                    verdict: verdict(med <= 10.0),
                }
            }
            Err(e) => failed("bulk import CSV (PostgreSQL)", e),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The due pass on PostgreSQL with 1 and with 3 `serve` instances: time from starting the
/// services until every digest has arrived at the SMTP server. `pairs` times, 1 then 3 in turn
/// (so that a machine slowing down or speeding up weighs on both alike); the row gives the
/// median of the pairs' ratios and their range.
async fn instances(
    rows: &mut Vec<Row>,
    args: &Args,
    pg: &str,
    items: usize,
    units: usize,
    pairs: usize,
) {
    let mut runs: Vec<[InstancesRun; 2]> = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let one = instances_once(args, pg, items, units, 1).await;
        let three = instances_once(args, pg, items, units, 3).await;
        match (one, three) {
            (Some(a), Some(b)) => runs.push([a, b]),
            _ => {
                rows.push(failed(
                    "instances (PostgreSQL)",
                    "cannot create a PostgreSQL database".into(),
                ));
                return;
            }
        }
    }
    let n = runs.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let pick = |f: &dyn Fn(&[InstancesRun; 2]) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        median(&mut v)
    };
    let range = |v| spread(v, 2, n);
    let speedup = pick(&|p| p[0].wall / p[1].wall);
    let all_arrived = runs.iter().all(|p| p.iter().all(|r| r.got == units));
    let each = runs
        .iter()
        .map(|p| format!("{:.2}×", p[0].wall / p[1].wall))
        .collect::<Vec<_>>()
        .join(", ");
    let side = |k: usize| {
        format!(
            "{} s, machine busy {}% of {cores:.0} cores; instances / PostgreSQL / runner with SMTP server {} / {} / {} core-s",
            range(pick(&|p| p[k].wall)),
            spread(pick(&|p| 100.0 * p[k].busy / (p[k].wall * cores)), 0, n),
            range(pick(&|p| p[k].split.0)),
            range(pick(&|p| p[k].split.1)),
            range(pick(&|p| p[k].split.2)),
        )
    };
    rows.push(Row {
        scenario: format!(
            "instances (PostgreSQL): due pass of {items} items / {units} units, 1 vs 3 `serve`"
        ),
        measured: format!(
            "{}{}× ({each}); 1: {}; 3: {}{}",
            of_runs(n, "pairs"),
            range(speedup),
            side(0),
            side(1),
            if all_arrived {
                String::new()
            } else {
                "; NOT every digest arrived".into()
            }
        ),
        target: "3 instances ≥ 1.5× one".into(),
        verdict: verdict(speedup.0 >= 1.5 && all_arrived),
    });
}

/// One instances run's figures: wall time, digests received, machine CPU, and where the CPU
/// went (the instances, PostgreSQL's processes, this runner with the SMTP server).
struct InstancesRun {
    wall: f64,
    got: usize,
    busy: f64,
    split: (f64, f64, f64),
}

/// `count` `serve` instances on a fresh PostgreSQL database with the round generated, until
/// every digest has arrived (at most two minutes). None: no database could be made.
async fn instances_once(
    args: &Args,
    pg: &str,
    items: usize,
    units: usize,
    count: usize,
) -> Option<InstancesRun> {
    let (url, drop) = pg_db(pg).await?;
    let dir = tmpdir(&format!("inst{count}"));
    let store = open(&url, &dir).await;
    generate(&store, units, items, items).await;
    let _ = store.close().await;
    // Every run starts with nothing left to write: the rows just generated, and what the
    // scenarios before (the imports) left in the server's buffers, would otherwise be written
    // by the checkpointer during one run and not the other.
    checkpoint(pg).await;
    let smtp = SmtpServer::start().await.expect("smtp");
    let cpu_before = machine_cpu();
    let pg_before = cpu_of_named("postgres");
    let me_before = process_cpu("self").unwrap_or(f64::NAN);
    let t = Instant::now();
    let mut children = Vec::new();
    // RECTIFY_BENCH_LOGS=DIR keeps each instance's log (for a timeline of the pass).
    let logs = std::env::var_os("RECTIFY_BENCH_LOGS").map(PathBuf::from);
    let run_tag = MEASURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for k in 0..count {
        let log = |ext: &str| match &logs {
            Some(d) => std::fs::File::create(d.join(format!("inst{count}-{run_tag}-{k}.{ext}")))
                .map_or(Stdio::null(), Stdio::from),
            None => Stdio::null(),
        };
        let child = rectify(args, &url, &dir)
            .arg("serve")
            .env("HOSTNAME", format!("bench{k}"))
            .env("RECTIFY__SCHEDULE__REMIND", "*/1 * * * * *")
            .env("RECTIFY_MAIL_TRANSPORT", "smtp")
            .env("RECTIFY_SMTP_HOST", "127.0.0.1")
            .env("RECTIFY_SMTP_PORT", smtp.port().to_string())
            .env("RECTIFY__MAIL__MAX_CONNECTIONS", "4")
            .env_remove("RECTIFY_MAIL_DIR")
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn();
        if let Ok(c) = child {
            children.push(c);
        }
    }
    // Until every digest has arrived, every instance has exited (it failed: its log says
    // why, see RECTIFY_BENCH_LOGS), or two minutes have passed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while smtp.received().len() < units
        && Instant::now() < deadline
        && children
            .iter_mut()
            .any(|c| c.try_wait().is_ok_and(|s| s.is_none()))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let busy = match (cpu_before, machine_cpu()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let got = smtp.received().len();
    // A backend that exited during the run is not counted in PostgreSQL's share.
    let split = (
        children
            .iter()
            .filter_map(|c| process_cpu(&c.id().to_string()))
            .sum::<f64>(),
        cpu_since("postgres", &pg_before),
        process_cpu("self").unwrap_or(f64::NAN) - me_before,
    );
    for mut c in children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    drop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Some(InstancesRun {
        wall,
        got,
        busy,
        split,
    })
}

async fn pg_db(
    admin: &str,
) -> Option<(
    String,
    impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
)> {
    pg_db_named(admin, "").await
}

/// A fresh PostgreSQL database of this runner's (`suffix` tells two apart that live at
/// once), and what drops it.
async fn pg_db_named(
    admin: &str,
    suffix: &str,
) -> Option<(
    String,
    impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
)> {
    let name = format!("rectify_bench_{}{suffix}", std::process::id());
    let db = rectify_schema::sea_orm::Database::connect(admin)
        .await
        .ok()?;
    db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .ok();
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    let url = rectify_schema::testing::with_database(admin, &name);
    let admin = admin.to_string();
    Some((
        url,
        move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
            Box::pin(async move {
                if let Ok(db) = rectify_schema::sea_orm::Database::connect(admin.as_str()).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        },
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let started = Instant::now();
    let mut rows = Vec::new();
    let sqlite = |dir: &Path| format!("sqlite://{}", dir.join("rectify.db").display());
    let sizes: Vec<usize> = if args.quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    };
    let reps = if args.quick { 5 } else { 15 };
    if args.runs("idle") {
        idle_pass(&mut rows, &sizes, reps, "SQLite", &sqlite).await;
    }
    if args.runs("due") {
        due_pass(
            &mut rows,
            &args,
            if args.quick { 2_000 } else { 10_000 },
            if args.quick { 40 } else { 200 },
            if args.quick { 1 } else { 3 },
        )
        .await;
    }
    if args.runs("commands") {
        let dir = tmpdir("cmd");
        commands(
            &mut rows,
            if args.quick { 300 } else { 2_000 },
            "SQLite",
            &sqlite(&dir),
            &dir,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    if args.runs("serve") {
        service_memory(
            &mut rows,
            &args,
            if args.quick { 10_000 } else { 1_000_000 },
        )
        .await;
    }
    if args.runs("import") {
        import_and_report(
            &mut rows,
            &args,
            if args.quick { 2_000 } else { 100_000 },
            if args.quick { 1 } else { 3 },
            args.pg.as_deref(),
        )
        .await;
    }
    if let Some(pg) = &args.pg {
        if args.runs("idle")
            && let Some((url, drop)) = pg_db(pg).await
        {
            let u = url.clone();
            let n = if args.quick {
                vec![10_000]
            } else {
                vec![10_000, 100_000]
            };
            idle_pass(&mut rows, &n, reps, "PostgreSQL", &move |_| u.clone()).await;
            drop().await;
        }
        if args.runs("commands")
            && let Some((url, drop)) = pg_db(pg).await
        {
            let dir = tmpdir("pgcmd");
            commands(
                &mut rows,
                if args.quick { 300 } else { 2_000 },
                "PostgreSQL",
                &url,
                &dir,
            )
            .await;
            drop().await;
        }
        if args.runs("instances") {
            instances(
                &mut rows,
                &args,
                pg,
                if args.quick { 2_000 } else { 10_000 },
                if args.quick { 40 } else { 200 },
                if args.quick { 1 } else { 3 },
            )
            .await;
        }
    }
    println!();
    println!("| scenario | measured | target | verdict |");
    println!("|---|---|---|---|");
    for r in &rows {
        eprintln!(
            "[bench] {} | {} | {} | {}",
            r.scenario, r.measured, r.target, r.verdict
        );
        println!(
            "| {} | {} | {} | {} |",
            r.scenario, r.measured, r.target, r.verdict
        );
    }
    println!();
    println!(
        "total runner time: {:.1} s{}",
        started.elapsed().as_secs_f64(),
        if args.quick { " (--quick)" } else { "" }
    );
}
