//! Many changes in ONE transaction, for imports: create units and items, assign them and walk
//! them through their life, and either commit everything or write nothing.
//!
//! [`Bulk::create_batch`] is the import path: it runs the engine over every item in memory (the
//! same `create` and `transition` a command runs, the same event links, the same reminder plan)
//! and writes the results with multi-row inserts, a few statements per hundred items instead of
//! a dozen per item. An imported item has exactly the rows and hash-chained events an item made
//! by hand has (tested). Reads go through the transaction, so a step sees what earlier steps
//! wrote.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use rectify_engine::{Actor, Command, Ctx, ItemId, ItemState, NewItem, chain, text};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    NotSet, QueryFilter, Set, Statement,
};

use crate::entity::{event, item, reminder, round, unit};
use crate::error::StoreError;
use crate::reminders::reminder_row;
use crate::store::{
    Result, Store, Unit, event_link, item_columns, item_model_on, json_list, now_for_store,
    unit_from,
};

/// One item of a batch (see [`Bulk::create_batch`]).
#[derive(Clone, Debug)]
pub struct BatchItem {
    pub new: NewItem,
    /// An earlier item of the same batch that is this item's parent (its id is not known to the
    /// caller); when set, `new.parent_id` is ignored.
    pub parent: Option<usize>,
    /// The assignment made right after creation, if any.
    pub assign: Option<Command>,
    /// The date the assignment's deadline is checked against: an import of an existing ledger
    /// passes the deadline itself when it has already passed (the assignment was made earlier;
    /// the ledger only records it).
    pub assign_day: NaiveDate,
    /// Commands that take the item on to the state its source records, in order. A parent's run
    /// after its children's, so a parent is closed after them. Extension requests and decisions
    /// are not accepted here (they keep rows of their own).
    pub life: Vec<Command>,
}

/// Why a batch was refused: the item (its index in the batch; `None` when the database failed)
/// and the reason. Nothing of the batch is written.
#[derive(Debug)]
pub struct BatchError {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        BatchError { index: None, error }
    }
}

impl From<sea_orm::DbErr> for BatchError {
    fn from(e: sea_orm::DbErr) -> Self {
        BatchError {
            index: None,
            error: e.into(),
        }
    }
}

/// The SQLite page cache of an import's connection, in KiB.
const BULK_CACHE_KIB: u32 = 128 * 1024;

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's limits on bound values
/// (items have 30 columns: 300 rows bind 9,000 values).
const ROWS_PER_INSERT: usize = 300;

/// An open import transaction. Dropping it without [`Bulk::commit`] writes nothing.
pub struct Bulk<'a> {
    store: &'a Store,
    txn: DatabaseTransaction,
}

impl Store {
    /// Opens one transaction for a bulk change.
    pub async fn bulk(&self) -> Result<Bulk<'_>> {
        let txn = self.begin_write().await?;
        if self.backend() == DbBackend::Sqlite {
            // A large import touches every page of the item, event and reminder indexes; with
            // SQLite's default 2 MB page cache it spills pages to the WAL in the middle of the
            // transaction and reads them back. The cache grows only as far as it is used.
            txn.execute_unprepared(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))
                .await?;
        }
        Ok(Bulk { store: self, txn })
    }

    /// The numbers already used by items of a round.
    pub async fn round_numbers(&self, round_code: &str) -> Result<HashSet<String>> {
        Ok(item::Entity::find()
            .filter(item::Column::RoundCode.eq(round_code))
            .all(self.db())
            .await?
            .into_iter()
            .map(|m| m.number)
            .collect())
    }
}

