use sea_orm::entity::prelude::*;

/// The last fire time claimed for each periodic job. A fire is claimed with one conditional
/// UPDATE (`… WHERE last_fire < new`), so any number of instances fire it once.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub last_fire: DateTimeUtc,
    pub claimed_by: Option<String>,
    /// A claimed shard of a job is being worked on until then (NULL: idle).
    pub busy_until: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
