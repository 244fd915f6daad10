//! `rectify report`: totals per round, units ranked, the item tree by category, the red list of
//! overdue items and a burn-down of open items, as Markdown, a self-contained HTML page or an
//! .xlsx workbook (one sheet per section); `--format json` prints the figures.
//!
//! `--as-of DATE` reports the state at the end of that day by replaying the recorded events
//! (`rectify_engine::replay`), not today's rows.
//!
//! What the figures mean (also in docs/import-export.md):
//! * items: assigned items (not drafts, not cancelled). They split into closed, long-term
//!   (state long-term, or an open item whose deadline is 长期坚持), overdue (assigned or in
//!   progress, past the deadline) and in progress (the rest). Completion rate = closed / items.
//! * per unit (lead unit): assigned, closed, overdue, send-backs, on-time rate = items closed on
//!   or before their deadline / items closed. Ranked by completion rate, then fewer overdue,
//!   then on-time rate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use clap::{Args, ValueEnum};
use rectify_engine::light::light;
use rectify_engine::replay::{Recorded, replay};
use rectify_engine::{Deadline, Item, ItemState, Lang, Light};
use rectify_schema::{EventRow, ItemFilter};
use serde::Serialize;
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, CliResult, InLang};
use crate::export::{light_policy, tree_order};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Only this round (default: every round).
    #[arg(long, value_name = "CODE")]
    pub round: Option<String>,
    /// Report the state at the end of this past day, replayed from the record.
    #[arg(long = "as-of", value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
    /// md, html or xlsx (default: from the -o file's extension, else md). The global --format
    /// json prints the figures as JSON instead.
    #[arg(long = "output-format", value_enum, value_name = "md|html|xlsx")]
    pub output_format: Option<ReportFormat>,
    /// Write to this file (default: standard output; needed for xlsx).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
    Xlsx,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub round: String,
    pub title: String,
    pub items: usize,
    pub closed: usize,
    pub long_term: usize,
    pub in_progress: usize,
    pub overdue: usize,
    pub drafts: usize,
    pub cancelled: usize,
    /// closed / items, in percent with one decimal; `None` without items.
    pub completion_rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnitRow {
    pub rank: usize,
    pub code: String,
    pub name: String,
    pub assigned: usize,
    pub closed: usize,
    pub overdue: usize,
    pub send_backs: i64,
    pub completion_rate: Option<f64>,
    pub on_time_rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TreeRow {
    pub depth: usize,
    pub id: i64,
    pub round: String,
    pub number: String,
    pub title: String,
    pub state: ItemState,
    pub light: Option<Light>,
    pub lead_unit: Option<String>,
    pub deadline: Option<String>,
    pub last_progress: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RedRow {
    pub id: i64,
    pub round: String,
    pub number: String,
    pub title: String,
    pub lead_unit: Option<String>,
    pub leader: Option<String>,
    pub deadline: NaiveDate,
    pub days_overdue: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub as_of: NaiveDate,
    pub replayed: bool,
    pub rounds: Vec<Totals>,
    pub total: Totals,
    pub units: Vec<UnitRow>,
    pub tree: Vec<TreeRow>,
    pub red_list: Vec<RedRow>,
    /// Open assigned items at the end of each day.
    pub burndown: Vec<(NaiveDate, usize)>,
}

fn rate(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| (n as f64 * 1000.0 / d as f64).round() / 10.0)
}

fn overdue_days(i: &Item, as_of: NaiveDate) -> Option<i64> {
    match (i.state, i.deadline) {
        (ItemState::Assigned | ItemState::InProgress, Some(Deadline::Date(d))) if d < as_of => {
            Some((as_of - d).num_days())
        }
        _ => None,
    }
}

fn tracked(i: &Item) -> bool {
    !matches!(i.state, ItemState::Draft | ItemState::Cancelled)
}

fn totals(code: &str, title: &str, items: &[&Item], as_of: NaiveDate) -> Totals {
    let mut t = Totals {
        round: code.to_string(),
        title: title.to_string(),
        ..Totals::default()
    };
    for i in items {
        match i.state {
            ItemState::Draft => t.drafts += 1,
            ItemState::Cancelled => t.cancelled += 1,
            ItemState::Closed => t.closed += 1,
            ItemState::LongTerm => t.long_term += 1,
            _ if i.deadline == Some(Deadline::LongTerm) => t.long_term += 1,
            _ if overdue_days(i, as_of).is_some() => t.overdue += 1,
            _ => t.in_progress += 1,
        }
    }
    t.items = t.closed + t.long_term + t.overdue + t.in_progress;
    t.completion_rate = rate(t.closed, t.items);
    t
}

/// The end of `day` in the office's time zone, as a UTC moment.
fn end_of_day(app: &App, day: NaiveDate) -> DateTime<Utc> {
    let next = day
        .succ_opt()
        .unwrap_or(day)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let local = app
        .tz
        .from_local_datetime(&next)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&next));
    local - Duration::microseconds(1)
}

