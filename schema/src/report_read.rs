//! What `rectify report` reads: a round's items page by page, the events that open or end an
//! assignment (for the burn-down), and the whole record when the past is replayed.
//!
//! A round can hold over 100,000 items. Reading it in one query holds every row in the driver's
//! form (each value a separate allocation) at once, so the items and the transitions are read in
//! pages of item ids and the caller folds each page into its figures before asking for the next.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rectify_engine::{Item, ItemId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DerivePartialModel, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use crate::entity::{event, item};
use crate::store::{Result, Store, parse_enum, stored_deadline};

/// The columns of an item the report uses. Decoding a row costs per column (each value is
/// copied out of SQLite and converted), and the report needs about half of them. On
/// PostgreSQL a row of the query; on SQLite an element of a JSON page, an array of
/// [`ITEM_COLUMNS`] in this order.
#[derive(DerivePartialModel, serde::Deserialize)]
#[sea_orm(entity = "item::Entity")]
struct ReportItemRow {
    id: i64,
    round_code: String,
    parent_id: Option<i64>,
    number: String,
    title: String,
    lead_unit: Option<String>,
    leader: Option<String>,
    deadline: Option<String>,
    state: String,
    send_backs: i64,
    cadence: Option<String>,
    last_progress: Option<String>,
    #[serde(deserialize_with = "stored_time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "stored_time_opt")]
    assigned_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "stored_time_opt")]
    acknowledged_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "stored_time_opt")]
    last_progress_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "stored_time_opt")]
    submitted_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "stored_time_opt")]
    closed_at: Option<DateTime<Utc>>,
}

impl ReportItemRow {
    /// The item as the report sees it; what was not read is left empty (see
    /// [`Store::report_items_page`]).
    fn into_item(self) -> Result<Item> {
        Ok(Item {
            id: self.id,
            round: self.round_code,
            parent_id: self.parent_id,
            number: self.number,
            title: self.title,
            lead_unit: self.lead_unit,
            co_units: Vec::new(),
            leader: self.leader,
            deadline: stored_deadline(self.deadline.as_deref())?,
            state: parse_enum(&self.state, "state")?,
            version: 0,
            deadline_version: 0,
            send_backs: self.send_backs,
            reassignments: 0,
            cadence: match &self.cadence {
                Some(c) => Some(parse_enum(c, "cadence")?),
                None => None,
            },
            pending_extension: None,
            merged_into: None,
            progress_percent: None,
            last_progress: self.last_progress,
            created_at: self.created_at,
            assigned_at: self.assigned_at,
            acknowledged_at: self.acknowledged_at,
            last_progress_at: self.last_progress_at,
            submitted_at: self.submitted_at,
            closed_at: self.closed_at,
        })
    }
}

/// The columns of [`ReportItemRow`], in its order, for SQLite's JSON pages.
const ITEM_COLUMNS: &str = "id, round_code, parent_id, number, title, lead_unit, leader, \
     deadline, state, send_backs, cadence, last_progress, created_at, assigned_at, \
     acknowledged_at, last_progress_at, submitted_at, closed_at";

/// An element of a SQLite JSON page of transitions: item, kind, time.
#[derive(serde::Deserialize)]
struct TransitionRow(
    ItemId,
    String,
    #[serde(deserialize_with = "stored_time")] DateTime<Utc>,
);

/// A JSON page's time, as [`sqlite_time`] reads it.
fn stored_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<DateTime<Utc>, D::Error> {
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    sqlite_time(&v).map_err(serde::de::Error::custom)
}

