//! Reminder rows, the outbox and periodic-job claims: the store side of the scheduler.
//!
//! Planning is the engine's (`rectify_engine::remind::plan`); the store writes the plan as rows in
//! the same transaction as the command that changed the item, and gives the dispatcher what it
//! needs: the rows due now (by index), leases on outbox messages, fenced state changes.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::remind::{self, DueReminder, ReminderKind, ReminderPolicy};
use rectify_engine::{Item, ItemId};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use crate::entity::{item, job, operator, outbox, outbox_body, reminder};
use crate::error::StoreError;
use crate::store::{Result, Store, now_for_store};

/// The PostgreSQL channel on which plan changes are announced.
pub const PLAN_CHANNEL: &str = "rectify_plan";

/// What the store needs to plan reminders: the policy, the work calendar and the time zone.
#[derive(Clone, Debug)]
pub struct Planner {
    pub policy: ReminderPolicy,
    pub calendar: Arc<WorkCalendar>,
    pub tz: Tz,
}

impl Default for Planner {
    fn default() -> Self {
        Planner {
            policy: ReminderPolicy::default(),
            calendar: Arc::new(WorkCalendar::china()),
            tz: chrono_tz::Asia::Shanghai,
        }
    }
}

impl Planner {
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// The reminder plan of `item` on `today`, and its digest (stored as the item's `plan_key`,
    /// so a command that leaves the plan as it was touches no reminder row).
    pub fn plan_for(&self, item: &Item, today: NaiveDate) -> (Vec<remind::Planned>, String) {
        let planned = remind::plan(item, &self.policy, &self.calendar, today, &|t| {
            self.local_date(t)
        });
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        for r in &planned {
            sha2::Digest::update(
                &mut h,
                format!(
                    "{}:{}:{}:{};",
                    r.kind.as_str(),
                    r.step,
                    r.deadline_version,
                    r.send_on
                ),
            );
        }
        let key = hex::encode(&sha2::Digest::finalize(h)[..12]);
        (planned, key)
    }
}

/// A message ready to be queued.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub message_id: String,
    pub kind: String,
    pub unit_code: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
}

/// Who to write to about a unit's items.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub units: HashMap<String, crate::Unit>,
    /// Operator name → email.
    pub operator_emails: HashMap<String, String>,
    pub office_emails: Vec<String>,
}

impl Directory {
    /// The responsible leader's email: an operator of that name, else the lead unit's leader
    /// record when the names match (or the item names no leader).
    pub fn leader_email(&self, item: &Item) -> Option<String> {
        if let Some(name) = &item.leader
            && let Some(e) = self.operator_emails.get(name)
        {
            return Some(e.clone());
        }
        let unit = self.units.get(item.lead_unit.as_deref()?)?;
        match (&item.leader, &unit.leader) {
            (Some(a), Some(b)) if a != b => None,
            _ => unit.leader_email.clone(),
        }
    }

    pub fn unit_emails(&self, code: &str) -> Vec<String> {
        self.units
            .get(code)
            .map(|u| u.emails.clone())
            .unwrap_or_default()
    }

    pub fn unit_name(&self, code: &str) -> String {
        self.units
            .get(code)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| code.to_string())
    }
}

/// A reminder row as the dispatcher sees it (rows of an unknown kind or date are left alone).
fn due_of(r: reminder::Model) -> Option<(ItemId, DueReminder)> {
    Some((
        r.item_id,
        DueReminder {
            id: r.id,
            kind: ReminderKind::parse(&r.kind)?,
            step: r.step,
            send_on: parse_date(&r.send_on)?,
            deadline_version: r.deadline_version,
        },
    ))
}

fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

impl Store {
    /// The reminder plan of `item` on `today`, and its digest.
    pub(crate) fn plan_for(&self, item: &Item, today: NaiveDate) -> (Vec<remind::Planned>, String) {
        self.planner.plan_for(item, today)
    }

