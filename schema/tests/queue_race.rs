//! Several `rectify serve` instances may run reminder passes at the same time (a pass outlasting
//! the interval between fires) and queue the same digest, with the same Message-ID, at the same
//! moment: both must succeed and get the one outbox row; neither may fail on the unique
//! Message-ID. On SQLite and (when `RECTIFY_TEST_DATABASE_URL` is set) PostgreSQL.

use chrono::{TimeZone, Utc};
use rectify_schema::testing::TestDb;
use rectify_schema::{NewMessage, Store, StoreError};

fn message(n: usize) -> NewMessage {
    NewMessage {
        message_id: format!("<race-{n}@rectify.local>"),
        kind: "digest".into(),
        unit_code: Some(format!("U{n:04}")),
        to: vec![format!("u{n:04}@example.gov.cn")],
        cc: vec![],
        subject: format!("【整改提醒】单位{n:04}:1 项整改事项需关注(2026-03-02)"),
        body_text: "事项".into(),
        body_html: "<p>事项</p>".into(),
    }
}

async fn queue_all(store: &Store, messages: &[NewMessage]) -> Result<Vec<i64>, StoreError> {
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap();
    let mut ids = Vec::new();
    for m in messages {
        ids.push(store.queue_message(m, &[], now).await?);
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_queued_by_two_instances_at_once_is_queued_once() {
    for db in TestDb::all().await {
        let b = db.name;
        // Two stores, two connection pools: two instances.
        let one = db.store().await;
        let two = db.store().await;
        let messages: Vec<NewMessage> = (1..=300).map(message).collect();
        let (a, c) = tokio::join!(queue_all(&one, &messages), queue_all(&two, &messages));
        let a = a.unwrap_or_else(|e| panic!("[{b}] the first instance: {e}"));
        let c = c.unwrap_or_else(|e| panic!("[{b}] the second instance: {e}"));
        assert_eq!(a, c, "[{b}] both got the same outbox rows");
        let rows = one.list_outbox(None).await.expect("outbox");
        assert_eq!(rows.len(), messages.len(), "[{b}] one row per Message-ID");
        drop((one, two));
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_pass_queued_by_two_instances_at_once_is_queued_once() {
    for db in TestDb::all().await {
        let b = db.name;
        let one = db.store().await;
        let two = db.store().await;
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap();
        // A whole pass in one call each (several chunks of messages).
        let pass: Vec<(NewMessage, Vec<i64>)> =
            (1..=300).map(|n| (message(n), Vec::new())).collect();
        let (a, c) = tokio::join!(
            one.queue_messages(&pass, &[], now),
            two.queue_messages(&pass, &[], now)
        );
        let a = a.unwrap_or_else(|e| panic!("[{b}] the first instance: {e}"));
        let c = c.unwrap_or_else(|e| panic!("[{b}] the second instance: {e}"));
        assert_eq!(a, c, "[{b}] both got the same outbox rows");
        let rows = one.list_outbox(None).await.expect("outbox");
        assert_eq!(rows.len(), pass.len(), "[{b}] one row per Message-ID");
        let bodies = one.message_bodies(&a).await.expect("bodies");
        assert_eq!(bodies.len(), pass.len(), "[{b}] one body per message");
        drop((one, two));
        db.cleanup().await;
    }
}
