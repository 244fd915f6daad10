use super::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn t(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

const TODAY: (i32, u32, u32) = (2026, 3, 2);

fn today() -> NaiveDate {
    d(TODAY.0, TODAY.1, TODAY.2)
}

fn deadline(s: &str) -> Result<Option<DeadlineCell>, String> {
    parse_deadline(&t(s), today())
}

#[test]
fn date_forms() {
    for s in [
        "2023-06-30",
        "2023/6/30",
        "2023年6月30日",
        "2023.6.30",
        "2023年6月30日前",
        " 2023-6-30 ",
        "２０２３年６月３０日",
        "45107",
    ] {
        assert_eq!(
            deadline(s),
            Ok(Some(DeadlineCell::Date(d(2023, 6, 30)))),
            "{s}"
        );
    }
    assert_eq!(
        parse_deadline(&Cell::Number(45107.0), today()),
        Ok(Some(DeadlineCell::Date(d(2023, 6, 30))))
    );
    assert_eq!(
        parse_deadline(&Cell::Date(d(2023, 6, 30)), today()),
        Ok(Some(DeadlineCell::Date(d(2023, 6, 30))))
    );
    assert_eq!(
        deadline("2023年6月"),
        Ok(Some(DeadlineCell::Date(d(2023, 6, 30))))
    );
    assert_eq!(
        deadline("2024年2月底"),
        Ok(Some(DeadlineCell::Date(d(2024, 2, 29))))
    );
    assert_eq!(
        deadline("2023年底"),
        Ok(Some(DeadlineCell::Date(d(2023, 12, 31))))
    );
    assert_eq!(deadline(""), Ok(None));
    assert_eq!(parse_deadline(&Cell::Empty, today()), Ok(None));
}

#[test]
fn words_and_relative_forms() {
    assert_eq!(deadline("立行立改"), Ok(Some(DeadlineCell::Immediate)));
    assert_eq!(deadline("长期坚持"), Ok(Some(DeadlineCell::LongTerm)));
    assert_eq!(
        deadline("立行立改、长期坚持"),
        Ok(Some(DeadlineCell::LongTerm))
    );
    // Today is 2026-03-02: June is ahead, February has passed.
    assert_eq!(
        deadline("6月底"),
        Ok(Some(DeadlineCell::Date(d(2026, 6, 30))))
    );
    assert_eq!(
        deadline("2月底"),
        Ok(Some(DeadlineCell::Date(d(2027, 2, 28))))
    );
    assert_eq!(
        deadline("3月末"),
        Ok(Some(DeadlineCell::Date(d(2026, 3, 31))))
    );
    assert_eq!(
        deadline("年底"),
        Ok(Some(DeadlineCell::Date(d(2026, 12, 31))))
    );
}

#[test]
fn bad_dates_say_why() {
    let e = deadline("2023-02-30").unwrap_err();
    assert!(e.contains("只有 28 天"), "{e}");
    assert!(deadline("2023-13-01").unwrap_err().contains("月份 13"));
    assert!(deadline("下个月").is_err());
    assert!(deadline("2023").is_err());
    assert!(deadline("6月30").is_err());
    assert!(parse_deadline(&Cell::Number(-3.0), today()).is_err());
}

#[test]
fn immediate_fix_uses_the_work_calendar() {
    let cal = WorkCalendar::china();
    // 2026-09-30 (Wed) + 5 working days: Oct 1–7 are off, Sat Oct 10 works.
    let due = DeadlineCell::Immediate.resolve(d(2026, 9, 30), &cal, Offset::working_days(5));
    assert_eq!(due, Deadline::Date(d(2026, 10, 13)));
}

#[test]
fn excel_serials() {
    assert_eq!(excel_serial(1.0), Some(d(1899, 12, 31)));
    assert_eq!(excel_serial(45107.0), Some(d(2023, 6, 30)));
    assert_eq!(excel_serial(45107.75), Some(d(2023, 6, 30)));
    assert_eq!(excel_serial(0.0), None);
}

#[test]
fn headers_in_chinese_and_english() {
    for (s, c) in [
        ("序号", Column::Number),
        ("问题类别", Column::Category),
        ("具体问题", Column::Problem),
        ("整改目标", Column::Goal),
        ("整改措施", Column::Measure),
        ("责任领导", Column::Leader),
        ("牵头单位", Column::LeadUnit),
        ("配合单位", Column::CoUnits),
        ("责任人", Column::Contact),
        ("完成时限", Column::Deadline),
        ("整改进展", Column::Progress),
        ("完成情况", Column::Status),
        ("佐证材料", Column::Evidence),
        ("销号日期", Column::ClosedOn),
        ("No.", Column::Number),
        ("Category", Column::Category),
        ("Problem", Column::Problem),
        ("Goal", Column::Goal),
        ("Measure", Column::Measure),
        ("Leader", Column::Leader),
        ("Lead unit", Column::LeadUnit),
        ("Cooperating units", Column::CoUnits),
        ("Contact", Column::Contact),
        ("Deadline", Column::Deadline),
        ("Progress", Column::Progress),
        ("Status", Column::Status),
        ("Evidence", Column::Evidence),
        ("Closed on", Column::ClosedOn),
        ("完成时限（年月日）", Column::Deadline),
        ("*牵头\n单位", Column::LeadUnit),
        ("上级编号", Column::Parent),
    ] {
        assert_eq!(match_header(s), Some(c), "{s}");
    }
    assert_eq!(match_header("备注"), None);
    assert_eq!(match_header(""), None);
}

fn sheet(rows: &[&[&str]]) -> Vec<Vec<Cell>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|s| if s.is_empty() { Cell::Empty } else { t(s) })
                .collect()
        })
        .collect()
}