pub async fn run(app: &App, args: ReportArgs) -> CliResult {
    let lang = app.lang;
    let format = match (args.output_format, &args.output) {
        (Some(f), _) => f,
        (None, Some(p)) => match p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("html") | Some("htm") => ReportFormat::Html,
            Some("xlsx") => ReportFormat::Xlsx,
            _ => ReportFormat::Md,
        },
        (None, None) => ReportFormat::Md,
    };
    if format == ReportFormat::Xlsx && args.output.is_none() && !app.json() {
        return Err(CliError::bad(
            lang,
            "xlsx 格式须用 -o 文件名.xlsx 指定输出文件",
            "xlsx needs an output file: -o FILE.xlsx",
        ));
    }
    let as_of = match &args.as_of {
        Some(s) => {
            let d = rectify_engine::model::parse_cli_date(s).map_err(|en| {
                CliError::bad(
                    lang,
                    format!("“{s}”不是有效日期;请写成 YYYY-MM-DD,例如 2026-03-31"),
                    en,
                )
            })?;
            if d > app.today() {
                return Err(CliError::bad(
                    lang,
                    format!("--as-of {d} 晚于今天 {};只能查看过去的状态", app.today()),
                    format!(
                        "--as-of {d} is after today ({}); only the past can be reported",
                        app.today()
                    ),
                ));
            }
            Some(d)
        }
        None => None,
    };
    let figures = figures(app, args.round.as_deref(), as_of).await?;
    if app.json() {
        println!("{}", json!(figures));
        return Ok(());
    }
    let units = unit_names(app).await?;
    let written = match format {
        ReportFormat::Md => Output::Text(markdown(&figures, &units, lang)),
        ReportFormat::Html => Output::Text(html(&figures, &units, lang)),
        ReportFormat::Xlsx => Output::Xlsx,
    };
    match (written, &args.output) {
        (Output::Text(s), None) => print!("{s}"),
        (Output::Text(s), Some(p)) => std::fs::write(p, s).map_err(|e| write_error(lang, p, e))?,
        (Output::Xlsx, Some(p)) => {
            xlsx(&figures, &units, lang, p).map_err(|e| write_error(lang, p, e))?
        }
        (Output::Xlsx, None) => {}
    }
    if let Some(p) = &args.output {
        match lang {
            Lang::Zh => println!("报告已写入 {}", p.display()),
            Lang::En => println!("report written to {}", p.display()),
        }
    }
    Ok(())
}

enum Output {
    Text(String),
    Xlsx,
}

fn write_error(lang: Lang, p: &std::path::Path, e: impl std::fmt::Display) -> CliError {
    CliError::system(match lang {
        Lang::Zh => format!("无法写入 {}:{e}", p.display()),
        Lang::En => format!("cannot write {}: {e}", p.display()),
    })
}

async fn unit_names(app: &App) -> CliResult<HashMap<String, String>> {
    let store = app.open().await?;
    Ok(store
        .list_units()
        .await
        .lang(app.lang)?
        .into_iter()
        .map(|u| (u.code, u.name))
        .collect())
}

