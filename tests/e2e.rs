//! End-to-end tests of the `rectify` binary: real processes, a real database (SQLite always,
//! PostgreSQL too when `RECTIFY_TEST_DATABASE_URL` is set), the exit codes and messages a user
//! sees. Exit codes: 0 done; 1 system failure; 2 bad input or a forbidden transition; 3 not
//! permitted for this operator; 4 conflict with a concurrent change.

mod common;

use common::*;
use serde_json::Value;

const CONFLICT: &str = "was changed by someone else at the same time; nothing was written";

/// Asserts a printed item's state and version.
#[track_caller]
fn state_version(item: &Value, state: &str, version: i64) {
    assert_eq!(item["state"], state, "state of {item}");
    assert_eq!(item["version"], version, "version of {item}");
}

/// Asserts that a refused command left every item and every history as it was.
#[track_caller]
fn unchanged(env: &Env, before: &(Value, Vec<Vec<Value>>)) {
    let after = env.snapshot();
    assert_eq!(after.0, before.0, "items changed");
    assert_eq!(after.1, before.1, "histories changed");
}

const REPORT: &str = "整改报告:已完成清理 12 项。";
/// sha256 of [`REPORT`] in UTF-8 (computed with `sha256sum`).
const REPORT_SHA256: &str = "175c2e4dd99cc094f50a747ebd6a433cf6151a389f73051ff33a8e86e8c20a70";

// ---- 1. the whole life of one item ----------------------------------------------------------

fn full_life(env: Env) {
    let env = env.seeded();
    let b = env.backend;

    let item = env.add_item("着力解决推动实施稳经济政策不扎实问题", &["--number", "(1)"]);
    let id = id_of(&item);
    let ids = id.to_string();
    state_version(&item, "draft", 1);
    assert_eq!(item["number"], "(1)");
    assert_eq!(item["title"], "着力解决推动实施稳经济政策不扎实问题");
    assert_eq!(item["lead_unit"], Value::Null);
    assert_eq!(item["due"], Value::Null);

    let item = env.json(&["assign", &ids, "--lead", "FGJ", "--due", DUE]);
    state_version(&item, "assigned", 2);
    assert_eq!(item["lead_unit"], "FGJ");
    assert_eq!(item["due"], DUE);

    let item = env.json_as(FGJ_OP, &["ack", &ids]);
    state_version(&item, "in_progress", 3);

    let file = env.write("材料/整改报告.txt", REPORT);
    let item = env.json_as(
        FGJ_OP,
        &[
            "progress",
            &ids,
            "--note",
            "已完成清理 12 项",
            "--percent",
            "40",
            "--evidence",
            file.to_str().unwrap(),
        ],
    );
    state_version(&item, "in_progress", 4);
    assert_eq!(item["progress_percent"], 40);
    assert_eq!(item["last_progress"], "已完成清理 12 项");

    let item = env.json_as(FGJ_OP, &["submit", &ids, "--note", "申请销号"]);
    state_version(&item, "pending_verification", 5);

    let item = env.json(&["reject", &ids, "--reason", "佐证材料不足"]);
    state_version(&item, "in_progress", 6);
    assert_eq!(item["send_backs"], 1);

    let item = env.json_as(FGJ_OP, &["submit", &ids, "--note", "补充材料后再次申请"]);
    state_version(&item, "pending_verification", 7);

    let item = env.json(&["verify", &ids, "--note", "验收合格"]);
    state_version(&item, "closed", 8);
    assert_ne!(item["closed_at"], Value::Null);

    // The item as stored agrees with what the last verb printed.
    let shown = env.show(id);
    state_version(&shown, "closed", 8);
    assert_eq!(env.items().as_array().unwrap().len(), 1);

    // The history: every step, in order, by whom, with the evidence.
    let h = env.history(id);
    let kinds: Vec<&str> = h.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "assigned",
            "acknowledged",
            "progress_reported",
            "submitted",
            "sent_back",
            "submitted",
            "closed"
        ],
        "[{b}]"
    );
    let seqs: Vec<i64> = h.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "[{b}]");
    let actors: Vec<&str> = h.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(
        actors,
        [ADMIN, ADMIN, FGJ_OP, FGJ_OP, FGJ_OP, ADMIN, FGJ_OP, ADMIN],
        "[{b}]"
    );
    let progress = &h[3];
    assert_eq!(progress["payload"]["percent"], 40);
    assert_eq!(progress["payload"]["note"], "已完成清理 12 项");
    let ev = progress["evidence"].as_array().expect("evidence list");
    assert_eq!(ev.len(), 1, "[{b}] {progress}");
    assert_eq!(ev[0]["name"], "整改报告.txt");
    assert_eq!(ev[0]["sha256"], REPORT_SHA256);
    assert_eq!(ev[0]["size"], REPORT.len());
    assert_eq!(h[5]["payload"]["reason"], "佐证材料不足");
    for (i, e) in h.iter().enumerate() {
        if i != 3 {
            assert_eq!(e["evidence"], serde_json::json!([]), "[{b}] {e}");
        }
    }

    // The file is kept once, under its hash, with the content written.
    let stored = env
        .evidence_dir()
        .join(&REPORT_SHA256[..2])
        .join(REPORT_SHA256);
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), REPORT);
    assert_eq!(env.evidence_files(), vec![stored]);

    env.audit()
        .code(0)
        .out_has("record intact: 1 items, 8 events verified");
}

