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
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, IdenStatic, Iterable, NotSet, QueryFilter, Set, Statement, Value,
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

/// Items the preparing thread runs through the engine before it hands their statements over:
/// small enough that the writer starts early, large enough that the hand-overs cost nothing.
const ITEMS_PER_HANDOVER: usize = 300;

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
        progress: &(dyn Fn(usize) + Sync),
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
            backend: self.store.backend(),
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
        let mut done = 0;
        let (states, any_reminders) = loop {
            match rx.recv().await {
                Some(Prepared::Rows(statements, count)) => {
                    for st in statements {
                        self.txn.execute_raw(st).await?;
                    }
                    done += count;
                    progress(done);
                }
                Some(Prepared::Refused(e)) => return Err(e),
                Some(Prepared::Done {
                    states,
                    any_reminders,
                }) => break (states, any_reminders),
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
            // The sequence's name looked up once, not once per id.
            DbBackend::Postgres => format!(
                "SELECT nextval(q.seq) FROM (SELECT pg_get_serial_sequence('items', 'id')::regclass \
                 AS seq) AS q, generate_series(1, {n})"
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
    /// The statements that write the rows of this many more items (rows of the last items may
    /// wait for the next statements).
    Rows(Vec<Statement>, usize),
    /// An item the engine refused: the batch stops.
    Refused(BatchError),
    /// Every item prepared and every statement handed over: their final states, in the batch's
    /// order, and whether any reminder row was written.
    Done {
        states: Vec<ItemState>,
        any_reminders: bool,
    },
}

/// The order a batch is run in: every item after all of its children (a parent is closed only
/// after them), and otherwise as given: the children of a parent in their order, then the parent.
///
/// A batch is given parents first, with ids in that order; this order writes the rows nearly in
/// ascending id order (each parent a few rows late). Walking the batch backwards (as before)
/// inserted every item, and the event and reminder keys that start with the item id, in
/// descending order, which leaves SQLite's B-tree pages half full: the items table and those
/// indexes were twice their size, and SQLite spent its time splitting pages and writing them.
fn post_order(items: &[BatchItem], children: &[Vec<usize>]) -> Vec<usize> {
    let mut order = Vec::with_capacity(items.len());
    // (item, how many of its children have been visited)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in (0..items.len()).filter(|&i| items[i].parent.is_none()) {
        stack.push((root, 0));
        while let Some((node, next)) = stack.pop() {
            if let Some(&child) = children[node].get(next) {
                stack.push((node, next + 1));
                stack.push((child, 0));
            } else {
                order.push(node);
            }
        }
    }
    order
}

/// A batch as the engine runs it, away from the async writer.
struct Prepare {
    backend: DbBackend,
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
        let mut rows = Rows::new(self.backend);
        let mut in_rows = 0;
        let order = post_order(&self.items, &children);
        for (k, &i) in order.iter().enumerate() {
            let last = k + 1 == order.len();
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
            if in_rows == ITEMS_PER_HANDOVER || last {
                let statements = rows.statements(last);
                if tx
                    .blocking_send(Prepared::Rows(statements, in_rows))
                    .is_err()
                {
                    return; // the writer gave up
                }
                in_rows = 0;
            }
        }
        let _ = tx.blocking_send(Prepared::Done {
            states,
            any_reminders: rows.any_reminders,
        });
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
        rows.events.push(self.backend, first.row)?;
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
            rows.events.push(self.backend, link.row)?;
            item = o.item;
        }
        let (planned, key) = self.planner.plan_for(&item, self.today);
        for r in &planned {
            rows.reminders
                .push(self.backend, reminder_row(id, r, self.now))?;
        }
        rows.any_reminders |= !planned.is_empty();
        let mut row = item_columns(&item, seq, &head);
        row.id = Set(id);
        row.plan_key = Set(Some(key));
        rows.items.push(self.backend, row)?;
        Ok(item.state)
    }
}

