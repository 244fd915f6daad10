//! A pass queues its messages in chunks (`queue_messages`): every message gets its outbox row
//! and its body, every reminder row it carries is queued on it, a message already queued keeps
//! its row, and the ids come back in the order of the messages. Then the batch is settled
//! (`settle_sent`) only for the messages that were sent. On SQLite and (when
//! `RECTIFY_TEST_DATABASE_URL` is set) PostgreSQL.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use rectify_schema::sea_orm::{ConnectionTrait, Statement};
use rectify_schema::testing::TestDb;
use rectify_schema::{NewMessage, Store};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

fn message(n: usize) -> NewMessage {
    NewMessage {
        message_id: format!("<batch-{n}@rectify.local>"),
        kind: "digest".into(),
        unit_code: Some("FGJ".into()),
        to: vec!["fgj@example.gov.cn".into()],
        cc: vec![],
        subject: format!("【整改提醒】区发改局:第 {n} 封"),
        body_text: format!("正文 {n}"),
        body_html: format!("<p>正文 {n}</p>"),
    }
}

/// Every reminder row: id → (state, outbox id).
async fn rows(store: &Store) -> HashMap<i64, (String, Option<i64>)> {
    store
        .db()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT id, state, outbox_id FROM reminders".to_string(),
        ))
        .await
        .expect("reminders")
        .iter()
        .map(|r| {
            (
                r.try_get::<i64>("", "id").expect("id"),
                (
                    r.try_get::<String>("", "state").expect("state"),
                    r.try_get::<Option<i64>>("", "outbox_id").expect("outbox"),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_pass_of_many_messages_is_queued_whole_and_settled_by_what_was_sent() {
    for db in TestDb::all().await {
        let b = db.name;
        let store = db.store().await;
        let (admin, _) = rectify_schema::testing::assigned_item(&store, now()).await;
        for n in 2..=130 {
            rectify_schema::testing::add_item(&store, &admin, &n.to_string(), now()).await;
        }
        let before = rows(&store).await;
        let mut pending: Vec<i64> = before
            .iter()
            .filter(|(_, (s, _))| s == "pending")
            .map(|(id, _)| *id)
            .collect();
        pending.sort();
        assert!(pending.len() >= 260, "[{b}] two or more rows per item");

        // Message 7 is already queued (an earlier pass, or another instance), with its rows.
        let early = store
            .queue_message(&message(7), &pending[14..16], now())
            .await
            .expect("early");

        // 120 messages (more than one chunk), two rows each; message 7 again, and message 3
        // twice in the same call (a row offered twice); one row that is no longer pending (message 7's) is offered
        // again and stays on message 7.
        let mut batch: Vec<(NewMessage, Vec<i64>)> = (0..120)
            .map(|n| (message(n), pending[2 * n..2 * n + 2].to_vec()))
            .collect();
        // Message 3 again, and message 1 (in the same statement), also offer message 0's
        // first row: it stays on message 0.
        batch.push((message(3), vec![pending[0]]));
        batch[1].1.push(pending[0]);
        let skipped = [(pending[250], "item_missing")];
        let ids = store
            .queue_messages(&batch, &skipped, now())
            .await
            .expect("queue");
        assert_eq!(ids.len(), batch.len(), "[{b}] an id per message");
        assert_eq!(ids[7], early, "[{b}] a queued message keeps its row");
        assert_eq!(ids[3], ids[120], "[{b}] one row per Message-ID");
        let distinct: std::collections::HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), 120, "[{b}]");

        let bodies = store.message_bodies(&ids).await.expect("bodies");
        assert_eq!(bodies.len(), 120, "[{b}] a body per message");
        for (n, id) in ids.iter().enumerate().take(120) {
            assert_eq!(
                bodies.get(id),
                Some(&(format!("正文 {n}"), format!("<p>正文 {n}</p>"))),
                "[{b}] message {n}'s body on its own row"
            );
        }

        let after = rows(&store).await;
        for (n, id) in ids.iter().enumerate().take(120) {
            for r in &pending[2 * n..2 * n + 2] {
                assert_eq!(
                    after[r],
                    ("queued".to_string(), Some(*id)),
                    "[{b}] row {r} on message {n}"
                );
            }
        }
        assert_eq!(
            after[&pending[250]].0, "skipped",
            "[{b}] the skipped row is marked"
        );
        for r in &pending[240..250] {
            assert_eq!(
                after[r], before[r],
                "[{b}] rows no message carries: untouched"
            );
        }
        let list = store.list_outbox(None).await.expect("outbox");
        assert_eq!(list.len(), 120, "[{b}] one outbox row per Message-ID");

        // Queuing the same pass again changes nothing.
        let again = store
            .queue_messages(&batch, &[], now())
            .await
            .expect("again");
        assert_eq!(again, ids, "[{b}] a re-run pass gets the same rows");
        assert_eq!(rows(&store).await, after, "[{b}] and queues nothing new");

        // Half the messages are sent; settling all of them settles only those rows.
        let claimed = store
            .claim_outbox(now(), now() + chrono::Duration::seconds(60), "t1", 500)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 120, "[{b}]");
        for id in ids.iter().step_by(2).take(60) {
            assert!(store.mark_sent(*id, "t1", now()).await.expect("sent"));
        }
        let settled = store.settle_sent(&ids[..120], now()).await.expect("settle");
        let sent: std::collections::HashSet<i64> =
            ids.iter().step_by(2).take(60).copied().collect();
        let last = rows(&store).await;
        let expect: usize = after
            .values()
            .filter(|(s, o)| s == "queued" && o.is_some_and(|o| sent.contains(&o)))
            .count();
        assert_eq!(settled as usize, expect, "[{b}] the sent messages' rows");
        for (r, (state, outbox)) in &after {
            let want = match outbox {
                Some(o) if state == "queued" && sent.contains(o) => "sent",
                _ => state.as_str(),
            };
            assert_eq!(last[r].0, want, "[{b}] row {r}");
        }
        drop(store);
        db.cleanup().await;
    }
}
