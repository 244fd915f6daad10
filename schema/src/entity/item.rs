use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub round_code: String,
    pub parent_id: Option<i64>,
    pub number: String,
    pub title: String,
    pub lead_unit: Option<String>,
    /// JSON array of unit codes.
    pub co_units: String,
    pub leader: Option<String>,
    /// `YYYY-MM-DD` or `long_term`.
    pub deadline: Option<String>,
    pub state: String,
    pub version: i64,
    pub deadline_version: i64,
    pub send_backs: i64,
    pub reassignments: i64,
    pub cadence: Option<String>,
    pub ext_to: Option<String>,
    pub ext_reason: Option<String>,
    pub ext_requested_by: Option<String>,
    pub merged_into: Option<i64>,
    pub progress_percent: Option<i64>,
    pub last_progress: Option<String>,
    pub created_at: DateTimeUtc,
    pub assigned_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub last_progress_at: Option<DateTimeUtc>,
    pub submitted_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    /// Sequence number and hash of the item's newest event: the head of its chain.
    pub head_seq: i64,
    pub head_hash: String,
    /// Digest of the reminder plan last written for the item.
    pub plan_key: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