#[test]
fn full_life_sqlite() {
    full_life(Env::sqlite());
}

#[test]
fn full_life_postgres() {
    match Env::postgres() {
        Some(env) => full_life(env),
        None => eprintln!("RECTIFY_TEST_DATABASE_URL not set: PostgreSQL skipped"),
    }
}

// ---- 2. a transition the rules forbid ---------------------------------------------------------

#[test]
fn refused_transition_exits_2_with_the_reason_and_changes_nothing() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("问题一");
    let ids = id.to_string();
    let before = env.snapshot();

    env.run(&["verify", &ids]).code(2).err_has(&format!(
        "error: item {id} is in_progress; only pending_verification items can be verified"
    ));
    env.run(&["reject", &ids, "--reason", "不合格"])
        .code(2)
        .err_has("only pending_verification items can be sent back");
    env.run_as(FGJ_OP, &["ack", &ids])
        .code(2)
        .err_has("only assigned items can be acknowledged");
    env.run(&["finish", &ids])
        .code(2)
        .err_has("only long_term items can be finished");
    unchanged(&env, &before);
    assert_eq!(env.show(id)["version"], 3);
    assert_eq!(env.history(id).len(), 3);

    // A draft cannot be worked on before it is assigned.
    let draft = id_of(&env.add_item("问题二", &[]));
    env.run(&["submit", &draft.to_string(), "--note", "完成"])
        .code(2)
        .err_has(&format!(
            "item {draft} is draft; only in_progress items can be submitted for close-out"
        ));
    assert_eq!(env.history(draft).len(), 1);
}

// ---- 3. who may do what -----------------------------------------------------------------------

#[test]
fn operators_act_only_within_their_role_and_unit() {
    let env = Env::sqlite().seeded();
    let pending = env.pending("发改局的事项");
    let ps = pending.to_string();
    let working = env.in_progress("另一事项");
    let ws = working.to_string();
    let draft = id_of(&env.add_item("草稿", &[]));
    let ds = draft.to_string();
    let before = env.snapshot();

    // A unit operator may not verify, even on its own unit's item.
    env.run_as(FGJ_OP, &["verify", &ps])
        .code(3)
        .err_has(&format!(
            "operator {FGJ_OP} (role unit) may not have item {pending} verified"
        ));
    env.run_as(FGJ_OP, &["reject", &ps, "--reason", "x"])
        .code(3);

    // A unit operator may not act on another unit's item.
    env.run_as(SFJ_OP, &["progress", &ws, "--note", "越权报送"])
        .code(3)
        .err_has(&format!("operator {SFJ_OP}"))
        .err_has("on their own unit's items");
    env.run_as(SFJ_OP, &["submit", &ws, "--note", "越权"])
        .code(3);
    env.run_as(
        SFJ_OP,
        &["extend", &ws, "--to", "2026-07-31", "--reason", "越权"],
    )
    .code(3);

    // A viewer changes nothing.
    let viewer_tries: Vec<Vec<&str>> = vec![
        vec!["ack", &ws],
        vec!["progress", &ws, "--note", "n"],
        vec!["submit", &ws, "--note", "n"],
        vec!["verify", &ps],
        vec!["reject", &ps, "--reason", "r"],
        vec!["assign", &ds, "--lead", "FGJ", "--due", DUE],
        vec!["reassign", &ws, "--lead", "SFJ", "--reason", "r"],
        vec!["extend", &ws, "--to", "2026-07-31", "--reason", "r"],
        vec!["cancel", &ws, "--reason", "r"],
        vec!["item", "add", "--round", ROUND, "--title", "查看员新建"],
        vec!["unit", "add", "XXJ", "--name", "新单位"],
        vec!["operator", "add", "someone", "--role", "admin"],
        vec!["round", "add", "R2", "--title", "另一轮"],
    ];
    for args in &viewer_tries {
        let out = env.run_as(VIEWER, args);
        assert_eq!(
            out.code, 3,
            "viewer {args:?}: exit {}\n{}",
            out.code, out.stderr
        );
        out.err_has(&format!("operator {VIEWER}"));
    }

    // Units, operators and rounds are the admins' business.
    env.run_as(FGJ_OP, &["unit", "add", "XXJ", "--name", "新单位"])
        .code(3)
        .err_has(&format!("operator {FGJ_OP} is not an admin"));
    env.run_as(FGJ_OP, &["operator", "add", "x", "--role", "viewer"])
        .code(3);

    unchanged(&env, &before);
    let units = env.json(&["unit", "list"]);
    assert_eq!(units.as_array().unwrap().len(), 3, "{units}");
    let ops = env.json(&["operator", "list"]);
    assert_eq!(ops.as_array().unwrap().len(), 4, "{ops}");

    // The unit's own operator can do its part.
    let item = env.json_as(FGJ_OP, &["progress", &ws, "--note", "正常报送"]);
    state_version(&item, "in_progress", 4);
}

