//! `rectify import ledger`: an .xlsx written here (header on row 3, merged category cells), a GBK
//! CSV, all-or-nothing on bad rows, and the bad files each refused with exit 2.

mod import_support;

use import_support::{Env, find};
use rust_xlsxwriter::{Format, Workbook};
use serde_json::Value;

fn setup() -> Env {
    let env = Env::new();
    env.round("xs");
    env.unit("fgj", "区发展和改革局", &["区发改局"]);
    env.unit("swj", "区商务局", &[]);
    env.unit("cgj", "区城市管理局", &["区城管局"]);
    env
}

/// A ledger as offices send it: a title, a note, the header on row 3, the category merged down.
fn write_xlsx(path: &std::path::Path) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "巡视反馈问题整改台账").unwrap();
    ws.write_string(1, 0, "填报单位:区整改办").unwrap();
    let headers = [
        "序号",
        "问题类别",
        "具体问题",
        "整改措施",
        "责任领导",
        "牵头单位",
        "配合单位",
        "完成时限",
        "整改进展",
        "完成情况",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string(2, c as u16, *h).unwrap();
    }
    let merged = Format::new();
    // Category merged over rows 4-6 (0-based 3-5), problem merged over rows 4-5.
    ws.merge_range(3, 1, 5, 1, "经济发展方面", &merged).unwrap();
    ws.merge_range(3, 2, 4, 2, "稳经济政策落实不扎实", &merged)
        .unwrap();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let rows: [(&str, &str, &str, &str, &str, &str, &str); 4] = [
        (
            "1",
            "落实稳经济政策",
            "张三",
            "区发改局",
            "区商务局",
            "",
            "已印发政策清单",
        ),
        ("2", "加大总部招引", "张三", "区商务局", "", "6月底", ""),
        ("3", "提升金融服务", "", "", "", "", ""),
        (
            "4",
            "整治海洋垃圾",
            "李四",
            "区城管局",
            "",
            "长期坚持",
            "已建立机制",
        ),
    ];
    for (i, (no, measure, leader, lead, co, due, progress)) in rows.iter().enumerate() {
        let r = 3 + i as u32;
        ws.write_string(r, 0, *no).unwrap();
        ws.write_string(r, 3, *measure).unwrap();
        if !leader.is_empty() {
            ws.write_string(r, 4, *leader).unwrap();
        }
        if !lead.is_empty() {
            ws.write_string(r, 5, *lead).unwrap();
        }
        if !co.is_empty() {
            ws.write_string(r, 6, *co).unwrap();
        }
        if !due.is_empty() {
            ws.write_string(r, 7, *due).unwrap();
        }
        if !progress.is_empty() {
            ws.write_string(r, 8, *progress).unwrap();
        }
    }
    // Row 1: a real date cell, completed. Row 4: category and problem of its own.
    ws.write_datetime_with_format(
        3,
        7,
        rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 6, 30).unwrap(),
        &date,
    )
    .unwrap();
    ws.write_string(3, 9, "已完成").unwrap();
    ws.write_string(6, 1, "生态环境方面").unwrap();
    ws.write_string(6, 2, "海洋垃圾治理不到位").unwrap();
    ws.write_string(6, 9, "持续推进").unwrap();
    wb.save(path).unwrap();
}

