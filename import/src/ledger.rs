//! Reads a rectification ledger (整改台账) once its cells are in memory: finds the header row,
//! fills down merged category and problem cells, parses deadlines and statuses, and builds the
//! tree category → problem → measure.
//!
//! The caller reads the .xlsx or .csv file into rows of [`Cell`]s; everything here is pure.
//!
//! # Two shapes
//!
//! * The usual ledger: one row per measure, with 问题类别 and 具体问题 written once and left blank
//!   (or merged) below. Categories and problems become parent items (drafts); a category is
//!   numbered `一`, `二`… and a problem `一.(一)`…, unless a row of its own gives a 序号. A
//!   measure is numbered `<problem>.<序号>` (or `<problem>.<k>` without 序号).
//! * A ledger exported by `rectify export ledger`: it has a 上级编号 (parent number) column and one
//!   row per item, so any tree survives a round trip exactly. Numbers are kept as written and
//!   nothing is filled down.

use chrono::{Datelike, Duration, NaiveDate};
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::{Cadence, Deadline, ItemState, Lang, Offset};
use serde::Serialize;

/// One cell as read from a sheet.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// A cell formatted as a date in the spreadsheet.
    Date(NaiveDate),
    Bool(bool),
}

impl Cell {
    /// The text a person sees, trimmed. Whole numbers print without `.0`.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.trim().to_string(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Cell::Number(n) => n.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Bool(b) => b.to_string(),
        }
    }

    pub fn is_blank(&self) -> bool {
        self.text().is_empty()
    }
}

/// The columns a ledger may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Number,
    Category,
    Problem,
    Goal,
    Measure,
    Leader,
    LeadUnit,
    CoUnits,
    Contact,
    Deadline,
    Progress,
    Status,
    Evidence,
    ClosedOn,
    /// `rectify export` columns that make a round trip exact.
    State,
    Parent,
    Cadence,
}

impl Column {
    /// The header `rectify export` writes, in Chinese and English.
    pub fn header(self, lang: Lang) -> &'static str {
        use Column::*;
        match self {
            Number => lang.pick("序号", "No."),
            Category => lang.pick("问题类别", "Category"),
            Problem => lang.pick("具体问题", "Problem"),
            Goal => lang.pick("整改目标", "Goal"),
            Measure => lang.pick("整改措施", "Measure"),
            Leader => lang.pick("责任领导", "Leader"),
            LeadUnit => lang.pick("牵头单位", "Lead unit"),
            CoUnits => lang.pick("配合单位", "Cooperating units"),
            Contact => lang.pick("责任人", "Contact"),
            Deadline => lang.pick("完成时限", "Deadline"),
            Progress => lang.pick("整改进展", "Progress"),
            Status => lang.pick("完成情况", "Status"),
            Evidence => lang.pick("佐证材料", "Evidence"),
            ClosedOn => lang.pick("销号日期", "Closed on"),
            State => lang.pick("状态", "State"),
            Parent => lang.pick("上级编号", "Parent No."),
            Cadence => lang.pick("报送周期", "Cadence"),
        }
    }
}

