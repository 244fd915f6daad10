//! Several `rectify serve` instances against one PostgreSQL database, run as real processes, with
//! an SMTP server on loopback inside this test process that records every message it accepts.
//! Deliveries are counted by Message-ID: the dispatcher derives it from the message's content, so
//! a message sent twice arrives twice with the same Message-ID.
//!
//! - three instances deliver every digest exactly once;
//! - an instance killed (SIGKILL) in the middle of a pass loses nothing, and the only messages that
//!   arrive twice are ones it had claimed and not yet marked sent;
//! - a restart of the PostgreSQL server in the middle of a pass is survived (only with
//!   `RECTIFY_TEST_PG_RESTART=1`: it disturbs every other test using that server);
//! - a periodic job's fire is run by one instance only;
//! - a delivery round longer than the lease keeps its batches while it sends them;
//! - a pass that dies after queuing still plans the next overdue reminder (re-planned on delivery).
//!
//! PostgreSQL only: each test returns early, saying so, when `RECTIFY_TEST_DATABASE_URL` is unset.
//! The tests run one at a time (a lock), since each starts up to three services on a small machine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Env, Smtp, wait_until};
use rectify_notifier::testing::Received;
use rectify_schema::sea_orm::{ConnectionTrait, DbBackend, Statement};
use rectify_schema::{ConnectSettings, Store};
use serde_json::Value;

/// The services' clock: a Monday morning, inside the send window.
const AT: &str = "2026-03-02T10:00:00+08:00";
/// The local date at [`AT`]: every generated reminder is due on it.
const TODAY: &str = "2026-03-02";
/// How many outbox messages one delivery round claims at a time (`Dispatcher::deliver`).
const CLAIM_BATCH: usize = 64;
/// The lease the services run with, so that a dead instance's claims are taken over within the
/// test (the default is 120 s).
const LEASE: &str = "5s";

// ---- harness --------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// One multi-instance test at a time.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh PostgreSQL database, or `None` (with a note) when none is configured.
fn postgres(test: &str) -> Option<Env> {
    let env = Env::postgres();
    if env.is_none() {
        eprintln!(
            "{test}: skipped: RECTIFY_TEST_DATABASE_URL is not set (multi-instance tests need PostgreSQL)"
        );
    }
    env
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs a query on the test's database over a connection of its own and returns every row, each
/// column as text (`NULL` as `None`). Errors are returned, not raised: the server may be
/// restarting.
fn query(env: &Env, sql: &str, columns: usize) -> Result<Vec<Vec<Option<String>>>, String> {
    runtime().block_on(async {
        let settings = ConnectSettings::new(env.url.clone(), env.evidence_dir());
        let store = Store::connect(&settings).await.map_err(|e| e.to_string())?;
        let rows = store
            .db()
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await;
        let _ = store.close().await;
        let rows = rows.map_err(|e| format!("{sql}: {e}"))?;
        rows.iter()
            .map(|r| {
                (0..columns)
                    .map(|i| {
                        r.try_get_by_index::<Option<String>>(i)
                            .map_err(|e| format!("{sql}: column {i}: {e}"))
                    })
                    .collect()
            })
            .collect()
    })
}

/// A query returning one number.
#[track_caller]
fn count(env: &Env, sql: &str) -> i64 {
    let rows = query(env, sql, 1).unwrap_or_else(|e| panic!("{e}"));
    rows.first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: not one number: {rows:?}"))
}

/// Outbox messages not finished yet (pending or being sent); `None` while the database cannot be
/// reached.
fn unfinished(env: &Env) -> Option<i64> {
    let rows = query(
        env,
        "SELECT count(*)::text FROM outbox WHERE state IN ('pending', 'sending')",
        1,
    )
    .ok()?;
    rows.first()?.first()?.as_deref()?.parse().ok()
}

impl Smtp {
    /// How many different Message-IDs arrived.
    fn distinct(&self) -> usize {
        tally(&self.received()).len()
    }
}

/// Every Message-ID received, with the messages that carried it.
fn tally(got: &[Received]) -> BTreeMap<String, Vec<&Received>> {
    let mut by_id: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for m in got {
        let id = m
            .message_id()
            .unwrap_or_else(|| panic!("a message without Message-ID:\n{}", m.data));
        by_id.entry(id).or_default().push(m);
    }
    by_id
}

/// The Message-IDs that arrived more than once, with how many times.
fn duplicates(got: &[Received]) -> BTreeMap<String, usize> {
    tally(got)
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (k, v.len()))
        .collect()
}

/// A running `rectify serve` named `name` (its HOSTNAME, so its claims carry lease tokens starting
/// with `name-`), its stderr collected line by line as it comes.
struct Serve {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn spawn(env: &Env, name: &str, vars: &[(String, String)]) -> Serve {
        let mut c = env.command(&["--lang", "zh", "serve", "--log-format", "json"]);
        c.stdout(Stdio::null()).env("HOSTNAME", name);
        for (k, v) in vars {
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        let mut child = c.spawn().expect("start rectify serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Serve {
            name: name.to_string(),
            child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The JSON log records with this message.
    fn logged(&self, message: &str) -> Vec<Value> {
        records(&self.lines())
            .into_iter()
            .filter(|r| r["fields"]["message"] == message)
            .collect()
    }

    /// The sum of a numeric field over the records with this message.
    fn sum(&self, message: &str, field: &str) -> u64 {
        self.logged(message)
            .iter()
            .filter_map(|r| r["fields"][field].as_u64())
            .sum()
    }

    #[track_caller]
    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "{} exited early ({status:?})\n{}",
            self.name,
            self.lines().join("\n")
        );
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Waits (bounded) for the process to exit; its exit code.
    fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>, ()> {
        let mut code = Err(());
        wait_until(timeout, || match self.child.try_wait().expect("try_wait") {
            Some(s) => {
                code = Ok(s.code());
                true
            }
            None => false,
        });
        code
    }

    /// SIGTERM, then waits (bounded) for the exit; the exit code and the log.
    fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        self.signal("-TERM");
        let code = self.wait_exit(Duration::from_secs(20));
        assert!(
            code.is_ok(),
            "{} did not stop within 20 s of SIGTERM\n{}",
            self.name,
            self.lines().join("\n")
        );
        // Let the reader thread take the last lines.
        wait_until(Duration::from_secs(2), || {
            self.lines().iter().any(|l| l.contains("scheduler stopped"))
        });
        (code.unwrap_or(None), self.lines())
    }