/// A table an import writes: its name, the columns each of its rows gives, in order, and the
/// layout of its statements.
struct Table {
    name: &'static str,
    columns: Vec<&'static str>,
    /// Columns (positions in `columns`) whose value is bound once per statement instead of once
    /// per row: columns that hold the same value in nearly every row of an import (the time of
    /// the import, the actor, a new reminder's state). A reminder row then binds 5 values, not
    /// 10: binding is most of what the writer and SQLite's worker thread do per value (sea-orm
    /// copies each value, sqlx boxes it, SQLite copies it again and frees it after the step),
    /// and a timestamp is formatted to text on every bind.
    shared: Vec<usize>,
    /// The other columns, bound per row.
    per_row: Vec<usize>,
    /// Rows per INSERT: a fixed number, so every full statement has the same SQL text, which
    /// sqlx prepares once per connection and then only binds (a statement of another length is
    /// parsed and planned again; SQLite takes noticeably long for one with thousands of values).
    rows_per_insert: usize,
    /// The SQL of a full statement, built once.
    full_sql: String,
}

/// Bound values per INSERT, roughly: well under SQLite's (32,766) and PostgreSQL's (65,535)
/// limits, and large enough that the per-statement costs (a hand-off to SQLite's worker thread,
/// a round trip to PostgreSQL) are spread over hundreds of rows.
const VALUES_PER_INSERT: usize = 9_000;

impl Table {
    /// The table of entity `E`, with its primary key column only when `with_id`, binding the
    /// columns named in `shared` once per statement on PostgreSQL. SQLite binds every column
    /// per row: a shared value would need numbered placeholders (`?1`), and SQLite looks each
    /// numbered one up by a linear search of the statement's named parameters; 9,000 of them
    /// took 100 s to bind per import.
    fn of<E: EntityTrait>(backend: DbBackend, with_id: bool, shared: &[&str]) -> Table {
        let columns: Vec<&'static str> = E::Column::iter()
            .map(|c| c.as_str())
            .filter(|c| with_id || *c != "id")
            .collect();
        let shared = if backend == DbBackend::Postgres {
            shared
        } else {
            &[]
        };
        Table::new(backend, E::default().table_name(), columns, shared)
    }

    /// The same table with every column bound per row (for a row whose shared columns differ).
    fn unshared(&self, backend: DbBackend) -> Table {
        Table::new(backend, self.name, self.columns.clone(), &[])
    }

    fn new(
        backend: DbBackend,
        name: &'static str,
        columns: Vec<&'static str>,
        shared: &[&str],
    ) -> Table {
        let (shared, per_row): (Vec<usize>, Vec<usize>) =
            (0..columns.len()).partition(|&k| shared.contains(&columns[k]));
        let rows_per_insert = (VALUES_PER_INSERT / per_row.len().max(1)).max(1);
        let mut table = Table {
            name,
            columns,
            shared,
            per_row,
            rows_per_insert,
            full_sql: String::new(),
        };
        table.full_sql = table.insert_sql(backend, rows_per_insert);
        table
    }