/// Recognises a header cell: the usual Chinese headers and their English equivalents, with the
/// variants offices use. Spaces, line breaks, `*` (required-field marks) and a trailing colon or
/// bracketed note (`完成时限（年月日）`) are ignored; English is matched without case.
pub fn match_header(cell: &str) -> Option<Column> {
    use Column::*;
    let mut t: String = cell
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*' && *c != '\u{3000}')
        .collect();
    for open in ['(', '（'] {
        if let Some(i) = t.find(open)
            && i > 0
        {
            t.truncate(i);
        }
    }
    let t = t
        .trim_end_matches([':', '：', '.'])
        .to_lowercase()
        .replace(['_', '-'], "");
    let col = match t.as_str() {
        "序号" | "编号" | "no" | "number" | "#" | "序" => Number,
        "问题类别" | "类别" | "问题分类" | "问题类型" | "类型" | "category" | "problemcategory" => {
            Category
        }
        "具体问题" | "问题" | "存在问题" | "反馈问题" | "问题表现" | "主要问题" | "problem"
        | "issue" => Problem,
        "整改目标" | "目标" | "goal" | "target" => Goal,
        "整改措施" | "措施" | "具体措施" | "整改任务" | "measure" | "measures" | "action" => {
            Measure
        }
        "责任领导" | "牵头领导" | "分管领导" | "责任领导同志" | "leader" | "responsibleleader" => {
            Leader
        }
        "牵头单位" | "责任单位" | "牵头部门" | "责任部门" | "leadunit" | "lead" => {
            LeadUnit
        }
        "配合单位" | "协办单位" | "配合部门" | "cooperatingunits" | "cooperatingunit"
        | "counits" => CoUnits,
        "责任人" | "联系人" | "具体责任人" | "contact" | "contactperson" => Contact,
        "完成时限" | "整改时限" | "时限" | "完成时间" | "整改期限" | "deadline" | "due" => {
            Deadline
        }
        "整改进展" | "进展情况" | "进展" | "整改进展情况" | "progress" => Progress,
        "完成情况" | "整改情况" | "整改状态" | "status" => Status,
        "佐证材料" | "证明材料" | "evidence" => Evidence,
        "销号日期" | "销号时间" | "closedon" | "closed" => ClosedOn,
        "状态" | "state" => State,
        "上级编号" | "上级序号" | "parentno" | "parent" => Parent,
        "报送周期" | "cadence" => Cadence,
        _ => return None,
    };
    Some(col)
}

/// Where the header is and which column holds what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 0-based index of the header row among the rows given.
    pub row: usize,
    /// (0-based column index, column), in sheet order.
    pub columns: Vec<(usize, Column)>,
}

impl Header {
    pub fn index(&self, col: Column) -> Option<usize> {
        self.columns
            .iter()
            .find(|(_, c)| *c == col)
            .map(|(i, _)| *i)
    }

    pub fn has(&self, col: Column) -> bool {
        self.index(col).is_some()
    }
}

/// How many rows from the top are searched for the header (titles and notes come first).
pub const HEADER_SEARCH_ROWS: usize = 30;

/// Finds the header row: the first of the top [`HEADER_SEARCH_ROWS`] rows with at least three
/// recognised headers, one of them a title column (整改措施, 具体问题 or 问题类别). When a header
/// appears twice (`整改措施` in two columns), the first wins.
pub fn find_header(rows: &[Vec<Cell>]) -> Option<Header> {
    for (r, row) in rows.iter().enumerate().take(HEADER_SEARCH_ROWS) {
        let mut columns: Vec<(usize, Column)> = Vec::new();
        for (i, cell) in row.iter().enumerate() {
            if let Some(c) = match_header(&cell.text())
                && !columns.iter().any(|(_, k)| *k == c)
            {
                columns.push((i, c));
            }
        }
        let titled = columns
            .iter()
            .any(|(_, c)| matches!(c, Column::Measure | Column::Problem | Column::Category));
        if columns.len() >= 3 && titled {
            return Some(Header { row: r, columns });
        }
    }
    None
}

/// Fills blank cells of `cols` with the value above, as merged cells read back blank. A new
/// value in an earlier column of `cols` (a new category) stops the later ones (its problems)
/// from being filled from above it.
pub fn fill_down(rows: &mut [Vec<String>], cols: &[usize]) {
    let mut last: Vec<String> = vec![String::new(); cols.len()];
    for row in rows.iter_mut() {
        let mut reset = false;
        for (k, &c) in cols.iter().enumerate() {
            if row.len() <= c {
                row.resize(c + 1, String::new());
            }
            if row[c].is_empty() {
                if reset {
                    last[k].clear();
                } else {
                    row[c] = last[k].clone();
                }
            } else {
                if row[c] != last[k] {
                    reset = true;
                }
                last[k] = row[c].clone();
            }
        }
    }
}

