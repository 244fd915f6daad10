use sea_orm::entity::prelude::*;

/// One email to send. States: pending → sending (leased) → sent; a transient failure goes back to
/// pending with a later `next_attempt_at`; a permanent one is `failed`. The bodies are in
/// `outbox_bodies`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Stable, derived from the content: a duplicate after a crash carries the same id.
    #[sea_orm(unique)]
    pub message_id: String,
    /// `digest`, `notice`, `daily_digest`, `weekly_dispatch`, `monthly_notice`, `failure_report`.
    pub kind: String,
    pub unit_code: Option<String>,
    /// JSON arrays of addresses.
    pub to_addrs: String,
    pub cc_addrs: String,
    pub subject: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
