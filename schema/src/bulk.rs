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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use rectify_engine::{Actor, Command, Ctx, ItemId, ItemState, NewItem, chain, text};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, IdenStatic, Iterable, NotSet, QueryFilter, QueryTrait, RuntimeErr, Set,
    Statement, Value,
    sqlx::postgres::{PgPool, PgPoolOptions},
};

use crate::entity::{event, item, reminder, unit};
use crate::error::StoreError;
use crate::reminders::reminder_row;
use crate::sqlite_direct::Bound;
use crate::store::{
    BusyWait, HeldWriter, Result, Store, Unit, direct_err, event_link, item_columns, item_direct,
    item_model_on, json_list, now_for_store,
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
    txn: Conn<'a>,
}

/// The connection an import's transaction runs on.
enum Conn<'a> {
    /// SQLite: the store's writer connection (`Store::hold_writer`), the one lifecycle
    /// commands write on, inside `BEGIN IMMEDIATE`, see [`SqliteImport`].
    Sqlite(SqliteImport<'a>),
    /// PostgreSQL: a connection of the import's own, see [`PgImport`].
    Pg(PgImport),
}

/// SQLite: the import runs on the store's writer connection, through SQLite's C API
/// (`sqlite_direct`): the rows' values are bound straight from the statements the preparing
/// thread built, on the thread that runs the import. Through sqlx, every value was copied by
/// sea-orm's conversion and again by sqlx's arguments, on the runtime's thread, while SQLite's
/// worker thread waited, and then the other way round: the two took turns for the whole
/// import (BENCHMARKS.md, eleventh session).
///
/// The writer is held for the whole import (commands of the same store wait for it). Dropped
/// without a commit or rollback, the held writer closes the connection and SQLite rolls the
/// transaction back; the next command opens a new one.
struct SqliteImport<'a> {
    held: HeldWriter<'a>,
    /// The writer's page cache size before the import (`PRAGMA cache_size`), set back after it.
    cache_size: i64,
}

impl<'a> SqliteImport<'a> {
    async fn begin(store: &'a Store) -> Result<SqliteImport<'a>> {
        let held = store.hold_writer().await?;
        let mut wait = BusyWait::new(store.busy_timeout);
        loop {
            let c = held.conn().conn();
            match c.run("BEGIN IMMEDIATE", &[]) {
                Ok(()) => break,
                Err(f) => {
                    let busy = c.busy_outside_transaction();
                    if !wait.again(busy).await {
                        return Err(direct_err(f));
                    }
                }
            }
        }
        let c = held.conn().conn();
        let cache_size = c.one_int("PRAGMA cache_size").map_err(direct_err)?;
        // A large import touches every page of the item, event and reminder indexes; with
        // SQLite's default 2 MB page cache it spills pages to the WAL in the middle of the
        // transaction and reads them back. The cache grows only as far as it is used.
        c.exec(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))
            .map_err(direct_err)?;
        Ok(SqliteImport {
            held,
            cache_size: cache_size.unwrap_or(-2000),
        })
    }

