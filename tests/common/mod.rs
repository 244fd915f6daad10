//! The one harness the end-to-end tests go through: it runs the real `rectify` binary as a user
//! would, in a temporary folder of its own, against a fresh database (SQLite always; PostgreSQL
//! too when `RECTIFY_TEST_DATABASE_URL` is set). Every CLI form the tests rely on is spelled here
//! or in the tests' argument lists, so a change of the CLI breaks in few places.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rectify_schema::testing::TestDb;
use rectify_schema::{ConnectSettings, Store};
use serde_json::Value;

/// The fixed clock of every command unless a test says otherwise (a Monday, Beijing time).
pub const NOW: &str = "2026-03-02T09:00:00+08:00";
/// The office's admin, created by `init --admin`.
pub const ADMIN: &str = "office";
/// The operator of unit FGJ (区发改局).
pub const FGJ_OP: &str = "fgj-op";
/// The operator of unit SFJ (区司法局).
pub const SFJ_OP: &str = "sfj-op";
/// A read-only operator.
pub const VIEWER: &str = "viewer";
/// The round every test item belongs to.
pub const ROUND: &str = "XS-12-2";
/// The deadline most tests assign.
pub const DUE: &str = "2026-06-30";

/// What one process did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code, showing the whole output when it is not the expected one.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr contains `fragment`.
    #[track_caller]
    pub fn err_has(&self, fragment: &str) -> &Self {
        assert!(
            self.stderr.contains(fragment),
            "stderr lacks {fragment:?}\n--- stderr\n{}\n--- stdout\n{}",
            self.stderr,
            self.stdout
        );
        self
    }

    /// Asserts that stdout contains `fragment`.
    #[track_caller]
    pub fn out_has(&self, fragment: &str) -> &Self {
        assert!(
            self.stdout.contains(fragment),
            "stdout lacks {fragment:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON value ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// One test's world: a temporary folder (every process's current folder, so no stray
/// rectify.toml is read and evidence lands in `dir/evidence`) and a fresh database.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub backend: &'static str,
    pg: Option<TestDb>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

impl Env {
    /// A fresh SQLite file in a fresh folder (not yet initialised).
    pub fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("rectify.db").display());
        Env {
            dir,
            url,
            backend: "sqlite",
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, when `RECTIFY_TEST_DATABASE_URL` is set.
    pub fn postgres() -> Option<Env> {
        let db = runtime().block_on(TestDb::postgres())?;
        Some(Env {
            dir: tempfile::tempdir().expect("temp dir"),
            url: db.url.clone(),
            backend: "postgres",
            pg: Some(db),
        })
    }

    /// SQLite always, PostgreSQL when configured.
    pub fn all() -> Vec<Env> {
        let mut v = vec![Env::sqlite()];
        v.extend(Env::postgres());
        v
    }

    /// A fresh database, initialised, with units FGJ, SFJ and CZJ, the operators [`ADMIN`]
    /// (the only admin), [`FGJ_OP`], [`SFJ_OP`], [`VIEWER`], and the round [`ROUND`].
    pub fn seeded(self) -> Env {
        self.ok(&["init", "--admin", ADMIN]);
        for (code, name) in [
            ("FGJ", "区发改局"),
            ("SFJ", "区司法局"),
            ("CZJ", "区财政局"),
        ] {
            self.ok(&["unit", "add", code, "--name", name]);
        }
        self.ok(&["operator", "add", FGJ_OP, "--role", "unit", "--unit", "FGJ"]);
        self.ok(&["operator", "add", SFJ_OP, "--role", "unit", "--unit", "SFJ"]);
        self.ok(&["operator", "add", VIEWER, "--role", "viewer"]);
        self.ok(&[
            "round",
            "add",
            ROUND,
            "--title",
            "十二届省委第二轮巡视反馈问题整改",
        ]);
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the tool keeps evidence files (the default: `evidence` in the current folder).
    pub fn evidence_dir(&self) -> PathBuf {
        self.path().join("evidence")
    }

    /// The files in the evidence folder, recursively (empty when it does not exist).
    pub fn evidence_files(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, out);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.evidence_dir(), &mut out);
        out.sort();
        out
    }

    /// Writes a file in the test folder and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// The process for `rectify ARGS`: a clean environment for every RECTIFY_* variable, the
    /// clock fixed at [`NOW`], the current folder the test folder, `--database` this test's
    /// database, and `--lang en` unless the arguments choose a language.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_on(&self.url, args)
    }

    /// Like [`Env::command`], on another database (e.g. the one `demo` made).
    pub fn command_on(&self, url: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rectify"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RECTIFY") {
                c.env_remove(&k);
            }
        }
        c.env("RECTIFY_NOW", NOW)
            .current_dir(self.path())
            .arg("--database")
            .arg(url);
        if !args.contains(&"--lang") {
            c.args(["--lang", "en"]);
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `rectify ARGS`.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(&[], args)
    }

    /// Runs `rectify ARGS` with extra environment variables (e.g. another `RECTIFY_NOW`).
    pub fn run_env(&self, vars: &[(&str, &str)], args: &[&str]) -> Out {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        finish(c.spawn().expect("start rectify"))
    }

    /// Starts `rectify ARGS` without waiting; see [`finish`].
    pub fn spawn_env(&self, vars: &[(&str, &str)], args: &[&str]) -> Child {
        let mut c = self.command(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.spawn().expect("start rectify")
    }

    /// Runs `rectify ARGS` and asserts it exits 0.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        out.code(0);
        out
    }

    /// Runs `rectify --format json ARGS`, asserts exit 0, and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        self.ok(&all).json()
    }

    /// Like [`Env::json`], acting as `operator`.
    #[track_caller]
    pub fn json_as(&self, operator: &str, args: &[&str]) -> Value {
        let mut all = vec!["--as", operator];
        all.extend_from_slice(args);
        self.json(&all)
    }

    /// Runs `rectify --as OPERATOR ARGS`.
    pub fn run_as(&self, operator: &str, args: &[&str]) -> Out {
        let mut all = vec!["--as", operator];
        all.extend_from_slice(args);
        self.run(&all)
    }

    // ---- setup and look-ups -----------------------------------------------------------------

    /// `item add` in [`ROUND`]; returns the new item.
    #[track_caller]
    pub fn add_item(&self, title: &str, extra: &[&str]) -> Value {
        let mut args = vec!["item", "add", "--round", ROUND, "--title", title];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// A new item assigned to `lead` with deadline [`DUE`]; returns its id.
    #[track_caller]
    pub fn assigned(&self, title: &str, lead: &str) -> i64 {
        let id = id_of(&self.add_item(title, &[]));
        let item = self.json(&["assign", &id.to_string(), "--lead", lead, "--due", DUE]);
        assert_eq!(item["state"], "assigned");
        id
    }

    /// A new item of FGJ, acknowledged by [`FGJ_OP`] (in_progress); returns its id.
    #[track_caller]
    pub fn in_progress(&self, title: &str) -> i64 {
        let id = self.assigned(title, "FGJ");
        let item = self.json_as(FGJ_OP, &["ack", &id.to_string()]);
        assert_eq!(item["state"], "in_progress");
        id
    }

    /// A new item of FGJ, submitted for close-out by [`FGJ_OP`]; returns its id.
    #[track_caller]
    pub fn pending(&self, title: &str) -> i64 {
        let id = self.in_progress(title);
        let item = self.json_as(
            FGJ_OP,
            &["submit", &id.to_string(), "--note", "已按要求整改完毕"],
        );
        assert_eq!(item["state"], "pending_verification");
        id
    }

    /// `item show ID` as JSON (the item plus its "extensions").
    #[track_caller]
    pub fn show(&self, id: i64) -> Value {
        self.json(&["item", "show", &id.to_string()])
    }

    /// `item history ID` as JSON: the events, oldest first.
    #[track_caller]
    pub fn history(&self, id: i64) -> Vec<Value> {
        match self.json(&["item", "history", &id.to_string()]) {
            Value::Array(v) => v,
            other => panic!("history is not a JSON array: {other}"),
        }
    }

    /// The event kinds of an item's history, oldest first.
    #[track_caller]
    pub fn kinds(&self, id: i64) -> Vec<String> {
        self.history(id)
            .iter()
            .map(|e| e["kind"].as_str().expect("kind").to_string())
            .collect()
    }

    /// `item list` as JSON.
    #[track_caller]
    pub fn items(&self) -> Value {
        self.json(&["item", "list"])
    }

    /// A snapshot of everything a refused command must leave alone: every item, and the history
    /// of each.
    #[track_caller]
    pub fn snapshot(&self) -> (Value, Vec<Vec<Value>>) {
        let items = self.items();
        let histories = items
            .as_array()
            .expect("item list is an array")
            .iter()
            .map(|i| self.history(id_of(i)))
            .collect();
        (items, histories)
    }

    /// `audit verify`.
    pub fn audit(&self) -> Out {
        self.run(&["audit", "verify"])
    }

    /// Runs one raw SQL statement on this test's database behind the tool's back.
    pub fn sql(&self, statement: &str) -> u64 {
        let settings = ConnectSettings::new(self.url.clone(), self.evidence_dir());
        runtime().block_on(async {
            let store = Store::connect(&settings)
                .await
                .expect("connect for raw SQL");
            let n = store
                .execute_unprepared(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            store.close().await.expect("close");
            n
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(db) = self.pg.take() {
            runtime().block_on(db.cleanup());
        }
    }
}

/// Waits for a started process and collects what it printed.
pub fn finish(child: Child) -> Out {
    let o = child.wait_with_output().expect("wait for rectify");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The id of an item in its JSON form.
#[track_caller]
pub fn id_of(item: &Value) -> i64 {
    item["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {item}"))
}

/// Polls `f` every 50 ms until it holds or `timeout` passes; whether it held.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An SMTP server on loopback, served by a runtime of its own while the test thread waits on
/// processes.
pub struct Smtp {
    pub server: rectify_notifier::testing::SmtpServer,
    _rt: tokio::runtime::Runtime,
}

impl Smtp {
    pub fn start() -> Smtp {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(rectify_notifier::testing::SmtpServer::start())
            .expect("start the SMTP server");
        Smtp { server, _rt: rt }
    }

    pub fn received(&self) -> Vec<rectify_notifier::testing::Received> {
        self.server.received()
    }
}
