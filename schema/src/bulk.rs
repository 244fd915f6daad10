//! Many changes in ONE transaction, for imports: create units and items, assign them and walk
//! them through their life, and either commit everything or write nothing.
//!
//! Each step reuses the single-command path of the store (`decide` + `write_decided`, and
//! `insert_created`), so an imported item has exactly the rows and hash-chained events an item
//! made by hand has. Reads go through the transaction, so a step sees what earlier steps wrote.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use rectify_engine::{Actor, Command, Ctx, Item, ItemId, NewItem, text};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, NotSet, QueryFilter,
    QueryOrder, Set,
};

use crate::entity::{event, item, round, unit};
use crate::error::StoreError;
use crate::store::{
    Result, Store, Unit, check_units_on, item_model_on, json_list, now_for_store, to_item,
    unit_from,
};

/// An open import transaction. Dropping it without [`Bulk::commit`] writes nothing.
pub struct Bulk<'a> {
    store: &'a Store,
    txn: DatabaseTransaction,
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

impl Store {
    /// Opens one transaction for a bulk change.
    pub async fn bulk(&self) -> Result<Bulk<'_>> {
        Ok(Bulk {
            store: self,
            txn: self.begin_write().await?,
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

    /// Every event of the items of `round` (all rounds when `None`), by item and sequence.
    pub async fn round_events(&self, round_code: Option<&str>) -> Result<Vec<EventRow>> {
        let mut ids: Option<Vec<i64>> = None;
        if let Some(r) = round_code {
            ids = Some(
                item::Entity::find()
                    .filter(item::Column::RoundCode.eq(r))
                    .all(self.db())
                    .await?
                    .into_iter()
                    .map(|m| m.id)
                    .collect(),
            );
        }
        let mut q = event::Entity::find();
        if let Some(ids) = &ids {
            q = q.filter(event::Column::ItemId.is_in(ids.clone()));
        }
        let rows = q
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

    /// Creates an item and, with `assign`, assigns it: the same checks and events as
    /// `Store::create_item`. `today` is the date the assignment's deadline is checked against;
    /// an import of an existing ledger passes the deadline itself when it has already passed
    /// (the assignment was made earlier, the ledger only records it).
    pub async fn create(
        &self,
        new: &NewItem,
        assign: Option<&Command>,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Item> {
        let now = now_for_store(now);
        let r = round::Entity::find()
            .filter(round::Column::Code.eq(new.round.as_str()))
            .one(&self.txn)
            .await?;
        if r.is_none() {
            return Err(StoreError::NotFound {
                what: "round",
                key: new.round.clone(),
            });
        }
        if let Some(p) = new.parent_id {
            let parent = item_model_on(&self.txn, p).await.map_err(|e| match e {
                StoreError::NotFound { key, .. } => StoreError::NotFound {
                    what: "parent item",
                    key,
                },
                other => other,
            })?;
            if parent.round_code != new.round {
                return Err(StoreError::invalid(
                    format!(
                        "上级事项 {p} 属于轮次 {},与 {} 不一致",
                        parent.round_code, new.round
                    ),
                    format!(
                        "parent item {p} belongs to round {}, not {}",
                        parent.round_code, new.round
                    ),
                ));
            }
        }
        check_units_on(&self.txn, new.lead_unit.iter().chain(new.co_units.iter())).await?;
        if let Some(Command::Assign {
            lead_unit,
            co_units,
            ..
        }) = assign
        {
            check_units_on(&self.txn, std::iter::once(lead_unit).chain(co_units.iter())).await?;
        }
        let ctx = Ctx {
            now,
            today,
            open_children: 0,
        };
        let created = rectify_engine::create(new, 0, actor, &ctx)?;
        self.store
            .insert_created(&self.txn, created, assign, actor, &ctx)
            .await
    }

    /// Applies one command to one item inside the transaction, with the same logic as
    /// `Store::apply` (the engine decides, the version check guards the row).
    pub async fn apply(
        &self,
        id: ItemId,
        command: &Command,
        actor: &Actor,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Item> {
        let now = now_for_store(now);
        let model = item_model_on(&self.txn, id).await?;
        let (current, outcome) = self
            .store
            .decide(&self.txn, &model, command, actor, now, today)
            .await?;
        self.store
            .write_decided(
                &self.txn, &model, &current, &outcome, command, actor, now, today,
            )
            .await?;
        Ok(outcome.item)
    }

    /// An item as the transaction sees it.
    pub async fn get_item(&self, id: ItemId) -> Result<Item> {
        to_item(&item_model_on(&self.txn, id).await?)
    }
}