// ---- 4. two processes, one item ---------------------------------------------------------------

const DELAY: (&str, &str) = ("RECTIFY_FAILPOINT_DELAY_WRITE_MS", "1500");

/// Starts both commands at once, each pausing between deciding and writing; returns their
/// outcomes in order.
fn collide(env: &Env, a: &[&str], b: &[&str]) -> (Out, Out) {
    let pa = env.spawn_env(&[DELAY], a);
    let pb = env.spawn_env(&[DELAY], b);
    (finish(pa), finish(pb))
}

/// Exactly one of the two succeeded and the other was told of the conflict; returns which won
/// (0 or 1).
#[track_caller]
fn one_winner(b: &str, id: i64, outs: &(Out, Out)) -> usize {
    let codes = (outs.0.code, outs.1.code);
    let (winner, loser) = match codes {
        (0, 4) => (0, &outs.1),
        (4, 0) => (1, &outs.0),
        _ => panic!(
            "[{b}] expected one 0 and one 4, got {codes:?}\n--- first\n{}\n--- second\n{}",
            outs.0.stderr, outs.1.stderr
        ),
    };
    loser.err_has(&format!("item {id} {CONFLICT}"));
    assert!(
        loser.stdout.is_empty(),
        "[{b}] loser printed {}",
        loser.stdout
    );
    winner
}

fn concurrent_changes(env: Env) {
    let env = env.seeded();
    let b = env.backend;

    // Two progress reports on one item.
    let id = env.in_progress("并发报送");
    let ids = id.to_string();
    let notes = ["甲报送", "乙报送"];
    let outs = collide(
        &env,
        &["--as", FGJ_OP, "progress", &ids, "--note", notes[0]],
        &["--as", FGJ_OP, "progress", &ids, "--note", notes[1]],
    );
    let w = one_winner(b, id, &outs);
    let h = env.history(id);
    let reports: Vec<&Value> = h
        .iter()
        .filter(|e| e["kind"] == "progress_reported")
        .collect();
    assert_eq!(reports.len(), 1, "[{b}] {h:?}");
    assert_eq!(reports[0]["payload"]["note"], notes[w], "[{b}]");
    let item = env.show(id);
    state_version(&item, "in_progress", 4);
    assert_eq!(item["last_progress"], notes[w]);

    // Send back and verify on one pending item.
    let id = env.pending("并发验收");
    let ids = id.to_string();
    let outs = collide(
        &env,
        &["reject", &ids, "--reason", "不合格"],
        &["verify", &ids, "--note", "合格"],
    );
    let w = one_winner(b, id, &outs);
    let kinds = env.kinds(id);
    let decisions: Vec<&String> = kinds
        .iter()
        .filter(|k| *k == "sent_back" || *k == "closed")
        .collect();
    assert_eq!(decisions.len(), 1, "[{b}] {kinds:?}");
    let (kind, state) = [("sent_back", "in_progress"), ("closed", "closed")][w];
    assert_eq!(decisions[0], kind, "[{b}]");
    state_version(&env.show(id), state, 5);

    env.audit()
        .code(0)
        .out_has("record intact: 2 items, 9 events verified");
}

#[test]
fn concurrent_changes_sqlite() {
    concurrent_changes(Env::sqlite());
}

#[test]
fn concurrent_changes_postgres() {
    match Env::postgres() {
        Some(env) => concurrent_changes(env),
        None => eprintln!("RECTIFY_TEST_DATABASE_URL not set: PostgreSQL skipped"),
    }
}

// ---- 5. a database edited behind the tool's back ----------------------------------------------

fn tampering_is_detected(env: Env) {
    let env = env.seeded();
    let b = env.backend;
    let edited = env.in_progress("被改动的事项");
    env.json_as(
        FGJ_OP,
        &[
            "progress",
            &edited.to_string(),
            "--note",
            "完成一半",
            "--percent",
            "50",
        ],
    );
    let cut = env.in_progress("被删记录的事项");
    env.audit().code(0);

    // Change what a progress report said.
    let report = env
        .history(edited)
        .into_iter()
        .find(|e| e["kind"] == "progress_reported")
        .expect("progress event");
    let event_id = report["event_id"].as_i64().unwrap();
    let n = env.sql(&format!(
        "UPDATE events SET payload = '{{\"note\":\"全部完成\",\"percent\":100}}' WHERE id = {event_id}"
    ));
    assert_eq!(n, 1);
    assert_eq!(
        env.history(edited)[3]["payload"]["percent"],
        100,
        "[{b}] the edit took"
    );
    let out = env.audit();
    out.code(1)
        .err_has(&format!(
            "item {edited}, event {event_id} (#4): content does not match its hash"
        ))
        .err_has("the record is broken");
    assert!(
        !out.stderr.contains(&format!("item {cut}")),
        "[{b}] {}",
        out.stderr
    );

    // Delete the newest event of another item.
    let newest = env.history(cut).last().unwrap()["event_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        env.sql(&format!("DELETE FROM events WHERE id = {newest}")),
        1
    );
    assert_eq!(env.history(cut).len(), 2);
    env.audit()
        .code(1)
        .err_has(&format!("item {edited}, event {event_id}"))
        .err_has(&format!(
            "item {cut}: the item records 3 events but 2 are stored; the newest event was deleted"
        ));
}