impl Bulk<'_> {
    pub async fn commit(self) -> Result<()> {
        self.txn.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.txn.rollback().await?;
        Ok(())
    }

    /// Adds a unit inside the transaction (for `--create-units`).
    pub async fn add_unit(&self, u: &Unit, now: DateTime<Utc>) -> Result<Unit> {
        let code = text::name("unit code", &u.code)?;
        let name = text::name("unit name", &u.name)?;
        let exists = unit::Entity::find()
            .filter(unit::Column::Code.eq(code.as_str()))
            .one(&self.txn)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Duplicate {
                what: "unit",
                key: code,
            });
        }
        let m = unit::ActiveModel {
            id: NotSet,
            code: Set(code),
            name: Set(name),
            parent_code: Set(None),
            emails: Set(json_list(&u.emails)),
            leader: Set(u.leader.clone()),
            leader_email: Set(None),
            aliases: Set(json_list(&u.aliases)),
            created_at: Set(now_for_store(now)),
        }
        .insert(&self.txn)
        .await?;
        Ok(unit_from(&m))
    }

    /// Creates every item of `items` in this transaction, assigns it and walks it through `life`,
    /// all in memory through the engine, then writes the rows with multi-row inserts. Every check
    /// of the single-command path is made: the round and units exist, a parent belongs to the
    /// round, the engine accepts each step (titles, deadlines, a parent closed only after its
    /// children). Returns each item's id and final state, in the order given. `progress` is told
    /// how many items have been prepared so far.
    pub async fn create_batch(
        &self,
        items: Vec<BatchItem>,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
        progress: &dyn Fn(usize),
    ) -> std::result::Result<Vec<(ItemId, ItemState)>, BatchError> {
        let now = now_for_store(now);
        let at = |index: usize| {
            move |error: StoreError| BatchError {
                index: Some(index),
                error,
            }
        };
        // What every item is checked against, read once.
        let mut rounds: HashSet<&str> = HashSet::new();
        for (i, b) in items.iter().enumerate() {
            if rounds.contains(b.new.round.as_str()) {
                continue;
            }
            let found = round::Entity::find()
                .filter(round::Column::Code.eq(b.new.round.as_str()))
                .one(&self.txn)
                .await?;
            if found.is_none() {
                return Err(at(i)(StoreError::NotFound {
                    what: "round",
                    key: b.new.round.clone(),
                }));
            }
            rounds.insert(b.new.round.as_str());
        }
        let units: HashSet<String> = unit::Entity::find()
            .all(&self.txn)
            .await?
            .into_iter()
            .map(|u| u.code)
            .collect();
        let check_units = |i: usize, codes: &mut dyn Iterator<Item = &String>| {
            for c in codes {
                if !units.contains(c) {
                    return Err(at(i)(StoreError::NotFound {
                        what: "unit",
                        key: c.clone(),
                    }));
                }
            }
            Ok(())
        };
        for (i, b) in items.iter().enumerate() {
            check_units(i, &mut b.new.lead_unit.iter().chain(b.new.co_units.iter()))?;
            for cmd in b.assign.iter().chain(b.life.iter()) {
                match cmd {
                    Command::Assign {
                        lead_unit,
                        co_units,
                        ..
                    } => check_units(i, &mut std::iter::once(lead_unit).chain(co_units.iter()))?,
                    Command::Reassign { lead_unit, .. } => {
                        check_units(i, &mut std::iter::once(lead_unit))?
                    }
                    Command::Cancel {
                        merged_into: Some(target),
                        ..
                    } => {
                        item_model_on(&self.txn, *target).await.map_err(|e| {
                            at(i)(match e {
                                StoreError::NotFound { key, .. } => StoreError::NotFound {
                                    what: "merge target",
                                    key,
                                },
                                other => other,
                            })
                        })?;
                    }
                    Command::RequestExtension { .. }
                    | Command::ApproveExtension { .. }
                    | Command::RefuseExtension { .. } => {
                        return Err(at(i)(StoreError::invalid(
                            "批量导入不能处理延期申请或审批,请导入后逐项办理",
                            "a batch cannot carry extension requests or decisions; make them \
                             one by one after the import",
                        )));
                    }
                    _ => {}
                }
            }
            if let Some(p) = b.parent {
                if p >= i {
                    return Err(at(i)(StoreError::invalid(
                        format!("第 {i} 项的上级须排在它之前"),
                        format!("item {i} of the batch must come after its parent"),
                    )));
                }
                if items[p].new.round != b.new.round {
                    return Err(at(i)(StoreError::invalid(
                        format!(
                            "上级事项属于轮次 {},与 {} 不一致",
                            items[p].new.round, b.new.round
                        ),
                        format!(
                            "the parent item belongs to round {}, not {}",
                            items[p].new.round, b.new.round
                        ),
                    )));
                }
            } else if let Some(p) = b.new.parent_id {
                let parent = item_model_on(&self.txn, p).await.map_err(|e| {
                    at(i)(match e {
                        StoreError::NotFound { key, .. } => StoreError::NotFound {
                            what: "parent item",
                            key,
                        },
                        other => other,
                    })
                })?;
                if parent.round_code != b.new.round {
                    return Err(at(i)(StoreError::invalid(
                        format!(
                            "上级事项 {p} 属于轮次 {},与 {} 不一致",
                            parent.round_code, b.new.round
                        ),
                        format!(
                            "parent item {p} belongs to round {}, not {}",
                            parent.round_code, b.new.round
                        ),
                    )));
                }
            }
        }
        let ids = self.next_item_ids(items.len()).await?;
        // The engine runs on a thread of its own and hands over the rows a chunk at a time, so
        // hashing and planning the next chunk overlaps with the database writing this one.
        let n = items.len();
        let prep = Prepare {
            items,
            ids: ids.clone(),
            planner: self.store.planner().clone(),
            actor: actor.clone(),
            now,
            today,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Prepared>(2);
        std::thread::Builder::new()
            .name("rectify-import".into())
            .spawn(move || prep.run(&tx))
            .map_err(|e| {
                BatchError::from(StoreError::invalid(
                    format!("无法启动导入线程:{e}"),
                    format!("cannot start the import thread: {e}"),
                ))
            })?;
        let mut any_reminders = false;
        let mut done = 0;
        let states = loop {
            match rx.recv().await {
                Some(Prepared::Rows(mut rows, count)) => {
                    any_reminders |= rows.flush(&self.txn).await?;
                    done += count;
                    progress(done);
                }
                Some(Prepared::Refused(e)) => return Err(e),
                Some(Prepared::Done(states)) => break states,
                None => {
                    return Err(BatchError::from(StoreError::invalid(
                        "导入线程意外退出,未写入任何内容",
                        "the import thread stopped unexpectedly; nothing was written",
                    )));
                }
            }
        };
        debug_assert_eq!(done, n);
        if any_reminders && self.store.backend() == DbBackend::Postgres {
            // Delivered on commit: wakes every `serve` instance listening.
            self.txn
                .execute_unprepared(&format!("NOTIFY {}", crate::PLAN_CHANNEL))
                .await?;
        }
        Ok(ids.into_iter().zip(states).collect())
    }

    /// `n` fresh item ids, taken inside the transaction. SQLite: the write lock is held (BEGIN
    /// IMMEDIATE) and items are never deleted, so the ids after the largest are free.
    /// PostgreSQL: from the table's sequence, as an ordinary insert would take them.
    async fn next_item_ids(&self, n: usize) -> Result<Vec<ItemId>> {
        let backend = self.store.backend();
        let sql = match backend {
            DbBackend::Postgres => format!(
                "SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, {n})"
            ),
            _ => "SELECT COALESCE(MAX(id), 0) FROM items".to_string(),
        };
        let got = self
            .txn
            .query_all_raw(Statement::from_string(backend, sql))
            .await?;
        let mut ids = Vec::with_capacity(n);
        for r in &got {
            ids.push(r.try_get_by_index::<i64>(0)?);
        }
        if backend != DbBackend::Postgres {
            let max = ids.first().copied().unwrap_or(0);
            ids = (1..=n as i64).map(|k| max + k).collect();
        }
        if ids.len() != n {
            return Err(StoreError::invalid(
                "数据库未能分配事项编号",
                format!("the database gave {} item ids for {n}", ids.len()),
            ));
        }
        Ok(ids)
    }
}