#[test]
fn header_found_below_a_title() {
    let rows = sheet(&[
        &["某区巡视整改台账"],
        &["填报单位:整改办", "", ""],
        &["序号", "问题类别", "整改措施", "牵头单位", "备注"],
        &["1", "a", "b", "c", ""],
    ]);
    let h = find_header(&rows).unwrap();
    assert_eq!(h.row, 2);
    assert_eq!(
        h.columns,
        vec![
            (0, Column::Number),
            (1, Column::Category),
            (2, Column::Measure),
            (3, Column::LeadUnit)
        ]
    );
    assert_eq!(find_header(&sheet(&[&["a", "b"], &["序号", "备注"]])), None);
}

#[test]
fn fill_down_resets_problems_under_a_new_category() {
    let mut rows: Vec<Vec<String>> = [
        ["类A", "问1", "m1"],
        ["", "", "m2"],
        ["", "问2", "m3"],
        ["类B", "", "m4"],
        ["", "问3", "m5"],
        ["", "", "m6"],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    fill_down(&mut rows, &[0, 1]);
    let got: Vec<(String, String)> = rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let want = [
        ("类A", "问1"),
        ("类A", "问1"),
        ("类A", "问2"),
        ("类B", ""),
        ("类B", "问3"),
        ("类B", "问3"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
}

fn tree_of(rows: &[&[&str]]) -> (Vec<LedgerNode>, Vec<RowError>) {
    let cells = sheet(rows);
    let h = find_header(&cells).unwrap();
    let (rows, errors) = read_rows(&cells, &h, 1, today());
    assert!(errors.is_empty(), "{errors:?}");
    build_tree(rows, &h)
}

fn render(nodes: &[LedgerNode], depth: usize, out: &mut String) {
    for n in nodes {
        out.push_str(&format!(
            "{}{} {} @{}\n",
            "  ".repeat(depth),
            n.number,
            n.title,
            n.row
        ));
        render(&n.children, depth + 1, out);
    }
}

#[test]
fn tree_category_problem_measure() {
    let (tree, errors) = tree_of(&[
        &[
            "序号",
            "问题类别",
            "具体问题",
            "整改措施",
            "牵头单位",
            "完成时限",
        ],
        &[
            "1",
            "党建方面",
            "学习不深入",
            "开展专题学习",
            "区委办",
            "2026-06-30",
        ],
        &["2", "", "", "建立学习台账", "区委办", "6月底"],
        &["3", "", "整改不彻底", "开展回头看", "区纪委", "长期坚持"],
        &[
            "4",
            "经济方面",
            "招商不力",
            "制定招商方案",
            "区商务局",
            "立行立改",
        ],
        &["5", "", "", "", "", ""],
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut s = String::new();
    render(&tree, 0, &mut s);
    assert_eq!(
        s,
        "一 党建方面 @2\n  一.(一) 学习不深入 @2\n    一.(一).1 开展专题学习 @2\n    一.(一).2 建立学习台账 @3\n  一.(二) 整改不彻底 @4\n    一.(二).3 开展回头看 @4\n二 经济方面 @5\n  二.(一) 招商不力 @5\n    二.(一).4 制定招商方案 @5\n"
    );
    let m = tree[0].children[0].children[1].data.as_ref().unwrap();
    assert_eq!(m.deadline, Some(DeadlineCell::Date(d(2026, 6, 30))));
    assert_eq!(m.target_state(), ItemState::Assigned);
    assert_eq!(count(&tree), 9);
}

#[test]
fn flat_ledger_without_numbers() {
    let (tree, errors) = tree_of(&[
        &["整改措施", "牵头单位", "完成时限", "完成情况"],
        &["甲", "u1", "2026-06-30", "已完成"],
        &["乙", "", "", ""],
    ]);
    assert!(errors.is_empty());
    assert_eq!(tree.len(), 2);
    assert_eq!(tree[0].number, "1");
    assert_eq!(tree[1].number, "2");
    assert_eq!(
        tree[0].data.as_ref().unwrap().target_state(),
        ItemState::Closed
    );
    assert_eq!(
        tree[1].data.as_ref().unwrap().target_state(),
        ItemState::Draft
    );
}

#[test]
fn duplicate_numbers_are_errors() {
    let (_, errors) = tree_of(&[
        &["序号", "具体问题", "整改措施"],
        &["1", "问", "a"],
        &["1", "问", "b"],
    ]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].row, 3);
    assert!(errors[0].reason.contains("重复"));
}

#[test]
fn bad_cells_are_all_reported() {
    let cells = sheet(&[
        &["序号", "整改措施", "完成时限", "完成情况"],
        &["1", "a", "2023-02-30", "已完成"],
        &["2", "b", "2026-06-30", "差不多"],
        &["3", "c", "明年", ""],
    ]);
    let h = find_header(&cells).unwrap();
    let (_, errors) = read_rows(&cells, &h, 1, today());
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(got, vec![(2, "完成时限"), (3, "完成情况"), (4, "完成时限")]);
}

#[test]
fn exported_ledger_keeps_numbers_and_parents() {
    let (tree, errors) = tree_of(&[
        &[
            "序号",
            "上级编号",
            "问题类别",
            "具体问题",
            "整改措施",
            "状态",
        ],
        &["3", "", "类", "", "", "待交办"],
        &["3.(1)", "3", "类", "问", "", "待交办"],
        &["3.(1).一", "3.(1)", "类", "问", "措", "已销号"],
        &["x", "", "", "", "独立", "待交办"],
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut s = String::new();
    render(&tree, 0, &mut s);
    assert_eq!(s, "3 类 @2\n  3.(1) 问 @3\n    3.(1).一 措 @4\nx 独立 @5\n");
    assert_eq!(
        tree[0].children[0].children[0]
            .data
            .as_ref()
            .unwrap()
            .target_state(),
        ItemState::Closed
    );
    let (_, errors) = tree_of(&[
        &["序号", "上级编号", "整改措施", "状态"],
        &["1", "9", "a", ""],
    ]);
    assert!(errors[0].reason.contains("上级编号"));
}

#[test]
fn chinese_numbers() {
    assert_eq!(chinese_number(1), "一");
    assert_eq!(chinese_number(10), "十");
    assert_eq!(chinese_number(12), "十二");
    assert_eq!(chinese_number(20), "二十");
    assert_eq!(chinese_number(25), "二十五");
    assert_eq!(chinese_number(100), "100");
}