/// A deadline as written in a ledger cell, before 立行立改 is turned into a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineCell {
    Date(NaiveDate),
    /// 立行立改: fix at once.
    Immediate,
    /// 长期坚持.
    LongTerm,
}

impl DeadlineCell {
    /// The deadline to store: 立行立改 is `immediate_fix` after `today` on the work calendar.
    pub fn resolve(self, today: NaiveDate, cal: &WorkCalendar, immediate_fix: Offset) -> Deadline {
        match self {
            DeadlineCell::Date(d) => Deadline::Date(d),
            DeadlineCell::LongTerm => Deadline::LongTerm,
            DeadlineCell::Immediate => Deadline::Date(cal.after(today, immediate_fix)),
        }
    }
}

/// Excel's day 0 (the 1900 date system, with its phantom 1900-02-29 before day 60).
fn excel_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default()
}

/// An Excel serial day number as a date; `None` outside 1 ..= 2958465 (9999-12-31).
pub fn excel_serial(n: f64) -> Option<NaiveDate> {
    if !(1.0..2_958_466.0).contains(&n) {
        return None;
    }
    let days = n.floor() as i64;
    excel_epoch().checked_add_signed(Duration::days(days))
}

fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

/// A full date from numbers, or the reason it is not one (`2023-02-30`: February has 28 days).
fn ymd(y: i64, m: i64, d: i64, raw: &str) -> Result<NaiveDate, String> {
    if !(1..=12).contains(&m) {
        return Err(format!("“{raw}”的月份 {m} 无效"));
    }
    let (y, m) = (y as i32, m as u32);
    if !(1900..=9999).contains(&y) {
        return Err(format!("“{raw}”的年份 {y} 无效"));
    }
    match NaiveDate::from_ymd_opt(y, m, d.clamp(0, 99) as u32) {
        Some(date) if d >= 1 => Ok(date),
        _ => {
            let days = last_day_of_month(y, m).map(|l| l.day()).unwrap_or(31);
            Err(format!("“{raw}”不是有效日期:{y}年{m}月只有 {days} 天"))
        }
    }
}

