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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use clap::{Args, ValueEnum};
use rectify_engine::light::light;
use rectify_engine::replay::{Recorded, replay};
use rectify_engine::{Deadline, Item, ItemId, ItemState, Lang, Light};
use rectify_schema::EventRow;
use serde::{Serialize, Serializer};
use serde_json::json;

use crate::app::App;
use crate::error::{CliError, CliResult, InLang};
use crate::export::{light_policy, tree_order_by};

/// Items read from the store per page: a page is folded into the figures before the next is
/// read, so the round is never held in the store's form.
const PAGE: u64 = 2_000;

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

/// A piece of [`Tree::text`].
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
}

/// One row of the tree, its text kept in the tree's buffer.
#[derive(Clone, Copy, Debug)]
struct TreeEntry {
    depth: usize,
    id: ItemId,
    parent_id: Option<ItemId>,
    /// Index into [`Tree::names`].
    round: usize,
    /// Index into [`Tree::names`].
    lead_unit: Option<usize>,
    number: Span,
    title: Span,
    last_progress: Option<Span>,
    state: ItemState,
    light: Option<Light>,
    deadline: Option<Deadline>,
}

/// The item tree by category, in tree order. A round holds over 100,000 items: as separate
/// strings per row (and again as the cells of the output) the tree was most of the report's
/// memory, so the rows keep their text in one buffer and the round codes and units once each.
/// Serialized as a list of [`TreeRow`], as before.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The language of the deadline labels (长期坚持).
    lang: Lang,
    text: String,
    names: Vec<String>,
    rows: Vec<TreeEntry>,
}

/// One row of the tree, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct TreeRowRef<'a> {
    pub depth: usize,
    pub id: ItemId,
    pub round: &'a str,
    pub number: &'a str,
    pub title: &'a str,
    pub state: ItemState,
    pub light: Option<Light>,
    pub lead_unit: Option<&'a str>,
    deadline: Option<Deadline>,
    lang: Lang,
    pub last_progress: Option<&'a str>,
}

impl TreeRowRef<'_> {
    /// The deadline as shown (a date, or 长期坚持).
    pub fn deadline(&self) -> Option<String> {
        self.deadline.map(|d| d.label(self.lang))
    }
}

impl Tree {
    pub fn iter(&self) -> impl Iterator<Item = TreeRowRef<'_>> + '_ {
        self.rows.iter().map(move |e| {
            let text = |s: Span| self.text.get(s.start..s.end).unwrap_or_default();
            let name = |k: usize| self.names.get(k).map(String::as_str).unwrap_or_default();
            TreeRowRef {
                depth: e.depth,
                id: e.id,
                round: name(e.round),
                number: text(e.number),
                title: text(e.title),
                state: e.state,
                light: e.light,
                lead_unit: e.lead_unit.map(name),
                deadline: e.deadline,
                lang: self.lang,
                last_progress: e.last_progress.map(text),
            }
        })
    }
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|t| TreeRow {
            depth: t.depth,
            id: t.id,
            round: t.round.to_string(),
            number: t.number.to_string(),
            title: t.title.to_string(),
            state: t.state,
            light: t.light,
            lead_unit: t.lead_unit.map(str::to_string),
            deadline: t.deadline(),
            last_progress: t.last_progress.map(str::to_string),
        }))
    }
}

/// The tree while its items are read (in any order).
struct TreeBuilder {
    lang: Lang,
    text: String,
    names: Vec<String>,
    name_index: HashMap<String, usize>,
    rows: Vec<TreeEntry>,
}

impl TreeBuilder {
    fn new(lang: Lang) -> Self {
        TreeBuilder {
            lang,
            text: String::new(),
            names: Vec::new(),
            name_index: HashMap::new(),
            rows: Vec::new(),
        }
    }