    /// Writes `item`'s reminder plan for `today` inside `txn` and records its digest on the item.
    pub(crate) async fn replan(
        &self,
        txn: &DatabaseTransaction,
        item: &Item,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (planned, key) = self.plan_for(item, today);
        self.write_plan(txn, item, &planned, &[], now).await?;
        item::Entity::update_many()
            .col_expr(item::Column::PlanKey, Expr::value(key))
            .filter(item::Column::Id.eq(item.id))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Makes the item's reminder rows follow `planned`: pending rows the plan no longer contains
    /// (an old deadline, a state that needs no reminders) are cancelled, planned rows that do not
    /// exist yet are inserted (the unique key makes this idempotent), and planned rows cancelled
    /// by an earlier re-plan are pending again (an item taken back into a state that needs them:
    /// in progress → long-term plans the same progress reminder). Sent and skipped rows stay as
    /// they are. Two statements.
    pub(crate) async fn write_plan(
        &self,
        txn: &DatabaseTransaction,
        item: &Item,
        planned: &[remind::Planned],
        known: &[remind::Planned],
        now: DateTime<Utc>,
    ) -> Result<()> {
        run_statements(txn, self.plan_statements(item, planned, known, now)).await
    }

    /// The statements [`Store::write_plan`] runs, for a caller that sends them with others.
    /// `known`: reminders the item is known to have rows for already (a row of the plan, not
    /// cancelled since); they are not written again. Pending rows `planned` no longer has are
    /// cancelled whatever `known` says.
    pub(crate) fn plan_statements(
        &self,
        item: &Item,
        planned: &[remind::Planned],
        known: &[remind::Planned],
        now: DateTime<Utc>,
    ) -> Vec<Statement> {
        use sea_orm::QueryTrait;
        let backend = self.backend();
        let mut out = Vec::with_capacity(3);
        out.push(cancel_unplanned(item.id, planned, now).build(backend));
        if backend == DbBackend::Postgres {
            // Delivered on commit: wakes every `serve` instance listening.
            out.push(Statement::from_string(
                backend,
                format!("NOTIFY {PLAN_CHANNEL}"),
            ));
        }
        let same_key = |a: &remind::Planned, b: &remind::Planned| {
            a.kind == b.kind && a.step == b.step && a.deadline_version == b.deadline_version
        };
        let mut new = planned
            .iter()
            .filter(|r| !known.iter().any(|k| same_key(k, r)))
            .peekable();
        if new.peek().is_none() {
            return out;
        }
        let rows = new.map(|r| reminder_row(item.id, r, now));
        out.push(
            reminder::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        reminder::Column::ItemId,
                        reminder::Column::Kind,
                        reminder::Column::Step,
                        reminder::Column::DeadlineVersion,
                    ])
                    .update_columns([
                        reminder::Column::State,
                        reminder::Column::SendOn,
                        reminder::Column::Reason,
                        reminder::Column::UpdatedAt,
                    ])
                    .action_and_where(sea_orm::sea_query::ExprTrait::eq(
                        Expr::col((reminder::Entity, reminder::Column::State)),
                        "cancelled",
                    ))
                    .to_owned(),
                )
                .build(backend),
        );
        out
    }

    /// Re-plans items after a dispatcher pass (the next overdue repeat, one step ahead).
    pub async fn replan_items(
        &self,
        ids: &[ItemId],
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = now_for_store(now);
        for chunk in ids.chunks(500) {
            let items = self.items_by_ids(chunk).await?;
            let txn = self.begin_write().await?;
            for it in items.values() {
                self.replan(&txn, it, day, now).await?;
            }
            txn.commit().await?;
        }
        Ok(())
    }

    /// Pending reminders due on or before `today` (uses the (state, send_on) index).
    pub async fn due_reminders(
        &self,
        today: NaiveDate,
        limit: u64,
    ) -> Result<Vec<(ItemId, DueReminder)>> {
        self.due_reminders_of(today, limit, None).await
    }

    /// Whether any reminder is due on or before `today`: one row of the due index.
    pub async fn any_due(&self, today: NaiveDate) -> Result<bool> {
        Ok(reminder::Entity::find()
            .select_only()
            .column(reminder::Column::Id)
            .filter(state_is("pending"))
            .filter(reminder::Column::SendOn.lte(date_str(today)))
            .into_tuple::<i64>()
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Like `due_reminders`, only of the items led by one of `units` (all items: `None`).
    /// Each due row looks up its item by primary key, so the cost follows the due rows, not
    /// the units' items.
    pub async fn due_reminders_of(
        &self,
        today: NaiveDate,
        limit: u64,
        units: Option<&UnitSet>,
    ) -> Result<Vec<(ItemId, DueReminder)>> {
        let rows = due_select(today, limit, units).all(&self.db).await?;
        Ok(rows.into_iter().filter_map(due_of).collect())
    }

    /// How many reminders are pending (the queue depth).
    pub async fn pending_reminders(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(reminder::Entity::find()
            .filter(state_is("pending"))
            .count(&self.db)
            .await?)
    }

    /// Whether a message with this Message-ID was ever queued.
    pub async fn outbox_has(&self, message_id: &str) -> Result<bool> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::MessageId.eq(message_id))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Messages waiting to be sent (the outbox depth).
    pub async fn outbox_depth(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find()
            .filter(outbox::Column::State.is_in(["pending", "sending"]))
            .count(&self.db)
            .await?)
    }

    /// A cheap round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// The earliest date a pending reminder is due, for the scheduler's sleep.
    pub async fn next_reminder_date(&self) -> Result<Option<NaiveDate>> {
        let r = reminder::Entity::find()
            .filter(state_is("pending"))
            .order_by_asc(reminder::Column::SendOn)
            .one(&self.db)
            .await?;
        Ok(r.and_then(|r| parse_date(&r.send_on)))
    }

    pub async fn items_by_ids(&self, ids: &[ItemId]) -> Result<HashMap<ItemId, Item>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            for m in item::Entity::find()
                .filter(item::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                out.insert(m.id, crate::store::to_item_pub(&m)?);
            }
        }
        Ok(out)
    }

    /// Units, operators' emails and the office's emails.
    pub async fn directory(&self) -> Result<Directory> {
        let units = self.list_units().await?;
        let ops = operator::Entity::find().all(&self.db).await?;
        let mut d = Directory {
            units: units.into_iter().map(|u| (u.code.clone(), u)).collect(),
            ..Default::default()
        };
        for o in ops {
            if let Some(e) = &o.email {
                d.operator_emails.insert(o.name.clone(), e.clone());
                if o.role == "admin" {
                    d.office_emails.push(e.clone());
                }
            }
        }
        Ok(d)
    }

    /// Queues one message and marks its reminder rows queued, in one transaction. Queuing the
    /// same message twice (same Message-ID) is a no-op, so a re-run pass cannot duplicate it.
    pub async fn queue_message(
        &self,
        msg: &NewMessage,
        reminder_ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let ids = self
            .queue_messages(&[(msg.clone(), reminder_ids.to_vec())], &[], now)
            .await?;
        ids.first().copied().ok_or_else(|| StoreError::NotFound {
            what: "message",
            key: msg.message_id.clone(),
        })
    }

    /// Queues a whole pass in one transaction: the skipped reminders are marked skipped, every
    /// message is inserted and its reminder rows marked queued. One transaction instead of one
    /// per message: a unit's reminder rows lie on pages shared with every other unit's, so
    /// per-message transactions wrote each of those pages to the WAL once per message
    /// (BENCHMARKS.md, due pass). Queuing a message that is already there (same Message-ID) is
    /// a no-op, so a re-run pass cannot duplicate it. Returns the messages' outbox ids.
    pub async fn queue_messages(
        &self,
        msgs: &[(NewMessage, Vec<i64>)],
        skips: &[(i64, &str)],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let now = now_for_store(now);
        let txn = self.begin_write().await?;
        skip_reminders_on(&txn, skips, now).await?;
        let mut ids = Vec::with_capacity(msgs.len());
        let mut offered = std::collections::HashSet::new();
        // A few statements per chunk of messages, not four per message: a pass queues a
        // shard's messages in a handful of round trips (BENCHMARKS.md, instances).
        for chunk in msgs.chunks(QUEUE_CHUNK) {
            let rows = chunk.iter().map(|(msg, _)| outbox::ActiveModel {
                id: NotSet,
                message_id: Set(msg.message_id.clone()),
                kind: Set(msg.kind.clone()),
                unit_code: Set(msg.unit_code.clone()),
                to_addrs: Set(serde_json::to_string(&msg.to).unwrap_or_default()),
                cc_addrs: Set(serde_json::to_string(&msg.cc).unwrap_or_default()),
                subject: Set(msg.subject.clone()),
                state: Set("pending".into()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                lease_until: Set(None),
                lease_token: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                sent_at: Set(None),
            });
            // Another instance's pass may be queuing the same message at this moment: its row
            // wins (PostgreSQL waits for its transaction) and this one takes that row's id.
            // RETURNING gives the rows this statement inserted; the others were there.
            let inserted: HashMap<String, i64> = outbox::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::column(outbox::Column::MessageId)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_with_returning(&txn)
                .await?
                .into_iter()
                .map(|m| (m.message_id, m.id))
                .collect();
            let there: Vec<String> = chunk
                .iter()
                .map(|(msg, _)| &msg.message_id)
                .filter(|m| !inserted.contains_key(*m))
                .cloned()
                .collect();
            let existing: HashMap<String, i64> = if there.is_empty() {
                HashMap::new()
            } else {
                outbox::Entity::find()
                    .select_only()
                    .column(outbox::Column::MessageId)
                    .column(outbox::Column::Id)
                    .filter(outbox::Column::MessageId.is_in(there))
                    .into_tuple::<(String, i64)>()
                    .all(&txn)
                    .await?
                    .into_iter()
                    .collect()
            };
            let mut bodies = Vec::new();
            let mut with_body = std::collections::HashSet::new();
            let mut queued: Vec<(i64, i64)> = Vec::new();
            for (msg, reminder_ids) in chunk {
                let key = &msg.message_id;
                let id = match (inserted.get(key), existing.get(key)) {
                    (Some(id), _) => {
                        // The same Message-ID twice in one call: the first carries the body.
                        if with_body.insert(*id) {
                            bodies.push(outbox_body::ActiveModel {
                                outbox_id: Set(*id),
                                body_text: Set(msg.body_text.clone()),
                                body_html: Set(msg.body_html.clone()),
                            });
                        }
                        *id
                    }
                    (None, Some(id)) => *id,
                    (None, None) => {
                        return Err(StoreError::NotFound {
                            what: "message",
                            key: key.clone(),
                        });
                    }
                };
                // A row offered by two messages stays on the first, as one statement per
                // message left it (a join with two matches would pick either).
                queued.extend(
                    reminder_ids
                        .iter()
                        .filter(|r| offered.insert(**r))
                        .map(|r| (*r, id)),
                );
                ids.push(id);
            }
            outbox_body::Entity::insert_many(bodies)
                .exec_without_returning(&txn)
                .await?;
            for rows in queued.chunks(500) {
                txn.execute_raw(queue_rows_statement(txn.get_database_backend(), rows, now))
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` messages ready to send (or whose lease expired: their instance died)
    /// with a lease until `lease_until`, fenced by `token`. PostgreSQL uses
    /// `FOR UPDATE SKIP LOCKED` so instances never claim the same row; SQLite has one writer.
    pub async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: u64,
    ) -> Result<Vec<outbox::Model>> {
        let now = now_for_store(now);
        let backend = self.backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let p = placeholders(backend, 5);
        let sql = format!(
            "UPDATE outbox SET state = 'sending', lease_until = {}, lease_token = {}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE (state = 'pending' AND next_attempt_at <= {}) \
             OR (state = 'sending' AND lease_until < {}) ORDER BY id LIMIT {}{lock}) RETURNING *",
            p[0], p[1], p[2], p[3], p[4]
        );
        let stmt = Statement::from_sql_and_values(
            backend,
            sql,
            [
                now_for_store(lease_until).into(),
                token.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        );
        let mut rows = outbox::Entity::find()
            .from_raw_sql(stmt)
            .all(&self.db)
            .await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// The bodies (text, HTML) of the given messages, one query per 500 messages.
    pub async fn message_bodies(
        &self,
        outbox_ids: &[i64],
    ) -> Result<HashMap<i64, (String, String)>> {
        let mut out = HashMap::with_capacity(outbox_ids.len());
        for chunk in outbox_ids.chunks(500) {
            for b in outbox_body::Entity::find()
                .filter(outbox_body::Column::OutboxId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                out.insert(b.outbox_id, (b.body_text, b.body_html));
            }
        }
        Ok(out)
    }

    /// Marks a message sent, only if our lease still holds (a stale instance cannot overwrite a
    /// newer claim). One statement, as soon as the transport accepted the message; its reminder
    /// rows follow with [`Store::settle_sent`] (after the batch, or, when this process dies
    /// first, at the first delivery that starts more than a lease later:
    /// [`Store::settle_left_behind`]).
    ///
    /// On SQLite it runs on the store's writer connection: through sqlx, each call is a
    /// hand-off to the connection's worker thread and back, once per message sent.
    pub async fn mark_sent(&self, id: i64, token: &str, now: DateTime<Utc>) -> Result<bool> {
        use sea_orm::QueryTrait;
        let now = now_for_store(now);
        let update = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("sent"))
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::LeaseToken.eq(token))
            .filter(outbox::Column::State.eq("sending"));
        let rows = match self.backend() {
            DbBackend::Sqlite => {
                self.execute_on_writer(&update.build(DbBackend::Sqlite))
                    .await?
            }
            _ => update.exec(&self.db).await?.rows_affected,
        };
        Ok(rows == 1)
    }

    /// `settle_sent` for every message sent at or before `sent_before` that still has queued
    /// reminder rows: what a process killed between sending and settling left, not what a
    /// delivery running now in another instance has just sent and will settle itself.
    /// (Settling those too is harmless but doubles the work, and on PostgreSQL a settle is a
    /// new row version and two index entries per reminder: with three instances, each settling
    /// the others' fresh messages at the start of its delivery took a third of the database's
    /// time in a pass, BENCHMARKS.md, eleventh session.)
    pub async fn settle_left_behind(
        &self,
        sent_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let queued: Vec<Option<i64>> = queued_messages_select().into_tuple().all(&self.db).await?;
        let queued: Vec<i64> = queued.into_iter().flatten().collect();
        let mut sent = Vec::new();
        for chunk in queued.chunks(500) {
            let ids: Vec<i64> = outbox::Entity::find()
                .select_only()
                .column(outbox::Column::Id)
                .filter(outbox::Column::Id.is_in(chunk.to_vec()))
                .filter(outbox::Column::State.eq("sent"))
                .filter(outbox::Column::SentAt.lte(now_for_store(sent_before)))
                .into_tuple()
                .all(&self.db)
                .await?;
            sent.extend(ids);
        }
        self.settle_sent(&sent, now).await
    }

    /// The reminder rows of sent messages `ids` (a delivery's batches just sent) become
    /// sent, and the next overdue repeat of their items is planned one step ahead, in one
    /// transaction. Idempotent: only queued rows of sent messages change. Returns how many
    /// reminder rows became sent.
    ///
    /// One transaction for a batch instead of one per message: a message's reminder rows lie on
    /// pages shared with other units' rows, and per-message transactions wrote each such page
    /// (and its index pages) once per message.
    pub async fn settle_sent(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64> {
        let now = now_for_store(now);
        if ids.is_empty() {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        let mut settled = 0;
        for chunk in ids.chunks(500) {
            // The next overdue repeat is planned one step ahead when a repeat goes out. The pass
            // does it right after queuing; doing it again here, with the delivery, means a pass
            // that died in between (crash, database restart) loses no repeat.
            let overdue: Vec<ItemId> = reminder::Entity::find()
                .select_only()
                .column(reminder::Column::ItemId)
                .distinct()
                .filter(reminder::Column::OutboxId.is_in(chunk.to_vec()))
                .filter(state_is("queued"))
                .filter(reminder::Column::Kind.eq(ReminderKind::Overdue.as_str()))
                .into_tuple()
                .all(&txn)
                .await?;
            // The messages first, then their rows by a list: as one statement with a
            // subquery, PostgreSQL's statistics (taken before the pass queued the rows) see
            // one queued row and join the outbox once per row, 4× slower over 10,000 rows.
            let sent: Vec<i64> = outbox::Entity::find()
                .select_only()
                .column(outbox::Column::Id)
                .filter(outbox::Column::Id.is_in(chunk.to_vec()))
                .filter(outbox::Column::State.eq("sent"))
                .into_tuple()
                .all(&txn)
                .await?;
            if !sent.is_empty() {
                settled += reminder::Entity::update_many()
                    .col_expr(reminder::Column::State, Expr::value("sent"))
                    .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                    .filter(reminder::Column::OutboxId.is_in(sent))
                    .filter(state_is("queued"))
                    .exec(&txn)
                    .await?
                    .rows_affected;
            }
            if !overdue.is_empty() {
                let tomorrow = self.planner.local_date(now) + chrono::Duration::days(1);
                for m in item::Entity::find()
                    .filter(item::Column::Id.is_in(overdue))
                    .all(&txn)
                    .await?
                {
                    let it = crate::store::to_item_pub(&m)?;
                    self.replan(&txn, &it, tomorrow, now).await?;
                }
            }
        }
        txn.commit().await?;
        Ok(settled)
    }

    /// The reminder rows carried by each of several messages (one query per 500 messages).
    pub async fn messages_reminders(
        &self,
        outbox_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<(ItemId, DueReminder)>>> {
        let mut out: HashMap<i64, Vec<(ItemId, DueReminder)>> = HashMap::new();
        for chunk in outbox_ids.chunks(500) {
            // The rows the message still carries: queued ones (a sent message's rows are
            // settled, a withdrawn one's requeued or skipped).
            let rows = carried_select(chunk).all(&self.db).await?;
            for r in rows {
                let Some(outbox_id) = r.outbox_id else {
                    continue;
                };
                if let Some(d) = due_of(r) {
                    out.entry(outbox_id).or_default().push(d);
                }
            }
        }
        Ok(out)
    }

    /// Withdraws a message whose content went stale before it could be delivered (an item's
    /// deadline moved, the item was closed…): the message is cancelled, reminders that still
    /// apply go back to pending (the next pass writes a fresh digest), the others are skipped.
    /// Fenced by the lease token like every delivery outcome.
    pub async fn withdraw_message(
        &self,
        id: i64,
        token: &str,
        requeue: &[i64],
        skip: &[(i64, &str)],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let now = now_for_store(now);
        let txn = self.begin_write().await?;
        let r = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("cancelled"))
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                outbox::Column::LastError,
                Expr::value("withdrawn: content no longer current"),
            )
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::LeaseToken.eq(token))
            .filter(outbox::Column::State.eq("sending"))
            .exec(&txn)
            .await?;
        if r.rows_affected == 1 {
            if !requeue.is_empty() {
                reminder::Entity::update_many()
                    .col_expr(reminder::Column::State, Expr::value("pending"))
                    .col_expr(reminder::Column::OutboxId, Expr::value(Option::<i64>::None))
                    .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                    .filter(reminder::Column::Id.is_in(requeue.to_vec()))
                    .exec(&txn)
                    .await?;
            }
            for (rid, why) in skip {
                reminder::Entity::update_many()
                    .col_expr(reminder::Column::State, Expr::value("skipped"))
                    .col_expr(reminder::Column::Reason, Expr::value(*why))
                    .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                    .filter(reminder::Column::Id.eq(*rid))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(r.rows_affected == 1)
    }

    /// Records a note on a sent message (e.g. a copy address that was refused).
    pub async fn note_on_message(&self, id: i64, note: &str) -> Result<()> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::LastError, Expr::value(note))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A transient failure: back to pending, to be tried again at `next_attempt_at`.
    pub async fn mark_retry(
        &self,
        id: i64,
        token: &str,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let r = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("pending"))
            .col_expr(
                outbox::Column::NextAttemptAt,
                Expr::value(now_for_store(next_attempt_at)),
            )
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(outbox::Column::LastError, Expr::value(error))
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::LeaseToken.eq(token))
            .filter(outbox::Column::State.eq("sending"))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// A permanent failure: kept as failed, listed for the office, retried only by hand.
    pub async fn mark_failed(&self, id: i64, token: &str, error: &str) -> Result<bool> {
        let r = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("failed"))
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(outbox::Column::LastError, Expr::value(error))
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::LeaseToken.eq(token))
            .filter(outbox::Column::State.eq("sending"))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Gives back the leases of messages claimed with `token` and not finished (on shutdown).
    pub async fn release_leases(&self, token: &str) -> Result<u64> {
        let r = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("pending"))
            .col_expr(
                outbox::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(outbox::Column::LeaseToken.eq(token))
            .filter(outbox::Column::State.eq("sending"))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    pub async fn list_outbox(&self, state: Option<&str>) -> Result<Vec<outbox::Model>> {
        let mut q = outbox::Entity::find();
        if let Some(s) = state {
            q = q.filter(outbox::Column::State.eq(s));
        }
        Ok(q.order_by_asc(outbox::Column::Id).all(&self.db).await?)
    }

    /// Puts a failed message back in the queue.
    pub async fn retry_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        let m = outbox::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "message",
                key: id.to_string(),
            })?;
        if m.state != "failed" {
            return Err(StoreError::invalid(
                format!(
                    "邮件 {id} 的状态是 {},只有发送失败(failed)的邮件可以重试",
                    m.state
                ),
                format!(
                    "message {id} is {}; only failed messages can be retried",
                    m.state
                ),
            ));
        }
        outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value("pending"))
            .col_expr(
                outbox::Column::NextAttemptAt,
                Expr::value(now_for_store(now)),
            )
            .col_expr(outbox::Column::Attempts, Expr::value(0))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// When the next queued message may be tried, for the scheduler's sleep.
    pub async fn next_outbox_attempt(&self) -> Result<Option<DateTime<Utc>>> {
        let r = outbox::Entity::find()
            .filter(outbox::Column::State.eq("pending"))
            .order_by_asc(outbox::Column::NextAttemptAt)
            .one(&self.db)
            .await?;
        Ok(r.map(|r| r.next_attempt_at))
    }

    /// Sent reminders of an item, oldest first: (kind, step, send_on, sent_at) for notices.
    pub async fn reminder_history(&self, item_id: ItemId) -> Result<Vec<reminder::Model>> {
        Ok(reminder::Entity::find()
            .filter(reminder::Column::ItemId.eq(item_id))
            .filter(reminder::Column::State.is_in(["sent", "queued"]))
            .order_by_asc(reminder::Column::SendOn)
            .order_by_asc(reminder::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Makes sure a job has a row; a new row counts as fired at `fire` (no catch-up on the very
    /// first start).
    pub async fn ensure_job(&self, name: &str, fire: DateTime<Utc>) -> Result<()> {
        let backend = self.backend();
        let p = placeholders(backend, 2);
        let sql = format!(
            "INSERT INTO jobs (name, last_fire, claimed_by) VALUES ({}, {}, NULL) ON CONFLICT (name) DO NOTHING",
            p[0], p[1]
        );
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [name.into(), now_for_store(fire).into()],
            ))
            .await?;
        Ok(())
    }

    /// Claims the fire of `name` at `fire` for `instance`: true for exactly one caller, however
    /// many instances try (one conditional upsert, no leader).
    pub async fn claim_job(&self, name: &str, fire: DateTime<Utc>, instance: &str) -> Result<bool> {
        let backend = self.backend();
        let ph = placeholders(backend, 3);
        let sql = format!(
            "INSERT INTO jobs (name, last_fire, claimed_by) VALUES ({}, {}, {}) \
             ON CONFLICT (name) DO UPDATE SET last_fire = excluded.last_fire, claimed_by = excluded.claimed_by \
             WHERE jobs.last_fire < excluded.last_fire",
            ph[0], ph[1], ph[2]
        );
        let r = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [name.into(), now_for_store(fire).into(), instance.into()],
            ))
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Claims an extra run of `name` at `at` for a change heard at `since`: taken only when no
    /// run has been claimed since that moment (one that was has seen the change). The job's row
    /// exists (`ensure_job`).
    pub async fn claim_job_since(
        &self,
        name: &str,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
        instance: &str,
    ) -> Result<bool> {
        let r = job::Entity::update_many()
            .col_expr(job::Column::LastFire, Expr::value(now_for_store(at)))
            .col_expr(job::Column::ClaimedBy, Expr::value(instance))
            .filter(job::Column::Name.eq(name))
            .filter(job::Column::LastFire.lt(now_for_store(since)))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// The rows of the jobs named `names` that exist, by name.
    pub async fn job_rows(&self, names: &[String]) -> Result<HashMap<String, job::Model>> {
        Ok(job::Entity::find()
            .filter(job::Column::Name.is_in(names.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|j| (j.name.clone(), j))
            .collect())
    }

    /// Claims shard `name` of a job for its fire at `fire`: true for exactly one caller, and
    /// only while no one is still working on the shard (a claim marks it busy until
    /// `busy_until`, `finish_shard` clears it; a busy mark older than `now` is a dead claimant's
    /// and no longer counts).
    pub async fn claim_shard(
        &self,
        name: &str,
        fire: DateTime<Utc>,
        instance: &str,
        now: DateTime<Utc>,
        busy_until: DateTime<Utc>,
    ) -> Result<bool> {
        let backend = self.backend();
        let p = placeholders(backend, 5);
        let sql = format!(
            "INSERT INTO jobs (name, last_fire, claimed_by, busy_until) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (name) DO UPDATE SET last_fire = excluded.last_fire, \
             claimed_by = excluded.claimed_by, busy_until = excluded.busy_until \
             WHERE jobs.last_fire < excluded.last_fire \
             AND (jobs.busy_until IS NULL OR jobs.busy_until <= {})",
            p[0], p[1], p[2], p[3], p[4]
        );
        let r = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    name.into(),
                    now_for_store(fire).into(),
                    instance.into(),
                    now_for_store(busy_until).into(),
                    now_for_store(now).into(),
                ],
            ))
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Marks shard `name`, claimed by `instance` for `fire`, as finished (no longer busy).
    pub async fn finish_shard(
        &self,
        name: &str,
        fire: DateTime<Utc>,
        instance: &str,
    ) -> Result<()> {
        job::Entity::update_many()
            .col_expr(
                job::Column::BusyUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(job::Column::Name.eq(name))
            .filter(job::Column::LastFire.eq(now_for_store(fire)))
            .filter(job::Column::ClaimedBy.eq(instance))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Counts the fire at `fire` as done for every shard in `names` that no one is working on
    /// (the pass found nothing due): one statement instead of a claim per shard.
    pub async fn close_shards(
        &self,
        names: &[String],
        fire: DateTime<Utc>,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if names.is_empty() {
            return Ok(0);
        }
        let backend = self.backend();
        // Placeholders in text order (SQLite's `?` are positional): three per row, then `now`.
        let p = placeholders(backend, 3 * names.len() + 1);
        let rows: Vec<String> = p[..3 * names.len()]
            .chunks(3)
            .map(|c| format!("({}, {}, {}, NULL)", c[0], c[1], c[2]))
            .collect();
        let sql = format!(
            "INSERT INTO jobs (name, last_fire, claimed_by, busy_until) VALUES {} \
             ON CONFLICT (name) DO UPDATE SET last_fire = excluded.last_fire, \
             claimed_by = excluded.claimed_by, busy_until = NULL \
             WHERE jobs.last_fire < excluded.last_fire \
             AND (jobs.busy_until IS NULL OR jobs.busy_until <= {})",
            rows.join(", "),
            p[3 * names.len()]
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(p.len());
        for n in names {
            values.push(n.as_str().into());
            values.push(now_for_store(fire).into());
            values.push(instance.into());
        }
        values.push(now_for_store(now).into());
        let r = self
            .db
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn job_last_fire(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(job::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await?
            .map(|j| j.last_fire))
    }
}

/// `reminders.state = '…'` with the state written into the SQL, not bound: the partial indexes
/// on pending and on queued rows (migration 8) serve a query only when its WHERE states their
/// predicate, which both engines decide when planning, before any value is bound.
pub(crate) fn state_is(state: &'static str) -> sea_orm::sea_query::SimpleExpr {
    debug_assert!(state.chars().all(|c| c.is_ascii_lowercase()));
    Expr::col((reminder::Entity, reminder::Column::State)).eq(Expr::cust(format!("'{state}'")))
}

/// The due rows' query (see `Store::due_reminders_of`): the partial index on pending rows,
/// in (send_on, id) order.
pub fn due_select(
    today: NaiveDate,
    limit: u64,
    units: Option<&UnitSet>,
) -> sea_orm::Select<reminder::Entity> {
    let mut find = reminder::Entity::find()
        .filter(state_is("pending"))
        .filter(reminder::Column::SendOn.lte(date_str(today)));
    if let Some(set) = units {
        let mut led = Cond::any().add(item::Column::LeadUnit.is_in(set.units.iter().cloned()));
        if let Some(known) = &set.or_outside {
            led = led
                .add(item::Column::LeadUnit.is_null())
                .add(item::Column::LeadUnit.is_not_in(known.iter().cloned()));
        }
        let mut sub = Query::select();
        sub.expr(Expr::val(1))
            .from(item::Entity)
            .and_where(
                Expr::col((item::Entity, item::Column::Id))
                    .equals((reminder::Entity, reminder::Column::ItemId)),
            )
            .cond_where(led);
        find = find.filter(Expr::exists(sub));
    }
    find.order_by_asc(reminder::Column::SendOn)
        .order_by_asc(reminder::Column::Id)
        .limit(limit)
}

/// Cancels item `item_id`'s pending reminder rows that `planned` no longer has (all of them
/// when it is empty): by the unique key's item_id prefix.
pub fn cancel_unplanned(
    item_id: ItemId,
    planned: &[remind::Planned],
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<reminder::Entity> {
    let mut cancel = reminder::Entity::update_many()
        .col_expr(reminder::Column::State, Expr::value("cancelled"))
        .col_expr(reminder::Column::Reason, Expr::value("replanned"))
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::ItemId.eq(item_id))
        .filter(reminder::Column::State.eq("pending"));
    if !planned.is_empty() {
        // One list of keys as text, not a condition per key: sea-query took ~40 µs to build
        // the OR of eight (kind, step, deadline_version) conditions, a tenth of a command.
        cancel = cancel.filter(
            Expr::cust(REMINDER_KEY_SQL).is_not_in(
                planned
                    .iter()
                    .map(|r| reminder_key(r.kind.as_str(), r.step, r.deadline_version)),
            ),
        );
    }
    cancel
}

/// A reminder row's key (kind, step, deadline version) as one text, in SQL; see
/// `reminder_key`.
const REMINDER_KEY_SQL: &str = r#""kind" || ':' || "step" || ':' || "deadline_version""#;

/// The text `REMINDER_KEY_SQL` reads for a row with this key.
fn reminder_key(kind: &str, step: i64, deadline_version: i64) -> String {
    format!("{kind}:{step}:{deadline_version}")
}

/// The messages that carry queued reminder rows (the partial index on queued rows).
pub fn queued_messages_select() -> sea_orm::Select<reminder::Entity> {
    reminder::Entity::find()
        .select_only()
        .column(reminder::Column::OutboxId)
        .distinct()
        .filter(state_is("queued"))
}

/// The queued reminder rows of messages `outbox_ids` (the partial index on queued rows).
pub fn carried_select(outbox_ids: &[i64]) -> sea_orm::Select<reminder::Entity> {
    reminder::Entity::find()
        .filter(reminder::Column::OutboxId.is_in(outbox_ids.to_vec()))
        .filter(state_is("queued"))
        .order_by_asc(reminder::Column::Id)
}

/// Which items' reminders a sharded pass reads: those led by one of `units`, and with
/// `or_outside` also those with no lead unit or one that is not among the listed known units
/// (they are skipped, and some shard must skip them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitSet {
    pub units: Vec<String>,
    pub or_outside: Option<Vec<String>>,
}

/// Messages per statement when queuing: each carries two bodies of some 20 KB.
const QUEUE_CHUNK: usize = 50;

/// Marks pending reminder rows queued, each on its message: `(reminder id, outbox id)`. One
/// statement for all of them (a join with a list of values; `column1`, `column2` are what
/// both SQLite and PostgreSQL name a VALUES list's columns).
fn queue_rows_statement(backend: DbBackend, rows: &[(i64, i64)], now: DateTime<Utc>) -> Statement {
    let p = placeholders(backend, 1 + 2 * rows.len());
    let list: Vec<String> = p[1..]
        .chunks(2)
        .map(|pair| format!("({}, {})", pair[0], pair[1]))
        .collect();
    let sql = format!(
        "UPDATE reminders SET state = 'queued', outbox_id = v.o, updated_at = {} \
         FROM (SELECT column1 AS id, column2 AS o FROM (VALUES {}) AS l) AS v \
         WHERE reminders.id = v.id AND reminders.state = 'pending'",
        p[0],
        list.join(", ")
    );
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(1 + 2 * rows.len());
    values.push(now.into());
    for (r, o) in rows {
        values.push((*r).into());
        values.push((*o).into());
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// `n` bind placeholders in the backend's syntax.
fn placeholders(backend: DbBackend, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_string(),
        })
        .collect()
}

/// The row of one planned reminder, as it is first written (pending).
pub(crate) fn reminder_row(
    item_id: ItemId,
    r: &remind::Planned,
    now: DateTime<Utc>,
) -> reminder::ActiveModel {
    reminder::ActiveModel {
        id: NotSet,
        item_id: Set(item_id),
        kind: Set(r.kind.as_str().to_string()),
        step: Set(r.step),
        deadline_version: Set(r.deadline_version),
        send_on: Set(date_str(r.send_on)),
        state: Set("pending".into()),
        reason: Set(None),
        outbox_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Marks reminders skipped with their reasons, on `conn` (a transaction or the pool).
async fn skip_reminders_on<C: ConnectionTrait>(
    conn: &C,
    skips: &[(i64, &str)],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut by_reason: HashMap<&str, Vec<i64>> = HashMap::new();
    for (id, why) in skips {
        by_reason.entry(*why).or_default().push(*id);
    }
    for (why, ids) in by_reason {
        for chunk in ids.chunks(500) {
            reminder::Entity::update_many()
                .col_expr(reminder::Column::State, Expr::value("skipped"))
                .col_expr(reminder::Column::Reason, Expr::value(why))
                .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
                .filter(reminder::Column::Id.is_in(chunk.to_vec()))
                .filter(reminder::Column::State.eq("pending"))
                .exec(conn)
                .await?;
        }
    }
    Ok(())
}

/// Runs `statements` in order inside `txn`. On SQLite they go as one multi-statement call:
/// sqlx's SQLite driver runs every call on its worker thread, and the hand-off each way per
/// statement was a third of a lifecycle command's time (BENCHMARKS.md). PostgreSQL's extended
/// protocol takes one statement per call.
pub(crate) async fn run_statements(
    txn: &DatabaseTransaction,
    statements: Vec<Statement>,
) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Sqlite || statements.len() < 2 {
        for st in statements {
            txn.execute_raw(st).await?;
        }
        return Ok(());
    }
    txn.execute_raw(joined(statements)).await?;
    Ok(())
}

/// SQLite statements as one multi-statement text with their values in order (`?` binds by
/// position).
pub(crate) fn joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values = Vec::new();
    for st in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&st.sql);
        if let Some(v) = st.values {
            values.extend(v.0);
        }
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}
