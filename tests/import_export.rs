//! `rectify export ledger` and the round trip: export a round, import it into a new round, and
//! get the same tree, units, deadlines and states.

mod import_support;

use std::collections::BTreeMap;

use import_support::{Env, find};
use serde_json::Value;

/// A round with items in every state, built with the ordinary verbs.
fn build(env: &Env) {
    env.round("a");
    env.unit("fgj", "区发展和改革局", &["区发改局"]);
    env.unit("swj", "区商务局", &[]);
    env.unit("cgj", "区城市管理局", &[]);
    let csv = "序号,问题类别,具体问题,整改措施,责任领导,牵头单位,配合单位,完成时限,整改进展,完成情况\n\
1,经济,政策不实,措施甲,张三,区发改局,区商务局,2026-06-30,,\n\
2,经济,政策不实,措施乙,,区商务局,,2026-05-31,,\n\
3,经济,招商不力,措施丙,,区商务局,,长期坚持,,\n\
4,经济,招商不力,措施丁,,区城市管理局,,2026-04-30,已完成整治,已完成\n\
5,生态,垃圾,措施戊,,区城市管理局,,2026-03-31,,\n\
6,生态,垃圾,措施己,,,,,,\n\
7,生态,垃圾,措施庚,,区发改局,,2026-12-31,,\n\
8,生态,垃圾,措施辛,,区发改局,,2026-09-30,,\n";
    std::fs::write(env.path("src.csv"), csv).unwrap();
    env.ok(&["import", "ledger", "src.csv", "--round", "a"]);
    let items = env.items("a");
    let id = |n: &str| find(&items, n)["id"].as_i64().unwrap().to_string();
    // 乙: in progress with a progress report.
    env.ok(&["ack", &id("一.(一).2")]);
    env.ok(&["progress", &id("一.(一).2"), "--note", "已完成一半"]);
    // 丙: long-term after verification.
    env.ok(&["ack", &id("一.(二).3")]);
    env.ok(&["submit", &id("一.(二).3"), "--note", "机制已建立"]);
    env.ok(&[
        "verify",
        &id("一.(二).3"),
        "--long-term",
        "--cadence",
        "quarterly",
    ]);
    // 戊: submitted, waiting for verification.
    env.ok(&["ack", &id("二.(一).5")]);
    env.ok(&["submit", &id("二.(一).5"), "--note", "申请销号"]);
    // 庚: cancelled.
    env.ok(&["cancel", &id("二.(一).7"), "--reason", "重复"]);
}

/// What must survive a round trip, keyed by number.
fn shape(items: &[Value]) -> BTreeMap<String, Value> {
    let by_id: BTreeMap<i64, &Value> = items
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i))
        .collect();
    items
        .iter()
        .map(|i| {
            let parent = i["parent_id"]
                .as_i64()
                .map(|p| by_id[&p]["number"].clone())
                .unwrap_or(Value::Null);
            (
                i["number"].as_str().unwrap().to_string(),
                serde_json::json!({
                    "title": i["title"],
                    "parent": parent,
                    "lead_unit": i["lead_unit"],
                    "co_units": i["co_units"],
                    "leader": i["leader"],
                    "due": i["due"],
                    "state": i["state"],
                    "cadence": i["cadence"],
                }),
            )
        })
        .collect()
}

#[test]
fn round_trip_through_xlsx_and_csv() {
    let env = Env::new();
    build(&env);
    let original = shape(&env.items("a"));
    assert_eq!(original.len(), 13);
    let states: Vec<&str> = original
        .values()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    for s in [
        "draft",
        "assigned",
        "in_progress",
        "pending_verification",
        "closed",
        "long_term",
        "cancelled",
    ] {
        assert!(states.contains(&s), "no {s} item in {states:?}");
    }
    for (file, round) in [("a.xlsx", "b"), ("a.csv", "c")] {
        env.ok(&["export", "ledger", file, "--round", "a"]);
        env.round(round);
        env.ok(&["import", "ledger", file, "--round", round]);
        assert_eq!(shape(&env.items(round)), original, "via {file}");
    }
    // The CSV is UTF-8 with a BOM and has the extra columns.
    let bytes = std::fs::read(env.path("a.csv")).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let header = text.lines().next().unwrap();
    for h in [
        "序号",
        "上级编号",
        "牵头单位",
        "完成时限",
        "状态",
        "亮灯",
        "整改进展",
        "交办日期",
        "申请销号日期",
        "销号日期",
    ] {
        assert!(header.contains(h), "{h} missing in {header}");
    }
    // 戊 was due 2026-03-31 and is pending verification: no light; 丁 closed; 甲 green.
    let row = text.lines().find(|l| l.contains("措施甲")).unwrap();
    assert!(
        row.contains("绿灯") && row.contains("区发展和改革局") && row.contains("区商务局"),
        "{row}"
    );
    let row = text.lines().find(|l| l.contains("措施丁")).unwrap();
    assert!(
        row.contains("已完成整治") && row.contains("已销号"),
        "{row}"
    );
}

#[test]
fn export_refuses_other_extensions() {
    let env = Env::new();
    env.round("a");
    let e = env.fails(2, &["export", "ledger", "a.txt", "--round", "a"]);
    assert!(e.contains(".xlsx"), "{e}");
    env.fails(2, &["export", "ledger", "a.xlsx", "--round", "nope"]);
}