#[test]
fn tampering_is_detected_sqlite() {
    tampering_is_detected(Env::sqlite());
}

#[test]
fn tampering_is_detected_postgres() {
    match Env::postgres() {
        Some(env) => tampering_is_detected(env),
        None => eprintln!("RECTIFY_TEST_DATABASE_URL not set: PostgreSQL skipped"),
    }
}

/// The history shows evidence from the hashed event, so editing the evidence index changes
/// nothing shown, and `audit verify` reports the edited index.
#[test]
fn tampered_evidence_is_detected() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证材料被改");
    let file = env.write("报告.txt", REPORT);
    env.json_as(
        FGJ_OP,
        &[
            "progress",
            &id.to_string(),
            "--note",
            "附报告",
            "--evidence",
            file.to_str().unwrap(),
        ],
    );
    env.audit().code(0);

    // Rename the evidence behind the tool's back: the history still shows what was recorded.
    assert_eq!(
        env.sql("UPDATE evidence SET original_name = '另一份报告.txt'"),
        1
    );
    assert_eq!(env.history(id)[3]["evidence"][0]["name"], "报告.txt");
    env.audit().code(1).err_has(&format!("item {id}"));
}

#[test]
fn replaced_evidence_file_is_detected() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证文件被换");
    let file = env.write("报告.txt", REPORT);
    env.json_as(
        FGJ_OP,
        &[
            "progress",
            &id.to_string(),
            "--note",
            "附报告",
            "--evidence",
            file.to_str().unwrap(),
        ],
    );
    let stored = env
        .evidence_dir()
        .join(&REPORT_SHA256[..2])
        .join(REPORT_SHA256);
    env.run(&["audit", "verify", "--evidence"]).code(0);
    std::fs::write(&stored, "另一份内容").unwrap();
    // The chain alone is intact; re-hashing the files finds the change.
    env.audit().code(0);
    env.run(&["audit", "verify", "--evidence"])
        .code(1)
        .err_has(REPORT_SHA256);
    std::fs::remove_file(&stored).unwrap();
    env.run(&["audit", "verify", "--evidence"])
        .code(1)
        .err_has("missing");
}

// ---- 6. bad input ----------------------------------------------------------------------------

#[test]
fn bad_input_on_add_and_assign_exits_2_and_writes_nothing() {
    let env = Env::sqlite().seeded();
    let id = id_of(&env.add_item("待交办", &[]));
    let ids = id.to_string();
    let before = env.snapshot();

    env.run(&["item", "add", "--round", ROUND, "--title", ""])
        .code(2)
        .err_has("title must not be empty");
    env.run(&["item", "add", "--round", ROUND, "--title", "   "])
        .code(2)
        .err_has("title must not be empty");
    env.run(&["item", "add", "--round", "NOPE", "--title", "t"])
        .code(2)
        .err_has("round `NOPE` does not exist");
    env.run(&["assign", &ids, "--lead", "NOPE", "--due", DUE])
        .code(2)
        .err_has("unit `NOPE` does not exist");
    env.run(&[
        "--as", "ghost", "assign", &ids, "--lead", "FGJ", "--due", DUE,
    ])
    .code(2)
    .err_has("operator `ghost` does not exist");
    for bad in ["2026-02-30", "2026/6/30", "6月底"] {
        env.run(&["assign", &ids, "--lead", "FGJ", "--due", bad])
            .code(2)
            .err_has(&format!("`{bad}` is not a valid date: write YYYY-MM-DD"));
    }
    env.run(&["assign", &ids, "--lead", "FGJ", "--due", "2026-03-01"])
        .code(2)
        .err_has("the deadline 2026-03-01 is before today (2026-03-02)");
    env.run(&["assign", &ids, "--lead", "FGJ", "--due", DUE, "--co", "FGJ"])
        .code(2)
        .err_has("FGJ is the lead unit and cannot also be a cooperating unit");
    env.run(&[
        "item",
        "add",
        "--round",
        ROUND,
        "--title",
        "t",
        "--lead",
        "FGJ",
        "--due",
        "2026-01-15",
    ])
    .code(2)
    .err_has("the deadline 2026-01-15 is before today");
    // "Today" is the office's date (Asia/Shanghai), not UTC's: 2026-03-01T17:00Z is already
    // 2026-03-02 in Beijing, so 2026-03-01 is in the past and 2026-03-02 is today.
    let late_evening_utc = [("RECTIFY_NOW", "2026-03-01T17:00:00Z")];
    env.run_env(
        &late_evening_utc,
        &["assign", &ids, "--lead", "FGJ", "--due", "2026-03-01"],
    )
    .code(2)
    .err_has("the deadline 2026-03-01 is before today (2026-03-02)");
    unchanged(&env, &before);
    let item = env
        .run_env(
            &late_evening_utc,
            &[
                "--format",
                "json",
                "assign",
                &ids,
                "--lead",
                "FGJ",
                "--due",
                "2026-03-02",
            ],
        )
        .code(0)
        .json();
    state_version(&item, "assigned", 2);
}

