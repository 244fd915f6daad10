//! The dispatcher: a pass turns the reminder rows due now into one digest per unit (and a
//! supervision notice per escalated item) in the outbox; delivery sends outbox messages with a
//! lease, outside any transaction, and records the outcome fenced by the lease token.
//!
//! Architecture invariant: nothing is sent inside a database transaction, and nothing is marked
//! sent before the transport accepted it. A crash between the two resends the message with the
//! same Message-ID (a detectable duplicate), never loses it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::light::{Light, LightPolicy, light};
use rectify_engine::remind::{self, Cc, ReminderKind, ReminderPolicy};
use rectify_engine::{Deadline, Item, ItemId, Lang};
use rectify_schema::{Directory, NewMessage, Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::mail::{Mailer, OutgoingMail, SendError};
use crate::render::Renderer;

/// Plain values the dispatcher needs, handed down from the configuration.
#[derive(Clone, Debug)]
pub struct DispatchConfig {
    pub lang: Lang,
    pub tz: Tz,
    pub from: String,
    /// Local time window for sending reminders, on working days only.
    pub window: (NaiveTime, NaiveTime),
    pub policy: ReminderPolicy,
    pub light: LightPolicy,
    pub calendar: Arc<WorkCalendar>,
    /// How long a claimed message stays ours before another instance may take it over.
    pub lease: Duration,
    pub max_connections: usize,
    /// Names this process in claims and logs.
    pub instance: String,
    /// The office's name, signing the emails.
    pub sender: String,
}

/// What a pass did or (in a preview) would do.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub messages: Vec<NewMessage>,
    pub reminders_queued: usize,
    pub skipped: Vec<(i64, &'static str)>,
    /// Why nothing was queued, when the pass did not run (outside the send window…).
    pub not_run: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

pub struct Dispatcher {
    pub store: Store,
    pub mailer: Mailer,
    pub cfg: DispatchConfig,
    pub(crate) renderer: Renderer,
}

/// A stable Message-ID from what the message contains.
pub fn message_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("<{}@rectify.local>", &hex::encode(h.finalize())[..40])
}

/// Retry delay after `attempts` failed attempts: 30 s doubling, at most an hour.
pub fn backoff(attempts: i64) -> Duration {
    let n = attempts.clamp(1, 20) as u32 - 1;
    Duration::from_secs((30u64 << n.min(7)).min(3600))
}

/// At most this many due rows are read per pass (or shard).
const DUE_LIMIT: u64 = 200_000;

/// `serve` splits the reminder pass into this many shards of lead units. Each shard is claimed
/// per fire (`remind/0` … `remind/11` in `jobs`), so instances share the planning: each plans
/// the shards it wins. A unit's digest is planned whole in its unit's shard. A constant, not a
/// setting: every instance must split the units alike.
pub const SHARDS: usize = 12;

/// The shard of a lead unit: FNV-1a of its code, so every instance and every version agrees.
pub fn shard_of(unit: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in unit.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// The shard that plans an item led by `unit`: its unit's, and shard 0 for items with no lead
/// unit or one unknown to the directory (they are skipped, once).
pub fn home_shard(unit: Option<&str>, dir: &Directory) -> usize {
    match unit {
        Some(u) if dir.units.contains_key(u) => shard_of(u),
        _ => 0,
    }
}

/// The job name under which shard `s` of the reminder pass is claimed.
pub fn shard_job(s: usize) -> String {
    format!("{}/{s}", crate::jobs::Job::Remind.name())
}

/// The lead units whose due rows shard `s` reads (`home_shard`).
fn shard_units(dir: &Directory, s: usize) -> rectify_schema::UnitSet {
    rectify_schema::UnitSet {
        units: dir
            .units
            .keys()
            .filter(|u| shard_of(u) == s)
            .cloned()
            .collect(),
        or_outside: (s == 0).then(|| dir.units.keys().cloned().collect()),
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.to_ascii_lowercase()));
}

impl Dispatcher {
    pub fn new(store: Store, mailer: Mailer, cfg: DispatchConfig) -> Self {
        let renderer = Renderer::new(cfg.lang);
        Dispatcher {
            store,
            mailer,
            cfg,
            renderer,
        }
    }

    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.cfg.tz).date_naive()
    }

    /// Whether `now` is inside the send window on a working day; if not, why.
    pub fn window_check(&self, now: DateTime<Utc>) -> Result<(), String> {
        let local = now.with_timezone(&self.cfg.tz);
        let l = self.cfg.lang;
        if !self.cfg.calendar.is_working_day(local.date_naive()) {
            return Err(l
                .pick(
                    "今天不是工作日,不发送提醒",
                    "not a working day: no reminders are sent",
                )
                .to_string());
        }
        let t = local.time();
        let (a, b) = self.cfg.window;
        if t < a || t >= b {
            return Err(match l {
                Lang::Zh => format!(
                    "当前时间 {} 不在发送时段 {}-{} 内",
                    t.format("%H:%M"),
                    a.format("%H:%M"),
                    b.format("%H:%M")
                ),
                Lang::En => format!(
                    "{} is outside the send window {}-{}",
                    t.format("%H:%M"),
                    a.format("%H:%M"),
                    b.format("%H:%M")
                ),
            });
        }
        Ok(())
    }

    fn days_text(&self, item: &Item, today: NaiveDate) -> String {
        let l = self.cfg.lang;
        match item.deadline {
            Some(Deadline::Date(due)) => {
                let cal = &self.cfg.calendar;
                if today > due {
                    let n = cal.working_days_between(due, today).max(1);
                    match l {
                        Lang::Zh => format!("已逾期 {n} 个工作日"),
                        Lang::En => format!("{n} working day(s) overdue"),
                    }
                } else if today == due {
                    l.pick("今日到期", "due today").to_string()
                } else {
                    let n = cal.working_days_between(today, due);
                    match l {
                        Lang::Zh => format!("剩余 {n} 个工作日"),
                        Lang::En => format!("{n} working day(s) left"),
                    }
                }
            }
            Some(Deadline::LongTerm) => l.pick("定期报送进展", "periodic reports").to_string(),
            None => "-".to_string(),
        }
    }

    pub(crate) fn light_of(&self, item: &Item, today: NaiveDate) -> Option<Light> {
        let tz = self.cfg.tz;
        light(item, today, &self.cfg.calendar, &self.cfg.light, &|t| {
            t.with_timezone(&tz).date_naive()
        })
    }

    /// The template context of one item.
    pub fn item_ctx(
        &self,
        item: &Item,
        kind: Option<ReminderKind>,
        rounds: &HashMap<String, String>,
        today: NaiveDate,
    ) -> Value {
        let l = self.cfg.lang;
        let lt = self.light_of(item, today);
        json!({
            "id": item.id,
            "kind": kind.map(|k| k.label(l)).unwrap_or(""),
            "round": rounds.get(&item.round).cloned().unwrap_or_else(|| item.round.clone()),
            "number": item.number,
            "title": item.title,
            "due": item.deadline.map(|d| d.label(l)).unwrap_or_else(|| "-".into()),
            "days": self.days_text(item, today),
            "light": lt.map(|x| x.label(l)).unwrap_or("-"),
            "color": match lt { Some(Light::Red) => "red", Some(Light::Yellow) => "orange", Some(Light::Green) => "green", None => "gray" },
            "progress": item.last_progress.clone().unwrap_or_else(|| "-".into()),
            "leader": item.leader.clone().unwrap_or_else(|| "-".into()),
        })
    }

    async fn round_titles(&self) -> Result<HashMap<String, String>, StoreError> {
        Ok(self
            .store
            .list_rounds()
            .await?
            .into_iter()
            .map(|r| (r.code, r.title))
            .collect())
    }

    /// Decides and (unless `dry_run`) queues what is due at `now`: the whole pass in one go
    /// (`remind run`, previews); `serve` runs it in shards (`run_shards`).
    pub async fn plan_pass(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PassReport, StoreError> {
        self.plan(now, dry_run, None).await
    }

    /// Plans and queues the reminders of shard `shard`'s lead units (see `shard_of`); the
    /// failure report is left to whoever opened the fire (`open_pass`).
    pub async fn plan_shard(
        &self,
        now: DateTime<Utc>,
        shard: usize,
    ) -> Result<PassReport, StoreError> {
        let l = self.lookups().await?;
        self.plan(now, false, Some((shard, &l))).await
    }

    /// The directory and the rounds' titles, read once for all the shards one instance plans
    /// in a round.
    async fn lookups(&self) -> Result<Lookups, StoreError> {
        Ok(Lookups {
            dir: self.store.directory().await?,
            rounds: self.round_titles().await?,
        })
    }

    /// What the instance that claimed a reminder fire does before the shards are planned:
    /// queues the failure report (once per fire, not per shard), and when nothing is due, or
    /// the fire is outside the send window, counts every shard of the fire as done, so that
    /// no instance reads them for nothing. An idle fire costs what an idle `plan_pass` does.
    pub async fn open_pass(
        &self,
        now: DateTime<Utc>,
        fire: DateTime<Utc>,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let shards: Vec<String> = (0..SHARDS).map(shard_job).collect();
        if let Err(why) = self.window_check(now) {
            report.not_run = Some(why);
            self.store
                .close_shards(&shards, fire, &self.cfg.instance, now)
                .await?;
            return Ok(report);
        }
        let today = self.today(now);
        let anything_due = self.store.any_due(today).await?;
        let dir = self.store.directory().await?;
        if let Some(m) = self.failure_report(&dir, today).await? {
            self.store.queue_message(&m, &[], now).await?;
            report.messages.push(m);
        }
        if !anything_due {
            self.store
                .close_shards(&shards, fire, &self.cfg.instance, now)
                .await?;
        }
        Ok(report)
    }

    /// Plans every shard of the latest reminder fire that this instance can claim: none that
    /// another instance has claimed for that fire, or is still planning from an earlier one.
    /// Starts at a shard picked by the instance's name, so that instances starting together
    /// do not all contend for the same first shard. Returns what the won shards queued, and
    /// how many shards that was.
    pub async fn run_shards(&self, now: DateTime<Utc>) -> Result<(PassReport, usize), StoreError> {
        let mut total = PassReport::default();
        let mut won = 0;
        let remind = crate::jobs::Job::Remind.name().to_string();
        let names: Vec<String> = (0..SHARDS).map(shard_job).collect();
        // The fire and the shards' claims in one query.
        let mut all = names.clone();
        all.push(remind.clone());
        let rows = self.store.job_rows(&all).await?;
        let Some(fire) = rows.get(&remind).map(|j| j.last_fire) else {
            return Ok((total, won));
        };
        let mut lookups = None;
        let lease = chrono::Duration::from_std(self.cfg.lease)
            .unwrap_or_else(|_| chrono::Duration::minutes(5));
        let first = shard_of(&self.cfg.instance);
        for k in 0..SHARDS {
            let s = (first + k) % SHARDS;
            let name = &names[s];
            // A cheap look first; the claim below decides.
            let open = rows
                .get(name)
                .is_none_or(|r| r.last_fire < fire && r.busy_until.is_none_or(|b| b <= now));
            if !open
                || !self
                    .store
                    .claim_shard(name, fire, &self.cfg.instance, now, now + lease)
                    .await?
            {
                continue;
            }
            won += 1;
            let planned = async {
                let l = match &lookups {
                    Some(l) => l,
                    None => lookups.insert(self.lookups().await?),
                };
                self.plan(now, false, Some((s, l))).await
            }
            .await;
            // Free the shard even when planning failed: the next fire tries it again.
            self.store
                .finish_shard(name, fire, &self.cfg.instance)
                .await?;
            let r = planned?;
            total.messages.extend(r.messages);
            total.reminders_queued += r.reminders_queued;
            total.skipped.extend(r.skipped);
            total.not_run = total.not_run.or(r.not_run);
        }
        Ok((total, won))
    }

    /// The pass, whole (`scope` None: reads its own lookups, and makes the failure report)
    /// or of one shard with the lookups its caller read.
    async fn plan(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
        scope: Option<(usize, &Lookups)>,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        if let Err(why) = self.window_check(now) {
            report.not_run = Some(why);
            return Ok(report);
        }
        let today = self.today(now);
        let shard = scope.map(|(s, _)| s);
        let due = match scope {
            None => self.store.due_reminders(today, DUE_LIMIT).await?,
            Some((s, l)) => {
                let set = shard_units(&l.dir, s);
                self.store
                    .due_reminders_of(today, DUE_LIMIT, Some(&set))
                    .await?
            }
        };
        if due.is_empty() {
            if shard.is_some() {
                return Ok(report);
            }
            // Nothing due; still tell the office about messages that could not be delivered.
            let dir = self.store.directory().await?;
            if let Some(m) = self.failure_report(&dir, today).await? {
                if !dry_run {
                    self.store.queue_message(&m, &[], now).await?;
                }
                report.messages.push(m);
            }
            return Ok(report);
        }
        let mut by_item: BTreeMap<ItemId, Vec<remind::DueReminder>> = BTreeMap::new();
        for (item, r) in due {
            by_item.entry(item).or_default().push(r);
        }
        let ids: Vec<ItemId> = by_item.keys().copied().collect();
        let items = self.store.items_by_ids(&ids).await?;
        let owned;
        let Lookups { dir, rounds } = match scope {
            Some((_, l)) => l,
            None => {
                owned = self.lookups().await?;
                &owned
            }
        };

        // Per item: the one reminder to send, and why the others are skipped.
        let mut chosen: Vec<(Item, remind::DueReminder)> = Vec::new();
        for (id, rows) in &by_item {
            let Some(item) = items.get(id) else {
                report
                    .skipped
                    .extend(rows.iter().map(|r| (r.id, "item_missing")));
                continue;
            };
            if let Some(s) = shard
                && home_shard(item.lead_unit.as_deref(), dir) != s
            {
                // Reassigned to another shard's unit since the rows were read: that shard
                // (now, or at the next fire) sends it to the new unit.
                continue;
            }
            let (send, skipped) = remind::choose(rows, item, today);
            report
                .skipped
                .extend(skipped.iter().map(|(id, why)| (*id, why.as_str())));
            if let Some(sid) = send
                && let Some(r) = rows.iter().find(|r| r.id == sid)
            {
                // Every other due row of the item was skipped above; this one goes out.
                chosen.push((item.clone(), r.clone()));
            }
        }

        // Supervision notices: one per item, a distinct template and subject.
        let mut digests: BTreeMap<String, Vec<(Item, remind::DueReminder)>> = BTreeMap::new();
        let mut planned: Vec<(NewMessage, Vec<i64>)> = Vec::new();
        for (item, r) in chosen {
            let Some(unit) = item.lead_unit.clone() else {
                report.skipped.push((r.id, "no_lead_unit"));
                continue;
            };
            if dir.unit_emails(&unit).is_empty() {
                report.skipped.push((r.id, "unit_has_no_email"));
                continue;
            }
            let step = (r.kind == ReminderKind::Escalation)
                .then(|| self.cfg.policy.escalate.get(r.step as usize))
                .flatten();
            if step.is_some_and(|s| s.notice) {
                planned.push((
                    self.notice(&item, &r, dir, rounds, today).await?,
                    vec![r.id],
                ));
            } else {
                digests.entry(unit).or_default().push((item, r));
            }
        }
        for (unit, rows) in digests {
            let ids: Vec<i64> = rows.iter().map(|(_, r)| r.id).collect();
            planned.push((self.digest(&unit, &rows, dir, rounds, today)?, ids));
        }

        if shard.is_none()
            && let Some(m) = self.failure_report(dir, today).await?
        {
            planned.push((m, vec![]));
        }

        if !dry_run {
            self.store
                .queue_messages(&planned, &report.skipped, now)
                .await?;
            report.reminders_queued = planned.iter().map(|(_, ids)| ids.len()).sum();
            // Plan the next overdue repeat (one step ahead) of the items whose overdue repeat
            // came up in this pass; other reminders are planned whole when the item changes.
            let overdue_items: Vec<ItemId> = by_item
                .iter()
                .filter(|(_, rows)| rows.iter().any(|r| r.kind == ReminderKind::Overdue))
                .map(|(id, _)| *id)
                .collect();
            let tomorrow = today.succ_opt().unwrap_or(today);
            self.store
                .replan_items(&overdue_items, tomorrow, now)
                .await?;
        } else {
            report.reminders_queued = planned.iter().map(|(_, ids)| ids.len()).sum();
        }
        report.messages = planned.into_iter().map(|(m, _)| m).collect();
        Ok(report)
    }

    /// A message to the office listing the messages that failed permanently, once per set of
    /// failures (the Message-ID is derived from the failed messages, so the same set is reported
    /// once).
    async fn failure_report(
        &self,
        dir: &Directory,
        today: NaiveDate,
    ) -> Result<Option<NewMessage>, StoreError> {
        if dir.office_emails.is_empty() {
            return Ok(None);
        }
        let failed: Vec<_> = self
            .store
            .list_outbox(Some("failed"))
            .await?
            .into_iter()
            .filter(|m| m.kind != "failure_report")
            .collect();
        if failed.is_empty() {
            return Ok(None);
        }
        let l = self.cfg.lang;
        let mut ids: Vec<String> = failed.iter().map(|m| m.id.to_string()).collect();
        ids.insert(0, "failure_report".into());
        let parts: Vec<&str> = ids.iter().map(String::as_str).collect();
        let message_id = message_id(&parts);
        if self.store.outbox_has(&message_id).await? {
            return Ok(None);
        }
        let rows: Vec<String> = failed
            .iter()
            .map(|m| {
                let to: Vec<String> = serde_json::from_str(&m.to_addrs).unwrap_or_default();
                format!(
                    "#{} {} → {}: {}",
                    m.id,
                    m.subject,
                    to.join(", "),
                    m.last_error.as_deref().unwrap_or("-")
                )
            })
            .collect();
        let heading = match l {
            Lang::Zh => format!("【发送失败】{} 封提醒邮件未能送达({today})", failed.len()),
            Lang::En => format!(
                "[Delivery failed] {} reminder message(s) could not be delivered ({today})",
                failed.len()
            ),
        };
        let ctx = json!({
            "heading": heading,
            "intro": l.pick(
                "以下邮件被收件服务器拒收,请核对单位邮箱后用 `rectify outbox retry ID` 重发:",
                "These messages were refused by the receiving server; check the units' addresses, then resend with `rectify outbox retry ID`:"),
            "sections": [{ "title": l.pick("未送达邮件", "Undelivered"), "rows": rows }],
            "sender": self.cfg.sender,
        });
        let (text, html) = self.renderer.summary(&ctx).map_err(render_err)?;
        Ok(Some(NewMessage {
            message_id,
            kind: "failure_report".into(),
            unit_code: None,
            to: dir.office_emails.clone(),
            cc: vec![],
            subject: heading,
            body_text: text,
            body_html: html,
        }))
    }

    fn cc_for(&self, item: &Item, kind: ReminderKind, step: i64, dir: &Directory) -> Vec<String> {
        let mut cc = Vec::new();
        if kind.copies_cooperating_units() {
            for u in &item.co_units {
                cc.extend(dir.unit_emails(u));
            }
        }
        if kind == ReminderKind::Escalation
            && let Some(s) = self.cfg.policy.escalate.get(step as usize)
        {
            for c in &s.cc {
                match c {
                    Cc::Leader => cc.extend(dir.leader_email(item)),
                    Cc::Office => cc.extend(dir.office_emails.iter().cloned()),
                }
            }
        }
        cc
    }

    fn digest(
        &self,
        unit: &str,
        rows: &[(Item, remind::DueReminder)],
        dir: &Directory,
        rounds: &HashMap<String, String>,
        today: NaiveDate,
    ) -> Result<NewMessage, StoreError> {
        let l = self.cfg.lang;
        let to = dir.unit_emails(unit);
        let mut cc = Vec::new();
        let mut items = Vec::new();
        let mut key_parts: Vec<String> = vec!["digest".into(), unit.into()];
        for (item, r) in rows {
            cc.extend(self.cc_for(item, r.kind, r.step, dir));
            items.push(self.item_ctx(item, Some(r.kind), rounds, today));
            key_parts.push(r.id.to_string());
        }
        dedup(&mut cc);
        cc.retain(|c| !to.iter().any(|t| t.eq_ignore_ascii_case(c)));
        let unit_name = dir.unit_name(unit);
        let ctx = json!({ "unit": unit_name, "today": today.to_string(), "items": items, "sender": self.cfg.sender });
        let (text, html) = self.renderer.digest(&ctx).map_err(render_err)?;
        let subject = match l {
            Lang::Zh => format!(
                "【整改提醒】{unit_name}:{} 项整改事项需关注({today})",
                rows.len()
            ),
            Lang::En => format!(
                "[Rectification] {unit_name}: {} item(s) need attention ({today})",
                rows.len()
            ),
        };
        let parts: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        Ok(NewMessage {
            message_id: message_id(&parts),
            kind: "digest".into(),
            unit_code: Some(unit.to_string()),
            to,
            cc,
            subject,
            body_text: text,
            body_html: html,
        })
    }

    async fn notice(
        &self,
        item: &Item,
        r: &remind::DueReminder,
        dir: &Directory,
        rounds: &HashMap<String, String>,
        today: NaiveDate,
    ) -> Result<NewMessage, StoreError> {
        let l = self.cfg.lang;
        let unit = item.lead_unit.clone().unwrap_or_default();
        let to = dir.unit_emails(&unit);
        let mut cc = self.cc_for(item, r.kind, r.step, dir);
        dedup(&mut cc);
        cc.retain(|c| !to.iter().any(|t| t.eq_ignore_ascii_case(c)));
        let history: Vec<Value> = self
            .store
            .reminder_history(item.id)
            .await?
            .iter()
            .map(|h| {
                json!({
                    "date": h.send_on,
                    "kind": ReminderKind::parse(&h.kind).map(|k| k.label(l)).unwrap_or(""),
                })
            })
            .collect();
        let mut ctx = self.item_ctx(item, Some(r.kind), rounds, today);
        ctx["unit"] = dir.unit_name(&unit).into();
        ctx["today"] = today.to_string().into();
        ctx["history"] = history.into();
        ctx["sender"] = self.cfg.sender.clone().into();
        let (text, html) = self.renderer.notice(&ctx).map_err(render_err)?;
        let subject = match l {
            Lang::Zh => format!(
                "【督办单】{} {} 逾期未完成整改",
                ctx["round"].as_str().unwrap_or(""),
                item.number
            ),
            Lang::En => format!(
                "[Supervision notice] {} {} is overdue",
                ctx["round"].as_str().unwrap_or(""),
                item.number
            ),
        };
        Ok(NewMessage {
            message_id: message_id(&["notice", &item.id.to_string(), &r.id.to_string()]),
            kind: "notice".into(),
            unit_code: Some(unit),
            to,
            cc,
            subject,
            body_text: text,
            body_html: html,
        })
    }

    /// Sends every message that is ready, with up to `max_connections` in flight; records each
    /// outcome fenced by this pass's lease token. Returns what happened.
    ///
    /// `start` is the time at the call; each batch is claimed at `start` plus the time spent so
    /// far, so its lease runs from its own claim, however long the earlier batches took.
    pub async fn deliver(
        &self,
        start: DateTime<Utc>,
        token: &str,
    ) -> Result<DeliveryReport, StoreError> {
        Ok(self.deliver_timed(start, token).await?.0)
    }

    /// `deliver`, and how long the sending took (to the last message recorded) against the
    /// settling of reminder rows that followed it.
    ///
    /// The reminder rows of sent messages are settled every `SETTLE_EVERY` messages or
    /// `SETTLE_AFTER`, and once after the last batch, not after every batch: settling is a
    /// row update per reminder (50 per digest), which on PostgreSQL took three times as long as
    /// sending the batch and held up the next one. Rows left 'queued' under a sent message by a
    /// process killed before settling are settled by the next delivery (first thing below).
    pub async fn deliver_timed(
        &self,
        start: DateTime<Utc>,
        token: &str,
    ) -> Result<(DeliveryReport, DeliveryTiming), StoreError> {
        let mut report = DeliveryReport::default();
        let mut timing = DeliveryTiming::default();
        let t0 = std::time::Instant::now();
        // Reminders of messages a killed process had sent but not settled: sent more than a
        // lease ago (a live delivery settles its own within that: every `SETTLE_AFTER`, and
        // at its end).
        let lease =
            chrono::Duration::from_std(self.cfg.lease).unwrap_or(chrono::Duration::seconds(60));
        self.store.settle_left_behind(start - lease, start).await?;
        timing.settling = t0.elapsed();
        let started = std::time::Instant::now();
        let mut unsettled: Vec<i64> = Vec::new();
        let mut last_settle = std::time::Instant::now();
        let settle = |ids: Vec<i64>, now: DateTime<Utc>| async move {
            let t = std::time::Instant::now();
            let rows = self.store.settle_sent(&ids, now).await?;
            tracing::debug!(
                messages = ids.len(),
                rows,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "delivery settled"
            );
            Ok::<_, StoreError>(t.elapsed())
        };
        loop {
            let now = start + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
            let t_claim = std::time::Instant::now();
            let batch = self.store.claim_outbox(now, now + lease, token, 64).await?;
            if batch.is_empty() {
                break;
            }
            let claimed = batch.len();
            let claim_ms = t_claim.elapsed().as_secs_f64() * 1e3;
            let today = self.today(now);
            // A message may have gone stale since it was queued (deadline moved, item closed):
            // a retried message, or one queued before the last minute, has its reminders checked
            // against the items as they are now, for the whole batch in two queries, before
            // anything is sent. A first attempt at a message just queued (this pass's) was
            // planned from the items as they are; checking it would read every item again.
            let fresh_since = start - chrono::Duration::seconds(60);
            let ids: Vec<i64> = batch
                .iter()
                .filter(|m| m.attempts > 1 || m.created_at < fresh_since)
                .map(|m| m.id)
                .collect();
            let all: Vec<i64> = batch.iter().map(|m| m.id).collect();
            let mut bodies = self
                .store
                .message_bodies(&all)
                .await
                .map_err(|e| e.to_string());
            let stale = match (&bodies, self.stale_check(&ids, today).await) {
                (Err(e), _) => Err(e.clone()),
                (_, Err(e)) => Err(e.to_string()),
                (Ok(_), Ok(s)) => Ok(s),
            };
            let stale = &stale;
            let batch: Vec<_> = batch
                .into_iter()
                .map(|m| {
                    let body = bodies.as_mut().ok().and_then(|b| b.remove(&m.id));
                    (m, body)
                })
                .collect();
            // The senders record their outcomes one at a time: concurrent writers on SQLite
            // do not queue for its lock, they sleep and retry (1, 2, 5, 10 ms…), which cost
            // the due pass a third of its sending time (BENCHMARKS.md).
            let recording = tokio::sync::Mutex::new(());
            let recording = &recording;
            let t_send = std::time::Instant::now();
            let prepare_ms = (t_send - t_claim).as_secs_f64() * 1e3 - claim_ms;
            let results: Vec<(i64, i64, Delivery)> = futures::stream::iter(batch)
                .map(|(m, body)| async move {
                    match stale {
                        Ok(s) => {
                            if let Some((requeue, skip)) = s.get(&m.id) {
                                return (
                                    m.id,
                                    m.attempts,
                                    Delivery::Withdrawn {
                                        requeue: requeue.clone(),
                                        skip: skip.clone(),
                                    },
                                );
                            }
                        }
                        Err(e) => {
                            return (
                                m.id,
                                m.attempts,
                                Delivery::Failed(SendError::Transient(e.clone())),
                            );
                        }
                    }
                    let Some((text, html)) = body else {
                        return (
                            m.id,
                            m.attempts,
                            Delivery::Failed(SendError::Permanent(format!(
                                "the message's body is missing (no outbox_bodies row for outbox id {}): queue it again",
                                m.id
                            ))),
                        );
                    };
                    let mail = OutgoingMail {
                        message_id: m.message_id.clone(),
                        from: self.cfg.from.clone(),
                        to: serde_json::from_str(&m.to_addrs).unwrap_or_default(),
                        cc: serde_json::from_str(&m.cc_addrs).unwrap_or_default(),
                        subject: m.subject.clone(),
                        text,
                        html,
                    };
                    // On a task of its own: the runtime's worker threads build and send the
                    // messages of the connections in parallel, where this future, polled by one
                    // thread, did all their MIME and socket work on that thread.
                    let mailer = self.mailer.clone();
                    let r = tokio::spawn(send_with_fallback(mailer, mail))
                        .await
                        .unwrap_or_else(|e| {
                            Delivery::Failed(SendError::Transient(format!("the send stopped: {e}")))
                        });
                    // Recorded as soon as the server has it, not after the batch: a process
                    // killed now sends again only the messages it was sending at that moment.
                    let _recording = recording.lock().await;
                    let r = match r {
                        Delivery::Sent(note) => match self.store.mark_sent(m.id, token, now).await {
                            Ok(true) => {
                                if let Some(n) = &note {
                                    tracing::warn!(outbox_id = m.id, note = %n, "copy address refused");
                                    if let Err(e) = self.store.note_on_message(m.id, n).await {
                                        return (m.id, m.attempts, Delivery::NotRecorded(e));
                                    }
                                }
                                Delivery::Sent(note)
                            }
                            // The lease was lost to another instance: not counted here.
                            Ok(false) => Delivery::Superseded,
                            Err(e) => Delivery::NotRecorded(e),
                        },
                        other => other,
                    };
                    (m.id, m.attempts, r)
                })
                .buffer_unordered(self.cfg.max_connections.max(1))
                .collect()
                .await;
            let mut transient = false;
            let sent: Vec<i64> = results
                .iter()
                .filter(|(_, _, r)| matches!(r, Delivery::Sent(_)))
                .map(|(id, _, _)| *id)
                .collect();
            tracing::debug!(
                claimed,
                claim_ms,
                prepare_ms,
                send_ms = t_send.elapsed().as_secs_f64() * 1e3,
                "delivery batch"
            );
            unsettled.extend(sent);
            if unsettled.len() >= SETTLE_EVERY || last_settle.elapsed() >= SETTLE_AFTER {
                timing.settling += settle(std::mem::take(&mut unsettled), now).await?;
                last_settle = std::time::Instant::now();
            }
            for (id, attempts, r) in results {
                match r {
                    Delivery::Sent(_) => report.sent += 1,
                    Delivery::Superseded => {}
                    Delivery::NotRecorded(e) => return Err(e),
                    Delivery::Withdrawn { requeue, skip } => {
                        tracing::info!(
                            outbox_id = id,
                            requeued = requeue.len(),
                            skipped = skip.len(),
                            "stale message withdrawn"
                        );
                        let skip: Vec<(i64, &str)> = skip.iter().map(|(i, w)| (*i, *w)).collect();
                        self.store
                            .withdraw_message(id, token, &requeue, &skip, now)
                            .await?;
                    }
                    Delivery::Failed(SendError::Transient(e)) => {
                        transient = true;
                        let next = now
                            + chrono::Duration::from_std(backoff(attempts))
                                .unwrap_or(chrono::Duration::seconds(30));
                        tracing::warn!(outbox_id = id, attempts, error = %e, "send failed, will retry");
                        if self.store.mark_retry(id, token, next, &e).await? {
                            report.retried += 1;
                        }
                    }
                    Delivery::Failed(SendError::Permanent(e)) => {
                        tracing::error!(outbox_id = id, error = %e, "send failed permanently");
                        if self.store.mark_failed(id, token, &e).await? {
                            report.failed += 1;
                        }
                    }
                }
            }
            if transient {
                // The server is in trouble: leave the rest for the next attempt instead of
                // hammering it in a busy loop.
                break;
            }
        }
        // Sending: the whole delivery so far, less the settling done in between.
        timing.sending = t0.elapsed().saturating_sub(timing.settling);
        if !unsettled.is_empty() {
            let now = start + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
            timing.settling += settle(unsettled, now).await?;
        }
        Ok((report, timing))
    }
}