/// Splits text into runs of ASCII digits.
fn numbers(s: &str) -> Vec<i64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Parses a deadline cell. `Ok(None)` for a blank cell; `Err` names what is wrong (in Chinese;
/// the CLI adds the row and column).
///
/// Accepted: `2023-06-30`, `2023/6/30`, `2023年6月30日`, `2023.6.30` (with an optional `前` /
/// `之前` after it), a date-formatted cell, an Excel serial number, `2023年6月` and `2023年6月底`
/// (end of that month), `6月底` / `6月末` (end of that month of this year, or of next year when
/// it has passed), `年底` / `年末` (31 December), `立行立改`, `长期坚持` (also `长期`, and any text
/// containing `长期坚持`, such as `立行立改、长期坚持`).
pub fn parse_deadline(cell: &Cell, today: NaiveDate) -> Result<Option<DeadlineCell>, String> {
    let raw = match cell {
        Cell::Empty => return Ok(None),
        Cell::Date(d) => return Ok(Some(DeadlineCell::Date(*d))),
        Cell::Number(n) => {
            return excel_serial(*n)
                .map(|d| Some(DeadlineCell::Date(d)))
                .ok_or_else(|| format!("“{}”不是日期", cell.text()));
        }
        Cell::Bool(_) => return Err(format!("“{}”不是日期", cell.text())),
        Cell::Text(t) => t.trim().to_string(),
    };
    let t: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // Full-width digits and separators, as typed in Chinese input methods.
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '／' => '/',
            '－' | '—' | '–' => '-',
            '．' => '.',
            other => other,
        })
        .collect();
    if t.is_empty() {
        return Ok(None);
    }
    if t.contains("长期坚持") || t == "长期" || t.eq_ignore_ascii_case("long-term") {
        return Ok(Some(DeadlineCell::LongTerm));
    }
    if t.contains("立行立改") || t == "立即整改" {
        return Ok(Some(DeadlineCell::Immediate));
    }
    let t = t
        .trim_end_matches("之前")
        .trim_end_matches('前')
        .trim_end_matches("以前");
    // An Excel serial number that arrived as text (CSV).
    if t.chars().all(|c| c.is_ascii_digit())
        && t.len() == 5
        && let Ok(n) = t.parse::<f64>()
        && let Some(d) = excel_serial(n)
    {
        return Ok(Some(DeadlineCell::Date(d)));
    }
    if t == "年底" || t == "年末" || t == "今年底" || t == "今年年底" {
        let d = NaiveDate::from_ymd_opt(today.year(), 12, 31).ok_or("年份无效")?;
        return Ok(Some(DeadlineCell::Date(d)));
    }
    let month_end = t.ends_with("月底") || t.ends_with("月末");
    let ns = numbers(t);
    let bad = || {
        format!(
            "“{raw}”不是可识别的完成时限;请写成 2023-06-30、2023年6月30日、6月底、立行立改或长期坚持"
        )
    };
    // Only digits and the separators of one of the accepted forms.
    let allowed = |c: char| c.is_ascii_digit() || "-/.年月日底末".contains(c);
    if !t.chars().all(allowed) {
        return Err(bad());
    }
    match ns.as_slice() {
        [y, m, d] if !month_end && *y >= 1000 => {
            let date_form = t.contains('-') && t.matches('-').count() == 2
                || t.contains('/') && t.matches('/').count() == 2
                || t.contains('.') && t.matches('.').count() == 2
                || t.contains('年') && t.contains('月');
            if !date_form {
                return Err(bad());
            }
            ymd(*y, *m, *d, &raw).map(|d| Some(DeadlineCell::Date(d)))
        }
        [y, m] if *y >= 1000 && t.contains('年') && t.contains('月') => {
            if !(1..=12).contains(m) {
                return Err(format!("“{raw}”的月份 {m} 无效"));
            }
            last_day_of_month(*y as i32, *m as u32)
                .map(|d| Some(DeadlineCell::Date(d)))
                .ok_or_else(bad)
        }
        [y] if *y >= 1000 && (t.ends_with("年底") || t.ends_with("年末")) => {
            NaiveDate::from_ymd_opt(*y as i32, 12, 31)
                .map(|d| Some(DeadlineCell::Date(d)))
                .ok_or_else(bad)
        }
        [m] if month_end => {
            if !(1..=12).contains(m) {
                return Err(format!("“{raw}”的月份 {m} 无效"));
            }
            let this = last_day_of_month(today.year(), *m as u32).ok_or_else(bad)?;
            let d = if this < today {
                last_day_of_month(today.year() + 1, *m as u32).ok_or_else(bad)?
            } else {
                this
            };
            Ok(Some(DeadlineCell::Date(d)))
        }
        _ => Err(bad()),
    }
}

/// What a 完成情况 / 状态 cell asks for.
pub fn parse_status(text: &str) -> Result<Option<ItemState>, String> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(s) = t.parse::<ItemState>() {
        return Ok(Some(s));
    }
    let s = match t.as_str() {
        "已完成" | "完成" | "已整改" | "已整改完成" | "整改完成" | "已办结" | "done"
        | "completed" => ItemState::Closed,
        "持续推进" | "未完成" | "推进中" | "正在推进" | "正在整改" | "整改中" | "进行中"
        | "基本完成" | "部分完成" | "ongoing" | "inprogress" => ItemState::Assigned,
        "待验收" | "已申请销号" => ItemState::PendingVerification,
        "已撤销" | "撤销" => ItemState::Cancelled,
        _ => {
            return Err(format!(
                "“{text}”不是可识别的完成情况;请写已完成、持续推进或未完成"
            ));
        }
    };
    Ok(Some(s))
}

