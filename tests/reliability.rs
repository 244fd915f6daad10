//! Reliability and security rows (RELIABILITY.md): audit export verified elsewhere, hostile text
//! stored verbatim and escaped, limits, SIGKILL during an import, SQLite contention.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// `rectify audit verify --file PATH [--public-key KEY]` as an inspector runs it: in `dir`, with
/// no database or configuration.
fn verify_export(
    dir: &std::path::Path,
    path: &std::path::Path,
    public_key: Option<&str>,
) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rectify"));
    c.args(["--lang", "en", "audit", "verify", "--file"])
        .arg(path)
        .current_dir(dir)
        .env_remove("RECTIFY_DATABASE")
        .env_remove("RECTIFY_CONFIG");
    if let Some(k) = public_key {
        c.args(["--public-key", k]);
    }
    c.output().unwrap()
}

/// An inspector checks an exported record on another machine: no database needed, and any
/// change to the file is detected.
#[test]
fn audit_export_verifies_offline_and_detects_changes() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("导出核验");
    env.json_as(FGJ_OP, &["progress", &id.to_string(), "--note", "进展"]);
    let file = env.path().join("export.json");
    env.ok(&[
        "audit",
        "export",
        "--item",
        &id.to_string(),
        "-o",
        file.to_str().unwrap(),
    ]);
    // Verify from another folder, with no database configured at all.
    let other = tempfile::tempdir().unwrap();
    let verify = |path: &std::path::Path| verify_export(other.path(), path, None);
    let ok = verify(&file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("export intact: 1 items"));

    let text = std::fs::read_to_string(&file).unwrap();
    let tampered = other.path().join("tampered.json");
    std::fs::write(&tampered, text.replacen("进展", "已完成", 1)).unwrap();
    let bad = verify(&tampered);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("the seal does not match"), "{err}");
    assert!(err.contains(&format!("item {id}")), "{err}");

    // A round export covers every item of the round.
    env.ok(&[
        "audit",
        "export",
        "--round",
        ROUND,
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(verify(&file).status.success());
    // Not a JSON export: exit 2 with a clear message.
    let junk = other.path().join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let out = verify(&junk);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a rectify audit export"));
}

/// A signed export: the office makes a key once, signs its exports, publishes the public key;
/// the inspector checks the file against that key on another machine. Re-sealing a changed file
/// does not help a forger: the signature no longer matches, and a signature with another key is
/// named as such.
#[test]
fn a_signed_audit_export_proves_which_office_made_it() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("签名导出");
    let key = env.path().join("office.key");
    let made = env.json(&["audit", "keygen", "-o", key.to_str().unwrap()]);
    let public = made["public_key"].as_str().expect("public key").to_string();
    assert_eq!(public.len(), 64, "{made}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is readable by its owner only");
    // Never overwritten.
    env.run(&["audit", "keygen", "-o", key.to_str().unwrap()])
        .code(2)
        .err_has("never overwritten");

    let file = env.path().join("signed.json");
    env.ok(&[
        "audit",
        "export",
        "--item",
        &id.to_string(),
        "--sign-key",
        key.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    let other = tempfile::tempdir().unwrap();
    let verify = |path: &std::path::Path, public_key: Option<&str>| {
        verify_export(other.path(), path, public_key)
    };
    let ok = verify(&file, Some(&public));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains(&format!("signature valid, public key {public}"))
    );

    // Changed and re-sealed (the seal is only a digest, anyone can recompute it): the signature
    // over the old seal no longer matches.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v["items"][0]["title"] = "改过的标题".into();
    let mut forged: rectify_engine::chain::AuditExport = serde_json::from_value(v).unwrap();
    forged.seal = forged.compute_seal();
    let forged_file = other.path().join("forged.json");
    std::fs::write(&forged_file, serde_json::to_string(&forged).unwrap()).unwrap();
    let bad = verify(&forged_file, Some(&public));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("the signature does not match"), "{err}");

    // Re-signed with the forger's own key: valid in itself, but not the office's key.
    forged.sign(&[7u8; 32]);
    std::fs::write(&forged_file, serde_json::to_string(&forged).unwrap()).unwrap();
    assert!(verify(&forged_file, None).status.success());
    let bad = verify(&forged_file, Some(&public));
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not the expected"), "{err}");

    // An unsigned export cannot pass for a signed one.
    let plain = env.path().join("plain.json");
    env.ok(&[
        "audit",
        "export",
        "--item",
        &id.to_string(),
        "-o",
        plain.to_str().unwrap(),
    ]);
    let bad = verify(&plain, Some(&public));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not signed"));

    // A file that is not a key: exit 2 naming the fix, nothing exported.
    let junk = env.path().join("junk.key");
    std::fs::write(&junk, "not a key").unwrap();
    env.run(&[
        "audit",
        "export",
        "--item",
        &id.to_string(),
        "--sign-key",
        junk.to_str().unwrap(),
    ])
    .code(2)
    .err_has("audit keygen");
}

