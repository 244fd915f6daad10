//! `rectify import doc|ledger`: turns a notice, meeting minutes or a ledger into items, in ONE
//! transaction. Parsing is in `rectify_import`; this file resolves units, plans what to write,
//! shows it (`--dry-run`) or writes it.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::{Actor, Cadence, Command, Ctx, Deadline, ItemId, ItemState, Lang, NewItem};
use rectify_import::decode::{self, Wanted};
use rectify_import::ledger::{self, Column, LedgerNode, LedgerRow, RowError};
use rectify_import::units::{Resolution, UnitDirectory, UnitEntry, split_units};
use rectify_import::{DocError, DraftItem, numbers};
use rectify_schema::{BatchError, BatchItem, Store, Unit};
use serde_json::json;
use unicode_width::UnicodeWidthStr;

use crate::app::App;
use crate::error::{CliError, CliResult, InLang};
use crate::sheet;

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// Import the items of a notice or meeting minutes (UTF-8 text) as drafts.
    Doc {
        file: PathBuf,
        #[arg(long, value_name = "CODE")]
        round: String,
        /// Show the tree that would be created and write nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Import a ledger (.xlsx or .csv): all rows or none.
    Ledger {
        file: PathBuf,
        #[arg(long, value_name = "CODE")]
        round: String,
        /// Show the tree that would be created and write nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
        /// Create units the ledger names that do not exist yet (with a generated code).
        #[arg(long = "create-units")]
        create_units: bool,
        /// Encoding of a CSV file (default: detect UTF-8, else GBK).
        #[arg(long, value_enum)]
        encoding: Option<EncodingArg>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    Gbk,
}

pub async fn run(app: &App, cmd: ImportCmd) -> CliResult {
    match cmd {
        ImportCmd::Doc {
            file,
            round,
            dry_run,
        } => doc(app, &file, &round, dry_run).await,
        ImportCmd::Ledger {
            file,
            round,
            dry_run,
            create_units,
            encoding,
        } => {
            let wanted = match encoding {
                None => Wanted::Auto,
                Some(EncodingArg::Utf8) => Wanted::Utf8,
                Some(EncodingArg::Gbk) => Wanted::Gbk,
            };
            ledger(app, &file, &round, dry_run, create_units, wanted).await
        }
    }
}

/// One item to create, whatever the source.
#[derive(Clone, Debug)]
struct Planned {
    number: String,
    title: String,
    lead_unit: Option<String>,
    co_units: Vec<String>,
    leader: Option<String>,
    deadline: Option<Deadline>,
    target: ItemState,
    /// Progress text (整改进展): the closing or submission note.
    progress: Option<String>,
    cadence: Option<Cadence>,
    /// Where it came from: the line of the document or the row of the sheet.
    origin: usize,
    children: Vec<Planned>,
}

/// Pre-order (parents before children) with the index of each item's parent in the list.
fn preorder<'a>(
    out: &mut Vec<(&'a Planned, Option<usize>)>,
    items: &'a [Planned],
    parent: Option<usize>,
) {
    for p in items {
        out.push((p, parent));
        let me = out.len() - 1;
        preorder(out, &p.children, Some(me));
    }
}

fn count(items: &[Planned]) -> usize {
    items.iter().map(|p| 1 + count(&p.children)).sum()
}

fn walk<'a>(items: &'a [Planned], out: &mut Vec<&'a Planned>) {
    for p in items {
        out.push(p);
        walk(&p.children, out);
    }
}

async fn directory(
    app: &App,
    store: &Store,
) -> CliResult<(UnitDirectory, HashMap<String, String>)> {
    let units = store.list_units().await.lang(app.lang)?;
    let names = units
        .iter()
        .map(|u| (u.code.clone(), u.name.clone()))
        .collect();
    Ok((
        UnitDirectory::new(
            units
                .into_iter()
                .map(|u| UnitEntry {
                    code: u.code,
                    name: u.name,
                    aliases: u.aliases,
                })
                .collect(),
        ),
        names,
    ))
}