/// What the preparing thread hands over.
enum Prepared {
    /// The rows of this many items.
    Rows(Rows, usize),
    /// An item the engine refused: the batch stops.
    Refused(BatchError),
    /// Every item prepared: their final states, in the batch's order.
    Done(Vec<ItemState>),
}

/// A batch as the engine runs it, away from the async writer.
struct Prepare {
    items: Vec<BatchItem>,
    ids: Vec<ItemId>,
    planner: crate::Planner,
    actor: Actor,
    now: DateTime<Utc>,
    today: NaiveDate,
}

impl Prepare {
    fn run(self, tx: &tokio::sync::mpsc::Sender<Prepared>) {
        let n = self.items.len();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, b) in self.items.iter().enumerate() {
            if let Some(p) = b.parent {
                children[p].push(i);
            }
        }
        let mut states = vec![ItemState::Draft; n];
        let mut rows = Rows::default();
        let mut in_rows = 0;
        // Children come after their parent in the batch: walking it backwards runs every child's
        // life before its parent's.
        for i in (0..n).rev() {
            match self.item(i, &children, &states, &mut rows) {
                Ok(state) => states[i] = state,
                Err(error) => {
                    let _ = tx.blocking_send(Prepared::Refused(BatchError {
                        index: Some(i),
                        error,
                    }));
                    return;
                }
            }
            in_rows += 1;
            if in_rows == ROWS_PER_INSERT || i == 0 {
                let full = std::mem::take(&mut rows);
                if tx.blocking_send(Prepared::Rows(full, in_rows)).is_err() {
                    return; // the writer gave up
                }
                in_rows = 0;
            }
        }
        let _ = tx.blocking_send(Prepared::Done(states));
    }

    /// Runs item `i` through the engine into `rows`; its final state.
    fn item(
        &self,
        i: usize,
        children: &[Vec<usize>],
        states: &[ItemState],
        rows: &mut Rows,
    ) -> Result<ItemState> {
        let b = &self.items[i];
        let id = self.ids[i];
        let mut new = b.new.clone();
        new.parent_id = b.parent.map(|p| self.ids[p]).or(b.new.parent_id);
        let ctx = Ctx {
            now: self.now,
            today: b.assign_day,
            open_children: 0,
        };
        let created = rectify_engine::create(&new, id, &self.actor, &ctx)?;
        let first = event_link(id, 0, chain::GENESIS, &created);
        let (mut seq, mut head) = (first.seq, first.hash);
        rows.events.push(sized_event(first.row));
        let mut item = created.item;
        let steps = b
            .assign
            .iter()
            .map(|c| (c, b.assign_day))
            .chain(b.life.iter().map(|c| (c, self.today)));
        for (cmd, day) in steps {
            // As `Store::decide`: only closing looks at the children.
            let open_children = match cmd {
                Command::Close { .. } | Command::Finish { .. } => children[i]
                    .iter()
                    .filter(|&&c| !matches!(states[c], ItemState::Closed | ItemState::Cancelled))
                    .count()
                    as u64,
                _ => 0,
            };
            let ctx = Ctx {
                now: self.now,
                today: day,
                open_children,
            };
            let o = rectify_engine::transition(&item, cmd, &self.actor, &ctx)?;
            let link = event_link(id, seq, &head, &o);
            seq = link.seq;
            head = link.hash;
            rows.events.push(sized_event(link.row));
            item = o.item;
        }
        let (planned, key) = self.planner.plan_for(&item, self.today);
        rows.reminders
            .extend(planned.iter().map(|r| (reminder_row(id, r, self.now), 160)));
        let mut row = item_columns(&item, seq, &head);
        row.id = Set(id);
        row.plan_key = Set(Some(key));
        let size = 600 + item.title.len() + item.last_progress.as_ref().map_or(0, String::len);
        rows.items.push((row, size));
        Ok(item.state)
    }
}

