//! `cargo run --release -p rectify-bench -- [--quick] [--pg URL]`
//!
//! Generates synthetic rounds (units with emails, items with deadlines spread over months, a
//! share overdue), runs each scenario on SQLite (and PostgreSQL when a URL is given), and prints
//! one table. Every ratio is measured against its reference in the same run.

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
use rectify_notifier::{DispatchConfig, Dispatcher, Mailer, TlsMode, TransportConfig};
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
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        pg: None,
        // The `rectify` binary built next to this runner (same profile).
        bin: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rectify")))
            .unwrap_or_else(|| PathBuf::from("target/release/rectify")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--quick" => a.quick = true,
            "--pg" => a.pg = it.next(),
            "--bin" => a.bin = it.next().map(PathBuf::from).unwrap_or(a.bin),
            "ALL" => {}
            other => {
                eprintln!(
                    "unknown argument `{other}`: use [--quick] [--pg URL] [--bin PATH] [ALL]"
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
        db.execute_unprepared("ANALYZE").await.ok();
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

/// Peak RSS (KiB) of the children waited for so far.
fn children_maxrss_kib() -> i64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss
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
async fn due_pass(rows: &mut Vec<Row>, args: &Args, items: usize, units: usize) {
    let dir = tmpdir("due");
    let url = format!("sqlite://{}", dir.join("rectify.db").display());
    let store = open(&url, &dir).await;
    generate(&store, units, items, items).await;
    let _ = store.close().await;
    let smtp = SmtpServer::start().await.expect("smtp");
    let conns = 4;
    let before = children_maxrss_kib();
    let t = Instant::now();
    let out = Command::new(&args.bin)
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
        .current_dir(&dir)
        .stderr(Stdio::inherit())
        .output();
    let wall = t.elapsed().as_secs_f64();
    let rss_kib = children_maxrss_kib().max(before);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            rows.push(Row {
                scenario: "due pass".into(),
                measured: format!("failed: {}", String::from_utf8_lossy(&o.stderr)),
                target: "-".into(),
                verdict: "MISSED".into(),
            });
            return;
        }
        Err(e) => {
            rows.push(Row {
                scenario: "due pass".into(),
                measured: format!(
                    "cannot run {}: {e} (build it with cargo build --release)",
                    args.bin.display()
                ),
                target: "-".into(),
                verdict: "MISSED".into(),
            });
            return;
        }
    };
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let got = smtp.received().len();
    let sent = report["sent"].as_u64().unwrap_or(0) as usize;
    let per_s = items as f64 / wall;
    // The digests' sending rate over the delivery phase the binary reports.
    let deliver_s = report["deliver_seconds"].as_f64().unwrap_or(wall).max(1e-6);
    let plan_s = report["plan_seconds"].as_f64().unwrap_or(0.0);
    let emails_per_s = got as f64 / deliver_s;
    rows.push(Row {
        scenario: format!("due pass: {items} items, {units} units (binary, from process start)"),
        measured: format!(
            "{wall:.2} s ({plan_s:.2} s planning, {deliver_s:.2} s sending), {per_s:.0} items/s, {got} digests received ({sent} reported sent)"
        ),
        target: "≤ 2 s, ≥ 5000 items/s".into(),
        verdict: verdict(wall <= 2.0 && got == units),
    });
    rows.push(Row {
        scenario: "due pass peak RSS".into(),
        measured: format!("{:.1} MB", rss_kib as f64 / 1024.0),
        target: "≤ 64 MB".into(),
        verdict: verdict(rss_kib <= 64 * 1024),
    });
    // Reference: trivial messages, same server, same connection count.
    let smtp2 = SmtpServer::start().await.expect("smtp");
    let mailer = Mailer::new(&TransportConfig::Smtp {
        host: "127.0.0.1".into(),
        port: smtp2.port(),
        tls: TlsMode::None,
        username: String::new(),
        password: None,
        max_connections: conns as u32,
        timeout: Duration::from_secs(30),
    })
    .expect("mailer");
    let n = units.max(200);
    let t = Instant::now();
    let mut futs = Vec::new();
    for i in 0..n {
        let m = mailer.clone();
        futs.push(tokio::spawn(async move {
            m.send(&rectify_notifier::mail::OutgoingMail {
                message_id: format!("<ref{i}@bench>"),
                from: "a@example.gov.cn".into(),
                to: vec![format!("u{i}@example.gov.cn")],
                cc: vec![],
                subject: "ref".into(),
                text: "x".into(),
                html: "x".into(),
            })
            .await
        }));
    }
    for f in futs {
        let _ = f.await;
    }
    let ref_rate = n as f64 / t.elapsed().as_secs_f64();
    let ratio = emails_per_s / ref_rate;
    rows.push(Row {
        scenario: "due pass emails/s vs trivial messages (same transport, same connections)".into(),
        measured: format!(
            "{emails_per_s:.0}/s vs {ref_rate:.0}/s = {:.0}%",
            ratio * 100.0
        ),
        target: "≥ 50%".into(),
        verdict: verdict(ratio >= 0.5),
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lifecycle commands through the store vs raw single-row insert transactions, same database.
async fn commands(rows: &mut Vec<Row>, n: usize, label: &str, url: &str, dir: &Path) {
    let store = open(url, dir).await;
    generate(&store, 10, n, 0).await;
    let admin = Actor {
        name: "bench".into(),
        role: Role::Admin,
        unit: None,
    };
    let t = Instant::now();
    for i in 1..=n {
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
    let cmd_rate = n as f64 / t.elapsed().as_secs_f64();
    let db = store.db();
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, note TEXT)",
    )
    .await
    .expect("raw table");
    let b = store.backend();
    let t = Instant::now();
    for i in 0..n {
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
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();
    let ratio = cmd_rate / raw_rate;
    rows.push(Row {
        scenario: format!("commands vs raw insert transactions ({label})"),
        measured: format!("{cmd_rate:.0}/s vs {raw_rate:.0}/s = {:.0}%", ratio * 100.0),
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

async fn pg_db(
    admin: &str,
) -> Option<(
    String,
    impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
)> {
    let name = format!("rectify_bench_{}", std::process::id());
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
    idle_pass(&mut rows, &sizes, reps, "SQLite", &sqlite).await;
    due_pass(
        &mut rows,
        &args,
        if args.quick { 2_000 } else { 10_000 },
        if args.quick { 40 } else { 200 },
    )
    .await;
    {
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
    service_memory(
        &mut rows,
        &args,
        if args.quick { 10_000 } else { 1_000_000 },
    )
    .await;
    if let Some(pg) = &args.pg {
        if let Some((url, drop)) = pg_db(pg).await {
            let u = url.clone();
            let n = if args.quick {
                vec![10_000]
            } else {
                vec![10_000, 100_000]
            };
            idle_pass(&mut rows, &n, reps, "PostgreSQL", &move |_| u.clone()).await;
            drop().await;
        }
        if let Some((url, drop)) = pg_db(pg).await {
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