#[test]
fn bad_extension_requests_exit_2_and_write_nothing() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("延期");
    let ids = id.to_string();
    let before = env.snapshot();

    env.run_as(
        FGJ_OP,
        &["extend", &ids, "--to", "2026-05-01", "--reason", "工作量大"],
    )
    .code(2)
    .err_has("the new date 2026-05-01 must be later than the current deadline 2026-06-30");
    env.run_as(FGJ_OP, &["extend", &ids, "--to", DUE, "--reason", "x"])
        .code(2)
        .err_has("must be later than the current deadline");
    let late = env.run_env(
        &[("RECTIFY_NOW", "2026-07-02T09:00:00+08:00")],
        &[
            "--as",
            FGJ_OP,
            "extend",
            &ids,
            "--to",
            "2026-08-31",
            "--reason",
            "来不及",
        ],
    );
    late.code(2).err_has(&format!(
        "item {id} was due 2026-06-30 and today is 2026-07-02; an extension must be requested before the deadline"
    ));
    env.run_as(
        FGJ_OP,
        &["extend", &ids, "--to", "2026/8/31", "--reason", "x"],
    )
    .code(2)
    .err_has("is not a valid date");
    unchanged(&env, &before);
    assert_eq!(env.show(id)["extensions"], serde_json::json!([]));
}

#[test]
fn missing_evidence_file_exits_2_and_stores_nothing() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证");
    let ids = id.to_string();
    let before = env.snapshot();
    let missing = env.path().join("不存在.pdf");

    env.run_as(
        FGJ_OP,
        &[
            "progress",
            &ids,
            "--note",
            "附件",
            "--evidence",
            missing.to_str().unwrap(),
        ],
    )
    .code(2)
    .err_has("cannot read evidence file")
    .err_has("不存在.pdf");
    env.run_as(
        FGJ_OP,
        &[
            "submit",
            &ids,
            "--note",
            "附件",
            "--evidence",
            missing.to_str().unwrap(),
        ],
    )
    .code(2)
    .err_has("cannot read evidence file");
    // A folder is not a file either.
    env.run_as(
        FGJ_OP,
        &[
            "progress",
            &ids,
            "--note",
            "附件",
            "--evidence",
            env.path().to_str().unwrap(),
        ],
    )
    .code(2)
    .err_has("is not a regular file");
    unchanged(&env, &before);
    assert_eq!(env.evidence_files(), Vec::<std::path::PathBuf>::new());

    // Refused for the operator: nothing is copied either.
    let file = env.write("报告.txt", REPORT);
    env.run_as(
        SFJ_OP,
        &[
            "progress",
            &ids,
            "--note",
            "越权",
            "--evidence",
            file.to_str().unwrap(),
        ],
    )
    .code(3);
    unchanged(&env, &before);
    assert_eq!(env.evidence_files(), Vec::<std::path::PathBuf>::new());
}