/// Computes every figure of the report.
pub async fn figures(
    app: &App,
    round: Option<&str>,
    as_of: Option<NaiveDate>,
) -> CliResult<Figures> {
    let lang = app.lang;
    let store = app.open().await?;
    let mut rounds = store.list_rounds().await.lang(lang)?;
    if let Some(r) = round {
        store.find_round(r).await.lang(lang)?;
        rounds.retain(|x| x.code == r);
    }
    let day = as_of.unwrap_or_else(|| app.today());
    let cutoff = match as_of {
        Some(d) => end_of_day(app, d),
        None => app.now,
    };
    let items: Vec<Item> = match as_of {
        None => store
            .list_items(&ItemFilter {
                round: round.map(str::to_string),
                ..ItemFilter::default()
            })
            .await
            .lang(lang)?,
        Some(_) => {
            // The whole record, only when the past is replayed.
            let events = store.round_events(round).await.lang(lang)?;
            let mut by_item: BTreeMap<i64, Vec<&EventRow>> = BTreeMap::new();
            for e in &events {
                by_item.entry(e.item_id).or_default().push(e);
            }
            let mut out = Vec::new();
            for (id, evs) in &by_item {
                let rec: Vec<Recorded> = evs
                    .iter()
                    .map(|e| Recorded {
                        kind: &e.kind,
                        actor: &e.actor,
                        at: e.at,
                        payload: &e.payload,
                    })
                    .collect();
                let replayed = replay(*id, &rec, cutoff).map_err(|e| {
                    CliError::system(format!(
                        "{}{id}: {e}",
                        lang.pick("无法重放事项记录 ", "cannot replay the record of item ")
                    ))
                })?;
                out.extend(replayed);
            }
            out
        }
    };
    let cal = crate::commands::calendar_for(app);
    let policy = light_policy(app);
    let tz = app.tz;
    let local = move |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();

    let round_totals: Vec<Totals> = rounds
        .iter()
        .map(|r| {
            let of: Vec<&Item> = items.iter().filter(|i| i.round == r.code).collect();
            totals(&r.code, &r.title, &of, day)
        })
        .collect();
    let all: Vec<&Item> = items.iter().collect();
    let total = totals("", lang.pick("合计", "Total"), &all, day);

    // Units.
    let mut per_unit: BTreeMap<String, (usize, usize, usize, i64, usize)> = BTreeMap::new();
    for i in items.iter().filter(|i| tracked(i)) {
        let Some(u) = &i.lead_unit else { continue };
        let e = per_unit.entry(u.clone()).or_default();
        e.0 += 1;
        e.3 += i.send_backs;
        if i.state == ItemState::Closed {
            e.1 += 1;
            let on_time = match (i.deadline, i.closed_at) {
                (Some(Deadline::Date(d)), Some(at)) => local(at) <= d,
                _ => true,
            };
            if on_time {
                e.4 += 1;
            }
        }
        if overdue_days(i, day).is_some() {
            e.2 += 1;
        }
    }
    let mut units: Vec<UnitRow> = per_unit
        .into_iter()
        .map(
            |(code, (assigned, closed, overdue, send_backs, on_time))| UnitRow {
                rank: 0,
                name: String::new(),
                code,
                assigned,
                closed,
                overdue,
                send_backs,
                completion_rate: rate(closed, assigned),
                on_time_rate: rate(on_time, closed),
            },
        )
        .collect();
    units.sort_by(|a, b| {
        let r = |x: Option<f64>| x.unwrap_or(-1.0);
        r(b.completion_rate)
            .total_cmp(&r(a.completion_rate))
            .then(a.overdue.cmp(&b.overdue))
            .then(r(b.on_time_rate).total_cmp(&r(a.on_time_rate)))
            .then(a.code.cmp(&b.code))
    });
    for (k, u) in units.iter_mut().enumerate() {
        u.rank = k + 1;
    }

    let mut red_list: Vec<RedRow> = items
        .iter()
        .filter_map(|i| {
            let days = overdue_days(i, day)?;
            Some(RedRow {
                id: i.id,
                round: i.round.clone(),
                number: i.number.clone(),
                title: i.title.clone(),
                lead_unit: i.lead_unit.clone(),
                leader: i.leader.clone(),
                deadline: i.deadline.and_then(|d| d.date())?,
                days_overdue: days,
            })
        })
        .collect();
    red_list.sort_by(|a, b| b.days_overdue.cmp(&a.days_overdue).then(a.id.cmp(&b.id)));

    // The tree, by category. The items are moved into its rows (the largest part of the report's
    // memory is the items' text; it is not copied).
    let order: Vec<(usize, i64, Option<Light>)> = tree_order(&items)
        .into_iter()
        .map(|(depth, i)| (depth, i.id, light(i, day, &cal, &policy, &local)))
        .collect();
    let mut by_id: HashMap<i64, Item> = items.into_iter().map(|i| (i.id, i)).collect();
    let tree: Vec<TreeRow> = order
        .into_iter()
        .filter_map(|(depth, id, light)| {
            let i = by_id.remove(&id)?;
            Some(TreeRow {
                depth,
                id,
                round: i.round,
                number: i.number,
                title: i.title,
                state: i.state,
                light,
                lead_unit: i.lead_unit,
                deadline: i.deadline.map(|d| d.label(lang)),
                last_progress: i.last_progress,
            })
        })
        .collect();
    drop(by_id);

    // Burn-down: open assigned items at the end of each day, from the record.
    let mut delta: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let transitions = store.round_transitions(round).await.lang(lang)?;
    let mut current: Option<i64> = None;
    let mut open = false;
    for (item, kind, at) in transitions.iter().filter(|(_, _, at)| *at <= cutoff) {
        if current != Some(*item) {
            current = Some(*item);
            open = false;
        }
        let now_open = matches!(kind.as_str(), "assigned" | "reopened");
        if now_open != open {
            *delta.entry(local(*at)).or_default() += if now_open { 1 } else { -1 };
            open = now_open;
        }
    }
    let mut burndown = Vec::new();
    if let Some(first) = delta.keys().next().copied() {
        let start = first.max(day - Duration::days(365));
        let mut open: i64 = delta.range(..start).map(|(_, v)| v).sum();
        let mut d = start;
        while d <= day {
            open += delta.get(&d).copied().unwrap_or(0);
            burndown.push((d, open.max(0) as usize));
            d = match d.succ_opt() {
                Some(n) => n,
                None => break,
            };
        }
    }

    Ok(Figures {
        as_of: day,
        replayed: as_of.is_some(),
        rounds: round_totals,
        total,
        units,
        tree,
        red_list,
        burndown,
    })
}