/// One problem found in a ledger row: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based row number in the sheet, as the spreadsheet program shows it.
    pub row: usize,
    /// The column's header as written in the file, or empty when the row as a whole is wrong.
    pub column: String,
    pub reason: String,
}

/// One row of the ledger after header matching and fill-down, before units are resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerRow {
    /// 1-based row number in the sheet.
    pub row: usize,
    pub number: String,
    pub category: String,
    pub problem: String,
    pub goal: String,
    pub measure: String,
    pub leader: String,
    pub lead_unit: String,
    pub co_units: String,
    pub contact: String,
    pub deadline: Option<DeadlineCell>,
    pub progress: String,
    pub status: Option<ItemState>,
    pub state: Option<ItemState>,
    pub parent: String,
    pub cadence: Option<Cadence>,
    pub closed_on: String,
}

impl LedgerRow {
    /// The state the row asks for: the 状态 column when present, else 完成情况, else assigned
    /// when it has a lead unit and a deadline, else draft.
    pub fn target_state(&self) -> ItemState {
        if let Some(s) = self.state {
            return s;
        }
        let assignable = !self.lead_unit.is_empty() && self.deadline.is_some();
        match self.status {
            Some(s) if assignable || s == ItemState::Cancelled => s,
            _ if assignable => ItemState::Assigned,
            _ => ItemState::Draft,
        }
    }
}

