use sea_orm::entity::prelude::*;

/// The bodies of an outbox message, written once when it is queued. Kept apart from the
/// `outbox` row, whose state, lease and attempts change several times per message: in one row
/// every such change rewrote the whole message (tens of KB of overflow pages on SQLite).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_bodies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub outbox_id: i64,
    pub body_text: String,
    pub body_html: String,
}

impl ActiveModelBehavior for ActiveModel {}