/// Titles refuse control characters (they end up in email subjects); notes keep SQL and HTML
/// verbatim; oversized text is refused with nothing written.
#[test]
fn hostile_text_is_refused_or_stored_verbatim() {
    let env = Env::sqlite().seeded();
    let before = env.items();
    env.run(&[
        "item",
        "add",
        "--round",
        ROUND,
        "--title",
        "标题\r\nBcc: evil@example.com",
    ])
    .code(2)
    .err_has("control character");
    // One argument is at most 128 KiB on Linux; 1 MB strings are refused by the engine (its tests).
    let huge = "字".repeat(30_000);
    env.run(&["item", "add", "--round", ROUND, "--title", &huge])
        .code(2)
        .err_has("too long");
    assert_eq!(env.items(), before, "nothing written");

    let id = env.in_progress("'; DROP TABLE items; --");
    let sql = "Robert'); DROP TABLE items;-- <script>alert(1)</script>";
    env.json_as(FGJ_OP, &["progress", &id.to_string(), "--note", sql]);
    assert_eq!(env.show(id)["last_progress"], sql);
    assert_eq!(env.show(id)["title"], "'; DROP TABLE items; --");
    let huge_note = "x".repeat(100_000);
    env.run_as(FGJ_OP, &["progress", &id.to_string(), "--note", &huge_note])
        .code(2)
        .err_has("too long");
    env.audit().code(0);
}

/// An evidence name with `../` or an absolute path only ever lends its base name; the file is
/// stored inside the evidence folder under its hash.
#[test]
fn evidence_paths_never_write_outside_the_folder() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证路径");
    let sub = env.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let f = env.write("a/b/报告.txt", "内容");
    let dotted = env.path().join("a/b/../b/报告.txt");
    env.json_as(
        FGJ_OP,
        &[
            "progress",
            &id.to_string(),
            "--note",
            "n",
            "--evidence",
            dotted.to_str().unwrap(),
        ],
    );
    let h = env.history(id);
    assert_eq!(h.last().unwrap()["evidence"][0]["name"], "报告.txt");
    for p in env.evidence_files() {
        assert!(p.starts_with(env.evidence_dir()), "{}", p.display());
    }
    #[cfg(unix)]
    {
        let link = env.path().join("link.txt");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        env.json_as(
            FGJ_OP,
            &[
                "progress",
                &id.to_string(),
                "--note",
                "n",
                "--evidence",
                link.to_str().unwrap(),
            ],
        );
        for p in env.evidence_files() {
            assert!(p.starts_with(env.evidence_dir()));
            assert!(
                !std::fs::symlink_metadata(&p)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
    }
}

/// The evidence folder not writable: a clear error, and nothing recorded half.
#[test]
fn unwritable_evidence_folder_records_nothing() {
    if unsafe_is_root() {
        // Root ignores permissions; the check needs an ordinary user.
        eprintln!("running as root: permission check skipped, using a file in the folder's place");
    }
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证目录不可写");
    let before = env.history(id).len();
    // A regular file where the evidence folder should be: no user can write into it.
    let _ = std::fs::remove_dir_all(env.evidence_dir());
    std::fs::write(env.evidence_dir(), "not a folder").unwrap();
    let f = env.write("r.txt", "x");
    env.run_as(
        FGJ_OP,
        &[
            "progress",
            &id.to_string(),
            "--note",
            "n",
            "--evidence",
            f.to_str().unwrap(),
        ],
    )
    .code(2)
    .err_has("cannot write to the evidence folder");
    assert_eq!(env.history(id).len(), before);
}

fn unsafe_is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
}