async fn admin(app: &App, store: &Store) -> CliResult<Actor> {
    let actor = app.actor(store).await?;
    if actor.role != rectify_engine::Role::Admin {
        return Err(CliError {
            class: rectify_schema::ErrorClass::Forbidden,
            message: match app.lang {
                Lang::Zh => format!(
                    "操作员 {} 不是管理员;只有整改办管理员能导入事项",
                    actor.name
                ),
                Lang::En => format!(
                    "operator {} is not an admin; only the office's admins import items",
                    actor.name
                ),
            },
        });
    }
    Ok(actor)
}

/// Refuses numbers the round already uses: importing the same file twice is a mistake.
async fn check_round_numbers(app: &App, store: &Store, round: &str, plan: &[Planned]) -> CliResult {
    let existing = store.round_numbers(round).await.lang(app.lang)?;
    let mut all = Vec::new();
    walk(plan, &mut all);
    let dups: Vec<&str> = all
        .iter()
        .filter(|p| !p.number.is_empty() && existing.contains(&p.number))
        .map(|p| p.number.as_str())
        .collect();
    if dups.is_empty() {
        return Ok(());
    }
    let list = dups.iter().take(20).copied().collect::<Vec<_>>().join(", ");
    Err(CliError::bad(
        app.lang,
        format!(
            "轮次 {round} 中已有编号相同的事项({} 个,例如 {list});同一轮次内编号不能重复。是否重复导入?请换一个轮次,或先撤销已有事项。未写入任何内容",
            dups.len()
        ),
        format!(
            "round {round} already has items with these numbers ({}, e.g. {list}); numbers must be unique within a round. Imported twice? Use another round. Nothing was written",
            dups.len()
        ),
    ))
}

// ---- import doc ------------------------------------------------------------------------------

async fn doc(app: &App, file: &std::path::Path, round: &str, dry_run: bool) -> CliResult {
    let lang = app.lang;
    let bytes = sheet::read_limited(file, rectify_import::MAX_INPUT_BYTES as u64, lang)?;
    let (text, _) = decode::decode(&bytes, Wanted::Auto).map_err(|e| {
        CliError::bad_input(format!(
            "{}: {}",
            file.display(),
            e.message(lang == Lang::Zh)
        ))
    })?;
    let mut parsed = rectify_import::parse_document(&text).map_err(|e| doc_error(&e, lang))?;
    let renamed = numbers::make_unique(&mut parsed.items);
    let store = app.open().await?;
    store.find_round(round).await.lang(lang)?;
    let (dir, names) = directory(app, &store).await?;
    let mut unknown: Vec<Unknown> = Vec::new();
    let plan: Vec<Planned> = parsed
        .items
        .iter()
        .map(|d| plan_draft(d, &dir, &mut unknown))
        .collect();
    check_round_numbers(app, &store, round, &plan).await?;
    let names_of = |lead: bool| {
        let mut seen: Vec<String> = Vec::new();
        for (_, _, n, l) in &unknown {
            if *l == lead && !seen.contains(n) {
                seen.push(n.clone());
            }
        }
        seen
    };
    let (unknown_leads, unknown_cos) = (names_of(true), names_of(false));
    if dry_run {
        print_plan(app, &plan, &names, true, parsed.title.as_deref());
        report_doc_notes(app, &unknown, &renamed);
        return Ok(());
    }
    let actor = admin(app, &store).await?;
    let mut order = Vec::new();
    preorder(&mut order, &plan, None);
    let today = app.today();
    let batch: Vec<BatchItem> = order
        .iter()
        .map(|(p, parent)| BatchItem {
            new: new_item(round, None, p),
            parent: *parent,
            assign: None,
            assign_day: today,
            life: Vec::new(),
        })
        .collect();
    let bulk = store.bulk().await.lang(lang)?;
    let created = match bulk
        .create_batch(batch, &actor, app.now, today, &|_| {})
        .await
    {
        Ok(done) => done
            .into_iter()
            .zip(order.iter())
            .map(|((id, _), (p, _))| (id, *p))
            .collect::<Vec<(ItemId, &Planned)>>(),
        Err(e) => {
            let _ = bulk.rollback().await;
            return Err(batch_error(lang, "行", "line", e, |i| order[i].0.origin));
        }
    };
    bulk.commit().await.lang(lang)?;
    if app.json() {
        println!(
            "{}",
            json!({
                "round": round,
                "created": created.len(),
                "items": created.iter().map(|(id, p)| json!({
                    "id": id, "number": p.number, "title": p.title, "lead_unit": p.lead_unit,
                    "leader": p.leader,
                })).collect::<Vec<_>>(),
                "unknown_lead_units": unknown_leads,
                "unknown_co_units": unknown_cos,
                "renumbered": renamed.iter().map(|(a, b)| json!({"from": a, "to": b})).collect::<Vec<_>>(),
            })
        );
    } else {
        match lang {
            Lang::Zh => println!(
                "已导入 {} 个事项(待交办草稿)到轮次 {round};请审核后交办",
                created.len()
            ),
            Lang::En => println!(
                "imported {} item(s) as drafts into round {round}; review and assign them",
                created.len()
            ),
        }
    }
    report_doc_notes(app, &unknown, &renamed);
    Ok(())
}

