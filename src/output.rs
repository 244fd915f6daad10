//! Rendering for people (aligned tables, CJK-aware) and for programs (JSON).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rectify_engine::{Item, Lang, Light};
use rectify_schema::HistoryEntry;
use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;

/// A plain text table whose columns line up also with Chinese characters (two cells wide).
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.width());
            }
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(widths[i].saturating_sub(c.width()) + 2));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.headers, &mut out);
        let total: usize = widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
}

/// Shortens text to about `max` display cells, marking the cut.
pub fn ellipsize(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

pub fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// The JSON form of an item: the fields checks and scripts rely on (`id`, `number`, `title`,
/// `state`, `lead_unit`, `due`, `version`, `parent_id`, `leader`) and the rest.
pub fn item_json(i: &Item) -> Value {
    json!({
        "id": i.id,
        "round": i.round,
        "parent_id": i.parent_id,
        "number": i.number,
        "title": i.title,
        "state": i.state.as_str(),
        "lead_unit": i.lead_unit,
        "co_units": i.co_units,
        "leader": i.leader,
        "due": i.deadline.map(|d| d.to_db()),
        "version": i.version,
        "deadline_version": i.deadline_version,
        "send_backs": i.send_backs,
        "reassignments": i.reassignments,
        "cadence": i.cadence.map(|c| c.as_str()),
        "pending_extension": i.pending_extension.as_ref().map(|p| json!({
            "to": p.to.format("%Y-%m-%d").to_string(),
            "reason": p.reason,
            "requested_by": p.requested_by,
        })),
        "merged_into": i.merged_into,
        "progress_percent": i.progress_percent,
        "last_progress": i.last_progress,
        "created_at": i.created_at,
        "assigned_at": i.assigned_at,
        "acknowledged_at": i.acknowledged_at,
        "last_progress_at": i.last_progress_at,
        "submitted_at": i.submitted_at,
        "closed_at": i.closed_at,
    })
}

pub fn items_table(items: &[Item], lights: &[Option<Light>], lang: Lang) -> String {
    let mut t = Table::new(&[
        "ID",
        lang.pick("编号", "No."),
        lang.pick("标题", "Title"),
        lang.pick("状态", "State"),
        lang.pick("牵头单位", "Lead unit"),
        lang.pick("完成时限", "Due"),
        lang.pick("亮灯", "Light"),
        lang.pick("版本", "Ver"),
    ]);
    for (n, i) in items.iter().enumerate() {
        t.row(vec![
            i.id.to_string(),
            i.number.clone(),
            ellipsize(&i.title, 40),
            i.state.label(lang).to_string(),
            i.lead_unit.clone().unwrap_or_else(|| "-".into()),
            i.deadline
                .map(|d| d.label(lang))
                .unwrap_or_else(|| "-".into()),
            lights
                .get(n)
                .copied()
                .flatten()
                .map(|l| l.label(lang).to_string())
                .unwrap_or_else(|| "-".into()),
            i.version.to_string(),
        ]);
    }
    let mut out = t.render();
    out.push_str(&match lang {
        Lang::Zh => format!("共 {} 项\n", items.len()),
        Lang::En => format!("{} item(s)\n", items.len()),
    });
    out
}

/// The detail view of one item, as `key: value` lines.
pub fn item_detail(i: &Item, lang: Lang, tz: Tz) -> String {
    let none = || "-".to_string();
    let mut rows: Vec<(&str, String)> = vec![
        ("ID", i.id.to_string()),
        (lang.pick("轮次", "Round"), i.round.clone()),
        (lang.pick("编号", "Number"), i.number.clone()),
        (lang.pick("标题", "Title"), i.title.clone()),
        (
            lang.pick("状态", "State"),
            match lang {
                Lang::Zh => format!("{} ({})", i.state.label(lang), i.state.as_str()),
                Lang::En => i.state.as_str().to_string(),
            },
        ),
        (
            lang.pick("牵头单位", "Lead unit"),
            i.lead_unit.clone().unwrap_or_else(none),
        ),
        (lang.pick("配合单位", "Cooperating"), {
            if i.co_units.is_empty() {
                none()
            } else {
                i.co_units.join("、")
            }
        }),
        (
            lang.pick("责任领导", "Leader"),
            i.leader.clone().unwrap_or_else(none),
        ),
        (
            lang.pick("完成时限", "Due"),
            i.deadline.map(|d| d.label(lang)).unwrap_or_else(none),
        ),
        (lang.pick("版本", "Version"), i.version.to_string()),
        (
            lang.pick("退回次数", "Send-backs"),
            i.send_backs.to_string(),
        ),
        (
            lang.pick("转办次数", "Reassignments"),
            i.reassignments.to_string(),
        ),
    ];
    if let Some(p) = i.parent_id {
        rows.push((lang.pick("上级事项", "Parent"), p.to_string()));
    }
    if let Some(c) = i.cadence {
        rows.push((lang.pick("报送周期", "Cadence"), c.label(lang).to_string()));
    }
    if let Some(p) = &i.pending_extension {
        rows.push((
            lang.pick("待审批延期", "Extension waiting"),
            format!("{} ({}; {})", p.to, p.reason, p.requested_by),
        ));
    }
    if let Some(m) = i.merged_into {
        rows.push((lang.pick("合并至", "Merged into"), m.to_string()));
    }
    if let Some(p) = i.progress_percent {
        rows.push((lang.pick("完成比例", "Percent"), format!("{p}%")));
    }
    if let Some(p) = &i.last_progress {
        rows.push((lang.pick("最新进展", "Last progress"), p.clone()));
    }
    for (label, at) in [
        (lang.pick("交办时间", "Assigned"), i.assigned_at),
        (lang.pick("签收时间", "Acknowledged"), i.acknowledged_at),
        (lang.pick("申请销号时间", "Submitted"), i.submitted_at),
        (lang.pick("销号时间", "Closed"), i.closed_at),
    ] {
        if let Some(at) = at {
            rows.push((label, local_time(at, tz)));
        }
    }
    let width = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(k);
        out.push_str(&" ".repeat(width - k.width() + 2));
        out.push_str(&v);
        out.push('\n');
    }
    out
}