    /// SIGKILL: no chance to finish or give anything back.
    fn kill(mut self) -> Vec<String> {
        self.signal("-KILL");
        let code = self.wait_exit(Duration::from_secs(10));
        assert!(code.is_ok(), "{} survived SIGKILL", self.name);
        self.lines()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // A failed assertion must not leave the service running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Stops every service with SIGTERM, asserting each was still running and exits 0; `before`
/// sees each one just before it is stopped. Returns each one's name and log.
#[track_caller]
fn stop_all(services: Vec<Serve>, mut before: impl FnMut(&Serve)) -> Vec<(String, Vec<String>)> {
    let mut logs = Vec::new();
    for mut s in services {
        s.assert_running();
        before(&s);
        let name = s.name.clone();
        let (code, lines) = s.terminate();
        assert_eq!(
            code,
            Some(0),
            "{name} exits 0 on SIGTERM\n{}",
            lines.join("\n")
        );
        logs.push((name, lines));
    }
    logs
}

/// Every stderr line as a JSON record (lines that are not JSON are ignored here; the log format
/// has tests of its own).
fn records(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The ERROR records of a log, as lines.
fn errors(lines: &[String]) -> Vec<String> {
    records(lines)
        .iter()
        .filter(|r| r["level"] == "ERROR")
        .map(Value::to_string)
        .collect()
}

/// The environment of every service: SMTP on loopback, the remind job every second, the fixed
/// clock, a short lease, plus `extra` (an empty value removes the variable).
fn service_env(smtp_port: u16, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("RECTIFY_MAIL_TRANSPORT", "smtp"),
        ("RECTIFY_SMTP_HOST", "127.0.0.1"),
        ("RECTIFY__SCHEDULE__REMIND", "*/1 * * * * *"),
        ("RECTIFY__MAIL__LEASE", LEASE),
        ("RECTIFY_NOW", AT),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.push(("RECTIFY_SMTP_PORT".into(), smtp_port.to_string()));
    for (k, val) in extra {
        v.retain(|(key, _)| key != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

/// The logs of several services, for failure messages.
fn dump(logs: &[(String, Vec<String>)]) -> String {
    let mut s = String::new();
    for (name, lines) in logs {
        let _ = writeln!(s, "--- {name} ({} lines)", lines.len());
        let n = lines.len();
        // The start and the end say most; the middle can be long.
        for (i, l) in lines.iter().enumerate() {
            if i < 40 || i + 40 >= n {
                let _ = writeln!(s, "{l}");
            } else if i == 40 {
                let _ = writeln!(s, "…");
            }
        }
    }
    s
}

fn logs_of(services: &[Serve]) -> Vec<(String, Vec<String>)> {
    services
        .iter()
        .map(|s| (s.name.clone(), s.lines()))
        .collect()
}

// ---- data -----------------------------------------------------------------------------------

/// What [`generate`] made.
struct Fixture {
    /// Unit code → its one email address.
    units: BTreeMap<String, String>,
    items: usize,
}

/// An initialised database with `units` units (each with an email) and `per_unit` items in
/// progress for each, every item with one reminder due [`TODAY`] ("7 working days before", its
/// deadline three to five weeks ahead): one digest per unit is due. Raw multi-row inserts: this
/// is data setup, not the thing tested.
fn generate(env: &Env, units: usize, per_unit: usize) -> Fixture {
    env.ok(&["init", "--admin", "office"]);
    let ts = "'2026-03-02 00:00:00+00'::timestamptz";
    let mut fx = Fixture {
        units: BTreeMap::new(),
        items: units * per_unit,
    };
    let mut rows = Vec::new();
    for u in 1..=units {
        let code = format!("U{u:04}");
        let email = format!("u{u:04}@example.gov.cn");
        rows.push(format!(
            "('{code}', '单位{u:04}', NULL, '[\"{email}\"]', NULL, NULL, '[]', {ts})"
        ));
        fx.units.insert(code, email);
    }
    env.sql(&format!(
        "INSERT INTO units (code, name, parent_code, emails, leader, leader_email, aliases, created_at) VALUES {}",
        rows.join(",")
    ));
    env.sql(&format!(
        "INSERT INTO rounds (code, title, source, created_at) VALUES ('M1', '多实例测试轮次', 'inspection', {ts})"
    ));
    let codes: Vec<&String> = fx.units.keys().collect();
    let mut items = Vec::new();
    let mut reminders = Vec::new();
    for i in 1..=fx.items {
        let unit = codes[(i - 1) % units];
        let due = chrono::NaiveDate::from_ymd_opt(2026, 3, 30).expect("date")
            + chrono::Duration::days((i % 14) as i64);
        items.push(format!(
            "({i}, 'M1', NULL, '{i}', '多实例事项{i}', '{unit}', '[]', NULL, '{due}', 'in_progress', 3, 1, 0, 0, \
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, {ts}, {ts}, {ts}, NULL, NULL, NULL, 2, 'x')"
        ));
        reminders.push(format!(
            "({i}, 'before', 0, 1, '{TODAY}', 'pending', NULL, NULL, {ts}, {ts})"
        ));
    }
    env.sql(&format!(
        "INSERT INTO items (id, round_code, parent_id, number, title, lead_unit, co_units, leader, deadline, state, \
         version, deadline_version, send_backs, reassignments, cadence, ext_to, ext_reason, ext_requested_by, \
         merged_into, progress_percent, last_progress, created_at, assigned_at, acknowledged_at, last_progress_at, \
         submitted_at, closed_at, head_seq, head_hash) VALUES {}",
        items.join(",")
    ));
    env.sql(&format!(
        "INSERT INTO reminders (item_id, kind, step, deadline_version, send_on, state, reason, outbox_id, \
         created_at, updated_at) VALUES {}",
        reminders.join(",")
    ));
    env.sql("SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items))");
    env.sql("ANALYZE");
    fx
}

/// Checks that every unit got its digest: the messages received, by recipient. Returns the
/// Message-IDs of the digests, one per unit.
#[track_caller]
fn assert_one_digest_per_unit(fx: &Fixture, got: &[Received], context: &str) -> BTreeSet<String> {
    let mut ids_by_unit: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for m in got {
        assert_eq!(m.rcpts.len(), 1, "{context}: one recipient: {:?}", m.rcpts);
        let unit = fx
            .units
            .iter()
            .find(|(_, e)| **e == m.rcpts[0])
            .map(|(c, _)| c.as_str())
            .unwrap_or_else(|| panic!("{context}: a message to a stranger: {:?}", m.rcpts));
        let subject = m.subject().unwrap_or_default();
        assert!(
            subject.starts_with("【整改提醒】") && subject.ends_with(&format!("({TODAY})")),
            "{context}: {subject}"
        );
        ids_by_unit
            .entry(unit)
            .or_default()
            .insert(m.message_id().expect("Message-ID"));
    }
    let missing: Vec<&String> = fx
        .units
        .keys()
        .filter(|u| !ids_by_unit.contains_key(u.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{context}: {} unit(s) got no digest: {missing:?}",
        missing.len()
    );
    let several: Vec<_> = ids_by_unit
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    assert!(
        several.is_empty(),
        "{context}: units with more than one digest (different Message-IDs): {several:?}"
    );
    ids_by_unit.into_values().flatten().collect()
}

/// Checks the database after delivery: one digest per unit, all sent, every due reminder sent, and
/// the Message-IDs in the outbox are the ones received.
#[track_caller]
fn assert_all_sent(env: &Env, fx: &Fixture, received: &BTreeSet<String>) {
    let rows = query(
        env,
        "SELECT message_id, state, kind FROM outbox ORDER BY id",
        3,
    )
    .expect("outbox");
    let not_sent: Vec<_> = rows
        .iter()
        .filter(|r| r[1].as_deref() != Some("sent"))
        .collect();
    assert!(not_sent.is_empty(), "outbox rows not sent: {not_sent:?}");
    assert!(
        rows.iter().all(|r| r[2].as_deref() == Some("digest")),
        "only digests are queued"
    );
    assert_eq!(rows.len(), fx.units.len(), "one outbox row per unit");
    let queued: BTreeSet<String> = rows.iter().filter_map(|r| r[0].clone()).collect();
    assert_eq!(
        &queued, received,
        "the outbox's Message-IDs are the ones received"
    );
    let due = format!("FROM reminders WHERE send_on = '{TODAY}'");
    assert_eq!(
        count(env, &format!("SELECT count(*)::text {due}")),
        fx.items as i64
    );
    assert_eq!(
        count(
            env,
            &format!("SELECT count(*)::text {due} AND state = 'sent'")
        ),
        fx.items as i64,
        "every reminder due today is sent"
    );
}

/// How long something took, for the test's output.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---- tests ----------------------------------------------------------------------------------

#[test]
fn three_instances_deliver_every_reminder_exactly_once() {
    let _serial = serial();
    let Some(env) = postgres("three_instances_deliver_every_reminder_exactly_once") else {
        return;
    };
    let t0 = Instant::now();
    let fx = generate(&env, 300, 8);
    let expected = fx.units.len();
    let smtp = Smtp::start();
    let vars = service_env(smtp.server.port(), &[]);
    let t_start = Instant::now();
    let services: Vec<Serve> = (1..=3)
        .map(|n| Serve::spawn(&env, &format!("inst{n}"), &vars))
        .collect();

    let done = wait_until(Duration::from_secs(45), || {
        smtp.distinct() >= expected && unfinished(&env) == Some(0)
    });
    assert!(
        done,
        "within 45 s: {} of {expected} digests arrived, {:?} outbox messages unfinished\n{}",
        smtp.distinct(),
        unfinished(&env),
        dump(&logs_of(&services))
    );
    let delivered_in = t_start.elapsed();
    // A few more rounds (one a second) must send nothing again.
    std::thread::sleep(Duration::from_millis(2500));
    let mut sent_by = Vec::new();
    let mut queued_by = Vec::new();
    let logs = stop_all(services, |s| {
        sent_by.push((s.name.clone(), s.sum("delivery", "sent")));
        queued_by.push((s.name.clone(), s.sum("reminder pass", "messages")));
    });

    let got = smtp.received();
    let dups = duplicates(&got);
    assert!(
        dups.is_empty(),
        "{} Message-ID(s) received more than once: {dups:?}",
        dups.len()
    );
    assert_eq!(got.len(), expected, "one message per unit");
    let ids = assert_one_digest_per_unit(&fx, &got, "three instances");
    assert_all_sent(&env, &fx, &ids);
    // Each message was marked sent by exactly one instance.
    let total: u64 = sent_by.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, expected as u64,
        "marked sent per instance: {sent_by:?}"
    );
    let errs: Vec<String> = logs.iter().flat_map(|(_, l)| errors(l)).collect();
    assert!(errs.is_empty(), "errors logged:\n{}", errs.join("\n"));
    eprintln!(
        "{} reminders, {expected} digests delivered by three instances in {} (queued per \
         instance: {queued_by:?}, sent per instance: {sent_by:?}); test {}",
        fx.items,
        secs(delivered_in),
        secs(t0.elapsed())
    );
}

#[test]
fn one_instance_killed_mid_pass_loses_nothing() {
    let _serial = serial();
    let Some(env) = postgres("one_instance_killed_mid_pass_loses_nothing") else {
        return;
    };
    let t0 = Instant::now();
    let fx = generate(&env, 600, 6);
    let expected = fx.units.len();
    let smtp = Smtp::start();
    // A loaded server: each connection carries at most one message per 40 ms, so the pass takes
    // a few seconds and every instance has a batch in flight most of the time.
    smtp.server.set_delay(Duration::from_millis(40));
    let vars = service_env(smtp.server.port(), &[]);
    let t_start = Instant::now();
    let mut services: Vec<Serve> = (1..=3)
        .map(|n| Serve::spawn(&env, &format!("inst{n}"), &vars))
        .collect();

    // Mid-pass: a quarter delivered; the instance holding the most claims is the victim.
    let mut victim: Option<String> = None;
    let found = wait_until(Duration::from_secs(40), || {
        if smtp.received().len() < expected / 4 {
            return false;
        }
        let Ok(rows) = query(
            &env,
            "SELECT lease_token, count(*)::text FROM outbox WHERE state = 'sending' \
             GROUP BY lease_token ORDER BY count(*) DESC",
            2,
        ) else {
            return false;
        };
        victim = rows.iter().find_map(|r| {
            let token = r[0].as_deref()?;
            let n: usize = r[1].as_deref()?.parse().ok()?;
            (n >= 8)
                .then(|| token.split('-').next().map(str::to_string))
                .flatten()
        });
        victim.is_some()
    });
    assert!(
        found,
        "no instance with a batch in flight once a quarter was delivered ({} of {expected})\n{}",
        smtp.received().len(),
        dump(&logs_of(&services))
    );
    let victim = victim.expect("victim");
    let at = services
        .iter()
        .position(|s| s.name == victim)
        .unwrap_or_else(|| panic!("no service named {victim}"));
    let killed = services.remove(at);
    let received_before_kill = smtp.received().len();
    let killed_log = killed.kill();
    let killed_at = t_start.elapsed();
    // What it had claimed and not finished: sent or not, the others must send it (again).
    let in_flight: BTreeSet<String> = query(
        &env,
        &format!(
            "SELECT message_id FROM outbox WHERE state = 'sending' AND lease_token LIKE '{victim}-%'"
        ),
        1,
    )
    .expect("in-flight claims")
    .into_iter()
    .filter_map(|r| r[0].clone())
    .collect();
    assert!(
        in_flight.len() <= CLAIM_BATCH,
        "{victim} held {} claims, more than one batch",
        in_flight.len()
    );

    let done = wait_until(Duration::from_secs(45), || {
        smtp.distinct() >= expected && unfinished(&env) == Some(0)
    });
    let mut logs = logs_of(&services);
    logs.push((format!("{victim} (killed)"), killed_log.clone()));
    assert!(
        done,
        "within 45 s of the kill: {} of {expected} digests arrived, {:?} outbox messages unfinished\n{}",
        smtp.distinct(),
        unfinished(&env),
        dump(&logs)
    );
    let delivered_in = t_start.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    stop_all(services, |_| {});

    let got = smtp.received();
    let ids = assert_one_digest_per_unit(&fx, &got, "one instance killed");
    assert_eq!(ids.len(), expected);
    let dups = duplicates(&got);
    let strays: Vec<_> = dups
        .iter()
        .filter(|(id, n)| !in_flight.contains(*id) || **n != 2)
        .collect();
    assert!(
        strays.is_empty(),
        "duplicates beyond the killed instance's in-flight claims (each may arrive twice at most): \
         {strays:?}\nin flight: {in_flight:?}\n{}",
        dump(&logs)
    );
    assert_eq!(got.len(), expected + dups.len());
    assert_all_sent(&env, &fx, &ids);
    // The killed instance's claims were taken over: a survivor's token is on each now.
    if !in_flight.is_empty() {
        let list: Vec<String> = in_flight.iter().map(|m| format!("'{m}'")).collect();
        let still_victims = count(
            &env,
            &format!(
                "SELECT count(*)::text FROM outbox WHERE message_id IN ({}) AND lease_token LIKE '{victim}-%'",
                list.join(",")
            ),
        );
        assert_eq!(still_victims, 0, "every claim of {victim} was taken over");
    }
    eprintln!(
        "{} reminders, {expected} digests; {victim} killed at {} with {} claims in flight after \
         {received_before_kill} messages had arrived; all delivered in {}; {} duplicate(s), all \
         of its in-flight claims; test {}",
        fx.items,
        secs(killed_at),
        in_flight.len(),
        secs(delivered_in),
        dups.len(),
        secs(t0.elapsed())
    );
}

/// The version of the local PostgreSQL cluster (`/etc/postgresql/VERSION/main`).
fn local_cluster_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: a local PostgreSQL cluster managed with pg_ctlcluster")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a cluster version under /etc/postgresql")
}

#[test]
fn database_restart_mid_pass_recovers() {
    if std::env::var("RECTIFY_TEST_PG_RESTART").as_deref() != Ok("1") {
        eprintln!(
            "database_restart_mid_pass_recovers: skipped: it restarts the local PostgreSQL server; \
             set RECTIFY_TEST_PG_RESTART=1 and run it alone (.ci/run does)"
        );
        return;
    }
    let _serial = serial();
    let Some(env) = postgres("database_restart_mid_pass_recovers") else {
        return;
    };
    let t0 = Instant::now();
    let fx = generate(&env, 400, 6);
    let expected = fx.units.len();
    let smtp = Smtp::start();
    // 20 ms a message over 4 connections: delivering the 400 digests takes about two seconds.
    smtp.server.set_delay(Duration::from_millis(20));
    let vars = service_env(smtp.server.port(), &[]);
    let mut serve = Serve::spawn(&env, "solo", &vars);

    // Mid-pass: the pass has queued its digests (one transaction) and is delivering them, each
    // recorded as sent as the server takes it and settled per batch: the service is talking to
    // the database nearly all the time.
    let queuing = wait_until(Duration::from_secs(30), || {
        query(
            &env,
            "SELECT (SELECT count(*) FROM outbox)::text, \
             (SELECT count(*) FROM outbox WHERE state <> 'sent')::text",
            2,
        )
        .ok()
        .and_then(|rows| {
            let r = rows.first()?;
            let queued: i64 = r[0].as_deref()?.parse().ok()?;
            let unsent: i64 = r[1].as_deref()?.parse().ok()?;
            Some(queued >= 10 && unsent > 0)
        })
        .unwrap_or(false)
    });
    assert!(
        queuing,
        "the pass was not delivering within 30 s\n{}",
        serve.lines().join("\n")
    );
    let queued_before = count(&env, "SELECT count(*)::text FROM outbox");
    let version = local_cluster_version();
    let restart_started = Instant::now();
    let out = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .output()
        .expect("run pg_ctlcluster");
    assert!(
        out.status.success(),
        "pg_ctlcluster {version} main restart: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let restart_took = restart_started.elapsed();

    let done = wait_until(Duration::from_secs(50), || {
        smtp.distinct() >= expected && unfinished(&env) == Some(0)
    });
    assert!(
        done,
        "within 50 s of the restart: {} of {expected} digests arrived, {:?} unfinished\n{}",
        smtp.distinct(),
        unfinished(&env),
        serve.lines().join("\n")
    );
    let delivered_in = t0.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    serve.assert_running();
    let (code, lines) = serve.terminate();
    assert_eq!(code, Some(0), "exits 0 on SIGTERM\n{}", lines.join("\n"));

    // It noticed: the round the restart broke is logged as an error with the database's message,
    // and afterwards it carried on by itself (a pass or a delivery logged after the error).
    let recs = records(&lines);
    let failed: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r["fields"]["message"] == "scheduler round failed")
        .map(|(i, _)| i)
        .collect();
    // The restart is noticed either by a round that was running a query (logged as an error,
    // then the service carries on by itself) or, when it fell between queries, by the pool and
    // the plan-change listener reconnecting; either way everything must be delivered below.
    let reconnected = recs.iter().any(|r| {
        let m = r["fields"]["message"].as_str().unwrap_or("");
        m.contains("lost its connection") || m.contains("returned error")
    });
    assert!(
        !failed.is_empty() || reconnected,
        "the restart left no trace in the log (queued before it: {queued_before})\n{}",
        lines.join("\n")
    );
    for &i in &failed {
        let r = &recs[i];
        assert_eq!(r["level"], "ERROR", "{r}");
        assert!(r["fields"]["error"].is_string(), "{r}");
        assert!(r["fields"]["retry_in_ms"].is_u64(), "{r}");
    }
    if let Some(&last_failure) = failed.last() {
        assert!(
            recs[last_failure..].iter().any(|r| {
                r["fields"]["message"] == "reminder pass" || r["fields"]["message"] == "delivery"
            }),
            "nothing done after the last failure\n{}",
            lines.join("\n")
        );
    }
    let got = smtp.received();
    let ids = assert_one_digest_per_unit(&fx, &got, "database restart");
    assert_eq!(ids.len(), expected);
    // Were a batch's outcomes lost with the connection, it is sent again once its lease ends: the
    // same Message-IDs, at most one batch, at most twice each.
    let dups = duplicates(&got);
    assert!(
        dups.len() <= CLAIM_BATCH && dups.values().all(|n| *n == 2),
        "{} duplicated Message-ID(s): {dups:?}",
        dups.len()
    );
    assert_all_sent(&env, &fx, &ids);
    eprintln!(
        "{} reminders, {expected} digests; PostgreSQL {version} restarted with {queued_before} \
         digests queued (took {}); {} failed round(s) logged: {}; all delivered {} after the \
         start; {} duplicate(s)",
        fx.items,
        secs(restart_took),
        failed.len(),
        // The restart can also be noticed by the pool's reconnects with no query in flight,
        // which logs no failed round.
        failed
            .first()
            .map(|&i| recs[i]["fields"]["error"].to_string())
            .unwrap_or_else(|| "none (noticed by reconnecting)".into()),
        secs(delivered_in),
        dups.len()
    );
}

#[test]
fn one_cron_fire_claimed_by_three_instances() {
    let _serial = serial();
    let Some(env) = postgres("one_cron_fire_claimed_by_three_instances") else {
        return;
    };
    let t0 = Instant::now();
    env.ok(&["init", "--admin", "office"]);
    // The office's address: the weekly dispatch (周调度) goes to the admins with an email.
    env.ok(&[
        "operator",
        "add",
        "chief",
        "--role",
        "admin",
        "--email",
        "chief@example.gov.cn",
    ]);
    let smtp = Smtp::start();
    // The weekly dispatch every two seconds; reminders at the default five minutes (nothing is
    // due anyway). The real clock: a shifted one starts when its process does, so the instance
    // started first would be ahead of the others and win every fire without a contest; on the
    // real clock all three wake for a fire at the same moment.
    let vars = service_env(
        smtp.server.port(),
        &[
            ("RECTIFY__SCHEDULE__WEEKLY_DISPATCH", "*/2 * * * * *"),
            ("RECTIFY__SCHEDULE__REMIND", "0 */5 * * * *"),
            ("RECTIFY_NOW", ""),
        ],
    );
    let start = chrono::Utc::now();
    let services: Vec<Serve> = (1..=3)
        .map(|n| Serve::spawn(&env, &format!("inst{n}"), &vars))
        .collect();
    let fires_wanted = 5;
    let enough = wait_until(Duration::from_secs(30), || smtp.distinct() >= fires_wanted);
    assert!(
        enough,
        "{} weekly dispatch(es) within 30 s\n{}",
        smtp.distinct(),
        dump(&logs_of(&services))
    );
    // Let the last fire's message go out, then stop all three.
    std::thread::sleep(Duration::from_millis(500));
    let logs = stop_all(services, |_| {});
    let runs_by: Vec<(String, usize)> = logs
        .iter()
        .map(|(name, lines)| {
            let runs = records(lines)
                .iter()
                .filter(|r| {
                    r["fields"]["message"] == "periodic job"
                        && r["fields"]["job"] == "weekly_dispatch"
                })
                .count();
            (name.clone(), runs)
        })
        .collect();
    let rows = query(
        &env,
        "SELECT message_id, state FROM outbox WHERE kind = 'weekly_dispatch' ORDER BY id",
        2,
    )
    .expect("outbox");
    let queued: BTreeMap<String, String> = rows
        .into_iter()
        .filter_map(|r| Some((r[0].clone()?, r[1].clone()?)))
        .collect();

    let got = smtp.received();
    let by_id = tally(&got);
    // Which fire each message is for: the Message-ID is derived from (job, fire time, office).
    let start = chrono::DurationRound::duration_trunc(start, chrono::Duration::seconds(1))
        .expect("whole seconds");
    let fire_of = |id: &str| {
        (-5..120).find_map(|s| {
            let fire = start + chrono::Duration::seconds(s);
            let key = fire.to_rfc3339();
            (rectify_notifier::dispatch::message_id(&["weekly_dispatch", &key, "office"]) == id)
                .then_some(fire)
        })
    };
    let mut fires = BTreeSet::new();
    for (id, copies) in &by_id {
        let m = copies[0];
        assert_eq!(m.rcpts, vec!["chief@example.gov.cn".to_string()]);
        let subject = m.subject().unwrap_or_default();
        assert!(subject.starts_with("【周调度】"), "{subject}");
        assert_eq!(
            copies.len(),
            1,
            "{id} ({subject}) arrived {} times",
            copies.len()
        );
        let fire = fire_of(id).unwrap_or_else(|| {
            panic!(
                "{id} is not the Message-ID of a fire; outbox: {:?}",
                query(
                    &env,
                    "SELECT message_id, created_at::text, state FROM outbox ORDER BY id",
                    3
                )
            )
        });
        assert_eq!(
            chrono::Timelike::second(&fire) % 2,
            0,
            "fires are on even seconds"
        );
        assert!(fires.insert(fire), "two messages for the fire at {fire}");
        assert_eq!(
            queued.get(id).map(String::as_str),
            Some("sent"),
            "{id} is recorded sent"
        );
    }
    assert!(fires.len() >= fires_wanted, "{fires:?}");
    // One run per fire: a fire run twice would log twice but queue one message (the Message-ID is
    // unique), so the runs logged by all three must add up to the messages queued.
    let runs: usize = runs_by.iter().map(|(_, n)| n).sum();
    assert_eq!(
        runs,
        queued.len(),
        "weekly-dispatch runs logged per instance {runs_by:?} vs {} fire(s) queued\n{}",
        queued.len(),
        dump(&logs)
    );
    // Each instance finishes its round before it stops: whatever a fire queued went out.
    assert_eq!(
        queued.len(),
        by_id.len(),
        "every queued message arrived: {queued:?}"
    );
    let errs: Vec<String> = logs.iter().flat_map(|(_, l)| errors(l)).collect();
    assert!(errs.is_empty(), "errors logged:\n{}", errs.join("\n"));
    eprintln!(
        "{} weekly-dispatch fires, each run once (runs per instance: {runs_by:?}), each delivered \
         once; test {}",
        fires.len(),
        secs(t0.elapsed())
    );
}

/// An instance whose delivery round runs longer than the lease (a slow server, a long queue)
/// keeps each batch to itself while it sends it: the lease of a batch runs from its own claim, not
/// from the start of the round. Another instance starting meanwhile helps with the rest and sends
/// nothing twice.
///
/// The outbox is filled directly (delivery does not depend on the send window) and both services
/// run on the real clock: with shifted clocks the later one would run behind and never see a
/// lease as expired.
#[test]
fn a_delivery_longer_than_the_lease_is_not_taken_over_while_it_runs() {
    let _serial = serial();
    let Some(env) = postgres("a_delivery_longer_than_the_lease_is_not_taken_over_while_it_runs")
    else {
        return;
    };
    env.ok(&["init", "--admin", "office"]);
    let messages = 600;
    let ts = "'2026-03-02 00:00:00+00'::timestamptz";
    let rows: Vec<String> = (1..=messages)
        .map(|n| {
            format!(
                "('<queued-{n}@rectify.local>', 'digest', 'U{n:04}', '[\"u{n:04}@example.gov.cn\"]', '[]', \
                 '【整改提醒】单位{n:04}:1 项整改事项需关注({TODAY})', \
                 'pending', 0, {ts}, NULL, NULL, NULL, {ts}, NULL)"
            )
        })
        .collect();
    env.sql(&format!(
        "INSERT INTO outbox (message_id, kind, unit_code, to_addrs, cc_addrs, subject, \
         state, attempts, next_attempt_at, lease_until, lease_token, last_error, created_at, sent_at) VALUES {}",
        rows.join(",")
    ));
    env.sql(
        "INSERT INTO outbox_bodies (outbox_id, body_text, body_html) \
         SELECT id, '事项' || id, '<p>事项' || id || '</p>' FROM outbox",
    );
    let smtp = Smtp::start();
    // 30 ms a message over 4 connections: one batch of 64 takes about half a second, the whole
    // queue alone about four and a half seconds; the lease is 2 s.
    smtp.server.set_delay(Duration::from_millis(30));
    let vars = service_env(
        smtp.server.port(),
        &[("RECTIFY_NOW", ""), ("RECTIFY__MAIL__LEASE", "2s")],
    );
    let first = Serve::spawn(&env, "first", &vars);
    // The first service's round has run for longer than the lease.
    let underway = wait_until(Duration::from_secs(30), || smtp.received().len() >= 330);
    assert!(
        underway,
        "{} of {messages} sent within 30 s\n{}",
        smtp.received().len(),
        first.lines().join("\n")
    );
    let second = Serve::spawn(&env, "second", &vars);
    let done = wait_until(Duration::from_secs(40), || {
        smtp.distinct() >= messages && unfinished(&env) == Some(0)
    });
    let services = vec![first, second];
    assert!(
        done,
        "{} of {messages} delivered within 40 s\n{}",
        smtp.distinct(),
        dump(&logs_of(&services))
    );
    let mut sent_by = Vec::new();
    stop_all(services, |s| {
        sent_by.push((s.name.clone(), s.sum("delivery", "sent")))
    });
    let got = smtp.received();
    let dups = duplicates(&got);
    assert!(
        dups.is_empty(),
        "{} message(s) sent twice: the second service took over batches still being sent \
         (sent per service: {sent_by:?}): {dups:?}",
        dups.len()
    );
    assert_eq!(got.len(), messages);
    assert_eq!(
        count(
            &env,
            "SELECT count(*)::text FROM outbox WHERE state = 'sent'"
        ),
        messages as i64
    );
    eprintln!("{messages} messages, sent per service: {sent_by:?}; none twice");
}

/// A pass queues each unit's digest in a transaction of its own and only then plans the touched
/// items' next overdue repeat (overdue reminders are planned one step ahead). An instance that
/// dies in between (SIGKILL, or the database going away as in the restart test above) leaves
/// items whose reminder is queued but whose next repeat was never planned; nothing plans it later
/// until a command changes the item, so the overdue item gets no further overdue reminders.
///
/// The state such a death leaves is written directly (the window is too short to hit with a kill
/// reliably): item 2's overdue reminder is queued in a pending digest, while item 1, alike in all
/// else, has its reminder pending. One service then runs: item 1 goes through a whole pass, item
/// 2's digest is only delivered. Both items must end with the same next overdue reminder.
#[test]
fn a_pass_killed_after_queuing_still_plans_the_next_overdue_reminder() {
    let _serial = serial();
    let Some(env) = postgres("a_pass_killed_after_queuing_still_plans_the_next_overdue_reminder")
    else {
        return;
    };
    env.ok(&["init", "--admin", "office"]);
    let ts = "'2026-02-02 00:00:00+00'::timestamptz";
    env.sql(&format!(
        "INSERT INTO units (code, name, parent_code, emails, leader, leader_email, aliases, created_at) VALUES \
         ('U0001', '单位0001', NULL, '[\"u0001@example.gov.cn\"]', NULL, NULL, '[]', {ts}), \
         ('U0002', '单位0002', NULL, '[\"u0002@example.gov.cn\"]', NULL, NULL, '[]', {ts})"
    ));
    env.sql(&format!(
        "INSERT INTO rounds (code, title, source, created_at) VALUES ('M1', '多实例测试轮次', 'inspection', {ts})"
    ));
    // Two items, overdue since 2026-02-26, each with its first overdue reminder due today.
    env.sql(&format!(
        "INSERT INTO items (id, round_code, parent_id, number, title, lead_unit, co_units, leader, deadline, state, \
         version, deadline_version, send_backs, reassignments, cadence, ext_to, ext_reason, ext_requested_by, \
         merged_into, progress_percent, last_progress, created_at, assigned_at, acknowledged_at, last_progress_at, \
         submitted_at, closed_at, head_seq, head_hash) VALUES \
         (1, 'M1', NULL, '1', '逾期事项一', 'U0001', '[]', NULL, '2026-02-26', 'in_progress', 3, 1, 0, 0, \
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, {ts}, {ts}, {ts}, NULL, NULL, NULL, 2, 'x'), \
         (2, 'M1', NULL, '2', '逾期事项二', 'U0002', '[]', NULL, '2026-02-26', 'in_progress', 3, 1, 0, 0, \
          NULL, NULL, NULL, NULL, NULL, NULL, NULL, {ts}, {ts}, {ts}, NULL, NULL, NULL, 2, 'x')"
    ));
    // Item 2's reminder went into a digest; the pass that queued it died before re-planning.
    env.sql(&format!(
        "INSERT INTO outbox (id, message_id, kind, unit_code, to_addrs, cc_addrs, subject, \
         state, attempts, next_attempt_at, lease_until, lease_token, last_error, created_at, sent_at) VALUES \
         (1, '<killed-pass@rectify.local>', 'digest', 'U0002', '[\"u0002@example.gov.cn\"]', '[]', \
          '【整改提醒】单位0002:1 项整改事项需关注({TODAY})', \
          'pending', 0, {ts}, NULL, NULL, NULL, {ts}, NULL)"
    ));
    env.sql("INSERT INTO outbox_bodies (outbox_id, body_text, body_html) VALUES (1, '逾期事项二', '<p>逾期事项二</p>')");
    env.sql("SELECT setval(pg_get_serial_sequence('outbox', 'id'), 1)");
    env.sql(&format!(
        "INSERT INTO reminders (item_id, kind, step, deadline_version, send_on, state, reason, outbox_id, \
         created_at, updated_at) VALUES \
         (1, 'overdue', 1, 1, '{TODAY}', 'pending', NULL, NULL, {ts}, {ts}), \
         (2, 'overdue', 1, 1, '{TODAY}', 'queued', NULL, 1, {ts}, {ts})"
    ));

    let smtp = Smtp::start();
    let vars = service_env(smtp.server.port(), &[]);
    let serve = Serve::spawn(&env, "restarted", &vars);
    let done = wait_until(Duration::from_secs(30), || {
        smtp.distinct() >= 2 && unfinished(&env) == Some(0)
    });
    assert!(
        done,
        "both digests within 30 s ({} arrived)\n{}",
        smtp.distinct(),
        serve.lines().join("\n")
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (code, lines) = serve.terminate();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(duplicates(&smtp.received()).is_empty());

    let next = |item: i64| {
        query(
            &env,
            &format!(
                "SELECT step::text, send_on FROM reminders WHERE item_id = {item} AND kind = 'overdue' \
                 AND state = 'pending' ORDER BY step"
            ),
            2,
        )
        .expect("reminders")
    };
    let (one, two) = (next(1), next(2));
    assert!(
        !one.is_empty(),
        "a whole pass plans item 1's next overdue reminder"
    );
    assert_eq!(
        two, one,
        "item 2's next overdue reminder (its digest was queued by a pass that died) vs item 1's"
    );
}

/// A command in another process changes the plan (it assigns an item whose reminder is due
/// today): the services hear it through LISTEN/NOTIFY and run a reminder pass at once, instead of
/// at the next cron fire (daily here) or the 60-second poll. Two instances woken by the same
/// notification send the digest once.
#[test]
fn a_plan_change_elsewhere_wakes_the_services_at_once() {
    let _serial = serial();
    let Some(env) = postgres("a_plan_change_elsewhere_wakes_the_services_at_once") else {
        return;
    };
    env.ok(&["init", "--admin", "office"]);
    env.ok(&[
        "unit",
        "add",
        "FGJ",
        "--name",
        "区发改局",
        "--email",
        "fgj@example.gov.cn",
    ]);
    env.ok(&["round", "add", "M1", "--title", "唤醒测试轮次"]);
    let smtp = Smtp::start();
    // The reminder job once a day at 03:00: only a wake-up can run a pass during the test.
    let vars = service_env(
        smtp.server.port(),
        &[
            ("RECTIFY__SCHEDULE__REMIND", "0 0 3 * * *"),
            ("RECTIFY__LOG__LEVEL", "info,rectify_notifier=debug"),
        ],
    );
    let services: Vec<Serve> = (1..=2)
        .map(|n| Serve::spawn(&env, &format!("wake{n}"), &vars))
        .collect();
    // Both listening, and the first pass run at start claimed (nothing was due then).
    let ready = wait_until(Duration::from_secs(20), || {
        services.iter().all(|s| {
            s.lines()
                .iter()
                .any(|l| l.contains("listening for plan changes"))
        }) && count(
            &env,
            "SELECT count(*)::text FROM jobs WHERE name = 'remind' AND claimed_by IS NOT NULL",
        ) == 1
    });
    assert!(ready, "services ready\n{}", dump(&logs_of(&services)));
    // The claimed pass finishes within milliseconds; leave it a second.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.distinct(), 0, "nothing was due before the assignment");

    let item = env.json(&["item", "add", "--round", "M1", "--title", "唤醒事项"]);
    let id = common::id_of(&item).to_string();
    let assigned = Instant::now();
    // Due today: the on-the-deadline reminder is due at once.
    env.ok(&["assign", &id, "--lead", "FGJ", "--due", TODAY]);
    let arrived = wait_until(Duration::from_secs(15), || smtp.distinct() >= 1);
    let took = assigned.elapsed();
    assert!(
        arrived,
        "the digest arrives within 15 s of the assignment, well before the 60 s poll\n{}",
        dump(&logs_of(&services))
    );
    // Give a second, duplicate pass the time it would need to show up.
    std::thread::sleep(Duration::from_secs(2));
    let got = smtp.received();
    assert_eq!(
        got.len(),
        1,
        "one digest, sent once: {:?}",
        got.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    assert_eq!(got[0].rcpts, vec!["fgj@example.gov.cn".to_string()]);
    let logs = stop_all(services, |_| {});
    let errs: Vec<String> = logs.iter().flat_map(|(_, l)| errors(l)).collect();
    assert!(errs.is_empty(), "errors logged:\n{}", errs.join("\n"));
    eprintln!("digest delivered {} after the assignment", secs(took));
}
