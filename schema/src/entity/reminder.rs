use sea_orm::entity::prelude::*;

/// A planned reminder. Unique on (item_id, kind, step, deadline_version), so re-planning never
/// duplicates. States: pending → queued (in an outbox message) → sent; or skipped / cancelled.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reminders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub item_id: i64,
    pub kind: String,
    pub step: i64,
    pub deadline_version: i64,
    /// Local date `YYYY-MM-DD` it is to go out on.
    pub send_on: String,
    pub state: String,
    pub reason: Option<String>,
    pub outbox_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