/// Turns the sheet's rows (all of them, header included) into ledger rows. `first_row` is the
/// sheet row number of `rows[0]` (1 when the sheet starts at A1). Every row with a problem is
/// reported; rows that are entirely blank are skipped.
pub fn read_rows(
    rows: &[Vec<Cell>],
    header: &Header,
    first_row: usize,
    today: NaiveDate,
) -> (Vec<LedgerRow>, Vec<RowError>) {
    let mut errors = Vec::new();
    let header_text = |col: Column| -> String {
        header
            .index(col)
            .and_then(|i| rows[header.row].get(i))
            .map(|c| c.text())
            .unwrap_or_else(|| col.header(Lang::Zh).to_string())
    };
    let body = &rows[header.row + 1..];
    let exported = header.has(Column::Parent);
    // Text of every cell, then fill-down of category and problem (not for exported ledgers,
    // whose rows are one item each).
    let mut texts: Vec<Vec<String>> = body
        .iter()
        .map(|r| r.iter().map(Cell::text).collect())
        .collect();
    if !exported {
        let fill: Vec<usize> = [Column::Category, Column::Problem]
            .iter()
            .filter_map(|c| header.index(*c))
            .collect();
        fill_down(&mut texts, &fill);
    }
    let mut out = Vec::new();
    for (k, (cells, text)) in body.iter().zip(texts.iter()).enumerate() {
        let row_no = first_row + header.row + 1 + k;
        if cells.iter().all(Cell::is_blank) {
            continue;
        }
        // A row without any title of its own: skipped when it holds nothing but a 序号 (a
        // numbered blank line at the end of a template), an error when it holds data.
        let raw = |col: Column| {
            header
                .index(col)
                .and_then(|i| cells.get(i))
                .is_some_and(|c| !c.is_blank())
        };
        if !raw(Column::Category) && !raw(Column::Problem) && !raw(Column::Measure) {
            let number_col = header.index(Column::Number);
            let other_data = cells
                .iter()
                .enumerate()
                .any(|(i, c)| Some(i) != number_col && !c.is_blank());
            if other_data {
                errors.push(RowError {
                    row: row_no,
                    column: header_text(Column::Measure),
                    reason: "这一行有内容但没有整改措施(也没有具体问题或问题类别);请补上标题或删除这一行".into(),
                });
            }
            continue;
        }
        let get = |col: Column| -> String {
            header
                .index(col)
                .and_then(|i| text.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let cell = |col: Column| -> Cell {
            header
                .index(col)
                .and_then(|i| cells.get(i))
                .cloned()
                .unwrap_or(Cell::Empty)
        };
        let mut r = LedgerRow {
            row: row_no,
            number: get(Column::Number),
            category: get(Column::Category),
            problem: get(Column::Problem),
            goal: get(Column::Goal),
            measure: get(Column::Measure),
            leader: get(Column::Leader),
            lead_unit: get(Column::LeadUnit),
            co_units: get(Column::CoUnits),
            contact: get(Column::Contact),
            progress: get(Column::Progress),
            parent: get(Column::Parent),
            closed_on: get(Column::ClosedOn),
            ..LedgerRow::default()
        };
        match parse_deadline(&cell(Column::Deadline), today) {
            Ok(d) => r.deadline = d,
            Err(reason) => errors.push(RowError {
                row: row_no,
                column: header_text(Column::Deadline),
                reason,
            }),
        }
        match parse_status(&get(Column::Status)) {
            Ok(s) => r.status = s,
            Err(reason) => errors.push(RowError {
                row: row_no,
                column: header_text(Column::Status),
                reason,
            }),
        }
        let state_text = get(Column::State);
        if !state_text.is_empty() {
            match state_text.parse::<ItemState>() {
                Ok(s) => r.state = Some(s),
                Err(_) => errors.push(RowError {
                    row: row_no,
                    column: header_text(Column::State),
                    reason: format!(
                        "“{state_text}”不是可识别的状态;请写待交办、已交办、整改中、待验收、已销号、长期坚持或已撤销"
                    ),
                }),
            }
        }
        let cadence_text = get(Column::Cadence);
        if !cadence_text.is_empty() {
            match cadence_text.parse::<Cadence>() {
                Ok(c) => r.cadence = Some(c),
                Err(_) => errors.push(RowError {
                    row: row_no,
                    column: header_text(Column::Cadence),
                    reason: format!("“{cadence_text}”不是可识别的报送周期;请写每月或每季度"),
                }),
            }
        }
        out.push(r);
    }
    (out, errors)
}

/// Which part of the tree a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Category,
    Problem,
    Measure,
}

/// One item to create from the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerNode {
    pub number: String,
    pub title: String,
    pub kind: NodeKind,
    /// The row the item's own data (units, deadline, state) comes from; `None` for a category or
    /// problem that only exists as the fill-down of its measures. Boxed: a tree of 100,000 nodes moves less when its lists grow.
    pub data: Option<Box<LedgerRow>>,
    /// The first sheet row that mentions the item.
    pub row: usize,
    pub children: Vec<LedgerNode>,
}

const CHAPTER: [&str; 10] = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];

/// `1` → `一`, `12` → `十二`, `25` → `二十五` (up to 99; larger numbers stay in digits).
pub fn chinese_number(n: usize) -> String {
    match n {
        1..=10 => CHAPTER[n - 1].to_string(),
        11..=19 => format!("十{}", CHAPTER[n - 11]),
        20..=99 => {
            let tens = CHAPTER[n / 10 - 1];
            if n.is_multiple_of(10) {
                format!("{tens}十")
            } else {
                format!("{tens}十{}", CHAPTER[n % 10 - 1])
            }
        }
        _ => n.to_string(),
    }
}

/// A 序号 cell as a number segment: `一、` → `一`, `1.` → `1`, `（1）` → `(1)`.
fn clean_number(s: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            other => other,
        })
        .collect();
    t.trim_end_matches(['、', '.', '．', ',', '，'])
        .trim()
        .to_string()
}

/// Builds the item tree from the rows. Every problem is reported; the tree is only meaningful
/// when the error list is empty.
///
/// The rows are taken, not copied: each ends up as its item's data.
pub fn build_tree(rows: Vec<LedgerRow>, header: &Header) -> (Vec<LedgerNode>, Vec<RowError>) {
    if header.has(Column::Parent) {
        build_exported(rows, header)
    } else {
        build_usual(rows, header)
    }
}

