use sea_orm::entity::prelude::*;

/// Append-only: rows are inserted, never updated or deleted by the tool.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub item_id: i64,
    pub seq: i64,
    pub kind: String,
    pub actor: String,
    pub at: DateTimeUtc,
    /// Canonical JSON (keys sorted).
    pub payload: String,
    /// JSON array of the sha256 of each evidence file.
    pub evidence: String,
    pub prev_hash: String,
    pub hash: String,
}

impl ActiveModelBehavior for ActiveModel {}