    fn span(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn name(&mut self, s: &str) -> usize {
        if let Some(k) = self.name_index.get(s) {
            return *k;
        }
        let k = self.names.len();
        self.names.push(s.to_string());
        self.name_index.insert(s.to_string(), k);
        k
    }

    fn push(&mut self, i: &Item, light: Option<Light>) {
        let entry = TreeEntry {
            depth: 0,
            id: i.id,
            parent_id: i.parent_id,
            round: self.name(&i.round),
            lead_unit: i.lead_unit.as_deref().map(|u| self.name(u)),
            number: self.span(&i.number),
            title: self.span(&i.title),
            last_progress: i.last_progress.as_deref().map(|p| self.span(p)),
            state: i.state,
            light,
            deadline: i.deadline,
        };
        self.rows.push(entry);
    }

    /// The rows in tree order (parents before children, siblings by id), the export's order.
    fn finish(self) -> Tree {
        let rows = tree_order_by(&self.rows, |e| e.id, |e| e.parent_id)
            .into_iter()
            .map(|(depth, e)| TreeEntry { depth, ..*e })
            .collect();
        Tree {
            lang: self.lang,
            text: self.text,
            names: self.names,
            rows,
        }
    }
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
    pub tree: Tree,
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

/// Counts one item into `t` (see [`finish_totals`]).
fn count(t: &mut Totals, i: &Item, as_of: NaiveDate) {
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

/// The totals once every item is counted.
fn finish_totals(mut t: Totals, code: &str, title: &str) -> Totals {
    t.round = code.to_string();
    t.title = title.to_string();
    t.items = t.closed + t.long_term + t.overdue + t.in_progress;
    t.completion_rate = rate(t.closed, t.items);
    t
}

/// Per lead unit: assigned, closed, overdue, send-backs, closed on time.
type UnitCounts = (usize, usize, usize, i64, usize);

/// The figures while the items are read, one at a time, in any order: an item is counted and
/// its tree row kept, and nothing else of it is held.
struct Tally<'a> {
    day: NaiveDate,
    light: &'a (dyn Fn(&Item) -> Option<Light> + Sync),
    local: &'a (dyn Fn(DateTime<Utc>) -> NaiveDate + Sync),
    rounds: HashMap<String, Totals>,
    total: Totals,
    per_unit: BTreeMap<String, UnitCounts>,
    red_list: Vec<RedRow>,
    tree: TreeBuilder,
}

impl Tally<'_> {
    fn add(&mut self, i: &Item) {
        let day = self.day;
        match self.rounds.get_mut(&i.round) {
            Some(t) => count(t, i, day),
            None => {
                let mut t = Totals::default();
                count(&mut t, i, day);
                self.rounds.insert(i.round.clone(), t);
            }
        }
        count(&mut self.total, i, day);

        if tracked(i)
            && let Some(u) = &i.lead_unit
        {
            let e = match self.per_unit.get_mut(u) {
                Some(e) => e,
                None => self.per_unit.entry(u.clone()).or_default(),
            };
            e.0 += 1;
            e.3 += i.send_backs;
            if i.state == ItemState::Closed {
                e.1 += 1;
                let on_time = match (i.deadline, i.closed_at) {
                    (Some(Deadline::Date(d)), Some(at)) => (self.local)(at) <= d,
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

        if let Some(days) = overdue_days(i, day)
            && let Some(deadline) = i.deadline.and_then(|d| d.date())
        {
            self.red_list.push(RedRow {
                id: i.id,
                round: i.round.clone(),
                number: i.number.clone(),
                title: i.title.clone(),
                lead_unit: i.lead_unit.clone(),
                leader: i.leader.clone(),
                deadline,
                days_overdue: days,
            });
        }

        let light = (self.light)(i);
        self.tree.push(i, light);
    }
}

/// The burn-down's day-by-day changes, from the transitions of the items in item order.
#[derive(Default)]
struct BurnDown {
    delta: BTreeMap<NaiveDate, i64>,
    current: Option<ItemId>,
    open: bool,
}

impl BurnDown {
    fn add(
        &mut self,
        (item, kind, at): &(ItemId, String, DateTime<Utc>),
        cutoff: DateTime<Utc>,
        local: &dyn Fn(DateTime<Utc>) -> NaiveDate,
    ) {
        if *at > cutoff {
            return;
        }
        if self.current != Some(*item) {
            self.current = Some(*item);
            self.open = false;
        }
        let now_open = matches!(kind.as_str(), "assigned" | "reopened");
        if now_open != self.open {
            *self.delta.entry(local(*at)).or_default() += if now_open { 1 } else { -1 };
            self.open = now_open;
        }
    }
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
    // Written as it is made, through a buffer: the text of a large round is tens of MB.
    let text = |out: &mut dyn Write| match format {
        ReportFormat::Html => html(&figures, &units, lang, out),
        _ => markdown(&figures, &units, lang, out),
    };
    match (format, &args.output) {
        (ReportFormat::Xlsx, Some(p)) => {
            xlsx(&figures, &units, lang, p).map_err(|e| write_error(lang, p, e))?
        }
        (ReportFormat::Xlsx, None) => {}
        (_, None) => {
            let mut out = BufWriter::new(io::stdout().lock());
            text(&mut out).and_then(|()| out.flush()).map_err(|e| {
                CliError::system(match lang {
                    Lang::Zh => format!("无法写入标准输出:{e}"),
                    Lang::En => format!("cannot write to standard output: {e}"),
                })
            })?;
        }
        (_, Some(p)) => {
            let file = std::fs::File::create(p).map_err(|e| write_error(lang, p, e))?;
            let mut out = BufWriter::with_capacity(1 << 16, file);
            text(&mut out)
                .and_then(|()| out.flush())
                .map_err(|e| write_error(lang, p, e))?;
        }
    }
    if let Some(p) = &args.output {
        match lang {
            Lang::Zh => println!("报告已写入 {}", p.display()),
            Lang::En => println!("report written to {}", p.display()),
        }
    }
    Ok(())
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
    let cal = crate::commands::calendar_for(app);
    let policy = light_policy(app);
    let tz = app.tz;
    let local = move |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let light_of = |i: &Item| light(i, day, &cal, &policy, &local);
    let mut tally = Tally {
        day,
        light: &light_of,
        local: &local,
        rounds: HashMap::new(),
        total: Totals::default(),
        per_unit: BTreeMap::new(),
        red_list: Vec::new(),
        tree: TreeBuilder::new(lang),
    };
    // Burn-down: open assigned items at the end of each day, from the record.
    let mut burn = BurnDown::default();
    match as_of {
        None => {
            // A page of items, then the transitions of the same items, so neither the round's
            // items nor its events are ever read whole.
            let mut after: ItemId = 0;
            loop {
                let page = store
                    .report_items_page(round, after, PAGE)
                    .await
                    .lang(lang)?;
                let Some(last) = page.last().map(|i| i.id) else {
                    break;
                };
                let full = page.len() as u64 == PAGE;
                for i in &page {
                    tally.add(i);
                }
                drop(page);
                for t in store
                    .round_transitions_between(round, after, last)
                    .await
                    .lang(lang)?
                {
                    burn.add(&t, cutoff, &local);
                }
                if !full {
                    break;
                }
                after = last;
            }
        }
        Some(_) => {
            // The whole record, only when the past is replayed.
            let events = store.round_events(round).await.lang(lang)?;
            let mut by_item: BTreeMap<i64, Vec<&EventRow>> = BTreeMap::new();
            for e in &events {
                by_item.entry(e.item_id).or_default().push(e);
            }
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
                if let Some(i) = replayed {
                    tally.add(&i);
                }
            }
            drop(by_item);
            drop(events);
            for t in store
                .round_transitions_between(round, 0, ItemId::MAX)
                .await
                .lang(lang)?
            {
                burn.add(&t, cutoff, &local);
            }
        }
    }
    let Tally {
        rounds: mut round_counts,
        total,
        per_unit,
        mut red_list,
        tree,
        ..
    } = tally;

    let round_totals: Vec<Totals> = rounds
        .iter()
        .map(|r| {
            let t = round_counts.remove(&r.code).unwrap_or_default();
            finish_totals(t, &r.code, &r.title)
        })
        .collect();
    let total = finish_totals(total, "", lang.pick("合计", "Total"));

    // Units.
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

    red_list.sort_by(|a, b| b.days_overdue.cmp(&a.days_overdue).then(a.id.cmp(&b.id)));
    let tree = tree.finish();

    let delta = burn.delta;
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

fn name_of<'a>(units: &'a HashMap<String, String>, code: Option<&'a str>) -> Cow<'a, str> {
    Cow::Borrowed(
        code.map(|c| units.get(c).map(String::as_str).unwrap_or(c))
            .unwrap_or("-"),
    )
}

/// The cells of one table row.
type Cells<'a> = Vec<Cow<'a, str>>;

/// One section as a plain table. The rows are made one at a time as they are written: the
/// item list of a large round would otherwise be held a second time as cells.
struct Section<'a> {
    title: String,
    headers: Vec<String>,
    len: usize,
    rows: Box<dyn Iterator<Item = Cells<'a>> + 'a>,
}

/// The sections as plain tables. Shared by every output format.
fn sections<'a>(
    f: &'a Figures,
    units: &'a HashMap<String, String>,
    lang: Lang,
) -> Vec<Section<'a>> {
    let h = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(z, e)| lang.pick(z, e).to_string())
            .collect::<Vec<_>>()
    };
    let totals_rows: Vec<Cells<'a>> = f
        .rounds
        .iter()
        .chain(std::iter::once(&f.total))
        .map(|t| {
            vec![
                if t.round.is_empty() {
                    Cow::Borrowed(t.title.as_str())
                } else {
                    Cow::Owned(format!("{} {}", t.round, t.title))
                },
                t.items.to_string().into(),
                t.closed.to_string().into(),
                t.long_term.to_string().into(),
                t.in_progress.to_string().into(),
                t.overdue.to_string().into(),
                pct(t.completion_rate).into(),
                t.drafts.to_string().into(),
            ]
        })
        .collect();
    let unit_rows = f.units.iter().map(move |u| -> Cells<'a> {
        vec![
            u.rank.to_string().into(),
            name_of(units, Some(&u.code)),
            u.assigned.to_string().into(),
            u.closed.to_string().into(),
            u.overdue.to_string().into(),
            u.send_backs.to_string().into(),
            pct(u.completion_rate).into(),
            pct(u.on_time_rate).into(),
        ]
    });
    let tree_rows = f.tree.iter().map(move |t| -> Cells<'a> {
        vec![
            if t.depth == 0 {
                Cow::Borrowed(t.number)
            } else {
                Cow::Owned(format!("{}{}", "  ".repeat(t.depth), t.number))
            },
            t.title.into(),
            t.state.label(lang).into(),
            t.light.map(|l| l.label(lang)).unwrap_or("-").into(),
            name_of(units, t.lead_unit),
            t.deadline().map(Cow::Owned).unwrap_or(Cow::Borrowed("-")),
            t.last_progress.unwrap_or_default().into(),
        ]
    });
    let red_rows = f.red_list.iter().map(move |r| -> Cells<'a> {
        vec![
            r.number.as_str().into(),
            r.title.as_str().into(),
            name_of(units, r.lead_unit.as_deref()),
            r.leader.as_deref().unwrap_or("-").into(),
            r.deadline.format("%Y-%m-%d").to_string().into(),
            r.days_overdue.to_string().into(),
        ]
    });
    let burn_rows = f.burndown.iter().map(|(d, n)| -> Cells<'a> {
        vec![
            d.format("%Y-%m-%d").to_string().into(),
            n.to_string().into(),
        ]
    });
    let section = |title: &str,
                   headers: Vec<String>,
                   len: usize,
                   rows: Box<dyn Iterator<Item = Cells<'a>> + 'a>| Section {
        title: title.to_string(),
        headers,
        len,
        rows,
    };
    let totals_len = totals_rows.len();
    vec![
        section(
            lang.pick("总体情况", "Totals"),
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
            totals_len,
            Box::new(totals_rows.into_iter()),
        ),
        section(
            lang.pick("单位排名", "Units ranked"),
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
            f.units.len(),
            Box::new(unit_rows),
        ),
        section(
            lang.pick("事项清单", "Items"),
            h(&[
                ("编号", "No."),
                ("事项", "Item"),
                ("状态", "State"),
                ("亮灯", "Light"),
                ("牵头单位", "Lead unit"),
                ("完成时限", "Deadline"),
                ("最新进展", "Latest progress"),
            ]),
            f.tree.rows.len(),
            Box::new(tree_rows),
        ),
        section(
            lang.pick("逾期红榜", "Overdue (red list)"),
            h(&[
                ("编号", "No."),
                ("事项", "Item"),
                ("牵头单位", "Lead unit"),
                ("责任领导", "Leader"),
                ("完成时限", "Deadline"),
                ("逾期天数", "Days overdue"),
            ]),
            f.red_list.len(),
            Box::new(red_rows),
        ),
        section(
            lang.pick("未办结事项趋势", "Open items over time"),
            h(&[("日期", "Date"), ("未办结", "Open")]),
            f.burndown.len(),
            Box::new(burn_rows),
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

/// Writes `s` as a Markdown table cell: `|` escaped, line breaks as spaces.
fn write_md_cell(out: &mut dyn Write, s: &str) -> io::Result<()> {
    let b = s.as_bytes();
    let mut start = 0;
    for (k, c) in b.iter().enumerate() {
        // Both are ASCII, so a match is never inside a multi-byte character.
        let with: &[u8] = match c {
            b'|' => b"\\|",
            b'\n' => b" ",
            _ => continue,
        };
        out.write_all(&b[start..k])?;
        out.write_all(with)?;
        start = k + 1;
    }
    out.write_all(&b[start..])
}

pub fn markdown(
    f: &Figures,
    units: &HashMap<String, String>,
    lang: Lang,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "# {}", heading(f, lang))?;
    for sec in sections(f, units, lang) {
        write!(out, "\n## {}\n\n", sec.title)?;
        if sec.len == 0 {
            out.write_all(lang.pick("(无)\n", "(none)\n").as_bytes())?;
            continue;
        }
        writeln!(out, "| {} |", sec.headers.join(" | "))?;
        writeln!(out, "|{}", " --- |".repeat(sec.headers.len()))?;
        for r in sec.rows {
            out.write_all(b"| ")?;
            for (k, c) in r.iter().enumerate() {
                if k > 0 {
                    out.write_all(b" | ")?;
                }
                write_md_cell(out, c)?;
            }
            out.write_all(b" |\n")?;
        }
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `s` as an HTML table cell: what [`esc`] escapes, and every pair of spaces as two
/// non-breaking spaces, so the tree's indentation stays visible (the same text as
/// `esc(s).replace("  ", "&#160;&#160;")`, without the two copies).
fn write_html_cell(out: &mut dyn Write, s: &str) -> io::Result<()> {
    let b = s.as_bytes();
    let (mut start, mut k) = (0, 0);
    while k < b.len() {
        // All ASCII, so a match is never inside a multi-byte character.
        let (with, len): (&[u8], usize) = match b[k] {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'"' => (b"&quot;", 1),
            b' ' if b.get(k + 1) == Some(&b' ') => (b"&#160;&#160;", 2),
            _ => {
                k += 1;
                continue;
            }
        };
        out.write_all(&b[start..k])?;
        out.write_all(with)?;
        k += len;
        start = k;
    }
    out.write_all(&b[start..])
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

pub fn html(
    f: &Figures,
    units: &HashMap<String, String>,
    lang: Lang,
    out: &mut dyn Write,
) -> io::Result<()> {
    let title = esc(&heading(f, lang));
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{title}</title>\n<style>\nbody{{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:2em;color:#222}}\ntable{{border-collapse:collapse;margin:0.5em 0 1.5em;width:100%}}\nth,td{{border:1px solid #bbb;padding:4px 6px;font-size:13px;text-align:left;vertical-align:top}}\nth{{background:#eee}}\n.red{{color:#c62828;font-weight:bold}}\n@media print{{body{{margin:0}} h2{{page-break-before:auto}} tr{{page-break-inside:avoid}}}}\n</style>\n</head>\n<body>\n<h1>{title}</h1>",
        if lang == Lang::Zh { "zh-CN" } else { "en" }
    )?;
    writeln!(
        out,
        "<h2>{}</h2>\n<div>{}</div>",
        esc(lang.pick("事项状态", "Items by status")),
        status_svg(&f.total, lang)
    )?;
    for (k, sec) in sections(f, units, lang).into_iter().enumerate() {
        if k == 4 {
            writeln!(
                out,
                "<h2>{}</h2>\n<div>{}</div>",
                esc(&sec.title),
                burndown_svg(&f.burndown)
            )?;
            continue;
        }
        writeln!(out, "<h2>{}</h2>", esc(&sec.title))?;
        if sec.len == 0 {
            writeln!(out, "<p>{}</p>", lang.pick("(无)", "(none)"))?;
            continue;
        }
        out.write_all(b"<table>\n<thead><tr>")?;
        for h in &sec.headers {
            write!(out, "<th>{}</th>", esc(h))?;
        }
        out.write_all(b"</tr></thead>\n<tbody>\n")?;
        for r in sec.rows {
            out.write_all(b"<tr>")?;
            for (i, c) in r.iter().enumerate() {
                out.write_all(if k == 3 && i == 5 {
                    b"<td class=\"red\">"
                } else {
                    b"<td>"
                })?;
                write_html_cell(out, c)?;
                out.write_all(b"</td>")?;
            }
            out.write_all(b"</tr>\n")?;
        }
        out.write_all(b"</tbody>\n</table>\n")?;
    }
    out.write_all(b"</body>\n</html>\n")
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
    for sec in sections(f, units, lang) {
        let ws = wb.add_worksheet();
        ws.set_name(&sec.title)?;
        for (c, h) in sec.headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)?;
            ws.set_column_width(c as u16, if c == 1 { 40 } else { 14 })?;
        }
        for (r, row) in sec.rows.enumerate() {
            for (c, v) in row.iter().enumerate() {
                // Counts as numbers, so the office can sum them; the first column stays text.
                let numeric = c > 0 && !v.is_empty() && v.chars().all(|ch| ch.is_ascii_digit());
                match v.parse::<f64>() {
                    Ok(n) if numeric => ws.write_number(r as u32 + 1, c as u16, n)?,
                    _ => ws.write_string(r as u32 + 1, c as u16, v.as_ref())?,
                };
            }
        }
    }
    wb.save(path)
}