/// [`stored_time`], or none for a JSON null.
fn stored_time_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<DateTime<Utc>>, D::Error> {
    match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        v => sqlite_time(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A time as SQLite holds it, read as sqlx reads a `DateTime<Utc>` column: RFC 3339 text (what
/// the store writes), the other text forms SQLite's date functions use, or Unix seconds.
pub(crate) fn sqlite_time(v: &serde_json::Value) -> Result<DateTime<Utc>> {
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    let parsed = match v {
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| {
                FORMATS.iter().find_map(|f| {
                    DateTime::parse_from_str(s, f)
                        .map(|t| t.with_timezone(&Utc))
                        .or_else(|_| NaiveDateTime::parse_from_str(s, f).map(|t| t.and_utc()))
                        .ok()
                })
            }),
        serde_json::Value::Number(n) => n.as_i64().and_then(|n| Utc.timestamp_opt(n, 0).single()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        sea_orm::DbErr::Custom(format!(
            "a stored time `{v}` is not a time the store writes"
        ))
        .into()
    })
}

/// One stored event, as the report replays it.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub item_id: ItemId,
    pub seq: i64,
    pub kind: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// The events that open or end an item's assignment; what a burn-down needs.
const TRANSITION_KINDS: [&str; 5] = ["assigned", "reopened", "closed", "finished", "cancelled"];

impl Store {
    /// The items of `round_code` (every round when `None`) with an id above `after`, by id, at
    /// most `limit` of them, for the report. A page is read with the `(round_code, id)` index,
    /// so no page sorts the round.
    ///
    /// Only the columns the report uses are read: co-units, the pending extension, the merge,
    /// the progress percentage and the version counters are left empty or zero. Not for a
    /// command that changes the item.
    pub async fn report_items_page(
        &self,
        round_code: Option<&str>,
        after: ItemId,
        limit: u64,
    ) -> Result<Vec<Item>> {
        if self.backend() == DbBackend::Sqlite {
            return self
                .report_items_page_sqlite(round_code, after, limit)
                .await;
        }
        let mut q = item::Entity::find();
        if let Some(r) = round_code {
            q = q.filter(item::Column::RoundCode.eq(r));
        }
        let page = q
            .filter(item::Column::Id.gt(after))
            .order_by_asc(item::Column::Id)
            .limit(limit)
            .into_partial_model::<ReportItemRow>()
            .all(self.db())
            .await?;
        page.into_iter().map(ReportItemRow::into_item).collect()
    }

    /// The events of the items of `round_code` (all rounds when `None`) whose id is in
    /// `(after, upto]` that open or end an item's assignment (assigned, reopened, closed,
    /// finished, cancelled): (item, kind, time), by item and sequence. Asked for the id range of
    /// one page of [`Store::report_items_page`], it gives that page's transitions.
    pub async fn round_transitions_between(
        &self,
        round_code: Option<&str>,
        after: ItemId,
        upto: ItemId,
    ) -> Result<Vec<(ItemId, String, DateTime<Utc>)>> {
        if self.backend() == DbBackend::Sqlite {
            return self
                .round_transitions_between_sqlite(round_code, after, upto)
                .await;
        }
        let mut q = event::Entity::find()
            .filter(event::Column::ItemId.gt(after))
            .filter(event::Column::ItemId.lte(upto));
        if let Some(r) = round_code {
            // The round's items of this range only: a subquery over the whole round would be
            // built again for every page.
            q = q.filter(
                event::Column::ItemId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(item::Column::Id)
                        .from(item::Entity)
                        .and_where(item::Column::RoundCode.eq(r))
                        .and_where(item::Column::Id.gt(after))
                        .and_where(item::Column::Id.lte(upto))
                        .to_owned(),
                ),
            );
        }
        Ok(q.filter(event::Column::Kind.is_in(TRANSITION_KINDS))
            .select_only()
            .column(event::Column::ItemId)
            .column(event::Column::Kind)
            .column(event::Column::At)
            .order_by_asc(event::Column::ItemId)
            .order_by_asc(event::Column::Seq)
            .into_tuple()
            .all(self.db())
            .await?)
    }

    /// [`Store::report_items_page`] on SQLite: the page as one row, which SQLite builds as a
    /// JSON array of the rows (`json_group_array`). sqlx hands every row from SQLite's worker
    /// thread to the caller through a channel and wakes the caller for every few rows; on the
    /// benchmark machine those wake-ups cost more CPU than reading the rows (a quarter of the
    /// report's samples were in the channel's send). One row per page instead of 2,000.
    async fn report_items_page_sqlite(
        &self,
        round_code: Option<&str>,
        after: ItemId,
        limit: u64,
    ) -> Result<Vec<Item>> {
        let mut values: Vec<sea_orm::Value> = Vec::new();
        let round = match round_code {
            Some(r) => {
                values.push(r.into());
                "round_code = ? AND "
            }
            None => "",
        };
        values.push(after.into());
        values.push((limit as i64).into());
        // The aggregate's own ORDER BY (SQLite 3.44; sqlx bundles 3.51): the subquery's order
        // is not by definition the aggregate's.
        let sql = format!(
            "SELECT json_group_array(json_array({ITEM_COLUMNS}) ORDER BY id) AS page FROM \
             (SELECT {ITEM_COLUMNS} FROM items WHERE {round}id > ? ORDER BY id LIMIT ?)"
        );
        let rows: Vec<ReportItemRow> = self.json_page(sql, values).await?;
        rows.into_iter().map(ReportItemRow::into_item).collect()
    }

    /// [`Store::round_transitions_between`] on SQLite, as one JSON row (see
    /// [`Store::report_items_page_sqlite`]).
    async fn round_transitions_between_sqlite(
        &self,
        round_code: Option<&str>,
        after: ItemId,
        upto: ItemId,
    ) -> Result<Vec<(ItemId, String, DateTime<Utc>)>> {
        let mut values: Vec<sea_orm::Value> = vec![after.into(), upto.into()];
        let round = match round_code {
            Some(r) => {
                values.extend([r.into(), after.into(), upto.into()]);
                " AND item_id IN (SELECT id FROM items WHERE round_code = ? AND id > ? AND id <= ?)"
            }
            None => "",
        };
        let kinds = TRANSITION_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT json_group_array(json_array(item_id, kind, at) ORDER BY item_id, seq) AS page \
             FROM (SELECT item_id, kind, at, seq FROM events WHERE item_id > ? AND item_id <= ?\
             {round} AND kind IN ({kinds}))"
        );
        let rows: Vec<TransitionRow> = self.json_page(sql, values).await?;
        Ok(rows
            .into_iter()
            .map(|TransitionRow(id, kind, at)| (id, kind, at))
            .collect())
    }

    /// Runs a query whose one row has a JSON text column `page` and parses it.
    async fn json_page<T: serde::de::DeserializeOwned>(
        &self,
        sql: String,
        values: Vec<sea_orm::Value>,
    ) -> Result<Vec<T>> {
        let row = self
            .db()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        let text: String = match row {
            Some(r) => r.try_get("", "page")?,
            None => return Ok(Vec::new()),
        };
        serde_json::from_str(&text).map_err(|e| {
            sea_orm::DbErr::Custom(format!("cannot read a report page from SQLite: {e}")).into()
        })
    }

    /// Every event of the items of `round` (all rounds when `None`), by item and sequence.
    pub async fn round_events(&self, round_code: Option<&str>) -> Result<Vec<EventRow>> {
        let rows = Self::events_of_round(round_code)
            .order_by_asc(event::Column::ItemId)
            .order_by_asc(event::Column::Seq)
            .all(self.db())
            .await?;
        Ok(rows
            .into_iter()
            .map(|e| EventRow {
                item_id: e.item_id,
                seq: e.seq,
                payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
                kind: e.kind,
                actor: e.actor,
                at: e.at,
            })
            .collect())
    }

    /// The events of a round's items: a subquery, not a list of ids (a round of 100,000 items
    /// is over SQLite's limit on bound values).
    fn events_of_round(round_code: Option<&str>) -> sea_orm::Select<event::Entity> {
        let q = event::Entity::find();
        match round_code {
            Some(r) => q.filter(
                event::Column::ItemId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(item::Column::Id)
                        .from(item::Entity)
                        .and_where(item::Column::RoundCode.eq(r))
                        .to_owned(),
                ),
            ),
            None => q,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A page's time column, read as the page reads it.
    #[derive(serde::Deserialize, Debug)]
    struct Required(#[serde(deserialize_with = "stored_time")] DateTime<Utc>);

    #[derive(serde::Deserialize, Debug)]
    struct Optional(#[serde(deserialize_with = "stored_time_opt")] Option<DateTime<Utc>>);

    #[test]
    fn stored_times_read_as_sqlx_reads_them() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap();
        let read = |v: &str| serde_json::from_str::<Required>(v).map(|r| r.0);
        for v in [
            json!("2026-03-02T01:00:00+00:00"),
            json!("2026-03-02T09:00:00+08:00"),
            json!("2026-03-02 01:00:00"),
            json!("2026-03-02 01:00"),
            json!("2026-03-02T01:00:00.000Z"),
            json!(t.timestamp()),
        ] {
            assert_eq!(read(&v.to_string()).expect("a time"), t, "{v}");
            let opt = serde_json::from_str::<Optional>(&v.to_string()).expect("a time");
            assert_eq!(opt.0, Some(t), "{v}");
        }
        let e = read(r#""2 March""#).expect_err("not a time");
        assert!(e.to_string().contains("2 March"), "{e}");
        assert!(read("null").is_err(), "a required time may not be missing");
        assert!(read("true").is_err());
        assert!(read(&u64::MAX.to_string()).is_err());
        let none = serde_json::from_str::<Optional>("null").expect("none");
        assert_eq!(none.0, None);
    }
}