/// `apply_and_print` (src/commands.rs) checks only the operator's rights before copying the
/// files, and copies them one by one: a later missing file, or a state the rules forbid, leaves
/// the earlier files in the evidence folder with no event referring to them.
#[test]
fn refused_command_copies_no_evidence() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("佐证");
    let good = env.write("报告.txt", REPORT);
    let missing = env.path().join("不存在.pdf");
    env.run_as(
        FGJ_OP,
        &[
            "progress",
            &id.to_string(),
            "--note",
            "附件",
            "--evidence",
            good.to_str().unwrap(),
            "--evidence",
            missing.to_str().unwrap(),
        ],
    )
    .code(2)
    .err_has("cannot read evidence file");
    assert_eq!(env.history(id).len(), 3);
    assert_eq!(
        env.evidence_files(),
        Vec::<std::path::PathBuf>::new(),
        "a file was copied for a refused command"
    );

    // The same for a transition the rules forbid.
    let cancelled = env.assigned("已撤销", "FGJ");
    env.json(&["cancel", &cancelled.to_string(), "--reason", "重复"]);
    env.run(&[
        "progress",
        &cancelled.to_string(),
        "--note",
        "n",
        "--evidence",
        good.to_str().unwrap(),
    ])
    .code(2)
    .err_has("only in_progress or long_term items can be reported on");
    assert_eq!(env.evidence_files(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn unknown_config_key_exits_2_naming_the_key_and_the_file() {
    let env = Env::sqlite().seeded();
    let before = env.snapshot();
    let cfg_dir = env.path().join("office");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("rectify.toml");
    std::fs::write(&cfg, "lang = \"en\"\ncolour = \"red\"\n").unwrap();

    let mut c = env.command(&["item", "list"]);
    c.current_dir(&cfg_dir);
    let out = finish(c.spawn().unwrap());
    let cfg_shown = std::fs::canonicalize(&cfg).unwrap();
    out.code(2)
        .err_has("configuration error")
        .err_has("unknown key `colour`")
        .err_has(&cfg_shown.display().to_string())
        .err_has("at line 2");
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // The same file named with --config, from anywhere.
    env.run(&["--config", cfg.to_str().unwrap(), "item", "list"])
        .code(2)
        .err_has("unknown key `colour`");
    // A misspelled key inside a section names the section too.
    std::fs::write(&cfg, "[database]\npool_sise = 4\n").unwrap();
    env.run(&["--config", cfg.to_str().unwrap(), "item", "list"])
        .code(2)
        .err_has("database.pool_sise");
    unchanged(&env, &before);
}

#[test]
fn malformed_rectify_now_exits_2() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("时钟");
    let before = env.snapshot();
    for bad in ["yesterday", "2026-03-02", "2026-03-02 09:00"] {
        env.run_env(
            &[("RECTIFY_NOW", bad)],
            &["--as", FGJ_OP, "progress", &id.to_string(), "--note", "n"],
        )
        .code(2)
        .err_has(&format!("RECTIFY_NOW=`{bad}` is not an RFC 3339 time"));
    }
    unchanged(&env, &before);
}

// ---- 7. extensions ---------------------------------------------------------------------------

#[test]
fn extension_approve_and_refuse() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("延期审批");
    let ids = id.to_string();

    let item = env.json_as(
        FGJ_OP,
        &[
            "extend",
            &ids,
            "--to",
            "2026-07-31",
            "--reason",
            "汛期施工受限",
        ],
    );
    state_version(&item, "in_progress", 4);
    assert_eq!(item["due"], DUE, "a request alone moves nothing");
    assert_eq!(item["pending_extension"]["to"], "2026-07-31");
    // One request at a time.
    env.run_as(
        FGJ_OP,
        &["extend", &ids, "--to", "2026-08-31", "--reason", "再延"],
    )
    .code(2)
    .err_has("already has an extension request waiting (to 2026-07-31)");

    let shown = env.show(id);
    let ext = &shown["extensions"][0];
    assert_eq!(ext["state"], "pending");
    assert_eq!(ext["from"], DUE);
    assert_eq!(ext["to"], "2026-07-31");
    assert_eq!(ext["requested_by"], FGJ_OP);
    let ext_id = ext["id"].as_i64().unwrap().to_string();

    // Only the office decides.
    env.run_as(FGJ_OP, &["extension", "approve", &ext_id])
        .code(3);
    env.run_as(VIEWER, &["extension", "refuse", &ext_id])
        .code(3);

    let deadline_version = env.show(id)["deadline_version"].as_i64().unwrap();
    let item = env.json(&["extension", "approve", &ext_id, "--note", "同意"]);
    state_version(&item, "in_progress", 5);
    assert_eq!(item["due"], "2026-07-31");
    assert_eq!(item["pending_extension"], Value::Null);
    assert_eq!(item["deadline_version"], deadline_version + 1);
    let ext = &env.show(id)["extensions"][0];
    assert_eq!(ext["state"], "approved");
    assert_eq!(ext["decided_by"], ADMIN);
    assert_eq!(ext["note"], "同意");

    let before = env.snapshot();
    for verb in ["approve", "refuse"] {
        env.run(&["extension", verb, &ext_id])
            .code(2)
            .err_has(&format!(
                "extension request {ext_id} was already decided (approved); it cannot be decided again"
            ));
    }
    env.run(&["extension", "approve", "9999"])
        .code(2)
        .err_has("extension `9999` does not exist");
    unchanged(&env, &before);

    // A second request, refused: the deadline stays.
    env.json_as(
        FGJ_OP,
        &["extend", &ids, "--to", "2026-08-31", "--reason", "仍需时间"],
    );
    let shown = env.show(id);
    assert_eq!(shown["extensions"].as_array().unwrap().len(), 2);
    let ext2 = &shown["extensions"][0];
    assert_eq!(ext2["from"], "2026-07-31");
    let ext2_id = ext2["id"].as_i64().unwrap().to_string();
    assert_ne!(ext2_id, ext_id);
    let item = env.json(&["extension", "refuse", &ext2_id, "--note", "理由不充分"]);
    state_version(&item, "in_progress", 7);
    assert_eq!(item["due"], "2026-07-31");
    assert_eq!(item["pending_extension"], Value::Null);
    assert_eq!(env.show(id)["extensions"][0]["state"], "refused");
    env.run(&["extension", "approve", &ext2_id])
        .code(2)
        .err_has("was already decided (refused)");

    assert_eq!(
        env.kinds(id)[3..],
        [
            "extension_requested",
            "extension_approved",
            "extension_requested",
            "extension_refused"
        ]
    );
    env.audit().code(0);
}

// ---- 8. reassign, reopen, cancel, long-term, parents ------------------------------------------