fn pct(r: Option<f64>) -> String {
    r.map(|v| format!("{v:.1}%")).unwrap_or_else(|| "-".into())
}

fn name_of(units: &HashMap<String, String>, code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| units.get(c).cloned().unwrap_or_else(|| c.clone()))
        .unwrap_or_else(|| "-".into())
}

/// The sections as plain tables: (title, headers, rows). Shared by every output format.
fn sections(
    f: &Figures,
    units: &HashMap<String, String>,
    lang: Lang,
) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let h = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(z, e)| lang.pick(z, e).to_string())
            .collect::<Vec<_>>()
    };
    let totals_rows: Vec<Vec<String>> = f
        .rounds
        .iter()
        .chain(std::iter::once(&f.total))
        .map(|t| {
            vec![
                if t.round.is_empty() {
                    t.title.clone()
                } else {
                    format!("{} {}", t.round, t.title)
                },
                t.items.to_string(),
                t.closed.to_string(),
                t.long_term.to_string(),
                t.in_progress.to_string(),
                t.overdue.to_string(),
                pct(t.completion_rate),
                t.drafts.to_string(),
            ]
        })
        .collect();
    let unit_rows = f
        .units
        .iter()
        .map(|u| {
            vec![
                u.rank.to_string(),
                units
                    .get(&u.code)
                    .cloned()
                    .unwrap_or_else(|| u.code.clone()),
                u.assigned.to_string(),
                u.closed.to_string(),
                u.overdue.to_string(),
                u.send_backs.to_string(),
                pct(u.completion_rate),
                pct(u.on_time_rate),
            ]
        })
        .collect();
    let tree_rows = f
        .tree
        .iter()
        .map(|t| {
            vec![
                format!("{}{}", "  ".repeat(t.depth), t.number),
                t.title.clone(),
                t.state.label(lang).to_string(),
                t.light
                    .map(|l| l.label(lang).to_string())
                    .unwrap_or_else(|| "-".into()),
                name_of(units, &t.lead_unit),
                t.deadline.clone().unwrap_or_else(|| "-".into()),
                t.last_progress.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let red_rows = f
        .red_list
        .iter()
        .map(|r| {
            vec![
                r.number.clone(),
                r.title.clone(),
                name_of(units, &r.lead_unit),
                r.leader.clone().unwrap_or_else(|| "-".into()),
                r.deadline.format("%Y-%m-%d").to_string(),
                r.days_overdue.to_string(),
            ]
        })
        .collect();
    let burn_rows = f
        .burndown
        .iter()
        .map(|(d, n)| vec![d.format("%Y-%m-%d").to_string(), n.to_string()])
        .collect();
    vec![
        (
            lang.pick("总体情况", "Totals").to_string(),
            h(&[
                ("轮次", "Round"),
                ("事项", "Items"),
                ("已销号", "Closed"),
                ("长期坚持", "Long-term"),
                ("推进中", "In progress"),
                ("逾期", "Overdue"),
                ("完成率", "Completion"),
                ("待交办", "Drafts"),
            ]),
            totals_rows,
        ),
        (
            lang.pick("单位排名", "Units ranked").to_string(),
            h(&[
                ("名次", "Rank"),
                ("单位", "Unit"),
                ("交办", "Assigned"),
                ("已销号", "Closed"),
                ("逾期", "Overdue"),
                ("退回", "Send-backs"),
                ("完成率", "Completion"),
                ("按时率", "On time"),
            ]),
            unit_rows,
        ),
        (
            lang.pick("事项清单", "Items").to_string(),
            h(&[
                ("编号", "No."),
                ("事项", "Item"),
                ("状态", "State"),
                ("亮灯", "Light"),
                ("牵头单位", "Lead unit"),
                ("完成时限", "Deadline"),
                ("最新进展", "Latest progress"),
            ]),
            tree_rows,
        ),
        (
            lang.pick("逾期红榜", "Overdue (red list)").to_string(),
            h(&[
                ("编号", "No."),
                ("事项", "Item"),
                ("牵头单位", "Lead unit"),
                ("责任领导", "Leader"),
                ("完成时限", "Deadline"),
                ("逾期天数", "Days overdue"),
            ]),
            red_rows,
        ),
        (
            lang.pick("未办结事项趋势", "Open items over time")
                .to_string(),
            h(&[("日期", "Date"), ("未办结", "Open")]),
            burn_rows,
        ),
    ]
}

fn heading(f: &Figures, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!(
            "整改进展报告(截至 {}{})",
            f.as_of,
            if f.replayed {
                ",依据记录回放"
            } else {
                ""
            }
        ),
        Lang::En => format!(
            "Rectification progress report (as of {}{})",
            f.as_of,
            if f.replayed {
                ", replayed from the record"
            } else {
                ""
            }
        ),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(f: &Figures, units: &HashMap<String, String>, lang: Lang) -> String {
    let mut out = format!("# {}\n", heading(f, lang));
    for (title, headers, rows) in sections(f, units, lang) {
        out.push_str(&format!("\n## {title}\n\n"));
        if rows.is_empty() {
            out.push_str(lang.pick("(无)\n", "(none)\n"));
            continue;
        }
        out.push_str(&format!("| {} |\n", headers.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(headers.len())));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar per group of items (closed, in progress, long-term, overdue).
fn status_svg(t: &Totals, lang: Lang) -> String {
    let bars = [
        (lang.pick("已销号", "Closed"), t.closed, "#2e7d32"),
        (lang.pick("推进中", "In progress"), t.in_progress, "#1565c0"),
        (lang.pick("长期坚持", "Long-term"), t.long_term, "#f9a825"),
        (lang.pick("逾期", "Overdue"), t.overdue, "#c62828"),
    ];
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let mut s = String::from("<svg width=\"520\" height=\"140\" role=\"img\">");
    for (k, (label, n, color)) in bars.iter().enumerate() {
        let y = 10 + k * 30;
        let w = (*n as f64 / max as f64 * 340.0).round() as usize;
        s.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"90\" y=\"{y}\" width=\"{w}\" height=\"20\" fill=\"{color}\"></rect><text x=\"{}\" y=\"{}\" font-size=\"13\">{n}</text>",
            y + 15,
            esc(label),
            95 + w,
            y + 15
        ));
    }
    s.push_str("</svg>");
    s
}

/// A line of open items per day.
fn burndown_svg(points: &[(NaiveDate, usize)]) -> String {
    let (w, h, pad) = (600.0, 200.0, 30.0);
    let mut s = format!("<svg width=\"{w}\" height=\"{h}\" role=\"img\">");
    if points.is_empty() {
        s.push_str("</svg>");
        return s;
    }
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = (points.len().max(2) - 1) as f64;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let x = pad + i as f64 / n * (w - 2.0 * pad);
            let y = h - pad - *v as f64 / max * (h - 2.0 * pad);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    s.push_str(&format!(
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#999\"></line><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"#999\"></line>",
        h - pad,
        w - pad
    ));
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#c62828\" stroke-width=\"2\" points=\"{}\"></polyline>",
        coords.join(" ")
    ));
    let first = points[0].0.format("%Y-%m-%d");
    let last = points[points.len() - 1].0.format("%Y-%m-%d");
    s.push_str(&format!(
        "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{first}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last}</text><text x=\"2\" y=\"{}\" font-size=\"11\">{}</text>",
        h - 10.0,
        w - pad,
        h - 10.0,
        pad,
        max as usize
    ));
    s.push_str("</svg>");
    s
}

pub fn html(f: &Figures, units: &HashMap<String, String>, lang: Lang) -> String {
    let title = esc(&heading(f, lang));
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{title}</title>\n<style>\nbody{{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:2em;color:#222}}\ntable{{border-collapse:collapse;margin:0.5em 0 1.5em;width:100%}}\nth,td{{border:1px solid #bbb;padding:4px 6px;font-size:13px;text-align:left;vertical-align:top}}\nth{{background:#eee}}\n.red{{color:#c62828;font-weight:bold}}\n@media print{{body{{margin:0}} h2{{page-break-before:auto}} tr{{page-break-inside:avoid}}}}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
        if lang == Lang::Zh { "zh-CN" } else { "en" }
    );
    out.push_str(&format!(
        "<h2>{}</h2>\n<div>{}</div>\n",
        esc(lang.pick("事项状态", "Items by status")),
        status_svg(&f.total, lang)
    ));
    for (k, (sec, headers, rows)) in sections(f, units, lang).into_iter().enumerate() {
        if k == 4 {
            out.push_str(&format!(
                "<h2>{}</h2>\n<div>{}</div>\n",
                esc(&sec),
                burndown_svg(&f.burndown)
            ));
            continue;
        }
        out.push_str(&format!("<h2>{}</h2>\n", esc(&sec)));
        if rows.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", lang.pick("(无)", "(none)")));
            continue;
        }
        out.push_str("<table>\n<thead><tr>");
        for h in &headers {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in rows {
            out.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let cls = if k == 3 && i == 5 {
                    " class=\"red\""
                } else {
                    ""
                };
                // Keep the tree's indentation visible.
                let text = esc(c).replace("  ", "&#160;&#160;");
                out.push_str(&format!("<td{cls}>{text}</td>"));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn xlsx(
    f: &Figures,
    units: &HashMap<String, String>,
    lang: Lang,
    path: &std::path::Path,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for (title, headers, rows) in sections(f, units, lang) {
        let ws = wb.add_worksheet();
        ws.set_name(&title)?;
        for (c, h) in headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)?;
            ws.set_column_width(c as u16, if c == 1 { 40 } else { 14 })?;
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                // Counts as numbers, so the office can sum them; the first column stays text.
                let numeric = c > 0 && !v.is_empty() && v.chars().all(|ch| ch.is_ascii_digit());
                match v.parse::<f64>() {
                    Ok(n) if numeric => ws.write_number(r as u32 + 1, c as u16, n)?,
                    _ => ws.write_string(r as u32 + 1, c as u16, v)?,
                };
            }
        }
    }
    wb.save(path)
}
