//! `rectify serve`, `remind preview|run` and their configuration, run as real processes: the
//! database is set up with the CLI, mail goes to an SMTP server on loopback inside this test
//! process (or to `.eml` files), and the service is stopped with SIGTERM like a service manager
//! would.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, Smtp, id_of, wait_until};
use rectify_notifier::testing::Received;
use serde_json::Value;

const ROUND: &str = "XS-12-2";
const FGJ: &str = "fgj@example.gov.cn";
/// A Monday morning, inside the send window, one working day before [`DUE`]: the 1-working-day
/// reminder of the default policy is due.
const REMIND_AT: &str = "2026-03-30T10:00:00+08:00";
const DUE: &str = "2026-03-31";

/// A database with unit FGJ (with an email), its operator, a round, and one item of FGJ due
/// [`DUE`], all made with the CLI on the harness's fixed clock (Monday 2026-03-02, 09:00).
fn set_up(env: &Env) -> i64 {
    env.ok(&["init", "--admin", "office"]);
    env.ok(&["unit", "add", "FGJ", "--name", "区发改局", "--email", FGJ]);
    env.ok(&[
        "operator", "add", "fgj-op", "--role", "unit", "--unit", "FGJ",
    ]);
    env.ok(&[
        "round",
        "add",
        ROUND,
        "--title",
        "十二届省委第二轮巡视反馈问题整改",
    ]);
    let item = env.json(&[
        "item",
        "add",
        "--round",
        ROUND,
        "--title",
        "整改甲:稳经济政策落实",
        "--lead",
        "FGJ",
        "--due",
        DUE,
    ]);
    assert_eq!(item["state"], "assigned", "{item}");
    id_of(&item)
}

