//! The scheduler's queries on reminder rows use their indexes (migration 8) on both engines: the
//! due rows by date and the queued rows by message (partial indexes), an item's rows by the
//! unique key's item_id prefix. Checked on the plans the engines
//! make for the very statements the store runs (`EXPLAIN QUERY PLAN` on SQLite; `EXPLAIN` on
//! PostgreSQL with sequential scans priced out, so a usable index is always taken and an
//! unusable one shows as a sequential scan).

use chrono::NaiveDate;
use rectify_engine::remind::{Planned, ReminderKind};
use rectify_schema::reminders::{
    cancel_unplanned, carried_select, due_select, queued_messages_select,
};
use rectify_schema::sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};
use rectify_schema::testing::TestDb;
use rectify_schema::{Store, UnitSet};

async fn plan(store: &Store, q: &Statement) -> String {
    use rectify_schema::sea_orm::TransactionTrait;
    let b = store.backend();
    // One connection for the setting and the plan.
    let txn = store.db().begin().await.expect("begin");
    let prefix = match b {
        DbBackend::Postgres => {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .expect("set");
            "EXPLAIN "
        }
        _ => "EXPLAIN QUERY PLAN ",
    };
    let rows = txn
        .query_all_raw(Statement {
            sql: format!("{prefix}{}", q.sql),
            values: q.values.clone(),
            db_backend: b,
        })
        .await
        .unwrap_or_else(|e| panic!("explain {}: {e}", q.sql));
    txn.rollback().await.expect("rollback");
    let column = match b {
        DbBackend::Postgres => "QUERY PLAN",
        _ => "detail",
    };
    rows.iter()
        .map(|r| r.try_get::<String>("", column).expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn reminder_queries_use_the_partial_indexes() {
    for db in TestDb::all().await {
        let b = db.name;
        let store = db.store().await;
        let backend = store.backend();
        // Enough rows, with statistics, for the planners to choose between indexes by cost.
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let (admin, _) = rectify_schema::testing::assigned_item(&store, now).await;
        for n in 2..=200 {
            rectify_schema::testing::add_item(&store, &admin, &n.to_string(), now).await;
        }
        store.execute_unprepared("ANALYZE").await.expect("analyze");
        let today = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
        let planned = vec![Planned {
            kind: ReminderKind::Before,
            step: 1,
            deadline_version: 1,
            send_on: today,
        }];
        let shard = UnitSet {
            units: vec!["U0001".into(), "U0002".into()],
            or_outside: Some(vec!["U0001".into(), "U0002".into(), "U0003".into()]),
        };
        for (what, q, index) in [
            (
                "due rows",
                due_select(today, 200_000, None).build(backend),
                "idx_reminders_pending",
            ),
            (
                "a shard's due rows",
                due_select(today, 200_000, Some(&shard)).build(backend),
                "idx_reminders_pending",
            ),
            (
                "messages with queued rows",
                queued_messages_select().build(backend),
                "idx_reminders_in_outbox",
            ),
            (
                "a batch's queued rows",
                carried_select(&[1, 2, 3]).build(backend),
                "idx_reminders_in_outbox",
            ),
            (
                "an item's pending rows a new plan cancels",
                cancel_unplanned(7, &planned, now).build(backend),
                "uq_reminders_key",
            ),
        ] {
            let p = plan(&store, &q).await;
            assert!(
                p.contains(index),
                "[{b}] {what}: expected {index}:\n{}\n{p}",
                q.sql
            );
            assert!(
                !p.contains("SCAN reminders\n")
                    && !p.ends_with("SCAN reminders")
                    && !p.contains("Seq Scan on reminders"),
                "[{b}] {what} scans the table:\n{p}"
            );
            if what == "a shard's due rows" && backend == DbBackend::Sqlite {
                assert!(
                    p.contains("SEARCH items") && p.contains("USING INTEGER PRIMARY KEY"),
                    "[{b}] {what}:\n{p}"
                );
            }
        }
        store.close().await.expect("close");
        db.cleanup().await;
    }
}