#[test]
fn xlsx_with_header_on_row_3_and_merged_cells() {
    let env = setup();
    let file = env.path("ledger.xlsx");
    write_xlsx(&file);
    let dry = env.ok(&[
        "import",
        "ledger",
        "ledger.xlsx",
        "--round",
        "xs",
        "--dry-run",
    ]);
    assert!(dry.contains("一.(一).1  落实稳经济政策"), "{dry}");
    assert!(env.items("xs").is_empty());
    let out = env.json(&["import", "ledger", "ledger.xlsx", "--round", "xs"]);
    // 2 categories + 2 problems + 4 measures.
    assert_eq!(out["created"], 8);
    let items = env.items("xs");
    let cat = find(&items, "一");
    assert_eq!(cat["title"], "经济发展方面");
    assert_eq!(cat["state"], "draft");
    let p1 = find(&items, "一.(一)");
    assert_eq!(p1["title"], "稳经济政策落实不扎实");
    assert_eq!(p1["parent_id"], cat["id"]);
    let m1 = find(&items, "一.(一).1");
    assert_eq!(m1["parent_id"], p1["id"]);
    assert_eq!(m1["lead_unit"], "fgj");
    assert_eq!(m1["co_units"], serde_json::json!(["swj"]));
    assert_eq!(m1["leader"], "张三");
    assert_eq!(m1["due"], "2026-06-30");
    assert_eq!(m1["state"], "closed");
    let id = m1["id"].as_i64().unwrap().to_string();
    let history = env.json(&["item", "history", &id]);
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["created", "assigned", "acknowledged", "submitted", "closed"]
    );
    assert_eq!(history[4]["payload"]["note"], "已印发政策清单");
    let m2 = find(&items, "一.(一).2");
    assert_eq!(m2["state"], "assigned");
    assert_eq!(m2["due"], "2026-06-30");
    // Row 6: blank problem cell below a merged range, same category: filled from above.
    let m3 = find(&items, "一.(一).3");
    assert_eq!(m3["state"], "draft");
    assert_eq!(m3["lead_unit"], Value::Null);
    let eco = find(&items, "二.(一).4");
    assert_eq!(eco["due"], "long_term");
    assert_eq!(eco["lead_unit"], "cgj");
    assert_eq!(eco["state"], "assigned");
    assert_eq!(find(&items, "二")["title"], "生态环境方面");
}

#[test]
fn gbk_csv_with_immediate_fix_and_generated_units() {
    let env = setup();
    let text = "台账\n序号,问题类别,整改措施,牵头单位,完成时限,完成情况\n1,党建,开展专题学习,区发改局,立行立改,\n2,党建,建立学习台账,区教体局,2026/7/1,未完成\n3,,排查问题,区教体局,2026年8月31日,\n";
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    std::fs::write(env.path("gbk.csv"), &bytes).unwrap();
    // The unit 区教体局 is unknown: an error for each row, nothing written.
    let err = env.fails(2, &["import", "ledger", "gbk.csv", "--round", "xs"]);
    assert!(err.contains("第 4 行") && err.contains("第 5 行"), "{err}");
    assert!(err.contains("区教体局"), "{err}");
    assert!(env.items("xs").is_empty());
    // With --create-units it is created once with a generated code.
    let out = env.json(&[
        "import",
        "ledger",
        "gbk.csv",
        "--round",
        "xs",
        "--create-units",
    ]);
    assert_eq!(out["encoding"], "gbk");
    assert_eq!(out["units_created"][0]["name"], "区教体局");
    let code = out["units_created"][0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let items = env.items("xs");
    assert_eq!(items.len(), 4);
    // 立行立改: 5 working days after Mon 2026-03-02.
    assert_eq!(find(&items, "一.1")["due"], "2026-03-09");
    assert_eq!(find(&items, "一.1")["state"], "assigned");
    assert_eq!(find(&items, "一.2")["lead_unit"], code.as_str());
    assert_eq!(find(&items, "一.2")["due"], "2026-07-01");
    assert_eq!(find(&items, "一.3")["due"], "2026-08-31");
    let units = env.json(&["unit", "list"]);
    assert_eq!(
        units
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["name"] == "区教体局")
            .count(),
        1
    );
}

#[test]
fn utf8_bom_csv_in_english_headers_with_a_past_deadline() {
    let env = setup();
    let text = "\u{feff}No.,Category,Problem,Measure,Lead unit,Deadline,Status\n1,Economy,Weak policy,Publish the list,fgj,2025-12-31,\n";
    std::fs::write(env.path("en.csv"), text).unwrap();
    env.ok(&["import", "ledger", "en.csv", "--round", "xs"]);
    let items = env.items("xs");
    let m = find(&items, "一.(一).1");
    // A ledger records an assignment made earlier: the past deadline is kept, the item overdue.
    assert_eq!(m["due"], "2025-12-31");
    assert_eq!(m["state"], "assigned");
    let overdue = env.json(&["item", "list", "--round", "xs", "--overdue"]);
    assert_eq!(overdue.as_array().unwrap().len(), 1);
}