/// An event row with the bytes it takes in a statement, roughly.
fn sized_event(row: event::ActiveModel) -> (event::ActiveModel, usize) {
    let size = 300 + row.payload.as_ref().len() + row.actor.as_ref().len();
    (row, size)
}

/// Rows prepared by a batch and not written yet, each with its rough size in bytes.
#[derive(Default)]
struct Rows {
    items: Vec<(item::ActiveModel, usize)>,
    events: Vec<(event::ActiveModel, usize)>,
    reminders: Vec<(reminder::ActiveModel, usize)>,
}

/// The most bytes of values one multi-row INSERT carries. A statement that fits in one TCP
/// segment of the loopback interface (64 KiB) is sent at once; a longer one ends in a partial
/// segment that Nagle's algorithm holds back until the server's delayed ACK (~40 ms), because
/// sqlx does not set TCP_NODELAY. Measured: 10,000 rows into PostgreSQL took 8.8 s with
/// 300-row statements, nearly all of it such waits.
const BYTES_PER_INSERT: usize = 48 * 1024;

impl Rows {
    /// Writes what is held, in multi-row inserts; says whether any reminder was written.
    async fn flush(&mut self, txn: &DatabaseTransaction) -> Result<bool> {
        async fn put<E, A>(txn: &DatabaseTransaction, rows: &mut Vec<(A, usize)>) -> Result<()>
        where
            E: EntityTrait,
            A: ActiveModelTrait<Entity = E>,
        {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for (row, size) in rows.drain(..) {
                if !chunk.is_empty()
                    && (chunk.len() == ROWS_PER_INSERT || bytes + size > BYTES_PER_INSERT)
                {
                    E::insert_many(std::mem::take(&mut chunk))
                        .exec_without_returning(txn)
                        .await?;
                    bytes = 0;
                }
                bytes += size;
                chunk.push(row);
            }
            if !chunk.is_empty() {
                E::insert_many(chunk).exec_without_returning(txn).await?;
            }
            Ok(())
        }
        let some = !self.reminders.is_empty();
        put(txn, &mut self.items).await?;
        put(txn, &mut self.events).await?;
        put(txn, &mut self.reminders).await?;
        Ok(some)
    }
}
