//! Runs the real `rectify` binary in a temporary folder against its own SQLite database, with
//! the clock fixed, for the import / export / report tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const NOW: &str = "2026-03-02T09:00:00+08:00";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub now: String,
}

impl Env {
    /// A fresh database with an admin.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}", dir.path().join("rectify.db").display());
        let env = Env {
            dir,
            db,
            now: NOW.to_string(),
        };
        env.ok(&["init"]);
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rectify"));
        for (k, _) in std::env::vars() {
            if k.starts_with("RECTIFY") {
                c.env_remove(k);
            }
        }
        c.current_dir(self.dir.path())
            .env("RECTIFY_NOW", &self.now)
            .arg("--database")
            .arg(&self.db)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run rectify")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rectify {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with `--format json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "rectify {args:?}: expected exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn items(&self, round: &str) -> Vec<Value> {
        match self.json(&["item", "list", "--round", round]) {
            Value::Array(a) => a,
            other => panic!("not a list: {other}"),
        }
    }

    pub fn unit(&self, code: &str, name: &str, aliases: &[&str]) {
        let mut a = vec!["unit", "add", code, "--name", name];
        for x in aliases {
            a.push("--alias");
            a.push(x);
        }
        self.ok(&a);
    }

    pub fn round(&self, code: &str) {
        self.ok(&["round", "add", code, "--title", code]);
    }
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("samples")
        .join(name)
}

pub fn find<'a>(items: &'a [Value], number: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["number"] == number)
        .unwrap_or_else(|| panic!("no item numbered {number}"))
}
