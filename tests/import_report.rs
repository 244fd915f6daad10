//! `rectify report`: figures checked against a round built here with known states and dates,
//! also as of a past day (replayed from the record); the HTML is well-formed and self-contained.

mod import_support;

use import_support::{Env, find};
use serde_json::Value;

fn at(day: u32) -> String {
    format!("2026-03-{day:02}T10:00:00+08:00")
}

/// Runs a command as if on 2026-03-`day`.
fn on(env: &mut Env, day: u32, args: &[&str]) -> String {
    env.now = at(day);
    env.ok(args)
}

/// Unit A (fgj) and B (swj), six items:
/// 1 A due 03-20: closed 03-12 (on time)      2 A due 03-10: acknowledged, overdue
/// 3 B due 03-15: sent back once, closed 03-25 (late)
/// 4 B long-term                               5 B due 06-30: assigned
/// 6 a draft
fn build() -> (Env, Vec<String>) {
    let mut env = Env::new();
    env.now = at(2);
    env.round("r1");
    env.unit("fgj", "区发展和改革局", &[]);
    env.unit("swj", "区商务局", &[]);
    let add = |env: &Env, no: &str, lead: Option<&str>, due: &str| {
        let mut a = vec![
            "item", "add", "--round", "r1", "--title", no, "--number", no,
        ];
        if let Some(l) = lead {
            a.extend(["--lead", l]);
            if due == "long" {
                a.push("--long-term");
            } else {
                a.extend(["--due", due]);
            }
        }
        env.json(&a)["id"].as_i64().unwrap().to_string()
    };
    let ids = vec![
        add(&env, "1", Some("fgj"), "2026-03-20"),
        add(&env, "2", Some("fgj"), "2026-03-10"),
        add(&env, "3", Some("swj"), "2026-03-15"),
        add(&env, "4", Some("swj"), "long"),
        add(&env, "5", Some("swj"), "2026-06-30"),
        add(&env, "6", None, ""),
    ];
    on(&mut env, 3, &["ack", &ids[0]]);
    on(&mut env, 3, &["ack", &ids[1]]);
    on(&mut env, 3, &["ack", &ids[2]]);
    on(&mut env, 10, &["submit", &ids[0], "--note", "完成"]);
    on(&mut env, 12, &["verify", &ids[0]]);
    on(&mut env, 5, &["submit", &ids[2], "--note", "完成"]);
    on(&mut env, 6, &["reject", &ids[2], "--reason", "材料不全"]);
    on(&mut env, 20, &["submit", &ids[2], "--note", "补齐材料"]);
    on(&mut env, 25, &["verify", &ids[2]]);
    env.now = at(31);
    (env, ids)
}

fn unit<'a>(f: &'a Value, code: &str) -> &'a Value {
    f["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["code"] == code)
        .unwrap()
}

#[test]
fn figures_today() {
    let (env, _) = build();
    let f = env.json(&["report", "--round", "r1"]);
    let t = &f["rounds"][0];
    assert_eq!(f["as_of"], "2026-03-31");
    assert_eq!(t["items"], 5);
    assert_eq!(t["closed"], 2);
    assert_eq!(t["long_term"], 1);
    assert_eq!(t["overdue"], 1);
    assert_eq!(t["in_progress"], 1);
    assert_eq!(t["drafts"], 1);
    assert_eq!(t["completion_rate"], 40.0);
    let a = unit(&f, "fgj");
    assert_eq!(
        (
            a["rank"].as_u64(),
            a["assigned"].as_u64(),
            a["closed"].as_u64(),
            a["overdue"].as_u64()
        ),
        (Some(1), Some(2), Some(1), Some(1))
    );
    assert_eq!(a["on_time_rate"], 100.0);
    assert_eq!(a["send_backs"], 0);
    let b = unit(&f, "swj");
    assert_eq!(b["rank"], 2);
    assert_eq!(b["assigned"], 3);
    assert_eq!(b["send_backs"], 1);
    assert_eq!(b["on_time_rate"], 0.0);
    let red = f["red_list"].as_array().unwrap();
    assert_eq!(red.len(), 1);
    assert_eq!(red[0]["number"], "2");
    assert_eq!(red[0]["days_overdue"], 21);
    let tree = f["tree"].as_array().unwrap();
    assert_eq!(tree.len(), 6);
    assert_eq!(find(tree, "2")["light"], "red");
    // Open assigned items: 5 from 03-02, item 1 closed 03-12, item 3 closed 03-25.
    let burn = f["burndown"].as_array().unwrap();
    assert_eq!(burn.first().unwrap(), &serde_json::json!(["2026-03-02", 5]));
    assert_eq!(burn.iter().find(|p| p[0] == "2026-03-12").unwrap()[1], 4);
    assert_eq!(burn.last().unwrap(), &serde_json::json!(["2026-03-31", 3]));
}

#[test]
fn figures_as_of_a_past_day_are_replayed() {
    let (env, _) = build();
    let f = env.json(&["report", "--round", "r1", "--as-of", "2026-03-11"]);
    let t = &f["rounds"][0];
    assert_eq!(f["replayed"], true);
    // Item 1 submitted (not closed yet), 2 overdue by one day, 3 sent back, 4 long-term, 5 assigned.
    assert_eq!(t["items"], 5);
    assert_eq!(t["closed"], 0);
    assert_eq!(t["overdue"], 1);
    assert_eq!(t["long_term"], 1);
    assert_eq!(t["in_progress"], 3);
    let red = f["red_list"].as_array().unwrap();
    assert_eq!(red[0]["days_overdue"], 1);
    assert_eq!(
        find(f["tree"].as_array().unwrap(), "1")["state"],
        "pending_verification"
    );
    assert_eq!(unit(&f, "swj")["send_backs"], 1);
    // Before anything existed.
    let f = env.json(&["report", "--round", "r1", "--as-of", "2026-03-01"]);
    assert_eq!(f["rounds"][0]["items"], 0);
    assert_eq!(f["tree"].as_array().unwrap().len(), 0);
    // The future cannot be reported.
    env.fails(2, &["report", "--as-of", "2026-04-01"]);
    env.fails(2, &["report", "--as-of", "2026-02-30"]);
}

/// A small check that every element opened is closed in order.
fn well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "link", "input", "!doctype"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> without an opening tag"));
            assert_eq!(open, name.trim(), "mismatched </{name}>");
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn html_markdown_and_xlsx() {
    let (env, _) = build();
    let out = env.ok(&["report", "--round", "r1", "-o", "report.html"]);
    assert!(out.contains("report.html"));
    let html = std::fs::read_to_string(env.path("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    well_formed(&html);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
    assert!(html.contains("<svg") && html.contains("<polyline"));
    assert!(html.contains("逾期红榜") && html.contains("区发展和改革局"));
    let md = env.ok(&["report", "--round", "r1"]);
    assert!(md.starts_with("# 整改进展报告(截至 2026-03-31)"), "{md}");
    assert!(
        md.contains("| 1 | 区发展和改革局 | 2 | 1 | 1 | 0 | 50.0% | 100.0% |"),
        "{md}"
    );
    env.ok(&["report", "--round", "r1", "-o", "report.xlsx"]);
    let bytes = std::fs::read(env.path("report.xlsx")).unwrap();
    assert!(bytes.starts_with(b"PK"));
    env.fails(2, &["report", "--output-format", "xlsx"]);
    let en = env.ok(&["--lang", "en", "report", "--output-format", "md"]);
    assert!(en.contains("Units ranked"), "{en}");
}
