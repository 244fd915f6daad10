//! The store: applies one command in ONE transaction (item row with a version check, event row
//! hash-chained to the item's previous event, evidence rows, extension rows), and answers queries.
//!
//! Architecture invariant: the store decides nothing. The engine's `transition` decides; the store
//! looks up the facts the engine needs, persists exactly what the engine returned, and turns a
//! stale version into a conflict error, never a lost update.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rectify_engine::chain::{self, ChainFault, ChainLink, StoredLink};
use rectify_engine::{
    Actor, Cadence, Command, Ctx, Deadline, EvidenceRef, Item, ItemId, ItemState, NewItem, Outcome,
    PendingExtension, Role, Source, text,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, NotSet, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::entity::{event, evidence, extension, item, operator, round, unit};
use crate::error::StoreError;
use crate::evidence_files;
use crate::migration::Migrator;
use crate::reminders::Planner;
use crate::sqlite_direct as direct;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Rows per page when a long list is read.
const LIST_PAGE: u64 = 2_000;

/// How to open the database. Plain values handed down from the config crate.
#[derive(Clone, Debug)]
pub struct ConnectSettings {
    pub url: String,
    pub pool_size: u32,
    pub busy_timeout: Duration,
    pub statement_timeout: Duration,
    pub evidence_dir: PathBuf,
}

impl ConnectSettings {
    pub fn new(url: impl Into<String>, evidence_dir: impl Into<PathBuf>) -> Self {
        ConnectSettings {
            url: url.into(),
            pool_size: 4,
            busy_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            evidence_dir: evidence_dir.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    evidence_dir: PathBuf,
    pub(crate) planner: Arc<Planner>,
    /// SQLite: the connection lifecycle commands read their item on and write on (see
    /// `apply`); opened on first use. Shared by every clone of the store.
    writer: Arc<tokio::sync::Mutex<Option<direct::Owned>>>,
    /// How long the writer waits for another process's write lock (SQLite).
    pub(crate) busy_timeout: Duration,
    /// The query of the SQLite URL, as sqlx reads it (`sqlite_url_query`), for the writer.
    sqlite_query: Arc<Vec<(String, String)>>,
}

type SqliteConnection = sea_orm::sqlx::SqliteConnection;

/// A unit as shown and used by the CLI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unit {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub emails: Vec<String>,
    pub leader: Option<String>,
    pub leader_email: Option<String>,
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub unit: Option<String>,
    pub email: Option<String>,
}

impl Operator {
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role,
            unit: self.unit.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Round {
    pub code: String,
    pub title: String,
    pub source: Source,
}

/// One event of an item's history, with its evidence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryEntry {
    pub event_id: i64,
    pub seq: i64,
    pub kind: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub evidence: Vec<EvidenceRef>,
    pub hash: String,
}

#[derive(Clone, Debug, Default)]
pub struct ItemFilter {
    pub round: Option<String>,
    pub unit: Option<String>,
    pub state: Option<ItemState>,
    /// Only items past their deadline and still with the unit (assigned or in progress).
    pub overdue_on: Option<NaiveDate>,
}

/// One break found by `audit verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFinding {
    pub item_id: i64,
    pub fault: ChainFault,
}

/// The time every stored moment is truncated to, so hashes survive a round trip through any
/// database.
pub fn now_for_store(now: DateTime<Utc>) -> DateTime<Utc> {
    chain::truncate_to_micros(now)
}

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_string())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str, what: &str) -> Result<T> {
    s.parse::<T>().map_err(|e| {
        StoreError::Db(sea_orm::DbErr::Custom(format!(
            "stored {what} `{s}` is not readable ({e}); the database was edited by hand"
        )))
    })
}

/// Reads a stored item row into the engine's item.
pub fn to_item_pub(m: &item::Model) -> Result<Item> {
    to_item(m)
}

pub(crate) fn to_item(m: &item::Model) -> Result<Item> {
    let pending_extension = match (&m.ext_to, &m.ext_reason, &m.ext_requested_by) {
        (Some(to), Some(reason), Some(by)) => Some(PendingExtension {
            to: NaiveDate::parse_from_str(to, "%Y-%m-%d").map_err(|_| {
                StoreError::Db(sea_orm::DbErr::Custom(format!(
                    "stored date `{to}` is not readable"
                )))
            })?,
            reason: reason.clone(),
            requested_by: by.clone(),
        }),
        _ => None,
    };
    Ok(Item {
        id: m.id,
        round: m.round_code.clone(),
        parent_id: m.parent_id,
        number: m.number.clone(),
        title: m.title.clone(),
        lead_unit: m.lead_unit.clone(),
        co_units: parse_list(&m.co_units),
        leader: m.leader.clone(),
        deadline: stored_deadline(m.deadline.as_deref())?,
        state: parse_enum(&m.state, "state")?,
        version: m.version,
        deadline_version: m.deadline_version,
        send_backs: m.send_backs,
        reassignments: m.reassignments,
        cadence: match &m.cadence {
            Some(c) => Some(parse_enum::<Cadence>(c, "cadence")?),
            None => None,
        },
        pending_extension,
        merged_into: m.merged_into,
        progress_percent: m.progress_percent.and_then(|p| u8::try_from(p).ok()),
        last_progress: m.last_progress.clone(),
        created_at: m.created_at,
        assigned_at: m.assigned_at,
        acknowledged_at: m.acknowledged_at,
        last_progress_at: m.last_progress_at,
        submitted_at: m.submitted_at,
        closed_at: m.closed_at,
    })
}

/// An item's deadline column as the engine's deadline.
pub(crate) fn stored_deadline(stored: Option<&str>) -> Result<Option<Deadline>> {
    stored
        .map(|d| {
            Deadline::from_db(d).ok_or_else(|| {
                StoreError::Db(sea_orm::DbErr::Custom(format!(
                    "stored deadline `{d}` is not readable"
                )))
            })
        })
        .transpose()
}

/// Every column of an item row except the id and the chain head, from the engine's item.
pub(crate) fn item_columns(i: &Item, head_seq: i64, head_hash: &str) -> item::ActiveModel {
    item::ActiveModel {
        id: NotSet,
        round_code: Set(i.round.clone()),
        parent_id: Set(i.parent_id),
        number: Set(i.number.clone()),
        title: Set(i.title.clone()),
        lead_unit: Set(i.lead_unit.clone()),
        co_units: Set(json_list(&i.co_units)),
        leader: Set(i.leader.clone()),
        deadline: Set(i.deadline.map(|d| d.to_db())),
        state: Set(i.state.as_str().to_string()),
        version: Set(i.version),
        deadline_version: Set(i.deadline_version),
        send_backs: Set(i.send_backs),
        reassignments: Set(i.reassignments),
        cadence: Set(i.cadence.map(|c| c.as_str().to_string())),
        ext_to: Set(i
            .pending_extension
            .as_ref()
            .map(|p| p.to.format("%Y-%m-%d").to_string())),
        ext_reason: Set(i.pending_extension.as_ref().map(|p| p.reason.clone())),
        ext_requested_by: Set(i.pending_extension.as_ref().map(|p| p.requested_by.clone())),
        merged_into: Set(i.merged_into),
        progress_percent: Set(i.progress_percent.map(i64::from)),
        last_progress: Set(i.last_progress.clone()),
        created_at: Set(i.created_at),
        assigned_at: Set(i.assigned_at),
        acknowledged_at: Set(i.acknowledged_at),
        last_progress_at: Set(i.last_progress_at),
        submitted_at: Set(i.submitted_at),
        closed_at: Set(i.closed_at),
        head_seq: Set(head_seq),
        head_hash: Set(head_hash.to_string()),
        plan_key: NotSet,
    }
}

/// Turns on SQLite's query planner stability guarantee (QPSG) for connection `db`: a statement
/// keeps the plan it was prepared with, whatever values are bound.
///
/// Without it, once `ANALYZE` has been run (the sample statistics of `sqlite_stat4`), SQLite
/// marks every statement whose plan could depend on a bound value as expired each time its
/// bindings are cleared, and sqlx clears them after every execution: each lifecycle command
/// and dispatcher query was parsed and planned again on every run (8.5% of a command's time in
/// `sqlite3Reprepare`, BENCHMARKS.md). Every query here is written for its index (the plans are
/// in BENCHMARKS.md and tested), so a value-dependent plan gains nothing.
fn stable_plans(db: std::ptr::NonNull<libsqlite3_sys::sqlite3>) {
    if let Err(rc) = qpsg(db, 1) {
        tracing::warn!(rc, "SQLite refused the query planner stability setting");
    }
}

/// The query planner stability setting of connection `db`: `set` 1 turns it on, 0 off, -1
/// leaves it as it is. The setting after the call, or SQLite's error code.
fn qpsg(
    db: std::ptr::NonNull<libsqlite3_sys::sqlite3>,
    set: std::ffi::c_int,
) -> std::result::Result<bool, std::ffi::c_int> {
    let mut now: std::ffi::c_int = -1;
    // SAFETY: `db` is an open connection used by no one else during the call (a sqlx
    // connection's handle locked for it, or the store's own writer);
    // SQLITE_DBCONFIG_ENABLE_QPSG takes an int and a pointer to an int that receives the
    // setting after the call, which lives until the call returns.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db.as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            set,
            &mut now as *mut std::ffi::c_int,
        )
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(now == 1)
    } else {
        Err(rc)
    }
}

/// `columns` less the ones whose value is the row's as read: SQLite rewrites the entries of
/// every index on a column named in SET, changed or not, and an item row has six indexes
/// (a progress report then cost as much index work as a reassignment).
fn changed_columns(mut columns: item::ActiveModel, row: &item::Model) -> item::ActiveModel {
    use sea_orm::{ActiveModelTrait, Iterable, ModelTrait};
    for col in item::Column::iter() {
        if let sea_orm::ActiveValue::Set(v) = columns.get(col)
            && row.get(col) == v
        {
            columns.not_set(col);
        }
    }
    columns
}