fn doc_error(e: &DocError, lang: Lang) -> CliError {
    let zh = match e {
        DocError::Empty => "文档是空的;请提供通报或会议纪要的完整文本".to_string(),
        DocError::TooLarge { bytes, limit } => {
            format!("文档有 {bytes} 字节,超过上限 {limit} 字节;请分段导入,或只导入列有事项的部分")
        }
        DocError::NoItems => "没有找到带编号的事项(一、 (一) 1. (1) ① 一是);请确认这是整改通报或会议纪要,且编号在复制时没有丢失".to_string(),
        DocError::Binary { offset } => format!(
            "文件第 {offset} 字节处含有二进制数据;请先另存为 UTF-8 纯文本(.txt),不能直接读取 .docx、.pdf 或 .xlsx"
        ),
    };
    CliError::bad(lang, zh, e.to_string())
}

/// A refused batch as a CLI error naming the line or row of the refused item.
fn batch_error(
    lang: Lang,
    zh_unit: &str,
    en_unit: &str,
    e: BatchError,
    origin: impl Fn(usize) -> usize,
) -> CliError {
    match e.index {
        Some(i) => at_origin(lang, zh_unit, en_unit, origin(i), e.error),
        None => CliError::from_store(e.error, lang),
    }
}

fn at_origin(
    lang: Lang,
    zh_unit: &str,
    en_unit: &str,
    n: usize,
    e: rectify_schema::StoreError,
) -> CliError {
    let mut err = CliError::from_store(e, lang);
    err.message = match lang {
        Lang::Zh => format!("第 {n} {zh_unit}:{};未写入任何内容", err.message),
        Lang::En => format!("{en_unit} {n}: {}; nothing was written", err.message),
    };
    err
}

