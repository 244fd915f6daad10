use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "extensions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub item_id: i64,
    pub from_deadline: String,
    pub requested_to: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    /// `pending`, `approved` or `refused`.
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    pub note: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