/// A running `rectify serve`, its stderr collected line by line as it comes.
struct Serve {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn spawn(env: &Env, vars: &[(&str, &str)]) -> Serve {
        let mut c = env.command(&["--lang", "zh", "serve", "--log-format", "json"]);
        c.stdout(Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
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
        Serve { child, lines }
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

    #[track_caller]
    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "rectify serve exited early ({status:?})\n{}",
            self.lines().join("\n")
        );
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit code and the log.
    fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -TERM {pid}");
        let mut code = None;
        let exited = wait_until(Duration::from_secs(10), || {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => {
                    code = s.code();
                    true
                }
                None => false,
            }
        });
        assert!(
            exited,
            "rectify serve did not stop within 10 s of SIGTERM\n{}",
            self.lines().join("\n")
        );
        // Let the reader thread take the last lines.
        wait_until(Duration::from_secs(2), || {
            self.lines().iter().any(|l| l.contains("scheduler stopped"))
        });
        (code, self.lines())
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

/// Every stderr line as a JSON record; panics on a line that is not one.
fn records(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn messages(lines: &[String]) -> Vec<String> {
    records(lines)
        .iter()
        .filter_map(|r| r["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

fn smtp_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("RECTIFY_MAIL_TRANSPORT", "smtp".to_string()),
        ("RECTIFY_SMTP_HOST", "127.0.0.1".to_string()),
        ("RECTIFY_SMTP_PORT", port.to_string()),
        // Every second, so the test does not wait for the default five minutes.
        ("RECTIFY__SCHEDULE__REMIND", "*/1 * * * * *".to_string()),
        ("RECTIFY_NOW", REMIND_AT.to_string()),
    ]
}

fn vars<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn serve_delivers_the_due_digest_and_stops_on_sigterm(env: Env) {
    set_up(&env);
    let smtp = Smtp::start();
    let env_vars = smtp_env(smtp.server.port());
    let mut serve = Serve::spawn(&env, &vars(&env_vars));

    let arrived = wait_until(Duration::from_secs(20), || {
        !smtp.server.received().is_empty()
    });
    assert!(
        arrived,
        "[{}] no message within 20 s\n{}",
        env.backend,
        serve.lines().join("\n")
    );
    // A few more ticks (one a second) must not send it again.
    std::thread::sleep(Duration::from_millis(1500));
    serve.assert_running();
    let (code, lines) = serve.terminate();
    assert_eq!(code, Some(0), "[{}]\n{}", env.backend, lines.join("\n"));

    let got = smtp.server.received();
    assert_eq!(got.len(), 1, "[{}] exactly one digest", env.backend);
    let m = &got[0];
    assert_eq!(m.rcpts, vec![FGJ.to_string()]);
    assert_eq!(
        m.subject().as_deref(),
        Some("【整改提醒】区发改局:1 项整改事项需关注(2026-03-30)")
    );
    let text = m.text();
    assert!(
        text.contains("整改甲:稳经济政策落实") && text.contains("剩余 1 个工作日"),
        "{text}"
    );

    let said = messages(&lines);
    for expected in [
        "rectify serve started",
        "reminder pass",
        "delivery",
        "shutdown requested: finishing sends in flight",
        "scheduler stopped",
    ] {
        assert!(
            said.iter().any(|s| s == expected),
            "[{}] log lacks {expected:?}:\n{}",
            env.backend,
            lines.join("\n")
        );
    }
    let recs = records(&lines);
    assert!(
        recs.iter()
            .any(|r| r["fields"]["message"] == "reminder pass" && r["fields"]["messages"] == 1),
        "[{}] a pass that queued the digest:\n{}",
        env.backend,
        lines.join("\n")
    );
    assert!(
        recs.iter()
            .any(|r| r["fields"]["message"] == "delivery" && r["fields"]["sent"] == 1),
        "[{}]",
        env.backend
    );
    // The shutdown comes last.
    assert_eq!(said.last().map(String::as_str), Some("scheduler stopped"));

    let sent = env.json(&["outbox", "list", "--state", "sent"]);
    let sent = sent.as_array().expect("array");
    assert_eq!(sent.len(), 1, "[{}] {sent:?}", env.backend);
    assert_eq!(
        m.message_id().as_deref(),
        sent[0]["message_id"].as_str(),
        "the outbox row's Message-ID"
    );
}

#[test]
fn serve_delivers_the_due_digest_and_stops_on_sigterm_sqlite() {
    serve_delivers_the_due_digest_and_stops_on_sigterm(Env::sqlite());
}

#[test]
fn serve_delivers_the_due_digest_and_stops_on_sigterm_postgres() {
    if let Some(env) = Env::postgres() {
        serve_delivers_the_due_digest_and_stops_on_sigterm(env);
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

#[test]
fn serve_keeps_running_and_logs_the_failure_when_smtp_is_down() {
    let env = Env::sqlite();
    set_up(&env);
    let env_vars = smtp_env(closed_port());
    let mut serve = Serve::spawn(&env, &vars(&env_vars));

    let failed = wait_until(Duration::from_secs(20), || {
        !serve.logged("send failed, will retry").is_empty()
    });
    assert!(
        failed,
        "no send failure logged\n{}",
        serve.lines().join("\n")
    );
    let warning = &serve.logged("send failed, will retry")[0];
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["fields"]["attempts"], 1, "{warning}");
    assert!(
        warning["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused")),
        "{warning}"
    );
    // The outbox row it is about, under a field of its own (not clobbering `message`).
    assert_eq!(warning["fields"]["outbox_id"], 1, "{warning}");
    // It keeps running and does not hammer the server: the next try is 30 s away.
    std::thread::sleep(Duration::from_millis(2000));
    serve.assert_running();
    assert_eq!(
        serve.logged("send failed, will retry").len(),
        1,
        "retried in a loop:\n{}",
        serve.lines().join("\n")
    );
    let pending = env.json(&["outbox", "list", "--state", "pending"]);
    let pending = pending.as_array().expect("array");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["attempts"], 1);
    assert!(pending[0]["last_error"].is_string(), "{:?}", pending[0]);

    let (code, lines) = serve.terminate();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    assert!(messages(&lines).iter().any(|m| m == "scheduler stopped"));
    // The message is still queued for the next start.
    let pending = env.json(&["outbox", "list", "--state", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let env = Env::sqlite();
    for (var, value, key) in [
        ("RECTIFY__SCHEDULE__REMIND", "not cron", "schedule.remind"),
        (
            "RECTIFY__REMINDERS__YELLOW_WITHIN",
            "3x",
            "reminders.yellow_within",
        ),
        (
            "RECTIFY__REMINDERS__SEND_WINDOW",
            "18:00-08:30",
            "reminders.send_window",
        ),
    ] {
        let out = env.run_env(&[(var, value)], &["serve"]);
        out.code(2).err_has(key).err_has(var).err_has(value);
    }
    let out = env.run_env(
        &[("RECTIFY__REMINDERS__SEND_WINDOW", "18:00-08:30")],
        &["serve"],
    );
    out.err_has("ends before it starts");

    set_up(&env);
    env.run(&["unit", "add", "X", "--name", "N", "--email", "not-an-email"])
        .code(2)
        .err_has("not-an-email")
        .err_has("not a valid email address");
    // `unit list` is always an array, even with one unit.
    let units = env.json(&["unit", "list"]);
    let units = units.as_array().expect("an array").clone();
    assert_eq!(units.len(), 1, "nothing written: {units:?}");
    assert_eq!(units[0]["code"], "FGJ");
}

/// The `.eml` files in `dir` (none when it does not exist).
fn eml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn remind_preview_writes_nothing_and_remind_run_writes_eml_files(env: Env) {
    set_up(&env);
    let mail_dir = env.path().join("outgoing-mail");
    let dir_var = mail_dir.display().to_string();
    let mail = [("RECTIFY_MAIL_DIR", dir_var.as_str())];
    let b = env.backend;

    for _ in 0..2 {
        let out = env.run_env(&mail, &["remind", "preview", "--at", REMIND_AT]);
        out.code(0)
            .out_has(&format!("To: {FGJ}"))
            .out_has("Subject: [Rectification] 区发改局: 1 item(s) need attention (2026-03-30)")
            .out_has("整改甲:稳经济政策落实")
            .out_has("1 working day(s) left")
            .out_has("1 message(s), 1 reminder(s)");
        assert!(
            !out.stdout.contains("sent "),
            "[{b}] a preview sends nothing"
        );
        assert_eq!(
            env.json(&["outbox", "list"]),
            serde_json::json!([]),
            "[{b}]"
        );
        assert!(eml_files(&mail_dir).is_empty(), "[{b}] no mail written");
    }
    // Outside the window the preview says why nothing would go out.
    env.run_env(
        &mail,
        &["remind", "preview", "--at", "2026-03-30T07:00:00+08:00"],
    )
    .code(0)
    .out_has("nothing sent: 07:00 is outside the send window 08:30-18:00");

    env.run_env(&mail, &["remind", "run", "--at", REMIND_AT])
        .code(0)
        .out_has("1 message(s), 1 reminder(s)")
        .out_has("sent 1, to retry 0, failed 0");
    let files = eml_files(&mail_dir);
    assert_eq!(files.len(), 1, "[{b}] {files:?}");
    let raw = std::fs::read_to_string(&files[0]).expect("read .eml");
    let eml = Received {
        from: String::new(),
        rcpts: vec![],
        data: raw,
        body_8bit: false,
    };
    assert_eq!(eml.header("To").as_deref(), Some(FGJ), "[{b}]");
    assert_eq!(
        eml.subject().as_deref(),
        Some("[Rectification] 区发改局: 1 item(s) need attention (2026-03-30)")
    );
    assert!(eml.text().contains("整改甲:稳经济政策落实"), "[{b}]");
    let sent = env.json(&["outbox", "list", "--state", "sent"]);
    assert_eq!(
        eml.message_id().as_deref(),
        sent[0]["message_id"].as_str(),
        "[{b}]"
    );

    // Run again: nothing new.
    env.run_env(&mail, &["remind", "run", "--at", REMIND_AT])
        .code(0)
        .out_has("0 message(s)")
        .out_has("sent 0");
    assert_eq!(eml_files(&mail_dir).len(), 1, "[{b}]");
    assert_eq!(
        env.json(&["outbox", "list"]).as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn remind_preview_writes_nothing_and_remind_run_writes_eml_files_sqlite() {
    remind_preview_writes_nothing_and_remind_run_writes_eml_files(Env::sqlite());
}

#[test]
fn remind_preview_writes_nothing_and_remind_run_writes_eml_files_postgres() {
    if let Some(env) = Env::postgres() {
        remind_preview_writes_nothing_and_remind_run_writes_eml_files(env);
    }
}

/// On a database that has never run a pass, the first pass runs at start, not at the next fire
/// of the (default, five-minute) schedule.
#[test]
fn the_first_pass_runs_at_start_with_the_default_schedule() {
    let env = Env::sqlite();
    set_up(&env);
    let smtp = Smtp::start();
    let mut env_vars = smtp_env(smtp.server.port());
    env_vars.retain(|(k, _)| *k != "RECTIFY__SCHEDULE__REMIND");
    let serve = Serve::spawn(&env, &vars(&env_vars));
    let arrived = wait_until(Duration::from_secs(15), || {
        !smtp.server.received().is_empty()
    });
    let (code, lines) = serve.terminate();
    assert!(arrived, "no digest at start:\n{}", lines.join("\n"));
    assert_eq!(code, Some(0));
    assert_eq!(smtp.server.received().len(), 1);
}

/// `GET` over a plain TCP connection; returns the status line and the body.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    http_get_in_pieces(port, path, false)
}

/// `GET`, the request sent in one write, or (`split`) in two with a pause between, as a slow
/// client would: the server must wait for the whole request before it answers.
fn http_get_in_pieces(port: u16, path: &str, split: bool) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_nodelay(true).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (a, b) = req.split_at(if split { 7 } else { req.len() });
    s.write_all(a.as_bytes()).ok()?;
    if split {
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(b.as_bytes()).ok()?;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// With `[http] listen` set, `serve` answers /healthz (database reachable, last pass) and
/// /metrics (Prometheus text with passes, sends and queue depths).
#[test]
fn healthz_and_metrics_are_served() {
    let env = Env::sqlite();
    set_up(&env);
    let smtp = Smtp::start();
    let port = closed_port();
    let mut env_vars = smtp_env(smtp.server.port());
    env_vars.push(("RECTIFY_HTTP_LISTEN", format!("127.0.0.1:{port}")));
    let serve = Serve::spawn(&env, &vars(&env_vars));
    let delivered = wait_until(Duration::from_secs(15), || {
        !smtp.server.received().is_empty()
    });
    // The counters move when the delivery round ends, just after the server got the message.
    let mut metrics = None;
    wait_until(Duration::from_secs(10), || {
        metrics = http_get(port, "/metrics");
        metrics
            .as_ref()
            .is_some_and(|(_, b)| b.contains("rectify_messages_sent_total 1"))
    });
    // Retried: on a loaded machine one request can time out while a pass holds the database.
    let mut health = None;
    wait_until(Duration::from_secs(15), || {
        health = http_get(port, "/healthz");
        health.is_some()
    });
    let missing = http_get(port, "/nope");
    // A request that arrives in two pieces ("GET /me", then "trics …") is answered for the
    // whole path, not for its first piece.
    let in_pieces = http_get_in_pieces(port, "/metrics", true);
    let (code, lines) = serve.terminate();
    assert!(delivered, "{}", lines.join("\n"));
    assert_eq!(code, Some(0));
    let (status, body) = health.expect("healthz answered");
    assert!(status.contains("200"), "{status}");
    let h: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"], "reachable");
    assert!(h["last_pass_unix"].as_i64().is_some(), "{h}");
    let (status, body) = metrics.expect("metrics answered");
    assert!(status.contains("200"), "{status}");
    for name in [
        "rectify_passes_total",
        "rectify_messages_sent_total",
        "rectify_messages_failed_total",
        "rectify_reminders_skipped_total",
        "rectify_send_seconds_sum",
        "rectify_queue_depth{queue=\"reminders\"}",
        "rectify_queue_depth{queue=\"outbox\"}",
    ] {
        assert!(body.contains(name), "metrics lack {name}:\n{body}");
    }
    assert!(body.contains("rectify_messages_sent_total 1"), "{body}");
    assert!(missing.expect("answered").0.contains("404"));
    let (status, body) = in_pieces.expect("a request in pieces is answered");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("rectify_passes_total"), "{body}");
}

/// `serve` on SQLite killed with SIGKILL in the middle of delivering a pass, then started again:
/// every unit gets its digest, and a digest that arrives twice was one the killed process was
/// sending when it died (one connection, so at most one), with the same Message-ID.
#[test]
fn serve_killed_mid_pass_on_sqlite_loses_nothing() {
    const UNITS: usize = 12;
    let env = Env::sqlite();
    env.ok(&["init", "--admin", "office"]);
    env.ok(&["round", "add", ROUND, "--title", "进程中断测试"]);
    let mut addrs = Vec::new();
    for u in 0..UNITS {
        let code = format!("U{u:02}");
        let addr = format!("u{u:02}@example.gov.cn");
        env.ok(&[
            "unit",
            "add",
            &code,
            "--name",
            &format!("单位{u:02}"),
            "--email",
            &addr,
        ]);
        env.ok(&[
            "item",
            "add",
            "--round",
            ROUND,
            "--title",
            &format!("事项{u:02}"),
            "--lead",
            &code,
            "--due",
            DUE,
        ]);
        addrs.push(addr);
    }
    let smtp = Smtp::start();
    // One message at a time, each held 400 ms by the server: the kill lands mid-delivery.
    smtp.server.set_delay(Duration::from_millis(400));
    let mut env_vars = smtp_env(smtp.server.port());
    env_vars.push(("RECTIFY__MAIL__MAX_CONNECTIONS", "1".into()));
    // The dead process's claims are taken over after this.
    env_vars.push(("RECTIFY__MAIL__LEASE", "2s".into()));
    let first = Serve::spawn(&env, &vars(&env_vars));
    let started = wait_until(Duration::from_secs(30), || {
        smtp.server.received().len() >= 3
    });
    assert!(started, "delivery started\n{}", first.lines().join("\n"));
    let mut first = first;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    // The server finishes taking the message it was holding when the client died.
    std::thread::sleep(Duration::from_millis(600));
    let before: Vec<String> = smtp
        .server
        .received()
        .iter()
        .filter_map(|m| m.message_id())
        .collect();
    assert!(
        before.len() < UNITS,
        "the kill came before the pass finished ({} of {UNITS} sent)",
        before.len()
    );
    smtp.server.set_delay(Duration::ZERO);
    let second = Serve::spawn(&env, &vars(&env_vars));
    let done = wait_until(Duration::from_secs(30), || {
        let got: std::collections::BTreeSet<String> = smtp
            .server
            .received()
            .iter()
            .flat_map(|m| m.rcpts.clone())
            .collect();
        addrs.iter().all(|a| got.contains(a))
    });
    assert!(
        done,
        "every unit's digest after the restart\n{}",
        second.lines().join("\n")
    );
    // Let a duplicate, if any, arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    let (code, lines) = second.terminate();
    assert_eq!(code, Some(0), "{}", lines.join("\n"));
    let got = smtp.server.received();
    let mut copies: std::collections::BTreeMap<String, Vec<Vec<String>>> = Default::default();
    for m in &got {
        copies
            .entry(m.message_id().expect("Message-ID"))
            .or_default()
            .push(m.rcpts.clone());
    }
    assert_eq!(copies.len(), UNITS, "one digest per unit: {copies:?}");
    let twice: Vec<&String> = copies
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        twice.len() <= 1,
        "only the message in flight (one connection) may arrive twice: {twice:?}"
    );
    for (id, c) in &copies {
        assert!(c.len() <= 2, "{id} arrived {} times", c.len());
        assert!(
            c.iter().all(|r| r == &c[0]),
            "{id}: same recipients each time"
        );
    }
    // Sent one at a time and each recorded as it went: only the last message the killed
    // process handed to the server can be unrecorded.
    for id in &twice {
        assert_eq!(
            Some(*id),
            before.last(),
            "{id} arrived twice but was not the one in flight when the process died: {before:?}"
        );
    }
    let sent = env.sql("UPDATE outbox SET state = state WHERE state = 'sent'");
    assert_eq!(sent as usize, UNITS, "every digest recorded as sent");
}