/// A short human summary of an event's payload.
pub fn event_summary(e: &HistoryEntry, lang: Lang) -> String {
    let p = &e.payload;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut parts: Vec<String> = Vec::new();
    match e.kind.as_str() {
        "created" => parts.extend(s("title")),
        "assigned" => {
            parts.extend(s("lead_unit"));
            if let Some(d) = s("deadline") {
                parts.push(if d == "long_term" {
                    lang.pick("长期坚持", "long-term").to_string()
                } else {
                    d
                });
            }
        }
        "reassigned" => {
            let from = s("from").unwrap_or_else(|| "-".into());
            let to = s("to").unwrap_or_default();
            parts.push(format!("{from} → {to}"));
            parts.extend(s("reason"));
        }
        "extension_requested" | "extension_approved" | "extension_refused" => {
            if let Some(to) = s("to") {
                parts.push(format!("→ {to}"));
            }
            parts.extend(s("reason"));
            parts.extend(s("note"));
        }
        _ => {
            parts.extend(s("note"));
            parts.extend(s("reason"));
            if let Some(p) = p.get("percent").and_then(|v| v.as_u64()) {
                parts.push(format!("{p}%"));
            }
            parts.extend(s("cadence"));
        }
    }
    if !e.evidence.is_empty() {
        let names: Vec<&str> = e.evidence.iter().map(|f| f.name.as_str()).collect();
        parts.push(format!(
            "[{}: {}]",
            lang.pick("佐证", "evidence"),
            names.join(", ")
        ));
    }
    parts.join(" ")
}

pub fn event_label(kind: &str, lang: Lang) -> String {
    let zh = match kind {
        "created" => "创建",
        "assigned" => "交办",
        "acknowledged" => "签收",
        "progress_reported" => "报送进展",
        "submitted" => "申请销号",
        "closed" => "验收销号",
        "kept_long_term" => "转长期坚持",
        "sent_back" => "退回重办",
        "extension_requested" => "申请延期",
        "extension_approved" => "批准延期",
        "extension_refused" => "驳回延期",
        "reassigned" => "转办",
        "reopened" => "重新打开",
        "finished" => "完结",
        "cancelled" => "撤销",
        other => other,
    };
    match lang {
        Lang::Zh => zh.to_string(),
        Lang::En => kind.replace('_', " "),
    }
}

pub fn history_table(h: &[HistoryEntry], lang: Lang, tz: Tz) -> String {
    let mut t = Table::new(&[
        "#",
        lang.pick("时间", "Time"),
        lang.pick("操作", "Action"),
        lang.pick("操作员", "By"),
        lang.pick("内容", "Details"),
    ]);
    for e in h {
        t.row(vec![
            e.seq.to_string(),
            local_time(e.at, tz),
            event_label(&e.kind, lang),
            e.actor.clone(),
            ellipsize(&event_summary(e, lang), 60),
        ]);
    }
    t.render()
}