    fn conn(&self) -> crate::sqlite_direct::Conn<'_> {
        self.held.conn().conn()
    }

    /// Whether `sql` (one `?`, bound to `value`) gives a row.
    fn exists(&self, sql: &str, value: &str) -> Result<bool> {
        let c = self.conn();
        let mut st = c.prepare(sql).map_err(direct_err)?;
        st.bind(&[Bound::Text(value.into())]).map_err(direct_err)?;
        st.step().map_err(direct_err)
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`) and gives the writer back with
    /// its page cache as it was; after a failure that leaves the transaction open, the writer
    /// is closed instead (SQLite rolls back on close).
    fn end(self, sql: &str) -> Result<()> {
        let c = self.conn();
        let done = c.run(sql, &[]);
        let restored = c.exec(&format!("PRAGMA cache_size = {}", self.cache_size));
        if c.in_transaction() || restored.is_err() {
            drop(self.held);
        } else {
            self.held.finish();
        }
        done.map_err(direct_err)
    }
}

/// PostgreSQL: the import's rows go in with `COPY … FROM STDIN`, which takes a third less of
/// the server's time than the same rows as `INSERT … SELECT` (BENCHMARKS.md, eleventh session)
/// and which sea-orm's transaction gives no access to. So the import opens a pool of its own
/// holding ONE connection, begins the transaction on it with `BEGIN`, and runs its sea-orm
/// reads and writes (`db`) and its `COPY`s (`pool`) on that connection.
///
/// What keeps every statement inside the transaction: the pool has one connection at most,
/// never retires it (no idle timeout, no lifetime), and refuses to open a second one (a lost
/// connection fails every later statement instead of running it outside the transaction on a
/// fresh one; the server has rolled the lost one back). A statement that fails aborts a
/// PostgreSQL transaction, so after the first failure the pool is closed and every later call,
/// the `COMMIT` too, fails at once (a closed pool is a failed import: the pool is closed
/// otherwise only by [`PgImport::end`], which consumes it). Dropped without a `COMMIT`, the
/// pool drops the connection and the server rolls the transaction back.
struct PgImport {
    db: DatabaseConnection,
    pool: PgPool,
}

impl PgImport {
    async fn begin(store: &Store) -> Result<PgImport> {
        let main = store.db().get_postgres_connection_pool();
        let options = (*main.connect_options()).clone();
        let opened = Arc::new(AtomicBool::new(false));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .acquire_timeout(main.options().get_acquire_timeout())
            .after_connect(move |_conn, _meta| {
                let again = opened.swap(true, Ordering::SeqCst);
                Box::pin(async move {
                    if again {
                        return Err(sea_orm::sqlx::Error::Io(std::io::Error::other(
                            "the import's database connection was lost; its transaction was \
                             rolled back and nothing was written",
                        )));
                    }
                    crate::store::tcp_nodelay_everywhere();
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Db(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e)))))?;
        let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
        db.execute_unprepared("BEGIN").await?;
        Ok(PgImport { db, pool })
    }

    /// Fails when an earlier call of this import failed (its transaction is aborted).
    fn check(&self) -> std::result::Result<(), DbErr> {
        if self.pool.is_closed() {
            return Err(DbErr::Custom(
                "the import failed part-way (see the error before this one); its transaction \
                 was rolled back and nothing was written"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Runs `call` on the import's connection unless an earlier call failed; a database
    /// failure closes the connection (see [`PgImport`]).
    async fn guard<T, E: Into<StoreError>>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        self.check()?;
        let r = call.await.map_err(Into::into);
        if let Err(StoreError::Db(_)) = &r {
            self.pool.close().await;
        }
        r
    }

    /// Ends the transaction (`COMMIT` or `ROLLBACK`) and closes the connection. A rollback
    /// after a failure has nothing to do: the server has ended the transaction.
    async fn end(self, commit: bool) -> Result<()> {
        if !commit && self.pool.is_closed() {
            return Ok(());
        }
        self.check()?;
        let done = self
            .db
            .execute_unprepared(if commit { "COMMIT" } else { "ROLLBACK" })
            .await;
        self.pool.close().await;
        done?;
        Ok(())
    }

    /// Writes `data` (rows in `COPY`'s text format) with `sql` (`COPY t (…) FROM STDIN`).
    async fn copy(&self, sql: &str, data: &[u8]) -> Result<()> {
        self.guard(async {
            let exec = |e: sea_orm::sqlx::Error| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)));
            let mut conn = self.pool.acquire().await.map_err(exec)?;
            let mut copy = conn.copy_in_raw(sql).await.map_err(exec)?;
            if let Err(e) = copy.send(data).await {
                let _ = copy.abort("the import stopped").await;
                return Err(exec(e));
            }
            copy.finish().await.map_err(exec)
        })
        .await?;
        Ok(())
    }
}

impl Store {
    /// Opens one transaction for a bulk change.
    pub async fn bulk(&self) -> Result<Bulk<'_>> {
        if self.backend() == DbBackend::Postgres {
            return Ok(Bulk {
                store: self,
                txn: Conn::Pg(PgImport::begin(self).await?),
            });
        }
        Ok(Bulk {
            store: self,
            txn: Conn::Sqlite(SqliteImport::begin(self).await?),
        })
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
        match self.txn {
            Conn::Sqlite(l) => l.end("COMMIT")?,
            Conn::Pg(p) => p.end(true).await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.txn {
            Conn::Sqlite(l) => l.end("ROLLBACK")?,
            Conn::Pg(p) => p.end(false).await?,
        }
        Ok(())
    }

    /// Whether `table` (`rounds` or `units`) has a row with code `code`.
    async fn has_code(&self, table: &'static str, code: &str) -> Result<bool> {
        match &self.txn {
            Conn::Sqlite(l) => l.exists(&format!("SELECT 1 FROM {table} WHERE code = ?"), code),
            Conn::Pg(p) => {
                let st = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    format!("SELECT 1 FROM {table} WHERE code = $1"),
                    [code.into()],
                );
                Ok(p.guard(p.db.query_one_raw(st)).await?.is_some())
            }
        }
    }

    /// Every unit's code.
    async fn unit_codes(&self) -> Result<HashSet<String>> {
        match &self.txn {
            Conn::Sqlite(l) => {
                let c = l.conn();
                let mut st = c.prepare("SELECT code FROM units").map_err(direct_err)?;
                let mut codes = HashSet::new();
                while st.step().map_err(direct_err)? {
                    codes.extend(st.text(0).map_err(direct_err)?);
                }
                Ok(codes)
            }
            Conn::Pg(p) => Ok(p
                .guard(unit::Entity::find().all(&p.db))
                .await?
                .into_iter()
                .map(|u| u.code)
                .collect()),
        }
    }

    /// Item `id` as stored.
    async fn item(&self, id: ItemId) -> Result<item::Model> {
        match &self.txn {
            Conn::Sqlite(l) => item_direct(&l.conn(), id),
            Conn::Pg(p) => p.guard(item_model_on(&p.db, id)).await,
        }
    }

    /// Runs `st` (an INSERT, a NOTIFY, …) with its values.
    async fn execute(&self, st: &Statement) -> Result<()> {
        match &self.txn {
            Conn::Sqlite(l) => {
                let bound = crate::sqlite_direct::bound_values(st).map_err(direct_err)?;
                l.conn().run(&st.sql, &bound).map_err(direct_err)
            }
            Conn::Pg(p) => {
                p.guard(p.db.execute_raw(st.clone())).await?;
                Ok(())
            }
        }
    }

    /// Adds a unit inside the transaction (for `--create-units`).
    pub async fn add_unit(&self, u: &Unit, now: DateTime<Utc>) -> Result<Unit> {
        let mut added = self.add_units(std::slice::from_ref(u), now).await?;
        Ok(added.remove(0))
    }

    /// Adds `units` inside the transaction: one read of the codes already taken, then multi-row
    /// inserts (an import that creates a province's 200 units made 400 round trips). A code
    /// already stored, or given twice, refuses them all.
    pub async fn add_units(&self, units: &[Unit], now: DateTime<Utc>) -> Result<Vec<Unit>> {
        let mut out = Vec::with_capacity(units.len());
        for u in units {
            out.push(Unit {
                code: text::name("unit code", &u.code)?,
                name: text::name("unit name", &u.name)?,
                parent: None,
                emails: u.emails.clone(),
                leader: u.leader.clone(),
                leader_email: None,
                aliases: u.aliases.clone(),
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        let mut taken = self.unit_codes().await?;
        for u in &out {
            if !taken.insert(u.code.clone()) {
                return Err(StoreError::Duplicate {
                    what: "unit",
                    key: u.code.clone(),
                });
            }
        }
        let backend = self.store.backend();
        // Nine columns a row: well inside either database's limit on a statement's values.
        for chunk in out.chunks(500) {
            let rows = chunk.iter().map(|u| unit::ActiveModel {
                id: NotSet,
                code: Set(u.code.clone()),
                name: Set(u.name.clone()),
                parent_code: Set(None),
                emails: Set(json_list(&u.emails)),
                leader: Set(u.leader.clone()),
                leader_email: Set(None),
                aliases: Set(json_list(&u.aliases)),
                created_at: Set(now_for_store(now)),
            });
            self.execute(&unit::Entity::insert_many(rows).build(backend))
                .await?;
        }
        Ok(out)
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
            if !self.has_code("rounds", &b.new.round).await? {
                return Err(at(i)(StoreError::NotFound {
                    what: "round",
                    key: b.new.round.clone(),
                }));
            }
            rounds.insert(b.new.round.as_str());
        }
        let units = self.unit_codes().await?;
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
                        self.item(*target).await.map_err(|e| {
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
                let parent = self.item(p).await.map_err(|e| {
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
        // Written rows go back to the preparing thread to be freed there: glibc frees memory
        // another thread allocated under that thread's arena lock, which cost the writing
        // thread a tenth of its time.
        let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<Write>>();
        std::thread::Builder::new()
            .name("rectify-import".into())
            .spawn(move || prep.run(&tx, &spent_rx))
            .map_err(|e| {
                BatchError::from(StoreError::invalid(
                    format!("无法启动导入线程:{e}"),
                    format!("cannot start the import thread: {e}"),
                ))
            })?;
        let mut done = 0;
        let (states, any_reminders) = loop {
            match rx.recv().await {
                Some(Prepared::Rows(writes, count)) => {
                    for w in &writes {
                        match (w, &self.txn) {
                            (Write::Insert(st), _) => self.execute(st).await?,
                            (Write::Copy { sql, data }, Conn::Pg(pg)) => pg.copy(sql, data).await?,
                            (Write::Copy { .. }, Conn::Sqlite(_)) => {
                                unreachable!("COPY is made for PostgreSQL only")
                            }
                        }
                    }
                    let _ = spent.send(writes);
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
            self.execute(&Statement::from_string(
                DbBackend::Postgres,
                format!("NOTIFY {}", crate::PLAN_CHANNEL),
            ))
            .await?;
        }
        Ok(ids.into_iter().zip(states).collect())
    }

    /// `n` fresh item ids, taken inside the transaction. SQLite: the write lock is held (BEGIN
    /// IMMEDIATE) and items are never deleted, so the ids after the largest are free.
    /// PostgreSQL: from the table's sequence, as an ordinary insert would take them, reserved
    /// in one step ([`reserve_item_ids`]) where the sequence allows it.
    async fn next_item_ids(&self, n: usize) -> Result<Vec<ItemId>> {
        let ids: Vec<ItemId> = match &self.txn {
            Conn::Sqlite(l) => {
                let max = l
                    .conn()
                    .one_int("SELECT COALESCE(MAX(id), 0) FROM items")
                    .map_err(direct_err)?
                    .unwrap_or(0);
                (1..=n as i64).map(|k| max + k).collect()
            }
            Conn::Pg(_) if n == 0 => Vec::new(),
            Conn::Pg(p) => {
                p.check()?;
                match reserve_item_ids(self.store.db(), n).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        tracing::debug!(error = %e, "item ids taken one by one");
                        p.guard(item_ids_one_by_one(&p.db, n)).await?
                    }
                }
            }
        };
        if ids.len() != n {
            return Err(StoreError::invalid(
                "数据库未能分配事项编号",
                format!("the database gave {} item ids for {n}", ids.len()),
            ));
        }
        Ok(ids)
    }
}

/// PostgreSQL: `n` consecutive item ids from the items' sequence in one step, in a short
/// transaction of its own (on the store's pool, not the import's connection): `ALTER SEQUENCE`
/// (leaving it as it is) takes the lock that blocks every other `nextval` of the sequence until
/// this commits (milliseconds; it waits at most a second for a command's open transaction;
/// `LOCK` does not take sequences), then the sequence is read and moved past the range with
/// `setval`. No id of the range goes to anyone else. One `nextval` per id took 0.6 s for
/// 133,235 ids (BENCHMARKS.md, thirteenth session).
///
/// Refused (the caller takes the ids one by one) when the sequence does not count by one or
/// the database user may not alter it. A failure rolls the step back and no id of it is used.
async fn reserve_item_ids(
    db: &DatabaseConnection,
    n: usize,
) -> std::result::Result<Vec<ItemId>, DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    let first: std::result::Result<i64, DbErr> = async {
        let one = |sql: String| {
            let txn = &txn;
            async move {
                txn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                    .await?
                    .ok_or_else(|| DbErr::Custom("the sequence gave no row".into()))
            }
        };
        txn.execute_unprepared("SET LOCAL lock_timeout = '1s'")
            .await?;
        let row = one("SELECT q.seq::text, s.seqincrement FROM (SELECT \
                 pg_get_serial_sequence('items', 'id')::regclass AS seq) AS q \
                 JOIN pg_sequence s ON s.seqrelid = q.seq"
            .into())
        .await?;
        // A regclass as text: the name quoted as SQL needs it.
        let seq: String = row.try_get_by_index(0)?;
        let increment: i64 = row.try_get_by_index(1)?;
        if increment != 1 {
            return Err(DbErr::Custom(format!(
                "the sequence {seq} counts by {increment}"
            )));
        }
        txn.execute_unprepared(&format!("ALTER SEQUENCE {seq} INCREMENT BY 1"))
            .await?;
        let row = one(format!("SELECT last_value, is_called FROM {seq}")).await?;
        let last: i64 = row.try_get_by_index(0)?;
        let called: bool = row.try_get_by_index(1)?;
        // Not called yet (a new sequence): `last_value` is the first id to give.
        let first = if called { last + 1 } else { last };
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT setval($1::regclass, $2, true)",
            [seq.into(), (first + n as i64 - 1).into()],
        ))
        .await?;
        Ok(first)
    }
    .await;
    match first {
        Ok(first) => {
            txn.commit().await?;
            Ok((first..first + n as i64).collect())
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// PostgreSQL: `n` item ids, one `nextval` each, inside the import's transaction.
async fn item_ids_one_by_one(
    db: &DatabaseConnection,
    n: usize,
) -> std::result::Result<Vec<ItemId>, DbErr> {
    // The sequence's name looked up once, not once per id.
    let sql = format!(
        "SELECT nextval(q.seq) FROM (SELECT pg_get_serial_sequence('items', 'id')\
         ::regclass AS seq) AS q, generate_series(1, {n})"
    );
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0))
        .collect()
}

/// What the preparing thread hands over.
enum Prepared {
    /// The writes of the rows of this many more items (rows of the last items may wait for the
    /// next writes).
    Rows(Vec<Write>, usize),
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
    fn run(
        self,
        tx: &tokio::sync::mpsc::Sender<Prepared>,
        spent: &std::sync::mpsc::Receiver<Vec<Write>>,
    ) {
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
                let writes = rows.writes(last);
                if tx.blocking_send(Prepared::Rows(writes, in_rows)).is_err() {
                    return; // the writer gave up
                }
                in_rows = 0;
                while spent.try_recv().is_ok() {}
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
        rows.events.push(first.row)?;
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
            rows.events.push(link.row)?;
            item = o.item;
        }
        let (planned, key) = self.planner.plan_for(&item, self.today);
        for r in &planned {
            rows.reminders.push(reminder_row(id, r, self.now))?;
        }
        rows.any_reminders |= !planned.is_empty();
        let mut row = item_columns(&item, seq, &head);
        row.id = Set(id);
        row.plan_key = Set(Some(key));
        rows.items.push(row)?;
        Ok(item.state)
    }
}

/// One write of an import's rows.
enum Write {
    /// SQLite: a multi-row `INSERT`.
    Insert(Statement),
    /// PostgreSQL: `sql` (`COPY t (…) FROM STDIN`) with its rows in COPY's text format.
    Copy { sql: Arc<str>, data: Vec<u8> },
}

/// A table an import writes: its name, the columns each of its rows gives, in order, and the
/// shape of its writes.
struct Table {
    name: &'static str,
    columns: Vec<&'static str>,
    /// SQLite: rows per INSERT, a fixed number, so every full statement has the same SQL text,
    /// built once per import (the writer still prepares it per statement: ~4% of its time,
    /// BENCHMARKS.md, eleventh session).
    rows_per_insert: usize,
    /// SQLite: the SQL of a full statement, built once. PostgreSQL: the `COPY` statement.
    full_sql: Arc<str>,
}

/// Bound values per INSERT on SQLite, roughly: well under its limit (32,766), and large enough
/// that the per-statement costs (preparing it, stepping into the next) are spread over
/// hundreds of rows.
const VALUES_PER_INSERT: usize = 9_000;

/// PostgreSQL: the COPY text a table gathers before it is written: each `COPY` costs two round
/// trips and a release of the connection, so it carries a few thousand rows, while the server
/// still gets its first rows early in the import.
const COPY_BYTES: usize = 512 * 1024;

impl Table {
    /// The table of entity `E`, with its primary key column only when `with_id` (without, the
    /// database assigns it).
    fn of<E: EntityTrait>(backend: DbBackend, with_id: bool) -> Table {
        let columns: Vec<&'static str> = E::Column::iter()
            .map(|c| c.as_str())
            .filter(|c| with_id || *c != "id")
            .collect();
        let name = E::default().table_name();
        let rows_per_insert = (VALUES_PER_INSERT / columns.len().max(1)).max(1);
        let mut table = Table {
            name,
            columns,
            rows_per_insert,
            full_sql: Arc::from(""),
        };
        table.full_sql = Arc::from(match backend {
            DbBackend::Postgres => table.copy_sql(),
            _ => table.insert_sql(rows_per_insert),
        });
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

    /// `COPY "t" ("c", …) FROM STDIN` (text format: tab-separated, `\N` for NULL).
    fn copy_sql(&self) -> String {
        let mut sql = format!("COPY \"{}\" (", self.name);
        self.column_list(&mut sql);
        sql.push_str(") FROM STDIN");
        sql
    }

    /// SQLite: `INSERT OR FAIL INTO t (c, …) VALUES (?, …), (?, …)` for `rows` rows.
    ///
    /// `INSERT OR FAIL`: a failing row fails the statement either way (and the import rolls
    /// back), but under the default ABORT SQLite keeps a statement journal so it can undo the
    /// statement's earlier rows, copying every page the statement touches first.
    fn insert_sql(&self, rows: usize) -> String {
        let cols = self.columns.len();
        let mut sql = String::with_capacity(64 + cols * 24 + rows * cols * 3);
        sql.push_str(&format!("INSERT OR FAIL INTO \"{}\" (", self.name));
        self.column_list(&mut sql);
        sql.push_str(") VALUES ");
        let row = format!("({})", vec!["?"; cols].join(", "));
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row);
        }
        sql
    }
}

/// The rows of one table not written yet: on SQLite their values, one row after another; on
/// PostgreSQL their COPY text.
struct Pending {
    backend: DbBackend,
    table: Table,
    values: Vec<Value>,
    copy: String,
}

impl Pending {
    fn new(backend: DbBackend, table: Table) -> Pending {
        let (values, copy) = match backend {
            DbBackend::Postgres => (Vec::new(), String::with_capacity(COPY_BYTES + 64 * 1024)),
            _ => (
                Vec::with_capacity(table.rows_per_insert * table.columns.len()),
                String::new(),
            ),
        };
        Pending {
            backend,
            table,
            values,
            copy,
        }
    }

    /// Appends one row: the values `row` has for the table's columns, taken out of it.
    fn push<A: ActiveModelTrait>(&mut self, mut row: A) -> Result<()> {
        let start = (self.values.len(), self.copy.len());
        let mut count = 0;
        for c in <A::Entity as EntityTrait>::Column::iter() {
            let v = match row.take(c) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
                // The key the database assigns (events, reminders).
                ActiveValue::NotSet if c.as_str() == "id" => continue,
                ActiveValue::NotSet => {
                    self.values.truncate(start.0);
                    self.copy.truncate(start.1);
                    return Err(StoreError::invalid(
                        "导入的行缺少一列,未写入任何内容",
                        format!(
                            "an imported {} row has no value for `{}`; nothing was written",
                            self.table.name,
                            c.as_str()
                        ),
                    ));
                }
            };
            if self.backend == DbBackend::Postgres {
                if count > 0 {
                    self.copy.push('\t');
                }
                if let Err(e) = copy_value(&mut self.copy, &v) {
                    self.copy.truncate(start.1);
                    return Err(e);
                }
            } else {
                self.values.push(v);
            }
            count += 1;
        }
        if count != self.table.columns.len() {
            self.values.truncate(start.0);
            self.copy.truncate(start.1);
            return Err(StoreError::invalid(
                "导入的行与表的列数不符,未写入任何内容",
                format!(
                    "an imported {} row does not have the table's {} columns; nothing was written",
                    self.table.name,
                    self.table.columns.len()
                ),
            ));
        }
        if self.backend == DbBackend::Postgres {
            self.copy.push('\n');
        }
        Ok(())
    }

    /// Moves every full write's worth of rows into `out`; with `all`, the rest too.
    fn writes(&mut self, all: bool, out: &mut Vec<Write>) {
        if self.backend == DbBackend::Postgres {
            if self.copy.len() >= COPY_BYTES || (all && !self.copy.is_empty()) {
                let capacity = self.copy.capacity();
                let data = std::mem::replace(&mut self.copy, String::with_capacity(capacity));
                out.push(Write::Copy {
                    sql: self.table.full_sql.clone(),
                    data: data.into_bytes(),
                });
            }
            return;
        }
        let cols = self.table.columns.len();
        let full = self.table.rows_per_insert * cols;
        while self.values.len() >= full {
            let rest = self.values.split_off(full);
            let values = std::mem::replace(&mut self.values, rest);
            out.push(Write::Insert(Statement::from_sql_and_values(
                self.backend,
                self.table.full_sql.to_string(),
                values,
            )));
        }
        if all && !self.values.is_empty() {
            let rows = self.values.len() / cols;
            let values = std::mem::take(&mut self.values);
            out.push(Write::Insert(Statement::from_sql_and_values(
                self.backend,
                self.table.insert_sql(rows),
                values,
            )));
        }
    }
}

/// Appends `v` to `out` in COPY's text format: `\N` for NULL, a backslash before a backslash,
/// and tab, newline and carriage return as `\t`, `\n` and `\r`. A time is written as the
/// instant it is, to the microsecond (what the store keeps; `now_for_store`), in UTC.
fn copy_value(out: &mut String, v: &Value) -> Result<()> {
    use std::fmt::Write;
    match v {
        Value::BigInt(None)
        | Value::Int(None)
        | Value::String(None)
        | Value::ChronoDateTimeUtc(None) => out.push_str("\\N"),
        Value::BigInt(Some(n)) => {
            let _ = write!(out, "{n}");
        }
        Value::Int(Some(n)) => {
            let _ = write!(out, "{n}");
        }
        Value::String(Some(s)) => {
            if s.contains('\0') {
                return Err(StoreError::invalid(
                    "导入的文字含有空字符(NUL),PostgreSQL 不能保存,未写入任何内容",
                    "an imported text holds a NUL character, which PostgreSQL cannot store; \
                     nothing was written",
                ));
            }
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        Value::ChronoDateTimeUtc(Some(t)) => {
            let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        }
        other => {
            return Err(StoreError::invalid(
                "导入的行含有不能写入的值类型,未写入任何内容",
                format!(
                    "an imported row holds a value of a kind the import cannot write: {other:?}; nothing was written"
                ),
            ));
        }
    }
    Ok(())
}

/// Rows prepared by a batch and not written yet: items, events and reminders. Each table is
/// written in full writes as its rows come (the tables have no foreign keys, and nothing reads
/// them before the transaction ends).
struct Rows {
    items: Pending,
    events: Pending,
    reminders: Pending,
    /// Whether any reminder row was made (PostgreSQL then wakes the dispatchers).
    any_reminders: bool,
}

impl Rows {
    fn new(backend: DbBackend) -> Rows {
        Rows {
            items: Pending::new(backend, Table::of::<item::Entity>(backend, true)),
            events: Pending::new(backend, Table::of::<event::Entity>(backend, false)),
            reminders: Pending::new(backend, Table::of::<reminder::Entity>(backend, false)),
            any_reminders: false,
        }
    }

    /// The writes of every full chunk held (with `all`, of everything held).
    fn writes(&mut self, all: bool) -> Vec<Write> {
        let mut out = Vec::new();
        self.items.writes(all, &mut out);
        self.events.writes(all, &mut out);
        self.reminders.writes(all, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reminder(item: i64, reason: Option<&str>) -> reminder::ActiveModel {
        let at = chrono::DateTime::parse_from_rfc3339("2026-03-02T02:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        reminder::ActiveModel {
            id: NotSet,
            item_id: Set(item),
            kind: Set("before".into()),
            step: Set(1),
            deadline_version: Set(1),
            send_on: Set("2026-03-02".into()),
            state: Set("pending".into()),
            reason: Set(reason.map(str::to_string)),
            outbox_id: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
    }

    #[test]
    fn sqlite_rows_go_in_fixed_length_inserts_with_plain_placeholders() {
        let t = Table::of::<reminder::Entity>(DbBackend::Sqlite, false);
        // SQLite keeps plain `?` (a numbered one is looked up by name) and skips the statement
        // journal.
        let sql = t.insert_sql(2);
        assert!(
            sql.starts_with("INSERT OR FAIL INTO \"reminders\" (\"item_id\", \"kind\""),
            "{sql}"
        );
        assert!(
            sql.ends_with("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            "{sql}"
        );
        let mut p = Pending::new(DbBackend::Sqlite, t);
        let full = p.table.rows_per_insert;
        for i in 0..full as i64 + 3 {
            p.push(reminder(i, None)).unwrap();
        }
        let mut out = Vec::new();
        p.writes(false, &mut out);
        assert_eq!(out.len(), 1, "one full statement; the 3 rows left wait");
        p.writes(true, &mut out);
        let Write::Insert(last) = &out[1] else {
            panic!("SQLite writes INSERTs")
        };
        assert_eq!(last.values.as_ref().unwrap().0.len(), 30);
        assert!(last.sql.ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        assert!(p.values.is_empty());
    }

    #[test]
    fn postgres_rows_go_in_copy_text() {
        let t = Table::of::<reminder::Entity>(DbBackend::Postgres, false);
        assert_eq!(
            &*t.full_sql,
            "COPY \"reminders\" (\"item_id\", \"kind\", \"step\", \"deadline_version\", \
             \"send_on\", \"state\", \"reason\", \"outbox_id\", \"created_at\", \"updated_at\") \
             FROM STDIN"
        );
        let mut p = Pending::new(DbBackend::Postgres, t);
        p.push(reminder(7, Some("a\\b\tc\nd\re 中文"))).unwrap();
        p.push(reminder(8, None)).unwrap();
        let mut out = Vec::new();
        p.writes(false, &mut out);
        assert!(out.is_empty(), "a small COPY waits for more rows");
        p.writes(true, &mut out);
        let Write::Copy { sql, data } = &out[0] else {
            panic!("PostgreSQL writes COPY")
        };
        assert!(sql.starts_with("COPY \"reminders\""));
        assert_eq!(
            String::from_utf8(data.clone()).unwrap(),
            "7\tbefore\t1\t1\t2026-03-02\tpending\ta\\\\b\\tc\\nd\\re 中文\t\\N\t\
             2026-03-02 02:00:00.123456+00\t2026-03-02 02:00:00.123456+00\n\
             8\tbefore\t1\t1\t2026-03-02\tpending\t\\N\t\\N\t\
             2026-03-02 02:00:00.123456+00\t2026-03-02 02:00:00.123456+00\n"
        );
    }

    #[test]
    fn a_row_that_cannot_be_written_is_refused_whole() {
        let mut p = Pending::new(
            DbBackend::Postgres,
            Table::of::<reminder::Entity>(DbBackend::Postgres, false),
        );
        p.push(reminder(1, None)).unwrap();
        let before = p.copy.clone();
        let e = p.push(reminder(2, Some("nul\0here"))).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert_eq!(p.copy, before, "nothing of the refused row is kept");
        let mut missing = reminder(3, None);
        missing.kind = NotSet;
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            let mut p = Pending::new(backend, Table::of::<reminder::Entity>(backend, false));
            let e = p.push(missing.clone()).unwrap_err();
            assert!(e.to_string().contains("`kind`"), "{e}");
            assert!(p.copy.is_empty() && p.values.is_empty());
        }
        let mut s = String::new();
        assert!(copy_value(&mut s, &Value::Double(Some(1.5))).is_err());
    }

    async fn units_in(store: &Store) -> i64 {
        let row = store
            .db()
            .query_one_raw(Statement::from_string(
                store.backend(),
                "SELECT COUNT(*) FROM units",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// Units go in many to a statement (more than one statement's worth here); a code given
    /// twice, or one already stored, refuses them all before anything is written.
    #[tokio::test]
    async fn units_are_added_together_and_a_taken_code_refuses_them_all() {
        for db in crate::testing::TestDb::all().await {
            let store = db.store().await;
            let now = Utc::now();
            let unit = |code: String| Unit {
                name: format!("单位{code}"),
                emails: vec![format!("{code}@example.gov.cn")],
                code,
                parent: None,
                leader: Some("李四".into()),
                leader_email: None,
                aliases: vec!["别名".into()],
            };
            let many: Vec<Unit> = (0..620).map(|i| unit(format!("U{i:03}"))).collect();
            let bulk = store.bulk().await.unwrap();
            let added = bulk.add_units(&many, now).await.unwrap();
            assert_eq!(added.len(), 620);
            bulk.commit().await.unwrap();
            assert_eq!(units_in(&store).await, 620, "{}", db.name);
            let stored = store.find_unit("U619").await.unwrap();
            assert_eq!(stored.leader.as_deref(), Some("李四"));
            assert_eq!(stored.aliases, vec!["别名".to_string()]);

            for codes in [&["N1", "N2", "N1"][..], &["N3", "U007"][..]] {
                let bulk = store.bulk().await.unwrap();
                let given: Vec<Unit> = codes.iter().map(|c| unit(c.to_string())).collect();
                let e = bulk.add_units(&given, now).await.unwrap_err();
                assert!(
                    matches!(&e, StoreError::Duplicate { what: "unit", key }
                        if key == codes.last().unwrap()),
                    "{}: {e:?}",
                    db.name
                );
                bulk.rollback().await.unwrap();
                assert_eq!(units_in(&store).await, 620, "{}: nothing added", db.name);
            }
            // A name the engine refuses (empty), after a good unit: none of them is written.
            let bulk = store.bulk().await.unwrap();
            let mut bad = unit("N4".into());
            bad.name = "  ".into();
            let e = bulk
                .add_units(&[unit("N5".into()), bad], now)
                .await
                .unwrap_err();
            assert!(!matches!(e, StoreError::Db(_)), "{}: {e:?}", db.name);
            bulk.commit().await.unwrap();
            assert_eq!(units_in(&store).await, 620, "{}: nothing added", db.name);
            store.close().await.unwrap();
            db.cleanup().await;
        }
    }

    /// A write the database refuses in the middle of an import (SQLite: an INSERT; PostgreSQL:
    /// a COPY) fails the import, nothing of it stays, and the store goes on: the writer and a
    /// next import work. On PostgreSQL the import's later calls and its commit fail at once.
    #[tokio::test]
    async fn a_refused_write_leaves_nothing_and_the_store_goes_on() {
        for db in crate::testing::TestDb::all().await {
            let store = db.store().await;
            let now = Utc::now();
            let unit = |code: &str| Unit {
                code: code.into(),
                name: format!("单位{code}"),
                parent: None,
                emails: vec![format!("{code}@example.gov.cn")],
                leader: None,
                leader_email: None,
                aliases: vec![],
            };
            for commit in [false, true] {
                let bulk = store.bulk().await.unwrap();
                let added = bulk.add_unit(&unit("A"), now).await.unwrap();
                assert_eq!(added.emails, vec!["A@example.gov.cn".to_string()]);
                let refused = match &bulk.txn {
                    Conn::Sqlite(_) => {
                        bulk.execute(&Statement::from_string(
                            DbBackend::Sqlite,
                            "INSERT INTO items (id) VALUES (1)",
                        ))
                        .await
                    }
                    Conn::Pg(p) => p.copy("COPY items (id) FROM STDIN", b"one\n").await,
                };
                assert!(
                    matches!(refused, Err(StoreError::Db(_))),
                    "{}: {refused:?}",
                    db.name
                );
                match (&bulk.txn, commit) {
                    (Conn::Pg(_), true) => {
                        let later = bulk.add_unit(&unit("B"), now).await.unwrap_err();
                        assert!(later.to_string().contains("failed part-way"), "{later}");
                        let e = bulk.commit().await.unwrap_err();
                        assert!(e.to_string().contains("nothing was written"), "{e}");
                    }
                    // SQLite goes on after a refused statement; the import rolls back.
                    _ => bulk.rollback().await.unwrap(),
                }
                assert_eq!(units_in(&store).await, 0, "{}: nothing stays", db.name);
            }
            let bulk = store.bulk().await.unwrap();
            bulk.add_unit(&unit("A"), now).await.unwrap();
            bulk.commit().await.unwrap();
            assert_eq!(
                units_in(&store).await,
                1,
                "{}: the next import works",
                db.name
            );
            store.close().await.unwrap();
            db.cleanup().await;
        }
    }
}
