//! `rectify export ledger FILE.xlsx|FILE.csv [--round CODE]`: the ledger as offices keep it, one
//! row per item in tree order, with the columns `rectify import ledger` reads back (上级编号 and
//! 状态 make the round trip exact).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Subcommand;
use rectify_engine::light::light;
use rectify_engine::{Item, ItemId, ItemState, Lang, LightPolicy};
use rectify_import::ledger::Column;
use rectify_schema::{ItemFilter, Store};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, CliResult, InLang};

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// Export the ledger: .xlsx, or .csv (UTF-8 with BOM, opens in Excel).
    Ledger {
        file: PathBuf,
        /// Only this round (needed to import the file back: numbers are unique per round).
        #[arg(long, value_name = "CODE")]
        round: Option<String>,
    },
}

pub async fn run(app: &App, cmd: ExportCmd) -> CliResult {
    match cmd {
        ExportCmd::Ledger { file, round } => ledger(app, &file, round).await,
    }
}

/// The light policy from the reminder settings.
pub fn light_policy(app: &App) -> LightPolicy {
    let r = &app.settings.reminders;
    LightPolicy {
        yellow_within: r.yellow_within,
        ack_within: r.ack_within,
        progress_every: r.progress_every,
    }
}

/// Items in tree order (parents before children, siblings by id) with their depth.
pub fn tree_order(items: &[Item]) -> Vec<(usize, &Item)> {
    tree_order_by(items, |i| i.id, |i| i.parent_id)
}

/// [`tree_order`] over anything with an item id and a parent (the report orders its compact
/// rows with it, so the report's tree and the export's stay in the same order).
pub fn tree_order_by<T>(
    items: &[T],
    id: impl Fn(&T) -> ItemId,
    parent_of: impl Fn(&T) -> Option<ItemId>,
) -> Vec<(usize, &T)> {
    let ids: std::collections::HashSet<ItemId> = items.iter().map(&id).collect();
    let mut children: HashMap<Option<ItemId>, Vec<&T>> = HashMap::new();
    for i in items {
        // An item whose parent is outside the list is shown at the top.
        let parent = parent_of(i).filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(i);
    }
    for v in children.values_mut() {
        v.sort_by_key(|i| id(i));
    }
    let mut out = Vec::with_capacity(items.len());
    fn go<'a, T>(
        parent: Option<ItemId>,
        depth: usize,
        children: &HashMap<Option<ItemId>, Vec<&'a T>>,
        id: &dyn Fn(&T) -> ItemId,
        out: &mut Vec<(usize, &'a T)>,
    ) {
        if let Some(list) = children.get(&parent) {
            for i in list {
                out.push((depth, i));
                go(Some(id(i)), depth + 1, children, id, out);
            }
        }
    }
    go(None, 0, &children, &id, &mut out);
    out
}

/// The columns of the exported ledger, in order.
const COLUMNS: &[Column] = &[
    Column::Number,
    Column::Parent,
    Column::Category,
    Column::Problem,
    Column::Goal,
    Column::Measure,
    Column::Leader,
    Column::LeadUnit,
    Column::CoUnits,
    Column::Contact,
    Column::Deadline,
    Column::Progress,
    Column::Status,
    Column::Evidence,
    Column::ClosedOn,
    Column::State,
    Column::Cadence,
];

fn extra_headers(lang: Lang) -> [&'static str; 4] {
    [
        lang.pick("亮灯", "Light"),
        lang.pick("交办日期", "Assigned on"),
        lang.pick("申请销号日期", "Submitted on"),
        lang.pick("轮次", "Round"),
    ]
}

fn status_word(s: ItemState, lang: Lang) -> &'static str {
    match s {
        ItemState::Closed => lang.pick("已完成", "completed"),
        ItemState::Cancelled => lang.pick("已撤销", "cancelled"),
        ItemState::LongTerm => lang.pick("持续推进", "ongoing"),
        ItemState::Draft => "",
        _ => lang.pick("未完成", "not completed"),
    }
}

async fn ledger(app: &App, file: &Path, round: Option<String>) -> CliResult {
    let lang = app.lang;
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    if ext != "xlsx" && ext != "csv" {
        return Err(CliError::bad(
            lang,
            format!("导出文件须以 .xlsx 或 .csv 结尾:{}", file.display()),
            format!(
                "the export file must end in .xlsx or .csv: {}",
                file.display()
            ),
        ));
    }
    let store = app.open().await?;
    if let Some(r) = &round {
        store.find_round(r).await.lang(lang)?;
    }
    let items = store
        .list_items(&ItemFilter {
            round: round.clone(),
            ..ItemFilter::default()
        })
        .await
        .lang(lang)?;
    let rows = ledger_rows(app, &store, &items).await?;
    let mut headers: Vec<String> = COLUMNS.iter().map(|c| c.header(lang).to_string()).collect();
    headers.extend(extra_headers(lang).iter().map(|s| s.to_string()));
    let written = if ext == "xlsx" {
        write_xlsx(file, &headers, &rows, lang).map_err(|e| e.to_string())
    } else {
        write_csv(file, &headers, &rows).map_err(|e| e.to_string())
    };
    written.map_err(|e| {
        CliError::system(match lang {
            Lang::Zh => format!("无法写入 {}:{e}", file.display()),
            Lang::En => format!("cannot write {}: {e}", file.display()),
        })
    })?;
    if app.json() {
        println!(
            "{}",
            json!({ "file": file.display().to_string(), "rows": rows.len(), "round": round })
        );
    } else {
        match lang {
            Lang::Zh => println!("已导出 {} 个事项到 {}", rows.len(), file.display()),
            Lang::En => println!("exported {} item(s) to {}", rows.len(), file.display()),
        }
    }
    Ok(())
}