    /// `"c1", "c2", …`: the table's columns, quoted.
    fn column_list(&self, sql: &mut String) {
        use std::fmt::Write;
        for (k, c) in self.columns.iter().enumerate() {
            if k > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "\"{c}\"");
        }
    }

    /// `INSERT INTO t (c, …) VALUES (…), (…)` for `rows` rows. PostgreSQL's placeholders are
    /// numbered: the shared columns' values first (`$1…`, referred to by every row), then each
    /// row's; SQLite's are plain `?` (it has no shared columns, see [`Table::of`]).
    ///
    /// On SQLite it is `INSERT OR FAIL`: a failing row fails the statement either way (and the
    /// import rolls back), but under the default ABORT SQLite keeps a statement journal so it
    /// can undo the statement's earlier rows, copying every page the statement touches first.
    fn insert_sql(&self, backend: DbBackend, rows: usize) -> String {
        use std::fmt::Write;
        let cols = self.columns.len();
        let mut sql = String::with_capacity(64 + cols * 24 + rows * cols * 8);
        let verb = match backend {
            DbBackend::Sqlite => "INSERT OR FAIL INTO",
            _ => "INSERT INTO",
        };
        let _ = write!(sql, "{verb} \"{}\" (", self.name);
        self.column_list(&mut sql);
        sql.push_str(") VALUES ");
        let numbered = backend == DbBackend::Postgres;
        // The parameter number of each column in the row: shared ones are fixed, the others
        // follow the shared ones, row after row.
        let mut number = vec![0usize; cols];
        for (n, &k) in self.shared.iter().enumerate() {
            number[k] = n + 1;
        }
        let mut next = self.shared.len();
        for r in 0..rows {
            for &k in &self.per_row {
                next += 1;
                number[k] = next;
            }
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (k, n) in number.iter().enumerate() {
                if k > 0 {
                    sql.push_str(", ");
                }
                if numbered {
                    let _ = write!(sql, "${n}");
                } else {
                    sql.push('?');
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// The rows of one table not written yet: the shared columns' values (taken from the first
/// row) and the other columns' values, one row after another.
struct Pending {
    table: Table,
    shared: Option<Vec<Value>>,
    values: Vec<Value>,
    /// Rows whose shared columns hold other values, with every column bound per row.
    others: Option<Box<Pending>>,
}

impl Pending {
    fn new(table: Table) -> Pending {
        let capacity = table.rows_per_insert * table.per_row.len();
        Pending {
            table,
            shared: None,
            values: Vec::with_capacity(capacity),
            others: None,
        }
    }

    /// Appends one row: the values `row` has for the table's columns, taken out of it.
    fn push<A: ActiveModelTrait>(&mut self, backend: DbBackend, mut row: A) -> Result<()> {
        let mut all = Vec::with_capacity(self.table.columns.len());
        for c in <A::Entity as EntityTrait>::Column::iter() {
            match row.take(c) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => all.push(v),
                // The key the database assigns (events, reminders).
                ActiveValue::NotSet if c.as_str() == "id" => {}
                ActiveValue::NotSet => {
                    return Err(StoreError::invalid(
                        "导入的行缺少一列,未写入任何内容",
                        format!(
                            "an imported {} row has no value for `{}`; nothing was written",
                            self.table.name,
                            c.as_str()
                        ),
                    ));
                }
            }
        }
        if all.len() != self.table.columns.len() {
            return Err(StoreError::invalid(
                "导入的行与表的列数不符,未写入任何内容",
                format!(
                    "an imported {} row does not have the table's {} columns; nothing was written",
                    self.table.name,
                    self.table.columns.len()
                ),
            ));
        }
        self.push_values(backend, all);
        Ok(())
    }

    /// Appends one row given as every column's value, in the table's column order.
    fn push_values(&mut self, backend: DbBackend, mut all: Vec<Value>) {
        if !self.table.shared.is_empty() {
            let shared = self
                .shared
                .get_or_insert_with(|| self.table.shared.iter().map(|&k| all[k].clone()).collect());
            if self
                .table
                .shared
                .iter()
                .zip(shared.iter())
                .any(|(&k, v)| all[k] != *v)
            {
                let table = &self.table;
                self.others
                    .get_or_insert_with(|| Box::new(Pending::new(table.unshared(backend))))
                    .push_values(backend, all);
                return;
            }
        }
        for &k in &self.table.per_row {
            self.values
                .push(std::mem::replace(&mut all[k], Value::Bool(None)));
        }
    }

    /// Moves every full statement's worth of rows into `out`; with `all`, the rest too (in one
    /// statement of its own length).
    fn statements(&mut self, backend: DbBackend, all: bool, out: &mut Vec<Statement>) {
        let cols = self.table.per_row.len();
        let full = self.table.rows_per_insert * cols;
        let shared = self.shared.clone().unwrap_or_default();
        let with_shared = |values: Vec<Value>| {
            let mut v = Vec::with_capacity(shared.len() + values.len());
            v.extend(shared.iter().cloned());
            v.extend(values);
            v
        };
        let table = &self.table;
        let statement = |values: Vec<Value>, sql: &dyn Fn() -> String| {
            if backend == DbBackend::Postgres
                && let Some(st) = unnest_statement(table, &shared, &values)
            {
                return st;
            }
            Statement::from_sql_and_values(backend, sql(), with_shared(values))
        };
        while self.values.len() >= full {
            let rest = self.values.split_off(full);
            let values = std::mem::replace(&mut self.values, rest);
            out.push(statement(values, &|| table.full_sql.clone()));
        }
        if all && !self.values.is_empty() {
            let rows = self.values.len() / cols;
            let values = std::mem::take(&mut self.values);
            out.push(statement(values, &|| table.insert_sql(backend, rows)));
        }
        if let Some(others) = &mut self.others {
            others.statements(backend, all, out);
        }
    }
}

/// PostgreSQL: `values` (rows of `table`'s per-row columns) as one array per column,
/// `INSERT INTO t (…) SELECT u.c1, $1, … FROM unnest($n::int8[], $m::text[], …) AS u(c1, …)`,
/// when every value is a non-NULL integer or text (events and reminders); `None` otherwise.
///
/// A multi-row `VALUES` list of 9,000 parameters makes the server set up and evaluate 9,000
/// expressions on every execution (a third of its time in an import, BENCHMARKS.md); a few
/// arrays are parsed by one input function each. The arrays go as text in PostgreSQL's array
/// syntax, every element quoted, so no value is read as NULL or split.
fn unnest_statement(table: &Table, shared: &[Value], values: &[Value]) -> Option<Statement> {
    use std::fmt::Write;
    let cols = table.per_row.len();
    if cols == 0 || values.is_empty() {
        return None;
    }
    let kinds: Vec<&str> = values[..cols]
        .iter()
        .map(|v| match v {
            Value::BigInt(Some(_)) | Value::Int(Some(_)) => Some("int8"),
            Value::String(Some(_)) => Some("text"),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut arrays: Vec<String> = (0..cols)
        .map(|_| {
            let mut a = String::with_capacity(values.len() / cols * 16);
            a.push('{');
            a
        })
        .collect();
    for (k, v) in values.iter().enumerate() {
        let c = k % cols;
        let a = &mut arrays[c];
        if a.len() > 1 {
            a.push(',');
        }
        match (kinds[c], v) {
            ("int8", Value::BigInt(Some(n))) => {
                let _ = write!(a, "{n}");
            }
            ("int8", Value::Int(Some(n))) => {
                let _ = write!(a, "{n}");
            }
            ("text", Value::String(Some(text))) => {
                a.push('"');
                for ch in text.chars() {
                    if ch == '"' || ch == '\\' {
                        a.push('\\');
                    }
                    a.push(ch);
                }
                a.push('"');
            }
            _ => return None,
        }
    }
    for a in &mut arrays {
        a.push('}');
    }
    let mut sql = format!("INSERT INTO \"{}\" (", table.name);
    table.column_list(&mut sql);
    sql.push_str(") SELECT ");
    for k in 0..table.columns.len() {
        if k > 0 {
            sql.push_str(", ");
        }
        if let Some(n) = table.shared.iter().position(|&s| s == k) {
            let _ = write!(sql, "${}", n + 1);
        } else if let Some(n) = table.per_row.iter().position(|&r| r == k) {
            let _ = write!(sql, "u.c{}", n + 1);
        }
    }
    sql.push_str(" FROM unnest(");
    for (n, kind) in kinds.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "${}::{kind}[]", shared.len() + n + 1);
    }
    sql.push_str(") AS u(");
    for n in 0..cols {
        if n > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "c{}", n + 1);
    }
    sql.push(')');
    let mut bound = Vec::with_capacity(shared.len() + cols);
    bound.extend(shared.iter().cloned());
    bound.extend(arrays.into_iter().map(|a| Value::String(Some(a))));
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        bound,
    ))
}