#[test]
fn every_bad_row_is_reported_and_nothing_is_written() {
    let env = setup();
    let text = "序号,具体问题,整改措施,牵头单位,完成时限,完成情况\n1,问题甲,措施一,区发改局,2023-02-30,\n2,问题甲,措施二,区不存在局,2026-06-30,\n3,问题甲,措施三,区发改局,2026-06-30,差不多\n4,问题甲,措施四,区发改局,2026-06-30,\n";
    std::fs::write(env.path("bad.csv"), text).unwrap();
    let err = env.fails(2, &["import", "ledger", "bad.csv", "--round", "xs"]);
    assert!(err.contains("第 2 行 “完成时限”列"), "{err}");
    assert!(err.contains("2023-02-30"), "{err}");
    assert!(err.contains("第 3 行 “牵头单位”列"), "{err}");
    assert!(err.contains("区不存在局"), "{err}");
    assert!(err.contains("第 4 行 “完成情况”列"), "{err}");
    assert!(!err.contains("第 5 行"), "{err}");
    assert!(env.items("xs").is_empty());
    assert_eq!(env.json(&["unit", "list"]).as_array().unwrap().len(), 3);
}

#[test]
fn bad_files_exit_2_with_a_clear_message() {
    let env = setup();
    let write = |name: &str, bytes: &[u8]| std::fs::write(env.path(name), bytes).unwrap();
    // Not a spreadsheet.
    write("photo.xlsx", b"\x89PNG\r\n\x1a\n not really a workbook");
    let e = env.fails(2, &["import", "ledger", "photo.xlsx", "--round", "xs"]);
    assert!(e.contains("不是可读取的电子表格"), "{e}");
    // An empty sheet.
    let mut wb = Workbook::new();
    wb.add_worksheet();
    wb.save(env.path("empty.xlsx")).unwrap();
    let e = env.fails(2, &["import", "ledger", "empty.xlsx", "--round", "xs"]);
    assert!(e.contains("空的"), "{e}");
    write("empty.csv", b"");
    env.fails(2, &["import", "ledger", "empty.csv", "--round", "xs"]);
    // No recognisable header.
    write("noheader.csv", "名称,金额\n甲,1\n".as_bytes());
    let e = env.fails(2, &["import", "ledger", "noheader.csv", "--round", "xs"]);
    assert!(e.contains("找不到表头"), "{e}");
    // A duplicate number.
    write(
        "dup.csv",
        "序号,具体问题,整改措施\n1,问题,甲\n1,问题,乙\n".as_bytes(),
    );
    let e = env.fails(2, &["import", "ledger", "dup.csv", "--round", "xs"]);
    assert!(e.contains("第 3 行") && e.contains("重复"), "{e}");
    // Neither UTF-8 nor GBK: the byte offset is named.
    write("broken.csv", b"\xe5\xba\x8f,\xff\xfe\n");
    let e = env.fails(2, &["import", "ledger", "broken.csv", "--round", "xs"]);
    assert!(e.contains("字节"), "{e}");
    // 50 MB: refused by size before reading, fast.
    let big = std::fs::File::create(env.path("big.csv")).unwrap();
    big.set_len(50 * 1024 * 1024).unwrap();
    let started = std::time::Instant::now();
    let e = env.fails(2, &["import", "ledger", "big.csv", "--round", "xs"]);
    assert!(e.contains("超过上限"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let e = env.fails(2, &["import", "doc", "big.csv", "--round", "xs"]);
    assert!(e.contains("超过上限"), "{e}");
    assert!(env.items("xs").is_empty());
}
