//! Migrations: one list, run unchanged on SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M20261123_000001Init),
            Box::new(M20261123_000002Reminders),
            Box::new(M20261123_000003PlanKey),
            Box::new(M20261123_000004ReminderItemIndex),
            Box::new(M20261123_000005LeanerIndexes),
            Box::new(M20261201_000006OutboxBodies),
            Box::new(M20261201_000007JobShards),
            Box::new(M20261201_000008PartialReminderIndexes),
        ]
    }
}

#[allow(non_camel_case_types)]
pub struct M20261123_000001Init;

impl MigrationName for M20261123_000001Init {
    fn name(&self) -> &str {
        "m20261123_000001_init"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261123_000001Init {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("units")
                .col(big_pk_auto("id"))
                .col(string_uniq("code"))
                .col(string("name"))
                .col(string_null("parent_code"))
                .col(text("emails"))
                .col(string_null("leader"))
                .col(string_null("leader_email"))
                .col(text("aliases"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("operators")
                .col(big_pk_auto("id"))
                .col(string_uniq("name"))
                .col(string("role"))
                .col(string_null("unit_code"))
                .col(string_null("email"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("rounds")
                .col(big_pk_auto("id"))
                .col(string_uniq("code"))
                .col(text("title"))
                .col(string("source"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("items")
                .col(big_pk_auto("id"))
                .col(string("round_code"))
                .col(big_integer_null("parent_id"))
                .col(string("number"))
                .col(text("title"))
                .col(string_null("lead_unit"))
                .col(text("co_units"))
                .col(string_null("leader"))
                .col(string_null("deadline"))
                .col(string("state"))
                .col(big_integer("version"))
                .col(big_integer("deadline_version"))
                .col(big_integer("send_backs"))
                .col(big_integer("reassignments"))
                .col(string_null("cadence"))
                .col(string_null("ext_to"))
                .col(text_null("ext_reason"))
                .col(string_null("ext_requested_by"))
                .col(big_integer_null("merged_into"))
                .col(big_integer_null("progress_percent"))
                .col(text_null("last_progress"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("assigned_at"))
                .col(timestamp_with_time_zone_null("acknowledged_at"))
                .col(timestamp_with_time_zone_null("last_progress_at"))
                .col(timestamp_with_time_zone_null("submitted_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .col(big_integer("head_seq"))
                .col(string("head_hash"))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("idx_items_round", &["round_code", "number"][..]),
            ("idx_items_parent", &["parent_id"][..]),
            ("idx_items_unit_state", &["lead_unit", "state"][..]),
            ("idx_items_state_deadline", &["state", "deadline"][..]),
        ] {
            let mut idx = Index::create();
            idx.name(name).table("items");
            for c in cols {
                idx.col(*c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table("events")
                .col(big_pk_auto("id"))
                .col(big_integer("item_id"))
                .col(big_integer("seq"))
                .col(string("kind"))
                .col(string("actor"))
                .col(timestamp_with_time_zone("at"))
                .col(text("payload"))
                .col(text("evidence"))
                .col(string("prev_hash"))
                .col(string("hash"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_events_item_seq")
                .table("events")
                .col("item_id")
                .col("seq")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("evidence")
                .col(big_pk_auto("id"))
                .col(big_integer("item_id"))
                .col(big_integer("event_id"))
                .col(string("sha256"))
                .col(big_integer("size"))
                .col(text("original_name"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_evidence_item")
                .table("evidence")
                .col("item_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("extensions")
                .col(big_pk_auto("id"))
                .col(big_integer("item_id"))
                .col(string("from_deadline"))
                .col(string("requested_to"))
                .col(text("reason"))
                .col(string("requested_by"))
                .col(timestamp_with_time_zone("requested_at"))
                .col(string("state"))
                .col(string_null("decided_by"))
                .col(timestamp_with_time_zone_null("decided_at"))
                .col(text_null("note"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_extensions_item")
                .table("extensions")
                .col("item_id")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[allow(non_camel_case_types)]
pub struct M20261123_000002Reminders;

impl MigrationName for M20261123_000002Reminders {
    fn name(&self) -> &str {
        "m20261123_000002_reminders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261123_000002Reminders {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("reminders")
                .col(big_pk_auto("id"))
                .col(big_integer("item_id"))
                .col(string("kind"))
                .col(big_integer("step"))
                .col(big_integer("deadline_version"))
                .col(string("send_on"))
                .col(string("state"))
                .col(text_null("reason"))
                .col(big_integer_null("outbox_id"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_reminders_key")
                .table("reminders")
                .col("item_id")
                .col("kind")
                .col("step")
                .col("deadline_version")
                .unique()
                .to_owned(),
        )
        .await?;
        // The dispatcher asks only for rows due now: a pass costs O(due), not O(items).
        m.create_index(
            Index::create()
                .name("idx_reminders_due")
                .table("reminders")
                .col("state")
                .col("send_on")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_reminders_outbox")
                .table("reminders")
                .col("outbox_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("outbox")
                .col(big_pk_auto("id"))
                .col(string_uniq("message_id"))
                .col(string("kind"))
                .col(string_null("unit_code"))
                .col(text("to_addrs"))
                .col(text("cc_addrs"))
                .col(text("subject"))
                .col(text("body_text"))
                .col(text("body_html"))
                .col(string("state"))
                .col(big_integer("attempts"))
                .col(timestamp_with_time_zone("next_attempt_at"))
                .col(timestamp_with_time_zone_null("lease_until"))
                .col(string_null("lease_token"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("sent_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_ready")
                .table("outbox")
                .col("state")
                .col("next_attempt_at")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("jobs")
                .col(string("name").primary_key())
                .col(timestamp_with_time_zone("last_fire"))
                .col(string_null("claimed_by"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[allow(non_camel_case_types)]
pub struct M20261123_000003PlanKey;

impl MigrationName for M20261123_000003PlanKey {
    fn name(&self) -> &str {
        "m20261123_000003_plan_key"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261123_000003PlanKey {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A digest of the item's current reminder plan: a command that leaves the plan as it was
        // touches no reminder row.
        m.alter_table(
            Table::alter()
                .table("items")
                .add_column(string_null("plan_key"))
                .to_owned(),
        )
        .await
    }
}

#[allow(non_camel_case_types)]
pub struct M20261123_000004ReminderItemIndex;

impl MigrationName for M20261123_000004ReminderItemIndex {
    fn name(&self) -> &str {
        "m20261123_000004_reminder_item_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261123_000004ReminderItemIndex {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Re-planning one item cancels its pending rows (`item_id = ? AND state = 'pending'`).
        // With only the unique key (item_id, …) and the due index (state, send_on), SQLite's
        // planner takes the due index and walks every pending reminder of every item: each
        // command cost O(pending reminders), an import of n rows O(n²). Two equality columns
        // make this index the planner's choice on both engines.
        m.create_index(
            Index::create()
                .name("idx_reminders_item_state")
                .table("reminders")
                .col("item_id")
                .col("state")
                .to_owned(),
        )
        .await
    }
}

#[allow(non_camel_case_types)]
pub struct M20261123_000005LeanerIndexes;

impl MigrationName for M20261123_000005LeanerIndexes {
    fn name(&self) -> &str {
        "m20261123_000005_leaner_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261123_000005LeanerIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        // A reminder has an outbox row only once queued: most rows (all planned ones) had a NULL
        // entry in this index, written with every plan. Lookups are `outbox_id = ?` / `IN (…)`,
        // which both engines match to a partial index on non-NULL values.
        db.execute_unprepared(
            "CREATE INDEX idx_reminders_queued ON reminders (outbox_id) WHERE outbox_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_reminders_outbox")
            .await?;
        // A round's items in id order (reports read them in pages by id): without it each page
        // re-sorted the whole round.
        db.execute_unprepared("CREATE INDEX idx_items_round_id ON items (round_code, id)")
            .await?;
        Ok(())
    }
}

#[allow(non_camel_case_types)]
pub struct M20261201_000006OutboxBodies;

impl MigrationName for M20261201_000006OutboxBodies {
    fn name(&self) -> &str {
        "m20261201_000006_outbox_bodies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261201_000006OutboxBodies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A message's bodies move to a table of their own: the outbox row's state, lease and
        // attempts change several times per message (claim, sent, retry), and each change
        // rewrote the whole row with its bodies (on SQLite, every overflow page of a 25-60 KB
        // digest). Written once, read once per attempt.
        m.create_table(
            Table::create()
                .table("outbox_bodies")
                .col(big_integer("outbox_id").primary_key())
                .col(text("body_text"))
                .col(text("body_html"))
                .foreign_key(
                    ForeignKey::create()
                        .from("outbox_bodies", "outbox_id")
                        .to("outbox", "id"),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO outbox_bodies (outbox_id, body_text, body_html) \
             SELECT id, body_text, body_html FROM outbox",
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("outbox")
                .drop_column("body_text")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("outbox")
                .drop_column("body_html")
                .to_owned(),
        )
        .await
    }
}

#[allow(non_camel_case_types)]
pub struct M20261201_000007JobShards;

impl MigrationName for M20261201_000007JobShards {
    fn name(&self) -> &str {
        "m20261201_000007_job_shards"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261201_000007JobShards {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The reminder pass is split into shards of lead units, each claimed per fire like a
        // job (`remind/3`). A claimed shard stays busy until its planner finishes or this lease
        // runs out, so the next fire does not plan the same units again while they are still
        // being planned; a dead planner's shard is free again once its lease has run out.
        m.alter_table(
            Table::alter()
                .table("jobs")
                .add_column(timestamp_with_time_zone_null("busy_until"))
                .to_owned(),
        )
        .await
    }
}

#[allow(non_camel_case_types)]
pub struct M20261201_000008PartialReminderIndexes;

impl MigrationName for M20261201_000008PartialReminderIndexes {
    fn name(&self) -> &str {
        "m20261201_000008_partial_reminder_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M20261201_000008PartialReminderIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The due index held every reminder ever planned (sent, skipped, cancelled) and the
        // queued index every reminder ever queued, though the scheduler reads only pending rows
        // by date and queued rows by message. Each state change of a row (pending → queued →
        // sent) wrote a new entry into both. Partial indexes hold only the rows that are read:
        // a row leaves them as it moves on, and a row planned for later enters one index, not
        // three. Queries state their predicate literally (`reminders::state_is`).
        //
        // The (item_id, state) index of migration 4 goes too: it was there because SQLite's
        // planner took the (state, send_on) index for `item_id = ? AND state = ?`; with that
        // index gone both engines take the unique key's item_id prefix
        // (`schema/tests/query_plans.rs`), and every reminder row written or changed had an
        // entry to write in it.
        let db = m.get_connection();
        for sql in [
            "CREATE INDEX idx_reminders_pending ON reminders (send_on, id) WHERE state = 'pending'",
            "DROP INDEX idx_reminders_due",
            "CREATE INDEX idx_reminders_in_outbox ON reminders (outbox_id) WHERE state = 'queued'",
            "DROP INDEX idx_reminders_queued",
            "DROP INDEX idx_reminders_item_state",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