#[test]
fn reassign_counts_and_moves_the_item_away_from_the_old_unit() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("推诿的事项");
    let ids = id.to_string();

    env.run(&["reassign", &ids, "--lead", "FGJ", "--reason", "x"])
        .code(2)
        .err_has("the item is already led by FGJ");
    env.run(&["reassign", &ids, "--lead", "NOPE", "--reason", "x"])
        .code(2)
        .err_has("unit `NOPE` does not exist");

    let item = env.json(&[
        "reassign",
        &ids,
        "--lead",
        "SFJ",
        "--reason",
        "职责在司法局",
    ]);
    state_version(&item, "assigned", 4);
    assert_eq!(item["lead_unit"], "SFJ");
    assert_eq!(item["reassignments"], 1);
    assert_eq!(item["acknowledged_at"], Value::Null);

    env.run_as(FGJ_OP, &["ack", &ids])
        .code(3)
        .err_has(&format!("operator {FGJ_OP}"));
    let item = env.json_as(SFJ_OP, &["ack", &ids]);
    state_version(&item, "in_progress", 5);

    let item = env.json(&["reassign", &ids, "--lead", "FGJ", "--reason", "退回发改局"]);
    assert_eq!(item["reassignments"], 2);
    assert_eq!(item["lead_unit"], "FGJ");
    env.run_as(SFJ_OP, &["ack", &ids]).code(3);

    let h = env.history(id);
    let moves: Vec<&Value> = h.iter().filter(|e| e["kind"] == "reassigned").collect();
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[0]["payload"]["from"], "FGJ");
    assert_eq!(moves[0]["payload"]["to"], "SFJ");
    assert_eq!(moves[0]["payload"]["reason"], "职责在司法局");
    assert_eq!(moves[1]["payload"]["reassignments"], 2);
}

#[test]
fn reopen_a_closed_item_after_a_look_back() {
    let env = Env::sqlite().seeded();
    let id = env.pending("回头看");
    let ids = id.to_string();
    state_version(&env.json(&["verify", &ids]), "closed", 5);

    env.run_as(FGJ_OP, &["reopen", &ids, "--reason", "x"])
        .code(3);
    env.run(&["reopen", &ids, "--reason", ""])
        .code(2)
        .err_has("reason must not be empty");
    let item = env.json(&["reopen", &ids, "--reason", "回头看发现问题反弹"]);
    state_version(&item, "in_progress", 6);
    assert_eq!(item["closed_at"], Value::Null);
    let last = env.history(id).pop().unwrap();
    assert_eq!(last["kind"], "reopened");
    assert_eq!(last["payload"]["from"], "closed");
    // The unit works on it again.
    state_version(
        &env.json_as(FGJ_OP, &["submit", &ids, "--note", "再次整改完毕"]),
        "pending_verification",
        7,
    );
    // An open item cannot be reopened.
    env.run(&["reopen", &ids, "--reason", "x"])
        .code(2)
        .err_has("only closed or long_term items can be reopened");
}

#[test]
fn cancel_and_merge_into_another_item() {
    let env = Env::sqlite().seeded();
    let keep = env.in_progress("原事项");
    let dup = env.assigned("重复录入", "FGJ");
    let ds = dup.to_string();
    let before = env.snapshot();

    env.run(&["cancel", &ds, "--reason", "重复", "--merged-into", "9999"])
        .code(2)
        .err_has("merge target `9999` does not exist");
    env.run(&["cancel", &ds, "--reason", "重复", "--merged-into", &ds])
        .code(2)
        .err_has(&format!("item {dup} cannot be merged into itself"));
    env.run_as(FGJ_OP, &["cancel", &ds, "--reason", "重复"])
        .code(3);
    unchanged(&env, &before);

    let item = env.json(&[
        "cancel",
        &ds,
        "--reason",
        "与原事项重复",
        "--merged-into",
        &keep.to_string(),
    ]);
    state_version(&item, "cancelled", 3);
    assert_eq!(item["merged_into"], keep);
    let last = env.history(dup).pop().unwrap();
    assert_eq!(last["kind"], "cancelled");
    assert_eq!(last["payload"]["merged_into"], keep);
    assert_eq!(last["payload"]["from"], "assigned");

    // Cancelled is final.
    env.run(&["cancel", &ds, "--reason", "再撤"])
        .code(2)
        .err_has(&format!("item {dup} is cancelled"));
    env.run(&["reopen", &ds, "--reason", "x"]).code(2);
    assert_eq!(env.show(keep)["state"], "in_progress");
}

#[test]
fn long_term_item_reports_then_finishes() {
    let env = Env::sqlite().seeded();
    let id = env.pending("长期坚持");
    let ids = id.to_string();

    env.run(&["verify", &ids, "--cadence", "monthly"])
        .code(2)
        .err_has("--cadence goes with --long-term");
    let item = env.json(&["verify", &ids, "--long-term", "--cadence", "monthly"]);
    state_version(&item, "long_term", 5);
    assert_eq!(item["cadence"], "monthly");
    assert_eq!(item["closed_at"], Value::Null);

    // The unit keeps reporting; it cannot submit or ask for more time.
    state_version(
        &env.json_as(FGJ_OP, &["progress", &ids, "--note", "三月份报告"]),
        "long_term",
        6,
    );
    env.run_as(FGJ_OP, &["submit", &ids, "--note", "x"])
        .code(2)
        .err_has("only in_progress items can be submitted");
    env.run_as(FGJ_OP, &["finish", &ids]).code(3);

    let item = env.json(&["finish", &ids, "--note", "长效机制已建立"]);
    state_version(&item, "closed", 7);
    assert_ne!(item["closed_at"], Value::Null);
    assert_eq!(
        env.kinds(id)[4..],
        ["kept_long_term", "progress_reported", "finished"]
    );
    env.run(&["finish", &ids])
        .code(2)
        .err_has("only long_term items can be finished");
}