fn measure_title(r: &LedgerRow, header: &Header) -> String {
    if header.has(Column::Measure) {
        r.measure.clone()
    } else {
        String::new()
    }
}

fn build_usual(rows: Vec<LedgerRow>, header: &Header) -> (Vec<LedgerNode>, Vec<RowError>) {
    let mut roots: Vec<LedgerNode> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let has_cat = header.has(Column::Category);
    let has_prob = header.has(Column::Problem);
    // How many categories (key "") and problems (key: the parent's number) each list holds so
    // far: counting the list on every row made a long ledger quadratic.
    let mut categories = 0usize;
    let mut problems: std::collections::HashMap<String, usize> = Default::default();
    for r in rows {
        let measure = measure_title(&r, header);
        let problem = if has_prob {
            r.problem.clone()
        } else {
            String::new()
        };
        let category = if has_cat {
            r.category.clone()
        } else {
            String::new()
        };
        if measure.is_empty() && problem.is_empty() && category.is_empty() {
            errors.push(RowError {
                row: r.row,
                column: String::new(),
                reason: "这一行没有整改措施、具体问题或问题类别;请补上标题或删除这一行".into(),
            });
            continue;
        }
        // The row's own item is the deepest title it has; the others are its parents.
        let own_kind = if !measure.is_empty() {
            NodeKind::Measure
        } else if !problem.is_empty() {
            NodeKind::Problem
        } else {
            NodeKind::Category
        };
        // The row itself goes to the one node it is the data of.
        let row_no = r.row;
        let own_number = r.number.clone();
        let mut data = Some(Box::new(r));
        // Find or create the category.
        let mut siblings = &mut roots;
        let mut prefix = String::new();
        if !category.is_empty() {
            let own = own_kind == NodeKind::Category;
            let reuse = siblings
                .last()
                .is_some_and(|n| n.kind == NodeKind::Category && n.title == category && !own);
            if !reuse {
                let k = categories;
                categories += 1;
                let number = if own && !own_number.is_empty() {
                    clean_number(&own_number)
                } else {
                    chinese_number(k + 1)
                };
                siblings.push(LedgerNode {
                    number,
                    title: category.clone(),
                    kind: NodeKind::Category,
                    data: if own { data.take() } else { None },
                    row: row_no,
                    children: Vec::new(),
                });
            }
            let node = siblings.last_mut().expect("just pushed or reused");
            prefix = node.number.clone();
            siblings = &mut node.children;
        }
        if !problem.is_empty() {
            let own = own_kind == NodeKind::Problem;
            let reuse = siblings
                .last()
                .is_some_and(|n| n.kind == NodeKind::Problem && n.title == problem && !own);
            if !reuse {
                let counter = problems.entry(prefix.clone()).or_default();
                let k = *counter;
                *counter += 1;
                let seg = if own && !own_number.is_empty() {
                    clean_number(&own_number)
                } else {
                    format!("({})", chinese_number(k + 1))
                };
                siblings.push(LedgerNode {
                    number: join(&prefix, &seg),
                    title: problem.clone(),
                    kind: NodeKind::Problem,
                    data: if own { data.take() } else { None },
                    row: row_no,
                    children: Vec::new(),
                });
            }
            let node = siblings.last_mut().expect("just pushed or reused");
            prefix = node.number.clone();
            siblings = &mut node.children;
        }
        if own_kind == NodeKind::Measure {
            let seg = if own_number.is_empty() {
                (siblings.len() + 1).to_string()
            } else {
                clean_number(&own_number)
            };
            // A 序号 that already carries the parent's path (`一.(一).1`) is kept as it is.
            let number = if !prefix.is_empty() && seg.starts_with(&format!("{prefix}.")) {
                seg
            } else {
                join(&prefix, &seg)
            };
            siblings.push(LedgerNode {
                number,
                title: measure,
                kind: NodeKind::Measure,
                data,
                row: row_no,
                children: Vec::new(),
            });
        }
    }
    check_numbers(&roots, &mut seen, &mut errors);
    (roots, errors)
}

fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}.{seg}")
    }
}

fn check_numbers(
    nodes: &[LedgerNode],
    seen: &mut std::collections::HashMap<String, usize>,
    errors: &mut Vec<RowError>,
) {
    for n in nodes {
        if let Some(first) = seen.get(&n.number) {
            errors.push(RowError {
                row: n.row,
                column: Column::Number.header(Lang::Zh).to_string(),
                reason: format!(
                    "编号“{}”与第 {first} 行重复;同一轮次内编号不能重复,请改正序号",
                    n.number
                ),
            });
        } else {
            seen.insert(n.number.clone(), n.row);
        }
        check_numbers(&n.children, seen, errors);
    }
}

/// Exported ledgers: one row per item, parent given by number, titles from the deepest of
/// 整改措施 / 具体问题 / 问题类别 that is filled.
fn build_exported(rows: Vec<LedgerRow>, _header: &Header) -> (Vec<LedgerNode>, Vec<RowError>) {
    let mut errors = Vec::new();
    let mut roots: Vec<LedgerNode> = Vec::new();
    // number → path of indexes from the roots
    let mut paths: std::collections::HashMap<String, Vec<usize>> = Default::default();
    let mut first_row: std::collections::HashMap<String, usize> = Default::default();
    for r in rows {
        let (title, kind) = if !r.measure.is_empty() {
            (r.measure.clone(), NodeKind::Measure)
        } else if !r.problem.is_empty() {
            (r.problem.clone(), NodeKind::Problem)
        } else {
            (r.category.clone(), NodeKind::Category)
        };
        if title.is_empty() {
            errors.push(RowError {
                row: r.row,
                column: String::new(),
                reason: "这一行没有标题(整改措施、具体问题或问题类别);请补上或删除这一行".into(),
            });
            continue;
        }
        let number = r.number.trim().to_string();
        if number.is_empty() {
            errors.push(RowError {
                row: r.row,
                column: Column::Number.header(Lang::Zh).into(),
                reason: "含“上级编号”列的台账每行都须有序号".into(),
            });
            continue;
        }
        if let Some(first) = first_row.get(&number) {
            errors.push(RowError {
                row: r.row,
                column: Column::Number.header(Lang::Zh).into(),
                reason: format!(
                    "编号“{number}”与第 {first} 行重复;同一轮次内编号不能重复,请改正序号"
                ),
            });
            continue;
        }
        let row_no = r.row;
        // The parent's place, found before the row moves into its node.
        let parent_path = match r.parent.trim() {
            "" => None,
            parent => match paths.get(parent) {
                Some(pp) => Some(pp.clone()),
                None => {
                    errors.push(RowError {
                        row: row_no,
                        column: Column::Parent.header(Lang::Zh).into(),
                        reason: format!("上级编号“{parent}”不在本行之前的任何一行中"),
                    });
                    continue;
                }
            },
        };
        let node = LedgerNode {
            number: number.clone(),
            title,
            kind,
            data: Some(Box::new(r)),
            row: row_no,
            children: Vec::new(),
        };
        let path = match parent_path {
            None => {
                roots.push(node);
                vec![roots.len() - 1]
            }
            Some(mut pp) => {
                let mut list = &mut roots;
                for i in &pp {
                    list = &mut list[*i].children;
                }
                list.push(node);
                pp.push(list.len() - 1);
                pp
            }
        };
        first_row.insert(number.clone(), row_no);
        paths.insert(number, path);
    }
    (roots, errors)
}

/// Counts the nodes of a tree.
pub fn count(nodes: &[LedgerNode]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.children)).sum()
}

#[cfg(test)]
mod tests;
