//! Periodic jobs from cron expressions: the dispatcher pass, the daily digest to each unit, the
//! weekly dispatch (周调度) to the office, and the monthly notice (月通报) ranking units.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rectify_engine::light::Light;
use rectify_engine::{ItemState, Lang};
use rectify_schema::{ItemFilter, NewMessage, StoreError};
use serde_json::json;

use crate::dispatch::{Dispatcher, message_id, render_err};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    Remind,
    DailyDigest,
    WeeklyDispatch,
    MonthlyNotice,
}

impl Job {
    pub const ALL: [Job; 4] = [
        Job::Remind,
        Job::DailyDigest,
        Job::WeeklyDispatch,
        Job::MonthlyNotice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::Remind => "remind",
            Job::DailyDigest => "daily_digest",
            Job::WeeklyDispatch => "weekly_dispatch",
            Job::MonthlyNotice => "monthly_notice",
        }
    }
}

impl Dispatcher {
    /// Queues the summary messages of `job` for the fire at `fire`. Message-IDs come from
    /// (job, fire, recipient), so a fire run twice queues nothing new.
    pub async fn run_summary(&self, job: Job, fire: DateTime<Utc>) -> Result<usize, StoreError> {
        let today = self.today(fire);
        let l = self.cfg.lang;
        if job == Job::DailyDigest && !self.cfg.calendar.is_working_day(today) {
            return Ok(0);
        }
        let items: Vec<_> = self
            .store
            .list_items(&ItemFilter::default())
            .await?
            .into_iter()
            .collect();
        let dir = self.store.directory().await?;
        let rounds: std::collections::HashMap<String, String> = self
            .store
            .list_rounds()
            .await?
            .into_iter()
            .map(|r| (r.code, r.title))
            .collect();
        let fire_key = fire.to_rfc3339();
        let mut messages = Vec::new();
        let line = |i: &rectify_engine::Item| {
            let c = self.item_ctx(i, None, &rounds, today);
            format!(
                "[{}] {} {} {} | {} | {}",
                c["light"].as_str().unwrap_or("-"),
                c["number"].as_str().unwrap_or(""),
                c["title"].as_str().unwrap_or(""),
                c["due"].as_str().unwrap_or(""),
                c["days"].as_str().unwrap_or(""),
                i.lead_unit
                    .as_deref()
                    .map(|u| dir.unit_name(u))
                    .unwrap_or_default(),
            )
        };
        let light_of = |i: &rectify_engine::Item| self.light_of(i, today);
        match job {
            Job::Remind => return Ok(0),
            Job::DailyDigest => {
                let mut by_unit: BTreeMap<String, Vec<&rectify_engine::Item>> = BTreeMap::new();
                for i in items
                    .iter()
                    .filter(|i| i.state.is_open() && i.state != ItemState::Draft)
                {
                    if let Some(u) = &i.lead_unit {
                        by_unit.entry(u.clone()).or_default().push(i);
                    }
                }
                for (unit, list) in by_unit {
                    let to = dir.unit_emails(&unit);
                    if to.is_empty() {
                        continue;
                    }
                    let red = list
                        .iter()
                        .filter(|i| light_of(i) == Some(Light::Red))
                        .count();
                    let yellow = list
                        .iter()
                        .filter(|i| light_of(i) == Some(Light::Yellow))
                        .count();
                    let name = dir.unit_name(&unit);
                    let heading = match l {
                        Lang::Zh => format!(
                            "【每日提醒】{name}:在办事项 {} 项(红灯 {red},黄灯 {yellow})",
                            list.len()
                        ),
                        Lang::En => format!(
                            "[Daily] {name}: {} open item(s) ({red} red, {yellow} yellow)",
                            list.len()
                        ),
                    };
                    let ctx = json!({
                        "heading": heading,
                        "intro": match l { Lang::Zh => format!("截至 {today},贵单位牵头的在办事项如下:"), Lang::En => format!("Open items led by your unit as of {today}:") },
                        "sections": [{ "title": l.pick("在办事项", "Open items"), "rows": list.iter().map(|i| line(i)).collect::<Vec<_>>() }],
                        "sender": self.cfg.sender,
                    });
                    messages.push(self.summary_message(
                        job,
                        &fire_key,
                        Some(&unit),
                        to,
                        vec![],
                        heading,
                        &ctx,
                    )?);
                }
            }
            Job::WeeklyDispatch => {
                if dir.office_emails.is_empty() {
                    return Ok(0);
                }
                let red: Vec<String> = items
                    .iter()
                    .filter(|i| light_of(i) == Some(Light::Red))
                    .map(&line)
                    .collect();
                let yellow: Vec<String> = items
                    .iter()
                    .filter(|i| light_of(i) == Some(Light::Yellow))
                    .map(&line)
                    .collect();
                let heading = match l {
                    Lang::Zh => format!(
                        "【周调度】红灯 {} 项,黄灯 {} 项({today})",
                        red.len(),
                        yellow.len()
                    ),
                    Lang::En => format!(
                        "[Weekly dispatch] {} red, {} yellow ({today})",
                        red.len(),
                        yellow.len()
                    ),
                };
                let ctx = json!({
                    "heading": heading,
                    "intro": l.pick("本周需重点调度的事项:", "Items that need the office's attention this week:"),
                    "sections": [
                        { "title": l.pick("红灯(逾期)", "Red (overdue)"), "rows": red },
                        { "title": l.pick("黄灯(临近时限或进展滞后)", "Yellow (near the deadline or behind)"), "rows": yellow },
                    ],
                    "sender": self.cfg.sender,
                });
                messages.push(self.summary_message(
                    job,
                    &fire_key,
                    None,
                    dir.office_emails.clone(),
                    vec![],
                    heading,
                    &ctx,
                )?);
            }
            Job::MonthlyNotice => {
                if dir.office_emails.is_empty() {
                    return Ok(0);
                }
                #[derive(Default)]
                struct Row {
                    assigned: usize,
                    closed: usize,
                    overdue: usize,
                    send_backs: i64,
                }
                let mut rows: BTreeMap<String, Row> = BTreeMap::new();
                for i in items
                    .iter()
                    .filter(|i| i.state != ItemState::Draft && i.state != ItemState::Cancelled)
                {
                    let Some(u) = &i.lead_unit else { continue };
                    let r = rows.entry(u.clone()).or_default();
                    r.assigned += 1;
                    r.closed += usize::from(i.state == ItemState::Closed);
                    r.overdue += usize::from(light_of(i) == Some(Light::Red));
                    r.send_backs += i.send_backs;
                }
                let mut ranked: Vec<(String, Row)> = rows.into_iter().collect();
                // Most overdue first, then lowest completion.
                ranked.sort_by(|a, b| {
                    b.1.overdue.cmp(&a.1.overdue).then_with(|| {
                        (a.1.closed * 1000 / a.1.assigned.max(1))
                            .cmp(&(b.1.closed * 1000 / b.1.assigned.max(1)))
                    })
                });
                let lines: Vec<String> = ranked
                    .iter()
                    .enumerate()
                    .map(|(n, (u, r))| match l {
                        Lang::Zh => format!("{}. {}:交办 {},销号 {},逾期 {},退回 {},完成率 {:.0}%", n + 1, dir.unit_name(u), r.assigned, r.closed, r.overdue, r.send_backs, 100.0 * r.closed as f64 / r.assigned.max(1) as f64),
                        Lang::En => format!("{}. {}: assigned {}, closed {}, overdue {}, sent back {}, completion {:.0}%", n + 1, dir.unit_name(u), r.assigned, r.closed, r.overdue, r.send_backs, 100.0 * r.closed as f64 / r.assigned.max(1) as f64),
                    })
                    .collect();
                let mut cc: Vec<String> = Vec::new();
                for (u, _) in &ranked {
                    if let Some(e) = dir.units.get(u).and_then(|x| x.leader_email.clone()) {
                        cc.push(e);
                    }
                }
                let heading = match l {
                    Lang::Zh => format!("【月通报】各单位整改进展排名({today})"),
                    Lang::En => {
                        format!("[Monthly notice] units ranked by rectification progress ({today})")
                    }
                };
                let ctx = json!({
                    "heading": heading,
                    "intro": l.pick("按逾期事项数和完成率排名:", "Ranked by overdue items, then completion rate:"),
                    "sections": [{ "title": l.pick("单位排名", "Ranking"), "rows": lines }],
                    "sender": self.cfg.sender,
                });
                messages.push(self.summary_message(
                    job,
                    &fire_key,
                    None,
                    dir.office_emails.clone(),
                    cc,
                    heading,
                    &ctx,
                )?);
            }
        }
        let n = messages.len();
        for m in &messages {
            self.store.queue_message(m, &[], fire).await?;
        }
        Ok(n)
    }

    #[allow(clippy::too_many_arguments)]
    fn summary_message(
        &self,
        job: Job,
        fire_key: &str,
        unit: Option<&str>,
        to: Vec<String>,
        mut cc: Vec<String>,
        subject: String,
        ctx: &serde_json::Value,
    ) -> Result<NewMessage, StoreError> {
        let (text, html) = self.renderer_summary(ctx)?;
        cc.retain(|c| !to.contains(c));
        Ok(NewMessage {
            message_id: message_id(&[job.name(), fire_key, unit.unwrap_or("office")]),
            kind: job.name().to_string(),
            unit_code: unit.map(str::to_string),
            to,
            cc,
            subject,
            body_text: text,
            body_html: html,
        })
    }

    fn renderer_summary(&self, ctx: &serde_json::Value) -> Result<(String, String), StoreError> {
        self.renderer.summary(ctx).map_err(render_err)
    }
}
