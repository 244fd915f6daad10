//! Property-based fuzzing of everything that reads user files: no panic, no hang, bounded output,
//! whatever the input. Bounded case counts keep CI fast.

use chrono::NaiveDate;
use proptest::prelude::*;
use rectify_import::decode::{Wanted, decode};
use rectify_import::ledger::{
    Cell, build_tree, find_header, match_header, parse_deadline, parse_status, read_rows,
};
use rectify_import::parse_document;

/// Text that looks like official documents: numbering marks, Chinese, digits, punctuation, noise.
fn doc_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "一、",
        "二、",
        "十二、",
        "(一)",
        "（二）",
        "1.",
        "2、",
        "3．",
        "(1)",
        "（2）",
        "①",
        "一是",
        "二是",
        "三要",
        "会议确定,",
        "区发改局负责:",
        "周诚同志牵头,",
        "区城管局负责、各相关镇街配合",
        "着力解决",
        "问题",
        "。",
        "，",
        ":",
        "\n",
        "\n\n",
        " ",
        "1.5亿元",
        "(上接第一版)",
        "(175.)",
        "- ",
        "\r\n",
        "二级公路",
        "2023年",
        "\u{3000}",
        "x",
        "\u{FFFD}",
    ]);
    prop::collection::vec(pieces, 0..200).prop_map(|v| v.concat())
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::Empty),
        "[0-9年月日/.\\-底立行改长期坚持已完成未持续推进 ]{0,14}".prop_map(Cell::Text),
        prop::sample::select(vec![
            "序号",
            "问题类别",
            "具体问题",
            "整改措施",
            "牵头单位",
            "完成时限",
            "完成情况",
            "责任领导",
            "区发改局",
            "立行立改",
            "长期坚持",
            "6月底",
            "年底",
            "2023-02-30",
            "2023/6/30",
            "2023年6月30日",
            "2023.6.30",
            "已完成",
            "Deadline",
            "Lead unit",
        ])
        .prop_map(|s| Cell::Text(s.to_string())),
        (-1.0e6f64..1.0e6).prop_map(Cell::Number),
        Just(Cell::Number(f64::NAN)),
        Just(Cell::Number(f64::INFINITY)),
        Just(Cell::Bool(true)),
    ]
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn document_parser_never_panics(text in doc_text()) {
        let _ = parse_document(&text);
    }

    #[test]
    fn document_parser_on_arbitrary_unicode(text in "\\PC{0,400}") {
        if let Ok(doc) = parse_document(&text) {
            // Output is bounded by the input: no item is invented from nothing.
            fn count(items: &[rectify_import::DraftItem]) -> usize {
                items.iter().map(|i| 1 + count(&i.children)).sum()
            }
            prop_assert!(count(&doc.items) <= text.chars().count());
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        for wanted in [Wanted::Auto, Wanted::Utf8, Wanted::Gbk] {
            let _ = decode(&bytes, wanted);
        }
    }

    #[test]
    fn cells_parse_or_refuse(c in cell()) {
        let _ = parse_deadline(&c, today());
        let _ = parse_status(&c.text());
        let _ = match_header(&c.text());
    }

    #[test]
    fn ledger_reader_never_panics(rows in prop::collection::vec(prop::collection::vec(cell(), 0..16), 0..40)) {
        if let Some(h) = find_header(&rows) {
            let (read, _errors) = read_rows(&rows, &h, 1, today());
            let _ = build_tree(read, &h);
        }
    }
}
