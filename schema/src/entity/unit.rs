use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "units")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub code: String,
    pub name: String,
    pub parent_code: Option<String>,
    /// JSON array of addresses.
    pub emails: String,
    pub leader: Option<String>,
    pub leader_email: Option<String>,
    /// JSON array of other names the unit goes by in documents.
    pub aliases: String,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
