//! `rectify import doc`: the two real samples, unknown units, duplicates, bad files.

mod import_support;

use import_support::{Env, find, sample};

fn notice() -> String {
    sample("inspection-rectification-notice.txt")
        .display()
        .to_string()
}

fn minutes() -> String {
    sample("standing-meeting-minutes.txt").display().to_string()
}

#[test]
fn inspection_notice_imports_as_a_tree_of_drafts() {
    let env = Env::new();
    env.round("xs2");
    let out = env.json(&["import", "doc", &notice(), "--round", "xs2"]);
    assert_eq!(out["created"], 42);
    let items = env.items("xs2");
    assert_eq!(items.len(), 42);
    assert!(items.iter().all(|i| i["state"] == "draft"));
    let cat = find(&items, "3");
    assert_eq!(cat["title"], "关于对\"三新一高\"发展理念把握不精准问题");
    assert_eq!(cat["parent_id"], serde_json::Value::Null);
    let problem = find(&items, "3.(2)");
    assert_eq!(problem["parent_id"], cat["id"]);
    assert_eq!(problem["title"], "着力解决打造乡村振兴齐鲁样板用力不足问题");
    let measure = find(&items, "3.(2).七");
    assert_eq!(measure["parent_id"], problem["id"]);
    assert_eq!(measure["title"], "创新组织建设,突破治理融合");
    // Orphans from the previous page stay at the top with their own numbers.
    assert_eq!(find(&items, "(2)")["parent_id"], serde_json::Value::Null);
    assert_eq!(
        find(&items, "(2).一")["parent_id"],
        find(&items, "(2)")["id"]
    );
    // item show carries the same fields.
    let id = measure["id"].as_i64().unwrap().to_string();
    let shown = env.json(&["item", "show", &id]);
    assert_eq!(shown["number"], "3.(2).七");
    assert_eq!(shown["parent_id"], problem["id"]);
    assert!(shown.get("lead_unit").is_some() && shown.get("leader").is_some());
}

#[test]
fn meeting_minutes_resolve_units_by_name_and_alias_and_list_unknown_ones() {
    let env = Env::new();
    env.round("m1");
    env.unit("fgj", "区发展和改革局", &["区发改局"]);
    env.unit("sfj", "区司法局", &[]);
    env.unit("cgj", "区城市管理局", &["区城管局"]);
    env.unit("hyj", "区海洋发展局", &[]);
    env.unit("zfj", "区综合行政执法局", &[]);
    let out = env.run(&["import", "doc", &minutes(), "--round", "m1"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("区生态环境分局"), "{stderr}");
    assert!(stderr.contains("区文旅局"), "{stderr}");
    let items = env.items("m1");
    assert_eq!(items.len(), 30);
    assert_eq!(find(&items, "二.(一)")["lead_unit"], "fgj");
    assert_eq!(
        find(&items, "二.(一)")["parent_id"],
        find(&items, "二")["id"]
    );
    assert_eq!(find(&items, "四")["lead_unit"], "sfj");
    assert_eq!(find(&items, "九")["lead_unit"], "cgj");
    assert_eq!(find(&items, "九")["leader"], "夏鹏");
    // Joint lead units: the first leads, the second cooperates.
    assert_eq!(find(&items, "五.(三)")["lead_unit"], "hyj");
    assert_eq!(
        find(&items, "五.(三)")["co_units"],
        serde_json::json!(["zfj"])
    );
    // Unknown lead unit: a draft without one, leader kept.
    let eco = find(&items, "五.(一).1");
    assert_eq!(eco["lead_unit"], serde_json::Value::Null);
    assert_eq!(eco["leader"], "周诚");
    assert_eq!(eco["state"], "draft");
}

#[test]
fn dry_run_prints_the_tree_and_writes_nothing() {
    let env = Env::new();
    env.round("m1");
    env.unit("fgj", "区发展和改革局", &["区发改局"]);
    let out = env.ok(&["import", "doc", &minutes(), "--round", "m1", "--dry-run"]);
    assert!(out.contains("  二.(一)  根据会议研究讨论意见"), "{out}");
    assert!(out.contains("区发展和改革局"), "{out}");
    assert!(out.contains("共 30 个事项"), "{out}");
    assert!(env.items("m1").is_empty());
}

#[test]
fn importing_twice_into_a_round_is_refused() {
    let env = Env::new();
    env.round("xs2");
    env.ok(&["import", "doc", &notice(), "--round", "xs2"]);
    let err = env.fails(2, &["import", "doc", &notice(), "--round", "xs2"]);
    assert!(err.contains("编号"), "{err}");
    assert_eq!(env.items("xs2").len(), 42);
}

#[test]
fn bad_documents_exit_2_and_write_nothing() {
    let env = Env::new();
    env.round("r");
    std::fs::write(env.path("empty.txt"), "  \n").unwrap();
    std::fs::write(env.path("plain.txt"), "没有任何编号的一段文字。\n").unwrap();
    std::fs::write(env.path("bin.txt"), b"\x00\x01\x02PK\x03\x04").unwrap();
    for f in ["empty.txt", "plain.txt", "bin.txt", "missing.txt"] {
        env.fails(2, &["import", "doc", f, "--round", "r"]);
    }
    let err = env.fails(2, &["import", "doc", &notice(), "--round", "nope"]);
    assert!(err.contains("nope"), "{err}");
    assert!(env.items("r").is_empty());
}
