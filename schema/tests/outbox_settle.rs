//! A sent message's reminder rows follow it in a batch (`settle_sent`), and what a process
//! killed between marking a message sent and settling its reminders left behind is settled by
//! the first delivery that starts a lease later (`settle_left_behind`). The bodies of messages queued before migration 6 move to
//! `outbox_bodies`. On SQLite and (when `RECTIFY_TEST_DATABASE_URL` is set) PostgreSQL.

use chrono::{DateTime, TimeZone, Utc};
use rectify_schema::migration::Migrator;
use rectify_schema::sea_orm::{ConnectionTrait, DbBackend, Statement};
use rectify_schema::testing::TestDb;
use rectify_schema::{NewMessage, Store};
use sea_orm_migration::MigratorTrait;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

async fn states(store: &Store, item: i64) -> Vec<String> {
    let rows = store
        .db()
        .query_all_raw(Statement::from_string(
            store.backend(),
            format!("SELECT state FROM reminders WHERE item_id = {item} ORDER BY id"),
        ))
        .await
        .expect("reminder states");
    rows.iter()
        .map(|r| r.try_get::<String>("", "state").expect("state"))
        .collect()
}

/// A unit, a round and one assigned item with its reminder rows planned; the item's id.
async fn item_with_reminders(store: &Store) -> i64 {
    rectify_schema::testing::assigned_item(store, now()).await.1
}

#[tokio::test]
async fn reminders_of_a_sent_message_left_queued_are_settled_once() {
    for db in TestDb::all().await {
        let b = db.name;
        let store = db.store().await;
        let item = item_with_reminders(&store).await;
        let before = states(&store, item).await;
        assert!(!before.is_empty(), "[{b}] the item has reminder rows");
        let ids: Vec<i64> = store
            .db()
            .query_all_raw(Statement::from_string(
                store.backend(),
                format!("SELECT id FROM reminders WHERE item_id = {item} ORDER BY id"),
            ))
            .await
            .expect("ids")
            .iter()
            .map(|r| r.try_get::<i64>("", "id").expect("id"))
            .collect();
        let msg = NewMessage {
            message_id: "<settle@rectify.local>".into(),
            kind: "digest".into(),
            unit_code: Some("FGJ".into()),
            to: vec!["fgj@example.gov.cn".into()],
            cc: vec![],
            subject: "【整改提醒】区发改局".into(),
            body_text: "正文".into(),
            body_html: "<p>正文</p>".into(),
        };
        let outbox_id = store.queue_message(&msg, &ids, now()).await.expect("queue");
        assert!(
            states(&store, item).await.iter().all(|s| s == "queued"),
            "[{b}]"
        );
        let bodies = store.message_bodies(&[outbox_id]).await.expect("bodies");
        assert_eq!(
            bodies.get(&outbox_id),
            Some(&("正文".to_string(), "<p>正文</p>".to_string())),
            "[{b}] the bodies are stored once, apart from the outbox row"
        );
        let claimed = store
            .claim_outbox(now(), now() + chrono::Duration::seconds(60), "t1", 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "[{b}]");
        assert!(store.mark_sent(outbox_id, "t1", now()).await.expect("sent"));
        // The process dies here: the message is sent, its reminders still say queued.
        assert!(
            states(&store, item).await.iter().all(|s| s == "queued"),
            "[{b}]"
        );
        // A settle for other messages does not touch them.
        assert_eq!(
            store
                .settle_sent(&[outbox_id + 1], now())
                .await
                .expect("settle"),
            0,
            "[{b}]"
        );
        // Another instance's delivery starting now leaves them to the delivery that sent them
        // a moment ago; once that is longer ago than the cutoff, it settles them.
        assert_eq!(
            store
                .settle_left_behind(now() - chrono::Duration::minutes(1), now())
                .await
                .expect("settle"),
            0,
            "[{b}] just sent: left to its own delivery"
        );
        let n = store
            .settle_left_behind(now(), now())
            .await
            .expect("settle");
        assert_eq!(n as usize, ids.len(), "[{b}] left behind: settled");
        assert!(
            states(&store, item).await.iter().all(|s| s == "sent"),
            "[{b}]"
        );
        assert_eq!(
            store
                .settle_left_behind(now(), now())
                .await
                .expect("settle"),
            0,
            "[{b}] settling twice changes nothing"
        );
        drop(store);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn migration_6_moves_queued_bodies_to_their_own_table() {
    for db in TestDb::all().await {
        let b = db.name;
        let store = Store::connect(&db.settings()).await.expect("connect");
        Migrator::up(store.db(), Some(5))
            .await
            .expect("migrations 1-5");
        let ts = if store.backend() == DbBackend::Postgres {
            "'2026-03-02 00:00:00+00'::timestamptz"
        } else {
            "'2026-03-02 00:00:00+00:00'"
        };
        store
            .db()
            .execute_unprepared(&format!(
                "INSERT INTO outbox (message_id, kind, unit_code, to_addrs, cc_addrs, subject, body_text, body_html, \
                 state, attempts, next_attempt_at, lease_until, lease_token, last_error, created_at, sent_at) VALUES \
                 ('<old@rectify.local>', 'digest', 'FGJ', '[\"fgj@example.gov.cn\"]', '[]', '旧消息', '旧正文', '<p>旧正文</p>', \
                  'pending', 0, {ts}, NULL, NULL, NULL, {ts}, NULL)"
            ))
            .await
            .expect("a message queued before migration 6");
        store.migrate().await.expect("migration 6");
        let rows = store.list_outbox(None).await.expect("outbox");
        assert_eq!(rows.len(), 1, "[{b}]");
        let bodies = store.message_bodies(&[rows[0].id]).await.expect("bodies");
        assert_eq!(
            bodies.get(&rows[0].id),
            Some(&("旧正文".to_string(), "<p>旧正文</p>".to_string())),
            "[{b}]"
        );
        drop(store);
        db.cleanup().await;
    }
}