/// Rows prepared by a batch and not written yet: items, events and reminders. Each table is
/// written in full statements as its rows come (the tables have no foreign keys, and nothing
/// reads them before the transaction ends).
struct Rows {
    backend: DbBackend,
    items: Pending,
    events: Pending,
    reminders: Pending,
    /// Whether any reminder row was made (PostgreSQL then wakes the dispatchers).
    any_reminders: bool,
}

impl Rows {
    fn new(backend: DbBackend) -> Rows {
        Rows {
            backend,
            items: Pending::new(Table::of::<item::Entity>(backend, true, &[])),
            events: Pending::new(Table::of::<event::Entity>(
                backend,
                false,
                &["actor", "at", "evidence"],
            )),
            reminders: Pending::new(Table::of::<reminder::Entity>(
                backend,
                false,
                &["state", "reason", "outbox_id", "created_at", "updated_at"],
            )),
            any_reminders: false,
        }
    }

    /// The statements of every full chunk held (with `all`, of everything held).
    fn statements(&mut self, all: bool) -> Vec<Statement> {
        let mut out = Vec::new();
        self.items.statements(self.backend, all, &mut out);
        self.events.statements(self.backend, all, &mut out);
        self.reminders.statements(self.backend, all, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: &[&str] = &["state", "reason", "outbox_id", "created_at", "updated_at"];

    #[test]
    fn shared_columns_are_bound_once_and_rows_refer_to_them() {
        let t = Table::of::<reminder::Entity>(DbBackend::Postgres, false, SHARED);
        let sql = t.insert_sql(DbBackend::Postgres, 2);
        assert!(
            sql.ends_with(
                "VALUES ($6, $7, $8, $9, $10, $1, $2, $3, $4, $5), \
                 ($11, $12, $13, $14, $15, $1, $2, $3, $4, $5)"
            ),
            "{sql}"
        );
        // SQLite keeps plain `?` (a numbered one is looked up by name) and skips the statement
        // journal.
        let t = Table::of::<reminder::Entity>(DbBackend::Sqlite, false, SHARED);
        assert!(t.shared.is_empty(), "SQLite binds every column per row");
        let sql = t.insert_sql(DbBackend::Sqlite, 1);
        assert!(
            sql.starts_with("INSERT OR FAIL INTO \"reminders\""),
            "{sql}"
        );
        assert!(
            sql.ends_with("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            "{sql}"
        );
    }

    #[test]
    fn a_row_whose_shared_columns_differ_is_written_with_all_its_columns() {
        let b = DbBackend::Postgres;
        let mut p = Pending::new(Table::of::<reminder::Entity>(b, false, SHARED));
        let row = |item: i64, at: &str| -> Vec<Value> {
            vec![
                item.into(),
                "before".into(),
                1i64.into(),
                1i64.into(),
                "2026-03-02".into(),
                "pending".into(),
                Value::String(None),
                Value::BigInt(None),
                at.into(),
                at.into(),
            ]
        };
        p.push_values(b, row(1, "t1"));
        p.push_values(b, row(2, "t2"));
        p.push_values(b, row(3, "t1"));
        let mut out = Vec::new();
        p.statements(b, true, &mut out);
        assert_eq!(out.len(), 2);
        let values = |s: &Statement| s.values.as_ref().unwrap().0.clone();
        // Items 1 and 3 share the first row's values: 5 shared, then one array per other
        // column.
        let fast = values(&out[0]);
        assert_eq!(fast.len(), 10);
        assert_eq!(fast[3], Value::from("t1"));
        assert_eq!(fast[5], Value::from("{1,3}"));
        assert_eq!(fast[6], Value::from(r#"{"before","before"}"#));
        assert!(
            out[0].sql.ends_with(
                "SELECT u.c1, u.c2, u.c3, u.c4, u.c5, $1, $2, $3, $4, $5 FROM \
                 unnest($6::int8[], $7::text[], $8::int8[], $9::int8[], $10::text[]) \
                 AS u(c1, c2, c3, c4, c5)"
            ),
            "{}",
            out[0].sql
        );
        // Item 2 in a statement with every column of its own (a NULL among them: a VALUES
        // list, not arrays).
        let other = values(&out[1]);
        assert_eq!(other, row(2, "t2"));
        assert!(
            out[1]
                .sql
                .ends_with("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        );
    }

    #[test]
    fn array_elements_are_quoted_and_escaped() {
        let t = Table::of::<reminder::Entity>(DbBackend::Postgres, false, SHARED);
        let values: Vec<Value> = vec![
            7i64.into(),
            r#"a"b\c,{d}"#.into(),
            1i64.into(),
            2i64.into(),
            "".into(),
        ];
        let st = unnest_statement(&t, &[], &values).unwrap();
        let v = st.values.unwrap().0;
        assert_eq!(v[0], Value::from("{7}"));
        assert_eq!(v[1], Value::from(r#"{"a\"b\\c,{d}"}"#));
        assert_eq!(v[4], Value::from(r#"{""}"#));
        // A NULL cannot go into these arrays: the caller falls back to VALUES.
        let mut with_null = values.clone();
        with_null[1] = Value::String(None);
        assert!(unnest_statement(&t, &[], &with_null).is_none());
    }
}
