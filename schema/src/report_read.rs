//! What `rectify report` reads: a round's items page by page, the events that open or end an
//! assignment (for the burn-down), and the whole record when the past is replayed.
//!
//! A round can hold over 100,000 items. Reading it in one query holds every row in the driver's
//! form (each value a separate allocation) at once, so the items and the transitions are read in
//! pages of item ids and the caller folds each page into its figures before asking for the next.

use chrono::{DateTime, Utc};
use rectify_engine::{Item, ItemId};
use sea_orm::{ColumnTrait, DerivePartialModel, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{event, item};
use crate::store::{Result, Store, parse_enum, stored_deadline};

/// The columns of an item the report uses. Decoding a row costs per column (each value is
/// copied out of SQLite and converted), and the report needs about half of them.
#[derive(DerivePartialModel)]
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
    created_at: DateTime<Utc>,
    assigned_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    last_progress_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
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