/// Resolves the units of one document item; an unknown lead unit leaves the item without one
/// (it is listed for the office), an unknown cooperating unit is left out (and listed).
fn plan_draft(d: &DraftItem, dir: &UnitDirectory, unknown: &mut Vec<Unknown>) -> Planned {
    let mut co_units = Vec::new();
    let mut lead_unit = None;
    if let Some(lead) = &d.lead_unit {
        match dir.resolve(lead) {
            Resolution::Found(code) => lead_unit = Some(code),
            _ => {
                // Joint lead units (`区海洋发展局、综合行政执法局`): the first leads, the others
                // cooperate, when every one of them is known.
                let parts = split_units(lead);
                let codes: Vec<Option<String>> = parts
                    .iter()
                    .map(|p| match dir.resolve(p) {
                        Resolution::Found(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                if parts.len() > 1 && codes.iter().all(Option::is_some) {
                    let mut codes = codes.into_iter().flatten();
                    lead_unit = codes.next();
                    co_units.extend(codes);
                } else {
                    unknown.push((d.line, d.number.clone(), lead.clone(), true));
                }
            }
        }
    }
    for c in &d.co_units {
        match dir.resolve(c) {
            Resolution::Found(code) => {
                if Some(&code) != lead_unit.as_ref() && !co_units.contains(&code) {
                    co_units.push(code)
                }
            }
            _ => unknown.push((d.line, d.number.clone(), c.clone(), false)),
        }
    }
    Planned {
        number: d.number.clone(),
        title: d.title.clone(),
        lead_unit,
        co_units,
        leader: d.leader.clone(),
        deadline: None,
        target: ItemState::Draft,
        progress: None,
        cadence: None,
        origin: d.line,
        children: d
            .children
            .iter()
            .map(|c| plan_draft(c, dir, unknown))
            .collect(),
    }
}

/// A unit a document names that the directory does not know: (line, item number, name, is lead).
type Unknown = (usize, String, String, bool);

fn report_doc_notes(app: &App, unknown: &[Unknown], renamed: &[(String, String)]) {
    let lang = app.lang;
    for (old, new) in renamed {
        eprintln!(
            "{}",
            match lang {
                Lang::Zh => format!("提示:顶层编号“{old}”在文中重复出现,后一个改为“{new}”"),
                Lang::En => format!(
                    "note: the top-level number `{old}` appears twice; the later one is `{new}`"
                ),
            }
        );
    }
    for lead in [true, false] {
        let mut names: Vec<&str> = Vec::new();
        for (_, _, n, l) in unknown {
            if *l == lead && !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        if names.is_empty() {
            continue;
        }
        eprintln!(
            "{}",
            match (lang, lead) {
                (Lang::Zh, true) => format!(
                    "警告:以下 {} 个牵头单位不在单位名录中,相关事项已作为无牵头单位的草稿导入;请用 `rectify unit add`(可加 --alias)添加后再交办:",
                    names.len()
                ),
                (Lang::Zh, false) => format!(
                    "警告:以下 {} 个配合单位不在单位名录中,未列为配合单位:",
                    names.len()
                ),
                (Lang::En, true) => format!(
                    "warning: these {} lead unit(s) are not in the directory; their items came in as drafts without a lead unit. Add them with `rectify unit add` (with --alias) and assign:",
                    names.len()
                ),
                (Lang::En, false) => format!(
                    "warning: these {} cooperating unit(s) are not in the directory and were left out:",
                    names.len()
                ),
            }
        );
        for n in names {
            let items: Vec<String> = unknown
                .iter()
                .filter(|(_, _, u, l)| u == n && *l == lead)
                .map(|(line, number, _, _)| format!("{number}@{line}"))
                .collect();
            eprintln!("  {n}  ({})", items.join(", "));
        }
    }
}

// ---- the tree, for --dry-run -----------------------------------------------------------------

fn print_plan(
    app: &App,
    plan: &[Planned],
    names: &HashMap<String, String>,
    with_leader: bool,
    title: Option<&str>,
) {
    let lang = app.lang;
    if app.json() {
        fn j(p: &Planned, names: &HashMap<String, String>) -> serde_json::Value {
            json!({
                "number": p.number,
                "title": p.title,
                "lead_unit": p.lead_unit,
                "lead_unit_name": p.lead_unit.as_ref().and_then(|c| names.get(c)),
                "co_units": p.co_units,
                "leader": p.leader,
                "deadline": p.deadline.map(|d| d.to_db()),
                "state": p.target.as_str(),
                "children": p.children.iter().map(|c| j(c, names)).collect::<Vec<_>>(),
            })
        }
        println!(
            "{}",
            json!({
                "dry_run": true,
                "title": title,
                "count": count(plan),
                "items": plan.iter().map(|p| j(p, names)).collect::<Vec<_>>(),
            })
        );
        return;
    }
    if let Some(t) = title {
        println!("{t}");
    }
    fn line(
        p: &Planned,
        depth: usize,
        names: &HashMap<String, String>,
        lang: Lang,
        with_leader: bool,
    ) {
        let mut s = format!("{}{}  {}", "  ".repeat(depth), p.number, p.title);
        let unit = p
            .lead_unit
            .as_ref()
            .map(|c| names.get(c).cloned().unwrap_or_else(|| c.clone()));
        let mut tags = Vec::new();
        tags.push(format!(
            "{}{}",
            lang.pick("牵头:", "lead: "),
            unit.unwrap_or_else(|| "-".into())
        ));
        if with_leader || p.leader.is_some() {
            tags.push(format!(
                "{}{}",
                lang.pick("领导:", "leader: "),
                p.leader.clone().unwrap_or_else(|| "-".into())
            ));
        }
        if let Some(d) = p.deadline {
            tags.push(format!("{}{}", lang.pick("时限:", "due: "), d.label(lang)));
        }
        if p.target != ItemState::Draft {
            tags.push(p.target.label(lang).to_string());
        }
        let pad = 60usize.saturating_sub(s.width()).max(2);
        s.push_str(&" ".repeat(pad));
        s.push_str(&format!("[{}]", tags.join(" | ")));
        println!("{s}");
        for c in &p.children {
            line(c, depth + 1, names, lang, with_leader);
        }
    }
    for p in plan {
        line(p, 0, names, lang, with_leader);
    }
    match lang {
        Lang::Zh => println!("共 {} 个事项(试运行,未写入)", count(plan)),
        Lang::En => println!("{} item(s) (dry run, nothing written)", count(plan)),
    }
}

// ---- import ledger ---------------------------------------------------------------------------

async fn ledger(
    app: &App,
    file: &std::path::Path,
    round: &str,
    dry_run: bool,
    create_units: bool,
    wanted: Wanted,
) -> CliResult {
    let lang = app.lang;
    let sheet = sheet::read(file, wanted, lang)?;
    let header = ledger::find_header(&sheet.rows).ok_or_else(|| {
        CliError::bad(
            lang,
            format!(
                "在 {}(工作表“{}”)的前 {} 行中找不到表头;表头须含序号、问题类别、具体问题、整改措施、牵头单位、完成时限等列中的至少三个(含整改措施、具体问题或问题类别之一)",
                file.display(),
                sheet.name,
                ledger::HEADER_SEARCH_ROWS
            ),
            format!(
                "no header row found in the first {} rows of {} (sheet `{}`); the header needs at least three of No., Category, Problem, Measure, Lead unit, Deadline… including Measure, Problem or Category",
                ledger::HEADER_SEARCH_ROWS,
                file.display(),
                sheet.name
            ),
        )
    })?;
    let store = app.open().await?;
    store.find_round(round).await.lang(lang)?;
    let today = app.today();
    let (rows, mut errors) = ledger::read_rows(&sheet.rows, &header, sheet.first_row, today);
    let (tree, tree_errors) = ledger::build_tree(rows, &header);
    errors.extend(tree_errors);
    let (mut dir, mut names) = directory(app, &store).await?;
    let cal = crate::commands::calendar_for(app);
    let header_text = |col: Column| -> String {
        header
            .index(col)
            .and_then(|i| sheet.rows[header.row].get(i))
            .map(|c| c.text())
            .unwrap_or_else(|| col.header(Lang::Zh).to_string())
    };
    let mut ctx = LedgerCtx {
        dir: &mut dir,
        names: &mut names,
        create_units,
        new_units: Vec::new(),
        errors: &mut errors,
        today,
        cal: &cal,
        immediate_fix: app.settings.import.immediate_fix,
        lead_header: header_text(Column::LeadUnit),
        co_header: header_text(Column::CoUnits),
        deadline_header: header_text(Column::Deadline),
        status_header: header_text(Column::Status),
        resolved: HashMap::new(),
    };
    let plan: Vec<Planned> = tree.iter().map(|n| plan_node(n, &mut ctx)).collect();
    let new_units = std::mem::take(&mut ctx.new_units);
    // Every title and name through the engine's checks, so a bad cell is reported with its row
    // instead of stopping the import half-way (which would roll back anyway).
    {
        let admin = Actor {
            name: "import".into(),
            role: rectify_engine::Role::Admin,
            unit: None,
        };
        let c = Ctx {
            now: app.now,
            today,
            open_children: 0,
        };
        let mut all = Vec::new();
        walk(&plan, &mut all);
        for p in all {
            if let Err(r) = rectify_engine::create(&new_item(round, None, p), 0, &admin, &c) {
                errors.push(RowError {
                    row: p.origin,
                    column: String::new(),
                    reason: r.message(Lang::Zh),
                });
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.row.cmp(&b.row).then(a.column.cmp(&b.column)));
        errors.dedup();
        return Err(row_errors(app, file, &errors));
    }
    check_round_numbers(app, &store, round, &plan).await?;
    if dry_run {
        print_plan(app, &plan, &names, false, None);
        if !new_units.is_empty() {
            eprintln!(
                "{}",
                lang.pick("将新建以下单位:", "these units would be created:")
            );
            for u in &new_units {
                eprintln!("  {}  {}", u.code, u.name);
            }
        }
        return Ok(());
    }
    let actor = admin(app, &store).await?;
    let total = count(&plan) as u64;
    let bar = if std::io::stderr().is_terminal() && !app.json() {
        let b = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            b.set_style(style);
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let bulk = store.bulk().await.lang(lang)?;
    let result = write_ledger(app, &bulk, &actor, round, &plan, &new_units, &bar).await;
    bar.finish_and_clear();
    let created = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = bulk.rollback().await;
            return Err(e);
        }
    };
    bulk.commit().await.lang(lang)?;
    let mut by_state: HashMap<ItemState, usize> = HashMap::new();
    for s in &created {
        *by_state.entry(*s).or_default() += 1;
    }
    let mut states: Vec<(ItemState, usize)> = by_state.into_iter().collect();
    states.sort();
    if app.json() {
        println!(
            "{}",
            json!({
                "round": round,
                "created": created.len(),
                "states": states.iter().map(|(s, n)| (s.as_str().to_string(), *n)).collect::<HashMap<_, _>>(),
                "units_created": new_units.iter().map(|u| json!({"code": u.code, "name": u.name})).collect::<Vec<_>>(),
                "encoding": sheet.encoding.map(|e| e.as_str()),
            })
        );
    } else {
        let parts: Vec<String> = states
            .iter()
            .map(|(s, n)| format!("{} {n}", s.label(lang)))
            .collect();
        match lang {
            Lang::Zh => println!(
                "已从台账导入 {} 个事项到轮次 {round}:{}",
                created.len(),
                parts.join(",")
            ),
            Lang::En => println!(
                "imported {} item(s) from the ledger into round {round}: {}",
                created.len(),
                parts.join(", ")
            ),
        }
        for u in &new_units {
            match lang {
                Lang::Zh => println!("已新建单位:{}  {}", u.code, u.name),
                Lang::En => println!("unit created: {}  {}", u.code, u.name),
            }
        }
    }
    Ok(())
}

fn row_errors(app: &App, file: &std::path::Path, errors: &[RowError]) -> CliError {
    let lang = app.lang;
    let mut msg = match lang {
        Lang::Zh => format!(
            "{} 有 {} 处问题,未导入任何内容;请改正后重新导入:",
            file.display(),
            errors.len()
        ),
        Lang::En => format!(
            "{} has {} problem(s); nothing was imported; fix them and import again:",
            file.display(),
            errors.len()
        ),
    };
    for e in errors {
        let col = if e.column.is_empty() {
            String::new()
        } else {
            match lang {
                Lang::Zh => format!(" “{}”列", e.column),
                Lang::En => format!(" column `{}`", e.column),
            }
        };
        msg.push('\n');
        msg.push_str(&match lang {
            Lang::Zh => format!("  第 {} 行{col}:{}", e.row, e.reason),
            Lang::En => format!("  row {}{col}: {}", e.row, e.reason),
        });
    }
    CliError::bad_input(msg)
}

struct LedgerCtx<'a> {
    dir: &'a mut UnitDirectory,
    names: &'a mut HashMap<String, String>,
    create_units: bool,
    new_units: Vec<Unit>,
    errors: &'a mut Vec<RowError>,
    today: chrono::NaiveDate,
    cal: &'a WorkCalendar,
    immediate_fix: rectify_engine::Offset,
    lead_header: String,
    co_header: String,
    deadline_header: String,
    status_header: String,
    /// Names already resolved: a ledger names the same few hundred units on every row.
    resolved: HashMap<String, String>,
}

impl LedgerCtx<'_> {
    /// The code of the unit a cell names; creates it with `--create-units`.
    fn unit(&mut self, name: &str, row: usize, column: &str) -> Option<String> {
        if let Some(code) = self.resolved.get(name) {
            return Some(code.clone());
        }
        let code = self.resolve(name, row, column)?;
        self.resolved.insert(name.to_string(), code.clone());
        Some(code)
    }

    fn resolve(&mut self, name: &str, row: usize, column: &str) -> Option<String> {
        match self.dir.resolve(name) {
            Resolution::Found(code) => Some(code),
            Resolution::Ambiguous(codes) => {
                self.errors.push(RowError {
                    row,
                    column: column.to_string(),
                    reason: format!(
                        "单位“{name}”可能是 {} 中的任何一个;请写全称或单位编号",
                        codes.join("、")
                    ),
                });
                None
            }
            Resolution::Unknown if self.create_units => {
                let code = self.next_code();
                let entry = UnitEntry {
                    code: code.clone(),
                    name: rectify_import::units::normalise(name),
                    aliases: Vec::new(),
                };
                self.new_units.push(Unit {
                    code: code.clone(),
                    name: entry.name.clone(),
                    parent: None,
                    emails: Vec::new(),
                    leader: None,
                    leader_email: None,
                    aliases: Vec::new(),
                });
                self.names.insert(code.clone(), entry.name.clone());
                self.dir.add(entry);
                Some(code)
            }
            Resolution::Unknown => {
                self.errors.push(RowError {
                    row,
                    column: column.to_string(),
                    reason: format!(
                        "单位“{name}”不在单位名录中;请先用 `rectify unit add` 添加(或用 --alias 登记这个简称),或加 --create-units 自动新建"
                    ),
                });
                None
            }
        }
    }

    fn next_code(&self) -> String {
        let used: HashSet<&str> = self.dir.units().iter().map(|u| u.code.as_str()).collect();
        (1..)
            .map(|n| format!("u{n:03}"))
            .find(|c| !used.contains(c.as_str()))
            .unwrap_or_else(|| "u".into())
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn plan_node(n: &LedgerNode, cx: &mut LedgerCtx<'_>) -> Planned {
    let children: Vec<Planned> = n.children.iter().map(|c| plan_node(c, cx)).collect();
    let Some(r) = &n.data else {
        return Planned {
            number: n.number.clone(),
            title: n.title.clone(),
            lead_unit: None,
            co_units: Vec::new(),
            leader: None,
            deadline: None,
            target: ItemState::Draft,
            progress: None,
            cadence: None,
            origin: n.row,
            children,
        };
    };
    plan_row(n, r, children, cx)
}

fn plan_row(
    n: &LedgerNode,
    r: &LedgerRow,
    children: Vec<Planned>,
    cx: &mut LedgerCtx<'_>,
) -> Planned {
    let lead_header = cx.lead_header.clone();
    let co_header = cx.co_header.clone();
    let lead_unit = non_empty(&r.lead_unit).and_then(|u| cx.unit(&u, r.row, &lead_header));
    let mut co_units = Vec::new();
    for u in split_units(&r.co_units) {
        if let Some(code) = cx.unit(&u, r.row, &co_header)
            && Some(&code) != lead_unit.as_ref()
            && !co_units.contains(&code)
        {
            co_units.push(code);
        }
    }
    let deadline = r
        .deadline
        .map(|d| d.resolve(cx.today, cx.cal, cx.immediate_fix));
    let target = r.target_state();
    let needs_assignment = !matches!(target, ItemState::Draft | ItemState::Cancelled);
    if needs_assignment && r.lead_unit.trim().is_empty() {
        cx.errors.push(RowError {
            row: r.row,
            column: cx.status_header.clone(),
            reason: format!(
                "“{}”的事项须有牵头单位;请填写牵头单位,或清空完成情况",
                target.label(Lang::Zh)
            ),
        });
    }
    if needs_assignment && deadline.is_none() {
        cx.errors.push(RowError {
            row: r.row,
            column: cx.deadline_header.clone(),
            reason: format!(
                "“{}”的事项须有完成时限;请填写日期、立行立改或长期坚持",
                target.label(Lang::Zh)
            ),
        });
    }
    Planned {
        number: n.number.clone(),
        title: n.title.clone(),
        lead_unit,
        co_units,
        leader: non_empty(&r.leader),
        deadline,
        target,
        progress: non_empty(&r.progress),
        cadence: r.cadence,
        origin: r.row,
        children,
    }
}

fn new_item(round: &str, parent: Option<ItemId>, p: &Planned) -> NewItem {
    NewItem {
        round: round.to_string(),
        parent_id: parent,
        number: p.number.clone(),
        title: p.title.clone(),
        lead_unit: p.lead_unit.clone(),
        co_units: p.co_units.clone(),
        leader: p.leader.clone(),
        deadline: p.deadline,
    }
}

/// The commands that take an assigned item to the state the ledger says it is in.
fn lifecycle(p: &Planned) -> Vec<Command> {
    let imported = "台账导入:已完成".to_string();
    let note = p.progress.clone().unwrap_or(imported);
    let ack = Command::Acknowledge;
    let submit = Command::Submit {
        note: note.clone(),
        evidence: Vec::new(),
    };
    match p.target {
        ItemState::Draft | ItemState::Assigned => Vec::new(),
        ItemState::InProgress => {
            let mut v = vec![ack];
            if let Some(text) = &p.progress {
                v.push(Command::Progress {
                    note: text.clone(),
                    percent: None,
                    evidence: Vec::new(),
                });
            }
            v
        }
        ItemState::PendingVerification => vec![ack, submit],
        ItemState::Closed => vec![
            ack,
            submit,
            Command::Close {
                note: p.progress.clone(),
            },
        ],
        ItemState::LongTerm => vec![
            ack,
            submit,
            Command::KeepLongTerm {
                note: p.progress.clone(),
                cadence: p.cadence.unwrap_or(Cadence::Monthly),
            },
        ],
        ItemState::Cancelled => vec![Command::Cancel {
            reason: "台账导入:已撤销".into(),
            merged_into: None,
        }],
    }
}

async fn write_ledger(
    app: &App,
    bulk: &rectify_schema::Bulk<'_>,
    actor: &Actor,
    round: &str,
    plan: &[Planned],
    new_units: &[Unit],
    bar: &indicatif::ProgressBar,
) -> CliResult<Vec<ItemState>> {
    let lang = app.lang;
    let today = app.today();
    bulk.add_units(new_units, app.now).await.lang(lang)?;
    // Pre-order: parents first; the batch runs the life cycles children first.
    let mut all = Vec::new();
    preorder(&mut all, plan, None);
    let batch: Vec<BatchItem> = all
        .iter()
        .map(|(p, parent)| {
            let assign = match (&p.lead_unit, p.deadline) {
                (Some(lead), Some(deadline))
                    if !matches!(p.target, ItemState::Draft | ItemState::Cancelled) =>
                {
                    Some(Command::Assign {
                        lead_unit: lead.clone(),
                        co_units: p.co_units.clone(),
                        leader: p.leader.clone(),
                        deadline,
                    })
                }
                _ => None,
            };
            // A ledger records assignments made earlier: a deadline that has passed is kept
            // (the item is overdue) instead of being refused as "in the past".
            let assign_day = match p.deadline {
                Some(Deadline::Date(d)) if d < today => d,
                _ => today,
            };
            BatchItem {
                new: new_item(round, None, p),
                parent: *parent,
                assign,
                assign_day,
                life: lifecycle(p),
            }
        })
        .collect();
    let done = bulk
        .create_batch(batch, actor, app.now, today, &|n| {
            bar.set_position(n as u64)
        })
        .await
        .map_err(|e| batch_error(lang, "行", "row", e, |i| all[i].0.origin))?;
    Ok(done.into_iter().map(|(_, state)| state).collect())
}