/// An event row as verification reads it (and an audit export carries it).
fn stored_link(e: event::Model) -> StoredLink {
    StoredLink {
        event_id: e.id,
        seq: e.seq,
        payload: serde_json::from_str(&e.payload)
            .unwrap_or(serde_json::Value::String(e.payload.clone())),
        evidence: parse_list(&e.evidence),
        kind: e.kind,
        actor: e.actor,
        at: e.at,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

/// What `Store::decided_item` makes of a decided command.
struct DecidedItem {
    update: sea_orm::UpdateMany<item::Entity>,
    link: EventLink,
    planned: Vec<rectify_engine::remind::Planned>,
    replan: bool,
    /// The reminders the item already has rows for, when that is known (see `decided_item`);
    /// empty when not.
    known: Vec<rectify_engine::remind::Planned>,
}

/// One event of an item's chain, ready to insert: its row, sequence number and hash.
pub(crate) struct EventLink {
    pub row: event::ActiveModel,
    pub seq: i64,
    pub hash: String,
}

/// The event that follows (`prev_seq`, `prev_hash`) in item `item_id`'s chain for outcome `o`:
/// every path that writes an event (a command, a creation, an import) builds it here.
pub(crate) fn event_link(item_id: i64, prev_seq: i64, prev_hash: &str, o: &Outcome) -> EventLink {
    let seq = prev_seq + 1;
    let payload = stored_payload(o);
    let evidence_hashes: Vec<String> = o.event.evidence.iter().map(|e| e.sha256.clone()).collect();
    let at = now_for_store(o.event.at);
    let hash = ChainLink {
        item_id,
        seq,
        kind: o.event.kind,
        actor: &o.event.actor,
        at,
        payload: &payload,
        evidence: &evidence_hashes,
        prev_hash,
    }
    .hash();
    let row = event::ActiveModel {
        id: NotSet,
        item_id: Set(item_id),
        seq: Set(seq),
        kind: Set(o.event.kind.to_string()),
        actor: Set(o.event.actor.clone()),
        at: Set(at),
        payload: Set(chain::canonical_string(&payload)),
        evidence: Set(json_list(&evidence_hashes)),
        prev_hash: Set(prev_hash.to_string()),
        hash: Set(hash.clone()),
    };
    EventLink { row, seq, hash }
}

/// The payload as stored: the engine's payload plus the evidence files' names and sizes, so the
/// hash covers them too.
fn stored_payload(o: &Outcome) -> serde_json::Value {
    let mut payload = o.event.payload.clone();
    if !o.event.evidence.is_empty()
        && let serde_json::Value::Object(map) = &mut payload
    {
        map.insert(
            "evidence_files".into(),
            serde_json::to_value(&o.event.evidence).unwrap_or_default(),
        );
    }
    payload
}

impl Store {
    /// Opens the database. `sqlite://FILE` creates the file when missing (WAL mode, busy timeout);
    /// `postgres://…` uses an existing database.
    pub async fn connect(settings: &ConnectSettings) -> Result<Store> {
        let mut opts = ConnectOptions::new(settings.url.clone());
        opts.sqlx_logging(false)
            .max_connections(settings.pool_size.max(1))
            .min_connections(0)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(settings.busy_timeout + Duration::from_secs(10));
        // sqlx pings a connection every time it is taken from the pool. On SQLite that is a
        // round trip to the connection's worker thread for a file that cannot go away: a third
        // of the driver calls of a lifecycle command. On PostgreSQL a connection used within
        // the last second is taken as alive (a server restart takes longer; one that was not
        // is pinged and replaced if dead).
        if settings.url.starts_with("sqlite:") {
            opts.test_before_acquire(false);
        } else {
            opts.test_before_acquire_if_idle_for(Duration::from_secs(1));
        }
        let busy = settings.busy_timeout;
        let stmt_timeout_ms = settings.statement_timeout.as_millis().to_string();
        opts.map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
        let tls_chosen = tls_chosen(&settings.url);
        opts.map_sqlx_postgres_opts(move |o| {
            let o = o.options([("statement_timeout", stmt_timeout_ms.as_str())]);
            // On loopback, TLS protects nothing and cost every new connection ~90 ms here: sqlx
            // sets no TCP_NODELAY before the handshake, so two of its writes each waited for
            // the server's delayed ACK. A URL or PGSSLMODE that names a mode is followed.
            if !tls_chosen && is_loopback(o.get_host()) {
                o.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable)
            } else {
                o
            }
        });
        // Every SQLite connection with the query planner stability guarantee (see
        // `stable_plans`).
        opts.map_sqlx_sqlite_pool_opts(|p| {
            p.after_connect(|conn, _meta| Box::pin(prepare_sqlite(conn)))
        });
        // Every new PostgreSQL connection without Nagle's delay (see `tcp_nodelay_everywhere`).
        opts.map_sqlx_postgres_pool_opts(|p| {
            p.after_connect(|_conn, _meta| {
                Box::pin(async {
                    tcp_nodelay_everywhere();
                    Ok(())
                })
            })
        });
        let db = Database::connect(opts).await?;
        Ok(Store {
            db,
            evidence_dir: settings.evidence_dir.clone(),
            planner: Arc::new(Planner::default()),
            writer: Arc::default(),
            busy_timeout: settings.busy_timeout,
            sqlite_query: Arc::new(sqlite_url_query(&settings.url)),
        })
    }

    /// Sets the reminder policy, calendar and time zone used to plan reminders.
    pub fn with_planner(mut self, planner: Planner) -> Self {
        self.planner = Arc::new(planner);
        self
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
    /// taken at once (waiting up to the busy timeout), so a transaction never fails half-way with
    /// "database is locked" because another writer committed after it read.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction> {
        Ok(self
            .db
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub fn evidence_dir(&self) -> &Path {
        &self.evidence_dir
    }

    /// Creates or upgrades the tables.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Fails with a clear message when the database has not been initialised by this version.
    pub async fn ensure_ready(&self) -> Result<()> {
        match Migrator::get_pending_migrations(&self.db).await {
            Ok(p) if p.is_empty() => Ok(()),
            Ok(_) => Err(StoreError::NotInitialised),
            // A brand-new file has no migrations table yet.
            Err(_) => Err(StoreError::NotInitialised),
        }
    }

    pub async fn close(self) -> Result<()> {
        // Closing the writer rolls back nothing: no transaction of it outlives a command.
        drop(self.writer.lock().await.take());
        self.db.close().await?;
        Ok(())
    }

    // ---- units, operators, rounds -------------------------------------------------------

    pub async fn add_unit(&self, u: &Unit, now: DateTime<Utc>) -> Result<Unit> {
        let code = text::name("unit code", &u.code)?;
        let name = text::name("unit name", &u.name)?;
        if self.find_unit_model(&code).await?.is_some() {
            return Err(StoreError::Duplicate {
                what: "unit",
                key: code,
            });
        }
        if let Some(p) = &u.parent
            && self.find_unit_model(p).await?.is_none()
        {
            return Err(StoreError::NotFound {
                what: "unit",
                key: p.clone(),
            });
        }
        for e in u.emails.iter().chain(u.leader_email.iter()) {
            check_email(e)?;
        }
        let leader = match &u.leader {
            Some(l) => Some(text::name("leader", l)?),
            None => None,
        };
        let m = unit::ActiveModel {
            id: NotSet,
            code: Set(code),
            name: Set(name),
            parent_code: Set(u.parent.clone()),
            emails: Set(json_list(&u.emails)),
            leader: Set(leader),
            leader_email: Set(u.leader_email.clone()),
            aliases: Set(json_list(&u.aliases)),
            created_at: Set(now_for_store(now)),
        }
        .insert(&self.db)
        .await?;
        Ok(unit_from(&m))
    }

    async fn find_unit_model(&self, code: &str) -> Result<Option<unit::Model>> {
        Ok(unit::Entity::find()
            .filter(unit::Column::Code.eq(code))
            .one(&self.db)
            .await?)
    }

    pub async fn find_unit(&self, code: &str) -> Result<Unit> {
        self.find_unit_model(code)
            .await?
            .map(|m| unit_from(&m))
            .ok_or_else(|| StoreError::NotFound {
                what: "unit",
                key: code.to_string(),
            })
    }

    pub async fn list_units(&self) -> Result<Vec<Unit>> {
        Ok(unit::Entity::find()
            .order_by_asc(unit::Column::Code)
            .all(&self.db)
            .await?
            .iter()
            .map(unit_from)
            .collect())
    }

    pub async fn add_operator(&self, o: &Operator, now: DateTime<Utc>) -> Result<Operator> {
        let name = text::name("operator name", &o.name)?;
        if self.find_operator_model(&name).await?.is_some() {
            return Err(StoreError::Duplicate {
                what: "operator",
                key: name,
            });
        }
        match (o.role, &o.unit) {
            (Role::Unit, None) => {
                return Err(StoreError::invalid(
                    "责任单位操作员必须指定所属单位:请加上 --unit 单位编号",
                    "a unit operator needs its unit: add --unit CODE",
                ));
            }
            (_, Some(u)) => {
                self.find_unit(u).await?;
            }
            _ => {}
        }
        if let Some(e) = &o.email {
            check_email(e)?;
        }
        operator::ActiveModel {
            id: NotSet,
            name: Set(name.clone()),
            role: Set(o.role.as_str().to_string()),
            unit_code: Set(o.unit.clone()),
            email: Set(o.email.clone()),
            created_at: Set(now_for_store(now)),
        }
        .insert(&self.db)
        .await?;
        Ok(Operator { name, ..o.clone() })
    }

    async fn find_operator_model(&self, name: &str) -> Result<Option<operator::Model>> {
        Ok(operator::Entity::find()
            .filter(operator::Column::Name.eq(name))
            .one(&self.db)
            .await?)
    }

    pub async fn find_operator(&self, name: &str) -> Result<Operator> {
        let m = self
            .find_operator_model(name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "operator",
                key: name.to_string(),
            })?;
        operator_from(&m)
    }

    pub async fn list_operators(&self) -> Result<Vec<Operator>> {
        operator::Entity::find()
            .order_by_asc(operator::Column::Id)
            .all(&self.db)
            .await?
            .iter()
            .map(operator_from)
            .collect()
    }

    pub async fn add_round(&self, r: &Round, now: DateTime<Utc>) -> Result<Round> {
        let code = text::name("round code", &r.code)?;
        let title = text::title("title", &r.title)?;
        if self.find_round_model(&code).await?.is_some() {
            return Err(StoreError::Duplicate {
                what: "round",
                key: code,
            });
        }
        round::ActiveModel {
            id: NotSet,
            code: Set(code.clone()),
            title: Set(title.clone()),
            source: Set(r.source.as_str().to_string()),
            created_at: Set(now_for_store(now)),
        }
        .insert(&self.db)
        .await?;
        Ok(Round {
            code,
            title,
            source: r.source,
        })
    }

    async fn find_round_model(&self, code: &str) -> Result<Option<round::Model>> {
        Ok(round::Entity::find()
            .filter(round::Column::Code.eq(code))
            .one(&self.db)
            .await?)
    }

    pub async fn find_round(&self, code: &str) -> Result<Round> {
        let m = self
            .find_round_model(code)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "round",
                key: code.to_string(),
            })?;
        Ok(Round {
            code: m.code,
            title: m.title,
            source: parse_enum(&m.source, "source")?,
        })
    }

    pub async fn list_rounds(&self) -> Result<Vec<Round>> {
        let mut out = Vec::new();
        for m in round::Entity::find()
            .order_by_asc(round::Column::Id)
            .all(&self.db)
            .await?
        {
            out.push(Round {
                code: m.code,
                title: m.title,
                source: parse_enum(&m.source, "source")?,
            });
        }
        Ok(out)
    }

    // ---- items ----------------------------------------------------------------------------

    /// Checks that every unit a command or a new item names exists, before anything is written.
    async fn check_units(&self, units: &[&String]) -> Result<()> {
        check_units_on(&self.db, units).await
    }

    /// Creates an item; when it names a lead unit and a deadline it is assigned in the same
    /// transaction (two events: created, assigned).
    pub async fn create_item(
        &self,
        new: &NewItem,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Item> {
        let now = now_for_store(now);
        self.find_round(&new.round).await?;
        if let Some(p) = new.parent_id {
            let parent = self.get_item(p).await.map_err(|e| match e {
                StoreError::NotFound { key, .. } => StoreError::NotFound {
                    what: "parent item",
                    key,
                },
                other => other,
            })?;
            if parent.round != new.round {
                return Err(StoreError::invalid(
                    format!(
                        "上级事项 {p} 属于轮次 {},与 {} 不一致",
                        parent.round, new.round
                    ),
                    format!(
                        "parent item {p} belongs to round {}, not {}",
                        parent.round, new.round
                    ),
                ));
            }
        }
        let units: Vec<&String> = new.lead_unit.iter().chain(&new.co_units).collect();
        self.check_units(&units).await?;
        if new.deadline.is_some() && new.lead_unit.is_none() {
            return Err(StoreError::invalid(
                "给出完成时限时也须给出牵头单位(--lead)",
                "a deadline needs a lead unit: add --lead UNIT",
            ));
        }
        let ctx = Ctx {
            now,
            today,
            open_children: 0,
        };
        // Validate everything, including the assignment, before opening the transaction.
        let created = rectify_engine::create(new, 0, actor, &ctx)?;
        let assign = match (&new.lead_unit, new.deadline) {
            (Some(lead), Some(deadline)) => {
                let cmd = Command::Assign {
                    lead_unit: lead.clone(),
                    co_units: new.co_units.clone(),
                    leader: new.leader.clone(),
                    deadline,
                };
                rectify_engine::transition(&created.item, &cmd, actor, &ctx)?;
                Some(cmd)
            }
            _ => None,
        };
        let txn = self.begin_write().await?;
        let item = self
            .insert_created(&txn, created, assign.as_ref(), actor, &ctx)
            .await?;
        txn.commit().await?;
        Ok(item)
    }

    /// Inserts a created item and its first event(s) inside `txn`. Used by `create_item` and by
    /// bulk imports that create many items in one transaction.
    pub async fn insert_created(
        &self,
        txn: &DatabaseTransaction,
        created: Outcome,
        assign: Option<&Command>,
        actor: &Actor,
        ctx: &Ctx,
    ) -> Result<Item> {
        let row = item_columns(&created.item, 0, chain::GENESIS)
            .insert(txn)
            .await?;
        let mut item = created.item;
        item.id = row.id;
        // The creation event names the real id, so hash it now.
        let created = Outcome {
            item: item.clone(),
            event: created.event,
        };
        let (mut seq, mut head) = self
            .append_event(txn, item.id, 0, chain::GENESIS, &created)
            .await?;
        if let Some(cmd) = assign {
            let o = rectify_engine::transition(&item, cmd, actor, ctx)?;
            let (s, h) = self.append_event(txn, item.id, seq, &head, &o).await?;
            seq = s;
            head = h;
            item = o.item;
        }
        let mut am = item_columns(&item, seq, &head);
        am.id = sea_orm::ActiveValue::Unchanged(item.id);
        am.update(txn).await?;
        self.replan(txn, &item, ctx.today, ctx.now).await?;
        Ok(item)
    }

    /// Appends one event to an item's chain; returns the new head.
    pub(crate) async fn append_event(
        &self,
        txn: &DatabaseTransaction,
        item_id: i64,
        prev_seq: i64,
        prev_hash: &str,
        o: &Outcome,
    ) -> Result<(i64, String)> {
        let link = event_link(item_id, prev_seq, prev_hash, o);
        let ev = link.row.insert(txn).await?;
        for e in &o.event.evidence {
            evidence::ActiveModel {
                id: NotSet,
                item_id: Set(item_id),
                event_id: Set(ev.id),
                sha256: Set(e.sha256.clone()),
                size: Set(i64::try_from(e.size).unwrap_or(i64::MAX)),
                original_name: Set(e.name.clone()),
                created_at: Set(ev.at),
            }
            .insert(txn)
            .await?;
        }
        Ok((link.seq, link.hash))
    }

    pub async fn get_item(&self, id: ItemId) -> Result<Item> {
        let m = self.get_item_model(id).await?;
        to_item(&m)
    }

    async fn get_item_model(&self, id: ItemId) -> Result<item::Model> {
        item_model_on(&self.db, id).await
    }

    pub async fn open_children(&self, id: ItemId) -> Result<u64> {
        open_children_on(&self.db, id).await
    }

    /// Copies evidence files into the content-addressed evidence folder. Done before the
    /// transaction: a file stored for a command that then fails is harmless (same content, same
    /// name) and is never referred to.
    pub fn store_evidence(&self, files: &[PathBuf]) -> Result<Vec<EvidenceRef>> {
        files
            .iter()
            .map(|f| evidence_files::store(&self.evidence_dir, f))
            .collect()
    }

    /// Applies one command to one item in one transaction. A concurrent change to the same item
    /// makes this fail with [`StoreError::Conflict`] and write nothing.
    pub async fn apply(
        &self,
        id: ItemId,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Item> {
        let now = now_for_store(now);
        let mut conn = self.command_conn().await?;
        let r = match &mut conn {
            CommandConn::Writer(held) => {
                self.apply_on_writer(held, id, command, actor, now, today)
                    .await
            }
            CommandConn::Pool => {
                async {
                    let model = self.get_item_model(id).await?;
                    let (current, outcome, statements) = self
                        .decide_and_build(&model, command, actor, now, today)
                        .await?;
                    let written = statements.is_some();
                    if let Some(st) = statements {
                        self.write_as_one_statement(id, st).await?;
                    }
                    Ok::<_, StoreError>((model, current, outcome, written))
                }
                .await
            }
        };
        conn.finish(&r);
        let (model, current, outcome, written) = r?;
        if written {
            return Ok(outcome.item);
        }
        self.write_in_transaction(&model, &current, &outcome, command, actor, now, today)
            .await
    }

    /// SQLite: `apply` on the store's writer connection, a connection of our own that runs on
    /// this thread through SQLite's C API (`sqlite_direct`), with no hand-off to a driver's
    /// worker thread: the read, then the write as `BEGIN IMMEDIATE`, the statements, the
    /// version guard after the item UPDATE (`VERSION_GUARD`) and `COMMIT`. A failed statement
    /// is rolled back at once; a connection that cannot roll back is closed (SQLite rolls back
    /// on close) and the next command opens a new one. No await falls inside the transaction,
    /// so a caller giving up cannot leave it open. Another connection's lock is waited for on
    /// the runtime, up to the busy timeout (`BusyWait`).
    async fn apply_on_writer(
        &self,
        held: &mut HeldWriter<'_>,
        id: ItemId,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<(item::Model, Item, Outcome, bool)> {
        let mut wait = BusyWait::new(self.busy_timeout);
        let model = loop {
            let r = item_direct(&held.conn().conn(), id);
            if r.is_err() && wait.again(busy_now(held)).await {
                continue;
            }
            break r?;
        };
        let (current, outcome, statements) = self
            .decide_and_build(&model, command, actor, now, today)
            .await?;
        let Some(statements) = statements else {
            return Ok((model, current, outcome, false));
        };
        let r = write_on_writer(held, &mut wait, id, &statements).await;
        r.map(|()| (model, current, outcome, true))
    }

    /// Lets the engine decide on `model` (`decide`) and, for a command without evidence files,
    /// builds the statements that write it in one call (`decided_statements`); none for a
    /// command with evidence files (`write_in_transaction`).
    async fn decide_and_build(
        &self,
        model: &item::Model,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<(Item, Outcome, Option<Vec<Statement>>)> {
        let (current, outcome) = self
            .decide(&self.db, model, command, actor, now, today)
            .await?;
        failpoint_delay();
        let statements = outcome.event.evidence.is_empty().then(|| {
            self.decided_statements(model, &current, &outcome, command, actor, now, today)
        });
        Ok((current, outcome, statements))
    }

    /// Where a lifecycle command reads its item and writes its one call (`CommandConn`).
    async fn command_conn(&self) -> Result<CommandConn<'_>> {
        Ok(match self.backend() {
            DbBackend::Sqlite => CommandConn::Writer(self.hold_writer().await?),
            _ => CommandConn::Pool,
        })
    }

    /// SQLite: `st` on the writer connection (`run_on_writer`), with no hand-off to the
    /// driver's worker thread; the rows it changed. For a one-statement write on a hot path
    /// (a message recorded as sent, once per message of a delivery).
    pub(crate) async fn execute_on_writer(&self, st: &Statement) -> Result<u64> {
        let mut held = self.hold_writer().await?;
        let mut wait = BusyWait::new(self.busy_timeout);
        let r = run_on_writer(&mut held, &mut wait, st).await;
        held.finish();
        r
    }

    /// The writer connection, opened (or reopened, after one was closed midway) when needed.
    pub(crate) async fn hold_writer(&self) -> Result<HeldWriter<'_>> {
        let mut slot = self.writer.lock().await;
        let conn = match slot.take() {
            Some(c) => c,
            None => {
                let pool = self.db.get_sqlite_connection_pool();
                if pool.is_closed() {
                    // Closed by `close` (of this store or a clone): not opened again.
                    return Err(sqlx_err(sea_orm::sqlx::Error::PoolClosed));
                }
                // The pool's database, opened as sqlx opens it (`open_as`), with the pool's
                // settings (`Store::connect`) and the set-up of `prepare_sqlite`.
                let c = direct::Owned::open(
                    pool.connect_options().get_filename(),
                    &self.sqlite_query,
                    &[WRITER_PRAGMAS, VERSION_GUARD],
                )
                .map_err(direct_err)?;
                stable_plans(c.handle());
                c
            }
        };
        Ok(HeldWriter {
            slot,
            conn: Some(conn),
        })
    }

    /// A command with evidence files, in a write transaction of the pool (the evidence rows
    /// need the event's id).
    #[allow(clippy::too_many_arguments)]
    async fn write_in_transaction(
        &self,
        model: &item::Model,
        current: &Item,
        outcome: &Outcome,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Item> {
        let txn = self.begin_write().await?;
        match self
            .write_decided(&txn, model, current, outcome, command, actor, now, today)
            .await
        {
            Ok(()) => {
                txn.commit().await?;
                Ok(outcome.item.clone())
            }
            Err(e) => {
                txn.rollback().await?;
                Err(e)
            }
        }
    }

    /// Looks up the facts the engine needs (units named, merge target, open children) on `conn`
    /// and lets the engine decide. Writes nothing.
    pub(crate) async fn decide<C: ConnectionTrait>(
        &self,
        conn: &C,
        model: &item::Model,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<(Item, Outcome)> {
        let id = model.id;
        let current = to_item(model)?;
        match command {
            Command::Assign {
                lead_unit,
                co_units,
                ..
            } => {
                let units: Vec<&String> = std::iter::once(lead_unit).chain(co_units).collect();
                check_units_on(conn, &units).await?
            }
            Command::Reassign { lead_unit, .. } => check_units_on(conn, &[lead_unit]).await?,
            Command::Cancel {
                merged_into: Some(target),
                ..
            } if *target != id => {
                item_model_on(conn, *target).await.map_err(|e| match e {
                    StoreError::NotFound { key, .. } => StoreError::NotFound {
                        what: "merge target",
                        key,
                    },
                    other => other,
                })?;
            }
            _ => {}
        }
        let open_children = match command {
            Command::Close { .. } | Command::Finish { .. } => open_children_on(conn, id).await?,
            _ => 0,
        };
        let ctx = Ctx {
            now,
            today,
            open_children,
        };
        let outcome = rectify_engine::transition(&current, command, actor, &ctx)?;
        Ok((current, outcome))
    }

    /// Persists what the engine decided inside `txn` for a command with evidence files (their
    /// rows need the event's id): the item row (with the version check that turns a concurrent
    /// change into [`StoreError::Conflict`]), the event and its evidence rows, the extension
    /// rows, the reminder plan. Commands without evidence files go in one call instead
    /// (`decided_statements`, `CommandConn::write`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_decided(
        &self,
        txn: &DatabaseTransaction,
        model: &item::Model,
        current: &Item,
        outcome: &Outcome,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<()> {
        let id = model.id;
        let d = self.decided_item(model, current, outcome, today);
        // The version check comes first: it takes the write lock (SQLite) or the row lock
        // (PostgreSQL) before anything else is read or written.
        if d.update.exec(txn).await?.rows_affected != 1 {
            return Err(StoreError::Conflict { item: id });
        }
        let (_, written_hash) = self
            .append_event(txn, id, model.head_seq, &model.head_hash, outcome)
            .await?;
        debug_assert_eq!(written_hash, d.link.hash);
        self.record_extension(txn, current, outcome, command, actor, now)
            .await?;
        // Reminders are re-planned in the same transaction as the command (imports too).
        if d.replan {
            self.write_plan(txn, &outcome.item, &d.planned, &d.known, now)
                .await?;
        }
        Ok(())
    }

    /// The item row a decided command writes (version-checked UPDATE of the columns that
    /// changed, the new chain head and plan digest), its event, and its reminder plan with
    /// whether it changed. The plan is decided now and its digest written with the row, so a
    /// command that leaves the plan as it was touches no reminder row.
    fn decided_item(
        &self,
        model: &item::Model,
        current: &Item,
        outcome: &Outcome,
        today: NaiveDate,
    ) -> DecidedItem {
        let link = event_link(model.id, model.head_seq, &model.head_hash, outcome);
        let (planned, plan_key) = self.plan_for(&outcome.item, today);
        let replan = model.plan_key.as_deref() != Some(plan_key.as_str());
        // When the stored digest is that of the plan the item had before the command, planned
        // today, its rows are those of that plan: only the reminders new to the plan need
        // writing. Otherwise (planned on another day, or under another policy), all of them.
        let known = if replan {
            let (before, before_key) = self.plan_for(current, today);
            if model.plan_key.as_deref() == Some(before_key.as_str()) {
                before
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        let mut columns = item_columns(&outcome.item, link.seq, &link.hash);
        columns.plan_key = Set(Some(plan_key));
        let mut update = item::Entity::update_many()
            .set(changed_columns(columns, model))
            .filter(item::Column::Id.eq(model.id))
            .filter(item::Column::Version.eq(current.version));
        if !known.is_empty()
            && let Some(read) = &model.plan_key
        {
            // The plan may change without a new version (the dispatcher re-plans an item for
            // its next overdue repeat): writing only what `known` lacks is right only if the
            // plan is still the one read, so a plan changed meanwhile makes this a conflict.
            update = update.filter(item::Column::PlanKey.eq(read.as_str()));
        }
        DecidedItem {
            update,
            link,
            planned,
            replan,
            known,
        }
    }

    /// What `write_decided` writes for a command without evidence files, as statements: the
    /// version-checked item UPDATE (first), the version guard (SQLite), the event, the reminder
    /// plan when it changed (with its NOTIFY on PostgreSQL), the extension rows.
    #[allow(clippy::too_many_arguments)]
    fn decided_statements(
        &self,
        model: &item::Model,
        current: &Item,
        outcome: &Outcome,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Vec<Statement> {
        use sea_orm::QueryTrait;
        let backend = self.backend();
        let d = self.decided_item(model, current, outcome, today);
        let mut out = vec![
            d.update.build(backend),
            event::Entity::insert(d.link.row).build(backend),
        ];
        if backend == DbBackend::Sqlite {
            out.insert(
                1,
                Statement::from_string(
                    backend,
                    "INSERT INTO rectify_guard (ok) VALUES (changes())",
                ),
            );
        }
        if d.replan {
            out.extend(self.plan_statements(&outcome.item, &d.planned, &d.known, now));
        }
        out.extend(self.extension_statements(current, outcome, command, actor, now));
        out
    }

    /// Writes a command's `decided_statements` in one call, as `apply` does.
    #[cfg(test)]
    async fn write_in_one_call(&self, id: ItemId, statements: Vec<Statement>) -> Result<()> {
        let mut conn = self.command_conn().await?;
        let r = conn.write(self, id, statements).await;
        conn.finish(&r);
        r
    }

    /// PostgreSQL: runs a command's writes as one statement in one round trip, instead of
    /// BEGIN, a statement each and COMMIT (eight round trips for a command that re-plans). The
    /// item UPDATE (the first statement, version-checked) becomes a data-modifying `WITH`
    /// whose row every other statement requires (`one_statement`): when the item changed since
    /// it was read, nothing is written and the item is reported in conflict. One statement is
    /// one transaction; the NOTIFY of a changed plan goes with it (`pg_notify`).
    async fn write_as_one_statement(&self, id: ItemId, statements: Vec<Statement>) -> Result<()> {
        let st = one_statement(statements);
        let row = self
            .db
            .query_one_raw(st)
            .await?
            .ok_or(StoreError::Conflict { item: id })?;
        let updated: i64 = row.try_get("", "updated")?;
        if updated != 1 {
            return Err(StoreError::Conflict { item: id });
        }
        Ok(())
    }

    /// Keeps the extensions table (the office's list of requests and decisions) in step.
    async fn record_extension(
        &self,
        txn: &DatabaseTransaction,
        before: &Item,
        outcome: &Outcome,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let statements = self.extension_statements(before, outcome, command, actor, now);
        crate::reminders::run_statements(txn, statements).await
    }

    /// The statements that keep the extensions table in step with a command: a request adds a
    /// row; any command that clears a pending request decides it (approve, refuse, or a state
    /// change that makes it moot: reassign, cancel, close).
    fn extension_statements(
        &self,
        before: &Item,
        outcome: &Outcome,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Vec<Statement> {
        use sea_orm::QueryTrait;
        let backend = self.backend();
        match command {
            Command::RequestExtension { .. } => outcome
                .item
                .pending_extension
                .as_ref()
                .map(|p| {
                    extension::Entity::insert(extension::ActiveModel {
                        id: NotSet,
                        item_id: Set(before.id),
                        from_deadline: Set(before.deadline.map(|d| d.to_db()).unwrap_or_default()),
                        requested_to: Set(p.to.format("%Y-%m-%d").to_string()),
                        reason: Set(p.reason.clone()),
                        requested_by: Set(p.requested_by.clone()),
                        requested_at: Set(now),
                        state: Set("pending".into()),
                        decided_by: Set(None),
                        decided_at: Set(None),
                        note: Set(None),
                    })
                    .build(backend)
                })
                .into_iter()
                .collect(),
            _ if before.pending_extension.is_some() && outcome.item.pending_extension.is_none() => {
                let (state, note) = match command {
                    Command::ApproveExtension { note } => ("approved", note.clone()),
                    Command::RefuseExtension { note } => ("refused", note.clone()),
                    _ => ("withdrawn", Some(outcome.event.kind.to_string())),
                };
                vec![
                    extension::Entity::update_many()
                        .col_expr(extension::Column::State, Expr::value(state))
                        .col_expr(
                            extension::Column::DecidedBy,
                            Expr::value(actor.name.clone()),
                        )
                        .col_expr(extension::Column::DecidedAt, Expr::value(now))
                        .col_expr(extension::Column::Note, Expr::value(note))
                        .filter(extension::Column::ItemId.eq(before.id))
                        .filter(extension::Column::State.eq("pending"))
                        .build(backend),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// The item an extension request belongs to, if the request is still waiting.
    pub async fn pending_extension_item(&self, ext_id: i64) -> Result<ItemId> {
        let ext = extension::Entity::find_by_id(ext_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "extension",
                key: ext_id.to_string(),
            })?;
        if ext.state != "pending" {
            return Err(StoreError::invalid(
                format!("延期申请 {ext_id} 已处理(状态:{}),不能再次审批", ext.state),
                format!(
                    "extension request {ext_id} was already decided ({}); it cannot be decided again",
                    ext.state
                ),
            ));
        }
        Ok(ext.item_id)
    }

    /// Extension requests of an item, newest first: (id, from, to, reason, state).
    pub async fn extensions(&self, item_id: ItemId) -> Result<Vec<extension::Model>> {
        Ok(extension::Entity::find()
            .filter(extension::Column::ItemId.eq(item_id))
            .order_by_desc(extension::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn list_items(&self, f: &ItemFilter) -> Result<Vec<Item>> {
        let mut q = item::Entity::find();
        if let Some(r) = &f.round {
            q = q.filter(item::Column::RoundCode.eq(r.as_str()));
        }
        if let Some(u) = &f.unit {
            q = q.filter(item::Column::LeadUnit.eq(u.as_str()));
        }
        if let Some(s) = f.state {
            q = q.filter(item::Column::State.eq(s.as_str()));
        }
        if let Some(today) = f.overdue_on {
            // Dates are stored as YYYY-MM-DD, which sorts as text; `long_term` never matches
            // because only assigned and in-progress items with a date deadline are compared.
            q = q
                .filter(
                    item::Column::State
                        .is_in([ItemState::Assigned.as_str(), ItemState::InProgress.as_str()]),
                )
                .filter(item::Column::Deadline.ne("long_term"))
                .filter(item::Column::Deadline.lt(today.format("%Y-%m-%d").to_string()));
        }
        // In pages by id (the `(round_code, id)` index gives them in order): a whole round read
        // at once holds every row in the driver's form (each value a separate allocation) next
        // to the items made from it: 1.2 GB for 133,000 items, against about 60 MB for the items.
        // Sized once: a growing vector of 100,000 items would at its last doubling hold the old
        // and the new buffer, twice as large, at once.
        let mut out = Vec::with_capacity(q.clone().count(&self.db).await? as usize);
        let mut after = 0;
        loop {
            let page = q
                .clone()
                .filter(item::Column::Id.gt(after))
                .order_by_asc(item::Column::Id)
                .limit(LIST_PAGE)
                .all(&self.db)
                .await?;
            let full = page.len() as u64 == LIST_PAGE;
            for m in &page {
                out.push(to_item(m)?);
            }
            match page.last() {
                Some(m) if full => after = m.id,
                _ => return Ok(out),
            }
        }
    }

    pub async fn history(&self, id: ItemId) -> Result<Vec<HistoryEntry>> {
        self.get_item_model(id).await?;
        let events = event::Entity::find()
            .filter(event::Column::ItemId.eq(id))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await?;
        Ok(events
            .into_iter()
            .map(|e| {
                let payload: serde_json::Value =
                    serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
                HistoryEntry {
                    event_id: e.id,
                    seq: e.seq,
                    // Shown from the hashed payload, not the evidence index, so what the
                    // history shows is what the chain protects.
                    evidence: recorded_evidence(&payload),
                    payload,
                    kind: e.kind,
                    actor: e.actor,
                    at: e.at,
                    hash: e.hash,
                }
            })
            .collect())
    }

    /// Re-checks every item's event chain and the evidence index against what the events
    /// recorded; with `check_files`, also re-hashes every stored evidence file. Returns every
    /// break found; empty means intact.
    pub async fn audit_verify(&self, check_files: bool) -> Result<(u64, u64, Vec<AuditFinding>)> {
        let items = item::Entity::find()
            .order_by_asc(item::Column::Id)
            .all(&self.db)
            .await?;
        let mut findings = Vec::new();
        let mut events_checked = 0u64;
        let mut known = std::collections::HashSet::new();
        for it in &items {
            known.insert(it.id);
            let rows = event::Entity::find()
                .filter(event::Column::ItemId.eq(it.id))
                .order_by_asc(event::Column::Seq)
                .order_by_asc(event::Column::Id)
                .all(&self.db)
                .await?;
            events_checked += rows.len() as u64;
            let index = evidence::Entity::find()
                .filter(evidence::Column::ItemId.eq(it.id))
                .order_by_asc(evidence::Column::Id)
                .all(&self.db)
                .await?;
            for e in &rows {
                let payload: serde_json::Value =
                    serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
                let recorded = recorded_evidence(&payload);
                let indexed: Vec<EvidenceRef> = index
                    .iter()
                    .filter(|f| f.event_id == e.id)
                    .map(|f| EvidenceRef {
                        sha256: f.sha256.clone(),
                        size: u64::try_from(f.size).unwrap_or(0),
                        name: f.original_name.clone(),
                    })
                    .collect();
                if recorded != indexed {
                    findings.push(AuditFinding {
                        item_id: it.id,
                        fault: ChainFault::EvidenceRecordMismatch {
                            event_id: e.id,
                            seq: e.seq,
                        },
                    });
                }
                if check_files {
                    for f in &recorded {
                        let fault = match evidence_files::rehash(&self.evidence_dir, &f.sha256) {
                            None => Some(ChainFault::EvidenceFileMissing {
                                event_id: e.id,
                                sha256: f.sha256.clone(),
                            }),
                            Some(h) if h != f.sha256 => Some(ChainFault::EvidenceFileChanged {
                                event_id: e.id,
                                sha256: f.sha256.clone(),
                            }),
                            Some(_) => None,
                        };
                        if let Some(fault) = fault {
                            findings.push(AuditFinding {
                                item_id: it.id,
                                fault,
                            });
                        }
                    }
                }
            }
            let links: Vec<StoredLink> = rows.into_iter().map(stored_link).collect();
            for fault in chain::verify_chain(it.id, &links, it.head_seq, &it.head_hash) {
                findings.push(AuditFinding {
                    item_id: it.id,
                    fault,
                });
            }
        }
        // Events whose item is gone: the item row was deleted behind the tool's back.
        let orphans = event::Entity::find()
            .filter(event::Column::ItemId.is_not_in(known.iter().copied().collect::<Vec<_>>()))
            .all(&self.db)
            .await;
        // `NOT IN` with a huge list can hit parameter limits; fall back to a scan.
        let orphans = match orphans {
            Ok(o) => o,
            Err(_) => event::Entity::find()
                .all(&self.db)
                .await?
                .into_iter()
                .filter(|e| !known.contains(&e.item_id))
                .collect(),
        };
        for e in orphans {
            findings.push(AuditFinding {
                item_id: e.item_id,
                fault: ChainFault::HeadMismatch {
                    head_seq: 0,
                    last_seq: e.seq,
                },
            });
        }
        Ok((items.len() as u64, events_checked, findings))
    }

    /// The record of one item or of a whole round, with every chain hash, sealed.
    pub async fn audit_export(
        &self,
        item_id: Option<ItemId>,
        round: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<chain::AuditExport> {
        let mut q = item::Entity::find();
        let scope = match (item_id, round) {
            (Some(id), _) => {
                self.get_item_model(id).await?;
                q = q.filter(item::Column::Id.eq(id));
                format!("item {id}")
            }
            (None, Some(r)) => {
                self.find_round(r).await?;
                q = q.filter(item::Column::RoundCode.eq(r));
                format!("round {r}")
            }
            (None, None) => "all".to_string(),
        };
        let mut items = Vec::new();
        for it in q.order_by_asc(item::Column::Id).all(&self.db).await? {
            let events = event::Entity::find()
                .filter(event::Column::ItemId.eq(it.id))
                .order_by_asc(event::Column::Seq)
                .all(&self.db)
                .await?
                .into_iter()
                .map(stored_link)
                .collect();
            items.push(chain::ExportedItem {
                id: it.id,
                round: it.round_code,
                number: it.number,
                title: it.title,
                state: it.state,
                head_seq: it.head_seq,
                head_hash: it.head_hash,
                events,
            });
        }
        let mut export = chain::AuditExport {
            format: chain::EXPORT_FORMAT.to_string(),
            exported_at: now_for_store(now),
            exported_by: by.to_string(),
            scope,
            items,
            seal: String::new(),
            signature: None,
        };
        export.seal = export.compute_seal();
        Ok(export)
    }

    /// Runs a raw statement; for tests that tamper with the database behind the tool's back.
    pub async fn execute_unprepared(&self, sql: &str) -> Result<u64> {
        Ok(self.db.execute_unprepared(sql).await?.rows_affected())
    }
}

/// The evidence an event recorded, from its hashed payload.
fn recorded_evidence(payload: &serde_json::Value) -> Vec<EvidenceRef> {
    payload
        .get("evidence_files")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Checks that every unit named exists, reading on `conn` (a transaction sees its own writes).
///
/// The units come as a slice, not as any iterator: a future holding a borrowing iterator
/// across its awaits is not `Send` for every lifetime (rustc's higher-ranked check), and the
/// futures of `Store` must be spawnable on a multi-threaded runtime.
pub(crate) async fn check_units_on<C: ConnectionTrait>(conn: &C, units: &[&String]) -> Result<()> {
    for u in units {
        let found = unit::Entity::find()
            .filter(unit::Column::Code.eq(u.as_str()))
            .one(conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound {
                what: "unit",
                key: (*u).clone(),
            });
        }
    }
    Ok(())
}

pub(crate) async fn item_model_on<C: ConnectionTrait>(conn: &C, id: ItemId) -> Result<item::Model> {
    item::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "item",
            key: id.to_string(),
        })
}

pub(crate) async fn open_children_on<C: ConnectionTrait>(conn: &C, id: ItemId) -> Result<u64> {
    Ok(item::Entity::find()
        .filter(item::Column::ParentId.eq(id))
        .filter(
            item::Column::State
                .is_not_in([ItemState::Closed.as_str(), ItemState::Cancelled.as_str()]),
        )
        .count(conn)
        .await?)
}

pub(crate) fn unit_from(m: &unit::Model) -> Unit {
    Unit {
        code: m.code.clone(),
        name: m.name.clone(),
        parent: m.parent_code.clone(),
        emails: parse_list(&m.emails),
        leader: m.leader.clone(),
        leader_email: m.leader_email.clone(),
        aliases: parse_list(&m.aliases),
    }
}

fn operator_from(m: &operator::Model) -> Result<Operator> {
    Ok(Operator {
        name: m.name.clone(),
        role: parse_enum(&m.role, "role")?,
        unit: m.unit_code.clone(),
        email: m.email.clone(),
    })
}

/// A plain check of an email address: one `@`, a local part, a dotted domain, no spaces or
/// control characters (an address ends up in mail headers).
pub fn check_email(addr: &str) -> Result<()> {
    let ok = {
        let a = addr.trim();
        let mut parts = a.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(local), Some(domain), None) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !a
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
            }
            _ => false,
        }
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            format!("“{addr}” 不是有效的电子邮件地址;请写成 name@example.gov.cn 的形式"),
            format!("`{addr}` is not a valid email address; write it as name@example.gov.cn"),
        ))
    }
}

/// A test hook: `RECTIFY_FAILPOINT_DELAY_WRITE_MS` makes a command pause between deciding and
/// writing, so tests can make two processes collide on one item deterministically.
fn failpoint_delay() {
    if let Ok(ms) = std::env::var("RECTIFY_FAILPOINT_DELAY_WRITE_MS")
        && let Ok(ms) = ms.parse::<u64>()
    {
        std::thread::sleep(Duration::from_millis(ms.min(60_000)));
    }
}

/// PostgreSQL statements (sea-query's, numbered from `$1` each) as one: the first, an UPDATE,
/// becomes `WITH u AS (… RETURNING 1)`, and each other statement a data-modifying `WITH` that
/// writes only when `u` has its row (UPDATE: `… WHERE (…) AND EXISTS (SELECT 1 FROM u)`; INSERT … VALUES:
/// `INSERT … SELECT * FROM (VALUES …) AS v WHERE EXISTS (…)`). A `NOTIFY` becomes
/// `pg_notify`, also only when `u` has its row. Selects `updated`: 1, or 0 on a conflict.
fn one_statement(statements: Vec<Statement>) -> Statement {
    let mut sql = String::from("WITH ");
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut notify = None;
    let mut n = 0;
    for (k, st) in statements.into_iter().enumerate() {
        let offset = values.len();
        if let Some(v) = st.values {
            values.extend(v.0);
        }
        if let Some(channel) = st.sql.strip_prefix("NOTIFY ") {
            notify = Some(channel.trim().to_string());
            continue;
        }
        let body = renumber(&st.sql, offset);
        if k == 0 {
            sql.push_str(&format!("u AS ({body} RETURNING 1)"));
            continue;
        }
        let guarded = if let Some(i) = body.find(" VALUES ") {
            let (head, tail) = body.split_at(i);
            let tail = &tail[" VALUES ".len()..];
            let (rows, rest) = match tail.find(" ON CONFLICT ") {
                Some(j) => tail.split_at(j),
                None => (tail, ""),
            };
            format!(
                "{head} SELECT * FROM (VALUES {rows}) AS v WHERE EXISTS (SELECT 1 FROM u){rest}"
            )
        } else if let Some(i) = body.find(" WHERE ") {
            // The statement's own condition in parentheses: it may be an OR at the top.
            let (head, cond) = body.split_at(i);
            let cond = &cond[" WHERE ".len()..];
            format!("{head} WHERE ({cond}) AND EXISTS (SELECT 1 FROM u)")
        } else {
            format!("{body} WHERE EXISTS (SELECT 1 FROM u)")
        };
        n += 1;
        sql.push_str(&format!(", s{n} AS ({guarded})"));
    }
    match notify {
        Some(channel) => sql.push_str(&format!(
            ", nt AS (SELECT pg_notify('{channel}', '') FROM u) \
             SELECT (SELECT count(*) FROM u) AS updated, (SELECT count(*) FROM nt) AS notified"
        )),
        None => sql.push_str(" SELECT count(*) AS updated FROM u"),
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `sql` with its placeholders `$1`, `$2`… moved up by `offset` (outside quoted text).
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut num = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    num.push(*d);
                    chars.next();
                }
                let n: usize = num.parse().unwrap_or(0);
                out.push_str(&format!("${}", n + offset));
            }
            None => out.push(c),
        }
    }
    out
}

/// Where a lifecycle command (`Store::apply`) reads its item and writes its one call. SQLite:
/// the store's writer connection, held from the read to the write. A pooled connection costs
/// two more trips to its worker thread per use (sqlx pings it on release, from a task it
/// spawns) and its page cache is dropped whenever another connection wrote since it was last
/// used; the writer's stays warm from one command to the next, and SQLite lets one writer at a
/// time in anyway. PostgreSQL: the pool (the write is one statement, `write_as_one_statement`).
enum CommandConn<'a> {
    Writer(HeldWriter<'a>),
    Pool,
}

impl CommandConn<'_> {
    /// A conflict when the item changed since it was read, and then nothing is written.
    #[cfg(test)]
    async fn write(&mut self, store: &Store, id: ItemId, statements: Vec<Statement>) -> Result<()> {
        match self {
            CommandConn::Writer(held) => {
                let mut wait = BusyWait::new(store.busy_timeout);
                write_on_writer(held, &mut wait, id, &statements).await
            }
            CommandConn::Pool => store.write_as_one_statement(id, statements).await,
        }
    }

    /// Gives the writer back, or, after a driver or database error (not the command's own:
    /// a refusal, a conflict), drops it so that the next command opens a new one.
    fn finish<T>(self, outcome: &Result<T>) {
        if let CommandConn::Writer(mut held) = self {
            if matches!(outcome, Err(StoreError::Db(_))) {
                held.conn = None;
            }
            held.finish();
        }
    }
}

/// The store's writer connection while a command uses it. `finish` puts it back. Dropped
/// without `finish` (a caller that gave up midway), or after a failed write that could not be
/// rolled back (`conn` emptied), the connection is closed instead, and SQLite rolls back what
/// it had begun; the next command opens a new one.
pub(crate) struct HeldWriter<'a> {
    slot: tokio::sync::MutexGuard<'a, Option<direct::Owned>>,
    conn: Option<direct::Owned>,
}

impl HeldWriter<'_> {
    pub(crate) fn conn(&self) -> &direct::Owned {
        self.conn.as_ref().expect("held until finish")
    }

    pub(crate) fn finish(mut self) {
        *self.slot = self.conn.take();
    }
}

/// Sets up a new connection of the SQLite pool: the query planner stability guarantee
/// (`stable_plans`) and the version guard (`VERSION_GUARD`). The writer gets the same in
/// `Store::hold_writer`.
async fn prepare_sqlite(
    conn: &mut SqliteConnection,
) -> std::result::Result<(), sea_orm::sqlx::Error> {
    {
        let mut handle = conn.lock_handle().await?;
        stable_plans(handle.as_raw_handle());
    }
    sea_orm::sqlx::raw_sql(VERSION_GUARD)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An item's columns in `item::Model`'s order, as `item_direct` reads them.
const ITEM_DIRECT: &str = "SELECT id, round_code, parent_id, number, title, lead_unit, co_units, \
     leader, deadline, state, version, deadline_version, send_backs, reassignments, cadence, \
     ext_to, ext_reason, ext_requested_by, merged_into, progress_percent, last_progress, \
     created_at, assigned_at, acknowledged_at, last_progress_at, submitted_at, closed_at, \
     head_seq, head_hash, plan_key FROM items WHERE id = ?";

/// Reads item `id` on the writer (`Store::apply_on_writer`), each column as sqlx decodes it
/// into `item::Model`.
pub(crate) fn item_direct(c: &direct::Conn<'_>, id: ItemId) -> Result<item::Model> {
    let mut st = c.prepare(ITEM_DIRECT).map_err(direct_err)?;
    st.bind(&[direct::Bound::Int(id)]).map_err(direct_err)?;
    if !st.step().map_err(direct_err)? {
        return Err(StoreError::NotFound {
            what: "item",
            key: id.to_string(),
        });
    }
    let null = |col: &str| {
        direct_err(direct::Failure {
            code: libsqlite3_sys::SQLITE_MISMATCH,
            message: format!("items.{col} of item {id} is NULL"),
        })
    };
    let int = |i: i32, col: &str| st.int(i).map_err(direct_err)?.ok_or_else(|| null(col));
    let text = |i: i32, col: &str| st.text(i).map_err(direct_err)?.ok_or_else(|| null(col));
    let int_opt = |i: i32| st.int(i).map_err(direct_err);
    let text_opt = |i: i32| st.text(i).map_err(direct_err);
    let time_opt = |i: i32| st.time(i).map_err(direct_err);
    Ok(item::Model {
        id: int(0, "id")?,
        round_code: text(1, "round_code")?,
        parent_id: int_opt(2)?,
        number: text(3, "number")?,
        title: text(4, "title")?,
        lead_unit: text_opt(5)?,
        co_units: text(6, "co_units")?,
        leader: text_opt(7)?,
        deadline: text_opt(8)?,
        state: text(9, "state")?,
        version: int(10, "version")?,
        deadline_version: int(11, "deadline_version")?,
        send_backs: int(12, "send_backs")?,
        reassignments: int(13, "reassignments")?,
        cadence: text_opt(14)?,
        ext_to: text_opt(15)?,
        ext_reason: text_opt(16)?,
        ext_requested_by: text_opt(17)?,
        merged_into: int_opt(18)?,
        progress_percent: int_opt(19)?,
        last_progress: text_opt(20)?,
        created_at: time_opt(21)?.ok_or_else(|| null("created_at"))?,
        assigned_at: time_opt(22)?,
        acknowledged_at: time_opt(23)?,
        last_progress_at: time_opt(24)?,
        submitted_at: time_opt(25)?,
        closed_at: time_opt(26)?,
        head_seq: int(27, "head_seq")?,
        head_hash: text(28, "head_hash")?,
        plan_key: text_opt(29)?,
    })
}

/// Writes a command's `decided_statements` as one write transaction on the writer:
/// `BEGIN IMMEDIATE`, each statement with its own values, `COMMIT`. The version guard
/// after the item UPDATE (`VERSION_GUARD`) aborts the rest when the item changed since it was
/// read: a conflict, and nothing is written. A failure is rolled back before this returns;
/// the flag says the rollback failed too and the connection must be closed.
fn write_direct(c: &direct::Conn<'_>, id: ItemId, statements: &[Statement]) -> (Result<()>, bool) {
    let bound: direct::Result<Vec<_>> = statements
        .iter()
        .map(|st| direct::bound_values(st).map(|v| (st.sql.as_str(), v)))
        .collect();
    let bound = match bound {
        Ok(b) => b,
        Err(f) => return (Err(direct_err(f)), false),
    };
    let r = c.run("BEGIN IMMEDIATE", &[]).and_then(|()| {
        bound
            .iter()
            .try_for_each(|(sql, values)| c.run(sql, values))
            .and_then(|()| c.run("COMMIT", &[]))
    });
    let Err(f) = r else {
        return (Ok(()), false);
    };
    let close = c.in_transaction() && c.run("ROLLBACK", &[]).is_err();
    let e = if f.message.contains(VERSION_CONFLICT) {
        StoreError::Conflict { item: id }
    } else {
        direct_err(f)
    };
    (Err(e), close)
}

/// One statement on the writer in SQLite's autocommit (a transaction of its own), tried again
/// while another connection holds the write lock (`BusyWait`): the rows it changed. A writer
/// left inside a transaction by a failure is dropped (SQLite rolls back on close).
pub(crate) async fn run_on_writer(
    held: &mut HeldWriter<'_>,
    wait: &mut BusyWait,
    st: &Statement,
) -> Result<u64> {
    let values = direct::bound_values(st).map_err(direct_err)?;
    loop {
        let r = {
            let c = held.conn().conn();
            let r = c.run(&st.sql, &values).map(|()| c.changes());
            if r.is_err() && c.in_transaction() {
                let _ = c.run("ROLLBACK", &[]);
            }
            r
        };
        if r.is_err() && wait.again(busy_now(held)).await {
            continue;
        }
        if r.is_err() && held.conn().conn().in_transaction() {
            held.conn = None;
        }
        return r.map_err(direct_err);
    }
}

/// `write_direct` on the held writer, tried again while another connection holds the write
/// lock (`BusyWait`); a writer that could not roll back is dropped.
async fn write_on_writer(
    held: &mut HeldWriter<'_>,
    wait: &mut BusyWait,
    id: ItemId,
    statements: &[Statement],
) -> Result<()> {
    loop {
        let (r, close) = write_direct(&held.conn().conn(), id, statements);
        if close {
            held.conn = None;
            return r;
        }
        if r.is_err() && wait.again(busy_now(held)).await {
            continue;
        }
        return r;
    }
}

/// The query of a `sqlite:` URL as sqlx's parser reads it, for the writer to open the same
/// database the same way (`sqlite_direct::open_as`): its `key=value` pairs, and for
/// `sqlite::memory:` the in-memory, shared-cache database sqlx makes of it. (sqlx's own
/// `to_url_lossy` panics on the in-memory database's name.)
fn sqlite_url_query(url: &str) -> Vec<(String, String)> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut query: Vec<(String, String)> = params
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    if database == ":memory:" {
        query.push(("mode".into(), "memory".into()));
        query.push(("cache".into(), "shared".into()));
    }
    query
}

/// Whether the writer's last call failed on another connection's lock, leaving nothing open.
fn busy_now(held: &HeldWriter<'_>) -> bool {
    held.conn().conn().busy_outside_transaction()
}

/// How long the writer may still wait for another connection's lock. SQLite's own busy
/// handler would sleep on the calling thread, a runtime's thread, where the task holding the
/// lock may be waiting to run; the writer has none, and sleeps on the runtime instead.
pub(crate) struct BusyWait {
    deadline: tokio::time::Instant,
    pause: Duration,
}

impl BusyWait {
    pub(crate) fn new(timeout: Duration) -> Self {
        BusyWait {
            deadline: tokio::time::Instant::now() + timeout,
            pause: Duration::from_millis(1),
        }
    }

    /// After a failed attempt: when SQLite answered busy with nothing left open (`busy`,
    /// `busy_now`) and the deadline allows, sleeps (1 ms, doubling up to 50 ms) and says to
    /// try again.
    pub(crate) async fn again(&mut self, busy: bool) -> bool {
        if !busy || tokio::time::Instant::now() + self.pause > self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(50));
        true
    }
}

pub(crate) fn direct_err(f: direct::Failure) -> StoreError {
    StoreError::Db(DbErr::Exec(sea_orm::RuntimeErr::Internal(f.to_string())))
}

fn sqlx_err(e: sea_orm::sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Exec(sea_orm::RuntimeErr::SqlxError(
        std::sync::Arc::new(e),
    )))
}