/// Sends `mail`; when the server refuses it for good and it has copy addresses, once more to
/// the main recipients only (a refused copy address must not cost the lead unit its
/// reminder), with a note of the refusal.
async fn send_with_fallback(mailer: Mailer, mut mail: OutgoingMail) -> Delivery {
    match mailer.send(&mail).await {
        Ok(()) => Delivery::Sent(None),
        Err(SendError::Permanent(e)) if !mail.cc.is_empty() => {
            let cc = std::mem::take(&mut mail.cc);
            match mailer.send(&mail).await {
                Ok(()) => Delivery::Sent(Some(format!(
                    "sent without copies ({}): {e}",
                    cc.join(", ")
                ))),
                Err(e2) => Delivery::Failed(e2),
            }
        }
        Err(e) => Delivery::Failed(e),
    }
}

/// Settle the reminder rows of sent messages at least every this many messages…
const SETTLE_EVERY: usize = 512;
/// …or this often, during a long delivery.
const SETTLE_AFTER: Duration = Duration::from_secs(5);

/// Where a delivery's time went: sending and recording each message, and settling the reminder
/// rows of the sent messages (see `Dispatcher::deliver_timed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryTiming {
    pub sending: Duration,
    pub settling: Duration,
}

/// What a pass looks up besides the due rows: units and operators, rounds' titles.
struct Lookups {
    dir: Directory,
    rounds: HashMap<String, String>,
}