/// One text row per item, in [`COLUMNS`] order then the extra columns.
async fn ledger_rows(app: &App, store: &Store, items: &[Item]) -> CliResult<Vec<Vec<String>>> {
    let lang = app.lang;
    let units: HashMap<String, String> = store
        .list_units()
        .await
        .lang(lang)?
        .into_iter()
        .map(|u| (u.code, u.name))
        .collect();
    let unit_name = |c: &String| units.get(c).cloned().unwrap_or_else(|| c.clone());
    let by_id: HashMap<ItemId, &Item> = items.iter().map(|i| (i.id, i)).collect();
    let cal = crate::commands::calendar_for(app);
    let policy = light_policy(app);
    let tz = app.tz;
    let local =
        move |t: chrono::DateTime<chrono::Utc>| -> NaiveDate { t.with_timezone(&tz).date_naive() };
    let today = app.today();
    let mut rows = Vec::with_capacity(items.len());
    for (depth, item) in tree_order(items) {
        // The chain of ancestors, root first.
        let mut chain: Vec<&Item> = vec![item];
        let mut cur = item;
        while let Some(p) = cur.parent_id.and_then(|p| by_id.get(&p)) {
            chain.insert(0, p);
            cur = p;
        }
        let (category, problem, measure) = match depth {
            0 => (item.title.clone(), String::new(), String::new()),
            1 => (chain[0].title.clone(), item.title.clone(), String::new()),
            _ => (
                chain[0].title.clone(),
                chain[chain.len() - 2].title.clone(),
                item.title.clone(),
            ),
        };
        let parent_number = item
            .parent_id
            .and_then(|p| by_id.get(&p))
            .map(|p| p.number.clone())
            .unwrap_or_default();
        let l = light(item, today, &cal, &policy, &local);
        let date = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| local(t).format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        let mut row = Vec::with_capacity(COLUMNS.len() + 4);
        for c in COLUMNS {
            row.push(match c {
                Column::Number => item.number.clone(),
                Column::Parent => parent_number.clone(),
                Column::Category => category.clone(),
                Column::Problem => problem.clone(),
                Column::Measure => measure.clone(),
                Column::Leader => item.leader.clone().unwrap_or_default(),
                Column::LeadUnit => item.lead_unit.as_ref().map(unit_name).unwrap_or_default(),
                Column::CoUnits => item
                    .co_units
                    .iter()
                    .map(unit_name)
                    .collect::<Vec<_>>()
                    .join("、"),
                Column::Deadline => item.deadline.map(|d| d.label(Lang::Zh)).unwrap_or_default(),
                Column::Progress => item.last_progress.clone().unwrap_or_default(),
                Column::Status => status_word(item.state, lang).to_string(),
                Column::ClosedOn => date(item.closed_at),
                Column::State => item.state.label(Lang::Zh).to_string(),
                Column::Cadence => item
                    .cadence
                    .map(|c| c.label(Lang::Zh).to_string())
                    .unwrap_or_default(),
                Column::Goal | Column::Contact | Column::Evidence => String::new(),
            });
        }
        row.push(l.map(|l| l.label(lang).to_string()).unwrap_or_default());
        row.push(date(item.assigned_at));
        row.push(date(item.submitted_at));
        row.push(item.round.clone());
        rows.push(row);
    }
    Ok(rows)
}

fn write_csv(file: &Path, headers: &[String], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut buf: Vec<u8> = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        w.write_record(headers)?;
        for r in rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    std::fs::write(file, buf)
}

fn write_xlsx(
    file: &Path,
    headers: &[String],
    rows: &[Vec<String>],
    lang: Lang,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet();
    sheet.set_name(lang.pick("整改台账", "Ledger"))?;
    let bold = Format::new().set_bold().set_text_wrap();
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, h, &bold)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                sheet.write_string(r as u32 + 1, c as u16, v)?;
            }
        }
    }
    for (c, w) in [
        8, 8, 24, 30, 12, 40, 10, 16, 16, 10, 12, 30, 10, 12, 12, 10, 8, 6, 12, 12, 12,
    ]
    .iter()
    .enumerate()
    {
        sheet.set_column_width(c as u16, *w)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    wb.save(file)
}