#[test]
fn a_parent_with_an_open_child_cannot_be_closed() {
    let env = Env::sqlite().seeded();
    let parent = env.pending("问题类别");
    let ps = parent.to_string();
    let child = env.add_item("具体措施", &["--parent", &ps, "--number", "一是"]);
    assert_eq!(child["parent_id"], parent);
    let child = id_of(&child);
    let before = env.snapshot();

    env.run(&["verify", &ps]).code(2).err_has(&format!(
        "item {parent} still has 1 open child item(s); close or cancel them first"
    ));
    unchanged(&env, &before);

    // Long-term items are finished under the same rule.
    state_version(
        &env.json(&["verify", &ps, "--long-term", "--cadence", "quarterly"]),
        "long_term",
        5,
    );
    env.run(&["finish", &ps]).code(2).err_has("open child item");

    state_version(
        &env.json(&["cancel", &child.to_string(), "--reason", "并入上级"]),
        "cancelled",
        2,
    );
    state_version(&env.json(&["finish", &ps]), "closed", 6);
}

// ---- 9. demo -----------------------------------------------------------------------------------

#[test]
fn demo_builds_replaces_itself_and_never_deletes_other_folders() {
    let env = Env::sqlite();
    let demo = env.path().join("demo");
    let ds = demo.to_str().unwrap();

    let out = env.run(&["demo", "--dir", ds]);
    out.code(0).out_has("demo database:");
    // The item list, closed by its count.
    let count: usize = out
        .stdout
        .lines()
        .find_map(|l| l.strip_suffix(" item(s)"))
        .unwrap_or_else(|| panic!("no item count in\n{}", out.stdout))
        .parse()
        .unwrap();
    assert!(count >= 5, "{}", out.stdout);
    for state in [
        "closed",
        "in_progress",
        "assigned",
        "long_term",
        "cancelled",
    ] {
        out.out_has(state);
    }
    let db = demo.join("rectify.db");
    assert!(db.is_file(), "no {}", db.display());
    assert!(
        !env.path().join("rectify.db").exists(),
        "demo ignored --dir"
    );

    // The demo database is a real one: the same items, and an intact record.
    let demo_url = format!("sqlite://{}", db.display());
    let listed = finish(
        env.command_on(&demo_url, &["--format", "json", "item", "list"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(listed.code(0).json().as_array().unwrap().len(), count);
    finish(
        env.command_on(&demo_url, &["audit", "verify"])
            .spawn()
            .unwrap(),
    )
    .code(0)
    .out_has("record intact");

    // Again: replaces the earlier demo.
    std::fs::write(demo.join("leftover.txt"), "old").unwrap();
    env.run(&["demo", "--dir", ds]).code(0).out_has("item(s)");
    assert!(db.is_file());
    assert!(
        !demo.join("leftover.txt").exists(),
        "earlier demo not replaced"
    );

    // A folder of the user's own is refused and left alone.
    let mine = env.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("台账.xlsx"), "keep me").unwrap();
    env.run(&["demo", "--dir", mine.to_str().unwrap()])
        .code(2)
        .err_has("exists and is not a demo folder");
    assert_eq!(
        std::fs::read_to_string(mine.join("台账.xlsx")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}

// ---- 10. language -------------------------------------------------------------------------------

#[test]
fn refusals_speak_chinese_by_default_and_english_on_request() {
    let env = Env::sqlite().seeded();
    let id = env.in_progress("语言");
    let ids = id.to_string();

    let en = env.run(&["verify", &ids]);
    en.code(2)
        .err_has("error: item")
        .err_has("only pending_verification items can be verified");
    assert!(!en.stderr.contains("当前状态"), "{}", en.stderr);

    let zh = env.run(&["--lang", "zh", "verify", &ids]);
    zh.code(2)
        .err_has("错误:")
        .err_has(&format!("事项 {id} 当前状态为“整改中”"))
        .err_has("验收销号");
    assert!(!zh.stderr.contains("only"), "{}", zh.stderr);

    // No --lang at all: Chinese, the default.
    let mut plain = std::process::Command::new(env!("CARGO_BIN_EXE_rectify"));
    plain
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RECTIFY_NOW", NOW)
        .current_dir(env.path())
        .args(["--database", &env.url, "verify", &ids]);
    let out = plain.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("当前状态"), "{stderr}");

    // RECTIFY_LANG works like --lang.
    let mut plain = std::process::Command::new(env!("CARGO_BIN_EXE_rectify"));
    plain
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RECTIFY_LANG", "en")
        .current_dir(env.path())
        .args(["--database", &env.url, "verify", &ids]);
    let out = plain.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only pending_verification items"),
        "{stderr}"
    );
}