/// The message of the version guard's abort (see `VERSION_GUARD`), as a literal so that the
/// guard's SQL can carry it.
macro_rules! version_conflict {
    () => {
        "rectify: the item changed since it was read"
    };
}
const VERSION_CONFLICT: &str = version_conflict!();

/// The writer's settings, those the pool's connections get from `Store::connect` (the file's
/// WAL mode is kept in the file, set again here for a file the pool has not opened yet).
const WRITER_PRAGMAS: &str =
    "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA journal_mode = WAL";

/// Set up on every SQLite connection: inserting into `rectify_guard` anything but 1 aborts
/// the statement with `VERSION_CONFLICT`. A command's `decided_statements` insert `changes()`
/// right after the version-checked item UPDATE, so a command whose item changed meanwhile
/// writes nothing more. A view with an INSTEAD OF trigger stores nothing; both live in the
/// connection's temp schema, not in the database file.
const VERSION_GUARD: &str = concat!(
    "CREATE TEMP VIEW IF NOT EXISTS rectify_guard (ok) AS SELECT 1;
CREATE TEMP TRIGGER IF NOT EXISTS rectify_guard_check INSTEAD OF INSERT ON rectify_guard
WHEN NEW.ok IS NOT 1 BEGIN SELECT RAISE(ABORT, '",
    version_conflict!(),
    "'); END"
);

/// Whether the connection's TLS mode was chosen: `sslmode` in the URL, or `PGSSLMODE`.
fn tls_chosen(url: &str) -> bool {
    url.to_ascii_lowercase().contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some()
}

/// Whether `host` names this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sets TCP_NODELAY on every TCP socket of this process (Linux; elsewhere nothing).
///
/// sqlx 0.9 does not set it on its PostgreSQL connections, and it writes some statements in
/// more than one piece: Nagle's algorithm then holds the last piece back until the server's
/// delayed ACK, about 40 ms. An import of 10,000 ledger rows spent 8 of its 9 s in such waits.
/// The sockets of this process are its database connections, the SMTP connections (already
/// without delay) and the metrics listener, so setting it on all of them is safe.
pub fn tcp_nodelay_everywhere() {
    #[cfg(target_os = "linux")]
    {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<libc::c_int>().ok())
            else {
                continue;
            };
            // SAFETY: getsockopt/getsockname/setsockopt only read or write the values we own;
            // on a descriptor that is not a socket (or was closed since the listing) they fail
            // with ENOTSOCK/EBADF and nothing changes.
            unsafe {
                let mut kind: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                if libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_TYPE,
                    (&mut kind as *mut libc::c_int).cast(),
                    &mut len,
                ) != 0
                    || kind != libc::SOCK_STREAM
                {
                    continue;
                }
                let mut addr: libc::sockaddr_storage = std::mem::zeroed();
                let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                if libc::getsockname(
                    fd,
                    (&mut addr as *mut libc::sockaddr_storage).cast(),
                    &mut alen,
                ) != 0
                {
                    continue;
                }
                let family = libc::c_int::from(addr.ss_family);
                if family != libc::AF_INET && family != libc::AF_INET6 {
                    continue;
                }
                let one: libc::c_int = 1;
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;

    /// `testing::assigned_item`'s item, acknowledged: the admin, the item, the time and day.
    async fn acknowledged_item(
        store: &super::Store,
    ) -> (
        rectify_engine::Actor,
        i64,
        chrono::DateTime<chrono::Utc>,
        chrono::NaiveDate,
    ) {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let today = now.date_naive();
        let (admin, item) = crate::testing::assigned_item(store, now).await;
        store
            .apply(
                item,
                &rectify_engine::Command::Acknowledge,
                &admin,
                now,
                today,
            )
            .await
            .expect("acknowledge");
        (admin, item, now, today)
    }

    /// Every item's event chain verifies; then the store is closed and its database removed.
    async fn chain_verifies_then_close(store: super::Store, db: TestDb) {
        let (_, _, findings) = store.audit_verify(false).await.expect("audit");
        assert!(findings.is_empty(), "{findings:?}");
        store.close().await.expect("close");
        db.cleanup().await;
    }

    /// No connection holds the write lock: a write transaction on the pool commits at once
    /// (it would wait out the busy timeout behind a connection left inside a transaction).
    async fn write_lock_is_free(store: &super::Store) {
        let t = std::time::Instant::now();
        store
            .begin_write()
            .await
            .expect("begin")
            .commit()
            .await
            .expect("commit");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    /// Every table's rows, each column `quote`d (its storage class and bytes), in rowid
    /// order; the migrations' own table (times of the run) left out.
    async fn sqlite_dump(store: &super::Store) -> Vec<String> {
        use sea_orm::ConnectionTrait;
        let db = store.db();
        let tables: Vec<String> = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations' ORDER BY name",
            ))
            .await
            .expect("tables")
            .iter()
            .map(|r| r.try_get("", "name").expect("name"))
            .collect();
        let mut out = Vec::new();
        for t in tables {
            let cols: Vec<String> = db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid"),
                ))
                .await
                .expect("columns")
                .iter()
                .map(|r| r.try_get("", "name").expect("name"))
                .collect();
            let row = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            for r in db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("SELECT '{t}: ' || {row} AS r FROM \"{t}\" ORDER BY rowid"),
                ))
                .await
                .expect("rows")
            {
                out.push(r.try_get("", "r").expect("row"));
            }
        }
        out
    }

    /// SQLite: while a transaction of the pool holds the write lock, a command waits for it
    /// without blocking the runtime (on a current-thread runtime the holder is a task on the
    /// very thread the command runs on: a wait in SQLite's busy handler would keep it from
    /// committing until the busy timeout ran out), then goes through. With the lock held past
    /// the busy timeout, the command fails as a database error and writes nothing.
    #[tokio::test(flavor = "current_thread")]
    async fn a_command_waits_for_the_write_lock_without_blocking_the_runtime() {
        use rectify_engine::Command;
        let db = TestDb::sqlite();
        let mut settings = db.settings();
        settings.busy_timeout = std::time::Duration::from_secs(3);
        let store = super::Store::connect(&settings).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (admin, item, now, today) = acknowledged_item(&store).await;
        let progress = |n: u32| Command::Progress {
            note: format!("进展{n}"),
            percent: Some(20),
            evidence: vec![],
        };
        let before = store.get_item(item).await.expect("item");

        let txn = store.begin_write().await.expect("the write lock");
        let holder = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            txn.commit().await.expect("commit");
        };
        let t = std::time::Instant::now();
        let first = progress(1);
        let ((), r) = tokio::join!(holder, store.apply(item, &first, &admin, now, today));
        let waited = t.elapsed();
        let after = r.expect("the command goes through once the lock is free");
        assert_eq!(after.version, before.version + 1);
        assert!(
            waited >= std::time::Duration::from_millis(300)
                && waited < std::time::Duration::from_secs(2),
            "{waited:?}"
        );

        let txn = store.begin_write().await.expect("the write lock");
        let e = store
            .apply(item, &progress(2), &admin, now, today)
            .await
            .expect_err("the lock is never freed");
        assert!(matches!(e, crate::StoreError::Db(_)), "{e}");
        assert!(e.to_string().contains("locked"), "{e}");
        txn.rollback().await.expect("rollback");
        let last = store.get_item(item).await.expect("item");
        assert_eq!(last.version, after.version, "nothing written");
        let next = store
            .apply(item, &progress(3), &admin, now, today)
            .await
            .expect("the next command");
        assert_eq!(next.version, after.version + 1);
        chain_verifies_then_close(store, db).await;
    }

    /// The writer reads a SQLite URL's query as sqlx does, and refuses what it cannot open
    /// the same way.
    #[test]
    fn the_writer_opens_the_database_sqlx_opens() {
        use libsqlite3_sys as ffi;
        let q = super::sqlite_url_query("sqlite:///tmp/r.db?mode=rwc&cache=private");
        assert_eq!(
            q,
            [
                ("mode".into(), "rwc".into()),
                ("cache".into(), "private".into())
            ]
        );
        let memory = super::sqlite_url_query("sqlite::memory:");
        let (_, flags) =
            crate::sqlite_direct::open_as(std::path::Path::new("m"), &memory).expect("in memory");
        assert_ne!(flags & ffi::SQLITE_OPEN_MEMORY, 0);
        assert_ne!(flags & ffi::SQLITE_OPEN_SHAREDCACHE, 0);
        let plain = super::sqlite_url_query("sqlite:///tmp/r.db");
        let (_, flags) = crate::sqlite_direct::open_as(std::path::Path::new("/tmp/r.db"), &plain)
            .expect("a file");
        assert_ne!(flags & ffi::SQLITE_OPEN_CREATE, 0);
        assert_ne!(flags & ffi::SQLITE_OPEN_PRIVATECACHE, 0);
        let immutable = super::sqlite_url_query("sqlite:///tmp/r.db?immutable=true");
        let e = crate::sqlite_direct::open_as(std::path::Path::new("/tmp/r.db"), &immutable)
            .expect_err("immutable");
        assert!(e.message.contains("remove it from the database URL"), "{e}");
    }

    /// `sqlite::memory:` is one database shared by the pool's connections (sqlx opens it with
    /// a shared cache); the writer opens the same one, so commands work on it.
    #[tokio::test]
    async fn commands_work_on_an_in_memory_database() {
        let dir = tempfile::tempdir().expect("dir");
        let mut settings = super::ConnectSettings::new("sqlite::memory:", dir.path());
        settings.pool_size = 1;
        let store = super::Store::connect(&settings).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (_, item, _, _) = acknowledged_item(&store).await;
        let read = store.get_item(item).await.expect("item");
        assert_eq!(read.state, rectify_engine::ItemState::InProgress);
        store.close().await.expect("close");
    }

    /// SQLite: the writer's own connection (`apply`, `sqlite_direct`) leaves the very rows
    /// that the same decided statements leave when sqlx runs them in a transaction of the
    /// pool, column for column (`quote`: storage class and bytes), over a life that writes
    /// every kind of value a command writes (times, dates, texts, NULLs, extension rows,
    /// re-plans); and the writer reads each item as sea-orm does.
    #[tokio::test]
    async fn the_direct_writer_stores_what_sqlx_stores() {
        use rectify_engine::{Command, Deadline};
        use sea_orm::ConnectionTrait;
        let (a_db, b_db) = (TestDb::sqlite(), TestDb::sqlite());
        let (a, b) = (a_db.store().await, b_db.store().await);
        let start = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00.250+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let (admin, item) = crate::testing::assigned_item(&a, start).await;
        let (_, item_b) = crate::testing::assigned_item(&b, start).await;
        assert_eq!(item, item_b);
        let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%F").expect("date");
        let life = [
            Command::Acknowledge,
            Command::Progress {
                note: "已完成初步排查,'引号' \"双引号\"".into(),
                percent: Some(30),
                evidence: vec![],
            },
            Command::RequestExtension {
                to: date("2026-06-30"),
                reason: "需协调多部门".into(),
            },
            Command::ApproveExtension { note: None },
            Command::Submit {
                note: "已整改到位".into(),
                evidence: vec![],
            },
            Command::SendBack {
                reason: "材料不全".into(),
            },
            Command::Progress {
                note: "补充材料".into(),
                percent: None,
                evidence: vec![],
            },
            Command::Submit {
                note: "再次报送".into(),
                evidence: vec![],
            },
            Command::Close {
                note: Some("同意销号".into()),
            },
            Command::Reopen {
                reason: "回头看发现反弹".into(),
                due: Some(Deadline::Date(date("2026-09-30"))),
            },
        ];
        for (k, cmd) in life.iter().enumerate() {
            let now = super::now_for_store(start + chrono::Duration::minutes(97 * k as i64 + 1));
            let today = now.date_naive();
            a.apply(item, cmd, &admin, now, today)
                .await
                .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            let model = b.get_item_model(item).await.expect("read");
            let (current, outcome) = b
                .decide(&b.db, &model, cmd, &admin, now, today)
                .await
                .expect("decide");
            let statements =
                b.decided_statements(&model, &current, &outcome, cmd, &admin, now, today);
            let txn = b.begin_write().await.expect("begin");
            for st in statements {
                txn.execute_raw(st).await.expect("statement");
            }
            txn.commit().await.expect("commit");
            assert_eq!(
                sqlite_dump(&a).await,
                sqlite_dump(&b).await,
                "after {cmd:?}"
            );
        }
        // A statement with a value the writer does not bind: refused before BEGIN, nothing
        // written, no transaction left open.
        let before = sqlite_dump(&a).await;
        let now = super::now_for_store(start + chrono::Duration::days(1));
        let progress = Command::Progress {
            note: "不会写入".into(),
            percent: None,
            evidence: vec![],
        };
        let model = a.get_item_model(item).await.expect("read");
        let (current, outcome) = a
            .decide(&a.db, &model, &progress, &admin, now, now.date_naive())
            .await
            .expect("decide");
        let mut statements = a.decided_statements(
            &model,
            &current,
            &outcome,
            &progress,
            &admin,
            now,
            now.date_naive(),
        );
        statements.push(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "SELECT ?",
            [sea_orm::Value::Uuid(Some(sea_orm::prelude::Uuid::nil()))],
        ));
        let e = a
            .write_in_one_call(item, statements)
            .await
            .expect_err("a value the writer does not bind");
        assert!(e.to_string().contains("Uuid"), "{e}");
        assert_eq!(sqlite_dump(&a).await, before, "nothing written");
        write_lock_is_free(&a).await;
        let held = a.hold_writer().await.expect("writer");
        let direct = super::item_direct(&held.conn().conn(), item).expect("direct read");
        held.finish();
        assert_eq!(direct, a.get_item_model(item).await.expect("read"));
        let missing = a.hold_writer().await.expect("writer");
        let e = super::item_direct(&missing.conn().conn(), item + 100).expect_err("none");
        missing.finish();
        assert!(matches!(e, crate::StoreError::NotFound { .. }), "{e}");
        chain_verifies_then_close(a, a_db).await;
        chain_verifies_then_close(b, b_db).await;
    }

    /// The store's futures are `Send`: a service runs them on a multi-threaded runtime's
    /// tasks. A command and a new item that check units (a reassignment to a unit that does
    /// not exist and to one that does; a new item for a unit that does not exist) run as
    /// spawned tasks on both engines. This did not compile while the unit check held a
    /// borrowing iterator across its awaits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_run_as_spawned_tasks() {
        use rectify_engine::Command;
        for db in TestDb::all().await {
            let store = super::Store::connect(&db.settings())
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            let (admin, item, now, today) = acknowledged_item(&store).await;
            store
                .add_unit(
                    &crate::Unit {
                        code: "JYJ".into(),
                        name: "区教育局".into(),
                        parent: None,
                        emails: vec!["jyj@example.gov.cn".into()],
                        leader: None,
                        leader_email: None,
                        aliases: vec![],
                    },
                    now,
                )
                .await
                .expect("second unit");
            let reassign = |unit: &str| Command::Reassign {
                lead_unit: unit.into(),
                reason: "职能调整".into(),
            };
            let (s, a) = (store.clone(), admin.clone());
            let unknown = reassign("NOPE");
            let refused =
                tokio::spawn(async move { s.apply(item, &unknown, &a, now, today).await })
                    .await
                    .expect("task");
            assert!(
                matches!(&refused, Err(crate::StoreError::NotFound { what: "unit", key }) if key == "NOPE"),
                "{refused:?}"
            );
            let (s, a) = (store.clone(), admin.clone());
            let known = reassign("JYJ");
            let moved = tokio::spawn(async move { s.apply(item, &known, &a, now, today).await })
                .await
                .expect("task")
                .expect("reassign to an existing unit");
            assert_eq!(moved.lead_unit.as_deref(), Some("JYJ"));
            // A new item checks its units the same way.
            let (s, a) = (store.clone(), admin.clone());
            let new = rectify_engine::NewItem {
                round: "R2".into(),
                number: "9".into(),
                title: "新增事项".into(),
                lead_unit: Some("NOPE".into()),
                ..Default::default()
            };
            let refused = tokio::spawn(async move { s.create_item(&new, &a, now, today).await })
                .await
                .expect("task");
            assert!(
                matches!(&refused, Err(crate::StoreError::NotFound { what: "unit", key }) if key == "NOPE"),
                "{refused:?}"
            );
            chain_verifies_then_close(store, db).await;
        }
    }

    /// The one-call write of a command (SQLite, PostgreSQL): a write decided on a stale read is a
    /// conflict and writes nothing; a statement that fails midway leaves nothing written and no
    /// transaction open on the pool's (only) connection; the next command goes through.
    #[tokio::test]
    async fn one_call_writes_refuse_stale_reads_and_leave_no_open_transaction() {
        use rectify_engine::Command;
        for db in TestDb::all().await {
            let mut settings = db.settings();
            settings.pool_size = 1;
            let store = super::Store::connect(&settings).await.expect("connect");
            store.migrate().await.expect("migrate");
            let (admin, item, now, today) = acknowledged_item(&store).await;
            let progress = |n: u32| Command::Progress {
                note: format!("进展{n}"),
                percent: Some(10),
                evidence: vec![],
            };
            let events =
                |s: super::Store| async move { s.history(item).await.expect("history").len() };

            // Read, then someone else writes: the stale write is a conflict and writes nothing.
            let stale = store.get_item_model(item).await.expect("read");
            let (current, outcome) = store
                .decide(&store.db, &stale, &progress(1), &admin, now, today)
                .await
                .expect("decide");
            store
                .apply(item, &progress(2), &admin, now, today)
                .await
                .expect("the other write");
            let before = store.get_item(item).await.expect("item");
            let n_events = events(store.clone()).await;
            let statements = store.decided_statements(
                &stale,
                &current,
                &outcome,
                &progress(1),
                &admin,
                now,
                today,
            );
            let e = store
                .write_in_one_call(item, statements)
                .await
                .expect_err("stale");
            assert!(matches!(e, crate::StoreError::Conflict { .. }), "{e}");
            assert_eq!(
                store.get_item(item).await.expect("item").version,
                before.version
            );
            assert_eq!(events(store.clone()).await, n_events, "no event written");

            // A statement failing after the item UPDATE: nothing of the call stays.
            let fresh = store.get_item_model(item).await.expect("read");
            let (current, outcome) = store
                .decide(&store.db, &fresh, &progress(3), &admin, now, today)
                .await
                .expect("decide");
            let mut statements = store.decided_statements(
                &fresh,
                &current,
                &outcome,
                &progress(3),
                &admin,
                now,
                today,
            );
            statements.insert(
                2,
                sea_orm::Statement::from_string(
                    store.backend(),
                    "INSERT INTO no_such_table VALUES (1)",
                ),
            );
            let e = store
                .write_in_one_call(item, statements)
                .await
                .expect_err("bad statement");
            assert!(e.to_string().contains("no_such_table"), "{e}");
            assert_eq!(
                store.get_item(item).await.expect("item").version,
                before.version
            );
            // The connection is out of the transaction: a write on the pool's one connection
            // does not wait for the write lock, and the next command commits.
            write_lock_is_free(&store).await;
            let after = store
                .apply(item, &progress(4), &admin, now, today)
                .await
                .expect("next command");
            assert_eq!(after.version, before.version + 1);
            assert_eq!(events(store.clone()).await, n_events + 1);
            chain_verifies_then_close(store, db).await;
        }
    }

    /// Polls `fut` at most `polls` times, a millisecond apart (time for the step it is waiting
    /// on to finish), and drops it if it is not done by then: a command given up after a given
    /// number of its steps, on a fast machine as on a slow one. (A timeout of a few microseconds
    /// gave up nothing on a fast machine: tokio's timers fire at millisecond ticks.)
    async fn poll_at_most<F: std::future::Future>(fut: F, polls: u64) -> Result<F::Output, ()> {
        let mut fut = std::pin::pin!(fut);
        for _ in 0..polls {
            let step = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx)));
            if let std::task::Poll::Ready(out) = step.await {
                return Ok(out);
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Err(())
    }

    /// A command given up at any point (its future dropped, as a timeout does) leaves the item
    /// written whole or not at all, the writer connection out of any transaction (a write on
    /// the pool goes through at once) and the next command working.
    #[tokio::test]
    async fn commands_given_up_midway_leave_nothing_half_done() {
        use rectify_engine::Command;
        let db = TestDb::sqlite();
        let store = db.store().await;
        let (admin, item, now, today) = acknowledged_item(&store).await;
        let (mut given_up, mut done) = (0, 0);
        for k in 0..60u64 {
            let before = store.get_item(item).await.expect("item");
            let events = store.history(item).await.expect("history").len();
            let cmd = Command::Progress {
                note: format!("进展{k}"),
                percent: Some(10),
                evidence: vec![],
            };
            let r = poll_at_most(store.apply(item, &cmd, &admin, now, today), k).await;
            let after = store.get_item(item).await.expect("item");
            let events_after = store.history(item).await.expect("history").len();
            match r {
                Ok(r) => {
                    r.expect("apply");
                    done += 1;
                    assert_eq!(after.version, before.version + 1);
                }
                Err(_) => {
                    given_up += 1;
                    assert!(
                        after.version == before.version || after.version == before.version + 1,
                        "{} → {}",
                        before.version,
                        after.version
                    );
                }
            }
            assert_eq!(
                events_after - events,
                (after.version - before.version) as usize,
                "an event for each version step, no more"
            );
            write_lock_is_free(&store).await;
        }
        assert!(given_up > 0 && done > 0, "given up {given_up}, done {done}");
        let after = store
            .apply(
                item,
                &Command::Progress {
                    note: "最后".into(),
                    percent: None,
                    evidence: vec![],
                },
                &admin,
                now,
                today,
            )
            .await
            .expect("next command");
        assert_eq!(after.last_progress.as_deref(), Some("最后"));
        let (_, _, findings) = store.audit_verify(false).await.expect("audit");
        assert!(findings.is_empty(), "{findings:?}");
        // A clone of a closed store does not open the writer again.
        let clone = store.clone();
        store.close().await.expect("close");
        let e = clone
            .apply(item, &Command::Acknowledge, &admin, now, today)
            .await
            .expect_err("closed");
        assert!(e.to_string().to_lowercase().contains("closed"), "{e}");
        db.cleanup().await;
    }

    /// A command re-plans only what it changes when the item's stored plan is the one it had
    /// (`DecidedItem::known`); the rows left are exactly those a full re-plan leaves, through
    /// a life of the item over several days, on SQLite and PostgreSQL.
    #[tokio::test]
    async fn partial_replans_leave_the_rows_a_full_replan_leaves() {
        use rectify_engine::Command;
        use sea_orm::{EntityTrait, QueryFilter, QueryOrder};
        let at = |day: u32, hour: u32| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-03-{day:02}T{hour:02}:00:00+08:00"))
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        for db in TestDb::all().await {
            let store = db.store().await;
            let (admin, item) = crate::testing::assigned_item(&store, at(2, 9)).await;
            let rows = |s: super::Store| async move {
                crate::entity::reminder::Entity::find()
                    .filter(sea_orm::ColumnTrait::eq(
                        &crate::entity::reminder::Column::ItemId,
                        item,
                    ))
                    .order_by_asc(crate::entity::reminder::Column::Id)
                    .all(&s.db)
                    .await
                    .expect("rows")
                    .into_iter()
                    .map(|r| (r.id, r.kind, r.step, r.deadline_version, r.send_on, r.state))
                    .collect::<Vec<_>>()
            };
            let progress = |n: u32| Command::Progress {
                note: format!("进展{n}"),
                percent: Some(10),
                evidence: vec![],
            };
            let life = [
                (at(2, 10), Command::Acknowledge),
                (at(2, 11), progress(1)),
                (at(2, 15), progress(2)),
                (at(5, 9), progress(3)),
                (at(5, 10), progress(4)),
                (
                    at(6, 9),
                    Command::RequestExtension {
                        to: chrono::NaiveDate::from_ymd_opt(2026, 5, 29).expect("date"),
                        reason: "需要更多时间".into(),
                    },
                ),
                (at(6, 10), Command::ApproveExtension { note: None }),
                (at(6, 11), progress(5)),
                (
                    at(9, 9),
                    Command::Submit {
                        note: "已完成".into(),
                        evidence: vec![],
                    },
                ),
                (
                    at(9, 10),
                    Command::SendBack {
                        reason: "材料不全".into(),
                    },
                ),
                (at(9, 11), progress(6)),
            ];
            let mut partial = 0;
            for (now, cmd) in &life {
                let today = now.date_naive();
                let model = store.get_item_model(item).await.expect("model");
                let current = super::to_item(&model).expect("item");
                let (_, outcome) = store
                    .decide(&store.db, &model, cmd, &admin, *now, today)
                    .await
                    .expect("decide");
                let d = store.decided_item(&model, &current, &outcome, today);
                if d.replan && !d.known.is_empty() {
                    partial += 1;
                }
                store
                    .apply(item, cmd, &admin, *now, today)
                    .await
                    .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
                let written = rows(store.clone()).await;
                store
                    .replan_items(&[item], today, *now)
                    .await
                    .expect("full replan");
                assert_eq!(
                    rows(store.clone()).await,
                    written,
                    "[{:?}] after {cmd:?}",
                    store.backend()
                );
            }
            assert!(partial >= 3, "partial re-plans: {partial}");
            store.close().await.expect("close");
            db.cleanup().await;
        }
    }

    /// A command that writes only the reminders new to its plan (`DecidedItem::known`) is a
    /// conflict, writing nothing, when the item's plan changed between its read and its write
    /// without a new version (as the dispatcher's re-plan does): otherwise a reminder the
    /// other re-plan had cancelled would stay cancelled under a digest that says it is planned.
    #[tokio::test]
    async fn a_plan_changed_since_the_read_makes_a_partial_replan_a_conflict() {
        use rectify_engine::Command;
        use sea_orm::ConnectionTrait;
        for db in TestDb::all().await {
            let store = db.store().await;
            let (admin, item, now, _) = acknowledged_item(&store).await;
            // The next day: the report re-keys the item's silence reminder.
            let later = now + chrono::Duration::days(1);
            let today = later.date_naive();
            let progress = Command::Progress {
                note: "进展".into(),
                percent: Some(10),
                evidence: vec![],
            };
            let read = store.get_item_model(item).await.expect("read");
            let current = super::to_item(&read).expect("item");
            let (_, outcome) = store
                .decide(&store.db, &read, &progress, &admin, later, today)
                .await
                .expect("decide");
            let d = store.decided_item(&read, &current, &outcome, today);
            assert!(d.replan && !d.known.is_empty(), "a partial re-plan");
            // Someone else re-plans the item: a new digest, the same version.
            store
                .db
                .execute_unprepared(&format!(
                    "UPDATE items SET plan_key = 'replanned' WHERE id = {item}"
                ))
                .await
                .expect("replan");
            let statements = store
                .decided_statements(&read, &current, &outcome, &progress, &admin, later, today);
            let e = store
                .write_in_one_call(item, statements)
                .await
                .expect_err("stale plan");
            assert!(matches!(e, crate::StoreError::Conflict { .. }), "{e}");
            let after = store.get_item(item).await.expect("item");
            assert_eq!(after.version, current.version);
            assert_eq!(after.last_progress, None);
            // Read again, the command goes through and writes the whole plan.
            store
                .apply(item, &progress, &admin, later, today)
                .await
                .expect("apply");
            write_lock_is_free(&store).await;
            chain_verifies_then_close(store, db).await;
        }
    }

    #[test]
    fn statements_combine_into_one_with_their_placeholders_moved() {
        use sea_orm::{DbBackend, Statement};
        assert_eq!(
            super::renumber("a = $1 AND b = '$2' AND \"c$3\" = $10", 4),
            "a = $5 AND b = '$2' AND \"c$3\" = $14"
        );
        let st = |sql: &str, n: i64| {
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                (0..n).map(sea_orm::Value::from),
            )
        };
        let one = super::one_statement(vec![
            st("UPDATE items SET v = $1 WHERE id = $2", 2),
            st("INSERT INTO events (a, b) VALUES ($1, $2)", 2),
            st(
                "UPDATE reminders SET s = $1 WHERE item_id = $2 OR kind = $3",
                3,
            ),
            st("UPDATE extensions SET s = $1", 1),
            Statement::from_string(DbBackend::Postgres, "NOTIFY rectify_plan"),
            st(
                "INSERT INTO reminders (a) VALUES ($1), ($2) ON CONFLICT (a) DO UPDATE SET a = excluded.a WHERE x = $3",
                3,
            ),
        ]);
        assert_eq!(
            one.sql,
            "WITH u AS (UPDATE items SET v = $1 WHERE id = $2 RETURNING 1), \
             s1 AS (INSERT INTO events (a, b) SELECT * FROM (VALUES ($3, $4)) AS v WHERE EXISTS (SELECT 1 FROM u)), \
             s2 AS (UPDATE reminders SET s = $5 WHERE (item_id = $6 OR kind = $7) AND EXISTS (SELECT 1 FROM u)), \
             s3 AS (UPDATE extensions SET s = $8 WHERE EXISTS (SELECT 1 FROM u)), \
             s4 AS (INSERT INTO reminders (a) SELECT * FROM (VALUES ($9), ($10)) AS v WHERE EXISTS (SELECT 1 FROM u) ON CONFLICT (a) DO UPDATE SET a = excluded.a WHERE x = $11), \
             nt AS (SELECT pg_notify('rectify_plan', '') FROM u) \
             SELECT (SELECT count(*) FROM u) AS updated, (SELECT count(*) FROM nt) AS notified"
        );
        assert_eq!(one.values.expect("values").0.len(), 11);
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(super::is_loopback(h), "{h}");
        }
        for h in [
            "db.example.gov.cn",
            "10.0.0.5",
            "::2",
            "localhost.example",
            "",
        ] {
            assert!(!super::is_loopback(h), "{h}");
        }
        assert!(super::tls_chosen(
            "postgres://u@127.0.0.1/db?sslmode=require"
        ));
        assert!(super::tls_chosen(
            "postgres://u@127.0.0.1/db?SSLMODE=prefer"
        ));
    }

    /// A loopback PostgreSQL connection goes without TLS unless the URL asks for a mode; a URL
    /// that asks for TLS gets it (when the server offers it).
    #[tokio::test]
    async fn loopback_connections_skip_tls_unless_asked() {
        use sea_orm::ConnectionTrait;
        let Some(db) = TestDb::postgres().await else {
            return;
        };
        if super::tls_chosen(&db.url) {
            db.cleanup().await;
            return;
        }
        // The text in column `ssl` of `sql`'s one row, on a store of its own.
        let ssl_of = |store: super::Store, sql: &'static str| async move {
            let row = store
                .db()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    sql,
                ))
                .await
                .expect(sql)
                .expect("a row");
            let v: String = row.try_get("", "ssl").expect("ssl");
            store.close().await.expect("close");
            v
        };
        const IN_USE: &str =
            "SELECT ssl::text AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        assert_eq!(
            ssl_of(db.store().await, IN_USE).await,
            "false",
            "loopback: no TLS"
        );
        let offered = ssl_of(db.store().await, "SHOW ssl").await == "on";
        if offered {
            let sep = if db.url.contains('?') { '&' } else { '?' };
            let mut settings = db.settings();
            settings.url = format!("{}{sep}sslmode=require", db.url);
            let store = super::Store::connect(&settings)
                .await
                .expect("connect with TLS");
            assert_eq!(
                ssl_of(store, IN_USE).await,
                "true",
                "sslmode=require is followed"
            );
        }
        db.cleanup().await;
    }

    /// A stored deadline is read back as written; one that is not readable is an error that
    /// quotes it, not a missing deadline.
    #[test]
    fn stored_deadlines_are_read_or_refused() {
        use rectify_engine::Deadline;
        let d = Deadline::Date(chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap());
        assert_eq!(super::stored_deadline(Some(&d.to_db())).unwrap(), Some(d));
        assert_eq!(
            super::stored_deadline(Some(&Deadline::LongTerm.to_db())).unwrap(),
            Some(Deadline::LongTerm)
        );
        assert_eq!(super::stored_deadline(None).unwrap(), None);
        let e = super::stored_deadline(Some("明年"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("明年"), "{e}");
    }

    /// Every pooled SQLite connection has the query planner stability guarantee on.
    #[tokio::test]
    async fn sqlite_connections_keep_their_plans() {
        let db = TestDb::sqlite();
        let store = db.store().await;
        let pool = store.db().get_sqlite_connection_pool();
        // More connections than one, so it is not only the first.
        let mut conns = Vec::new();
        for _ in 0..2 {
            conns.push(pool.acquire().await.expect("connection"));
        }
        for conn in &mut conns {
            let mut handle = conn.lock_handle().await.expect("handle");
            assert_eq!(
                super::qpsg(handle.as_raw_handle(), -1),
                Ok(true),
                "QPSG is on"
            );
        }
        drop(conns);
        store.close().await.unwrap();
    }
}