/// What became of one claimed message.
enum Delivery {
    /// Accepted by the transport and recorded, with a note when copies had to be dropped.
    Sent(Option<String>),
    /// Accepted, but the claim had passed to another instance (its lease ran out).
    Superseded,
    /// Accepted, but recording it failed (the database went away): the message stays claimed
    /// until its lease runs out, then it is sent again with the same Message-ID.
    NotRecorded(StoreError),
    Failed(SendError),
    /// Not sent: its content went stale; reminders to requeue and to skip.
    Withdrawn {
        requeue: Vec<i64>,
        skip: Vec<(i64, &'static str)>,
    },
}

/// Per withdrawn message: the reminders to requeue and the ones to skip with a reason.
type Withdrawals = HashMap<i64, (Vec<i64>, Vec<(i64, &'static str)>)>;

impl Dispatcher {
    /// The messages of a batch that may not go out as they are, each with the reminders to
    /// requeue and to skip; a message not named may go out.
    async fn stale_check(
        &self,
        outbox_ids: &[i64],
        today: NaiveDate,
    ) -> Result<Withdrawals, StoreError> {
        let by_message = self.store.messages_reminders(outbox_ids).await?;
        let mut item_ids: Vec<ItemId> = by_message
            .values()
            .flat_map(|rows| rows.iter().map(|(i, _)| *i))
            .collect();
        item_ids.sort_unstable();
        item_ids.dedup();
        let items = self.store.items_by_ids(&item_ids).await?;
        let mut out = HashMap::new();
        for (outbox_id, rows) in by_message {
            let mut requeue = Vec::new();
            let mut skip = Vec::new();
            for (item_id, r) in &rows {
                match items.get(item_id).map(|i| remind::still_valid(r, i, today)) {
                    Some(Ok(())) => requeue.push(r.id),
                    Some(Err(why)) => skip.push((r.id, why.as_str())),
                    None => skip.push((r.id, "item_missing")),
                }
            }
            if !skip.is_empty() {
                out.insert(outbox_id, (requeue, skip));
            }
        }
        Ok(out)
    }
}

pub(crate) fn render_err(e: String) -> StoreError {
    StoreError::Db(rectify_schema::sea_orm::DbErr::Custom(e))
}