/// SIGKILL in the middle of a large ledger import: the database is as it was before.
#[test]
fn sigkill_during_a_ledger_import_changes_nothing() {
    // On PostgreSQL the import runs on a connection of its own and writes with COPY: the
    // server rolls back the transaction of a connection whose process died.
    for env in Env::all() {
        let env = env.seeded();
        let before = env.items();
        let mut csv = String::from("序号,问题类别,具体问题,整改措施,牵头单位,完成时限\n");
        for i in 1..=20_000 {
            csv.push_str(&format!(
                "{i},类别{},问题{},措施{i},FGJ,2026-12-31\n",
                i / 1000,
                i / 100
            ));
        }
        let file = env.write("big.csv", &csv);
        let mut child = env.spawn_env(
            &[],
            &["import", "ledger", file.to_str().unwrap(), "--round", ROUND],
        );
        std::thread::sleep(Duration::from_millis(700));
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        if status.success() {
            // The machine was fast enough to finish: then everything must be there.
            assert!(env.items().as_array().unwrap().len() > 20_000);
            continue;
        }
        assert_eq!(env.items(), before, "a killed import leaves nothing behind");
        env.audit().code(0);
    }
}

/// Two CLI processes writing the same SQLite file in a loop: no "database is locked" reaches a
/// user; version conflicts exit 4 and nothing is lost.
#[test]
fn sqlite_contention_never_says_locked() {
    let env = Env::sqlite().seeded();
    let ids: Vec<i64> = (0..2)
        .map(|i| env.in_progress(&format!("并发{i}")))
        .collect();
    // A running service writes the same file (a pass every second) while the CLI works.
    let mail = env.path().join("mail");
    let mail = mail.to_str().unwrap();
    let serve = env.spawn_env(
        &[
            ("RECTIFY__SCHEDULE__REMIND", "*/1 * * * * *"),
            ("RECTIFY_MAIL_DIR", mail),
        ],
        &["serve"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut children = Vec::new();
    for round in 0..6 {
        for (k, id) in ids.iter().enumerate() {
            for w in 0..2 {
                let note = format!("r{round}-w{w}-i{k}");
                children.push(env.spawn_env(
                    &[],
                    &["--as", FGJ_OP, "progress", &id.to_string(), "--note", &note],
                ));
            }
        }
    }
    let mut ok = 0;
    for c in children {
        let out = finish(c);
        assert!(!out.stderr.contains("locked"), "{}", out.stderr);
        match out.code {
            0 => ok += 1,
            4 => {}
            other => panic!("exit {other}: {}", out.stderr),
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let served = finish(serve);
    assert_eq!(served.code, 0, "{}", served.stderr);
    assert!(!served.stderr.contains("locked"), "{}", served.stderr);
    let events: usize = ids.iter().map(|id| env.history(*id).len()).sum();
    // Each item: created, assigned, acknowledged, plus one event per successful command.
    assert_eq!(events, ids.len() * 3 + ok);
    env.audit().code(0);
}

/// Secrets never appear in `config show`, in errors or in the service's logs.
#[test]
fn secrets_stay_secret() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rectify"))
            .args(args)
            .current_dir(dir.path())
            .env(
                "RECTIFY_DATABASE",
                "postgres://rectify:hunter2@127.0.0.1:1/nowhere",
            )
            .env("RECTIFY_SMTP_PASSWORD", "s3cr3t-smtp")
            .env_remove("RECTIFY_CONFIG")
            .output()
            .unwrap()
    };
    let show = run(&["config", "show"]);
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3t-smtp"),
        "{text}"
    );
    assert!(text.contains("***"));
    // The database is unreachable: the error names it without the password.
    let err = run(&["--lang", "en", "item", "list"]);
    assert_eq!(err.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        stderr.contains("postgres://rectify:***@127.0.0.1:1/nowhere"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
