//! What the report reads is what the store holds: a page of items (`report_items_page`) gives
//! each item's reported columns as the full read (`get_item`) does, in id order, page after
//! page; the transitions of a range (`round_transitions_between`) are the round's stored
//! assignment events. SQLite reads both as one JSON row per page, PostgreSQL through sea-orm;
//! on SQLite and (when `RECTIFY_TEST_DATABASE_URL` is set) PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rectify_engine::{Cadence, Command, Deadline, Item, ItemId, NewItem};
use rectify_schema::Store;
use rectify_schema::sea_orm::ConnectionTrait;
use rectify_schema::testing::{TestDb, add_item, assigned_item};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

/// The columns the report reads, as one comparable value.
fn reported(i: &Item) -> String {
    format!(
        "{:?}",
        (
            (i.id, &i.round, i.parent_id, &i.number, &i.title),
            (&i.lead_unit, &i.leader, i.deadline, i.state, i.send_backs),
            (i.cadence, &i.last_progress),
            (i.created_at, i.assigned_at, i.acknowledged_at),
            (i.last_progress_at, i.submitted_at, i.closed_at),
        )
    )
}

/// Items in every shape the report meets: assigned; acknowledged, reported on, submitted and
/// kept long-term with a leader; closed after a send-back; unassigned under a parent; and one
/// of another round. Returns the round's ids.
async fn items(store: &Store) -> Vec<ItemId> {
    let (admin, first) = assigned_item(store, now()).await;
    let later = |m: i64| now() + Duration::minutes(m);
    let today = now().date_naive();
    let kept = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                number: "2".into(),
                title: "长期坚持的整改事项,标题里有\"引号\"和\\反斜杠".into(),
                lead_unit: Some("FGJ".into()),
                leader: Some("周诚".into()),
                deadline: Some(Deadline::Date(
                    chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
                )),
                ..Default::default()
            },
            &admin,
            later(1),
            today,
        )
        .await
        .expect("item")
        .id;
    let closed = add_item(store, &admin, "3", later(2)).await;
    let steps: Vec<(ItemId, Command)> = vec![
        (kept, Command::Acknowledge),
        (
            kept,
            Command::Progress {
                note: "已召开专题会议\n制定方案".into(),
                percent: Some(40),
                evidence: vec![],
            },
        ),
        (
            kept,
            Command::Submit {
                note: "阶段性完成".into(),
                evidence: vec![],
            },
        ),
        (
            kept,
            Command::KeepLongTerm {
                note: None,
                cadence: Cadence::Quarterly,
            },
        ),
        (closed, Command::Acknowledge),
        (
            closed,
            Command::Submit {
                note: "完成".into(),
                evidence: vec![],
            },
        ),
        (
            closed,
            Command::SendBack {
                reason: "材料不全".into(),
            },
        ),
        (
            closed,
            Command::Submit {
                note: "已补充材料".into(),
                evidence: vec![],
            },
        ),
        (closed, Command::Close { note: None }),
    ];
    for (n, (id, cmd)) in steps.iter().enumerate() {
        store
            .apply(*id, cmd, &admin, later(10 + n as i64), today)
            .await
            .unwrap_or_else(|e| panic!("step {n} on item {id}: {e}"));
    }
    let child = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                parent_id: Some(first),
                number: "1.1".into(),
                title: "未交办的措施".into(),
                ..Default::default()
            },
            &admin,
            later(30),
            today,
        )
        .await
        .expect("child")
        .id;
    store
        .add_round(
            &rectify_schema::Round {
                code: "R3".into(),
                title: "审计整改".into(),
                source: rectify_engine::Source::Audit,
            },
            now(),
        )
        .await
        .expect("round");
    store
        .create_item(
            &NewItem {
                round: "R3".into(),
                number: "1".into(),
                title: "另一轮次".into(),
                lead_unit: Some("FGJ".into()),
                deadline: Some(Deadline::LongTerm),
                ..Default::default()
            },
            &admin,
            later(31),
            today,
        )
        .await
        .expect("other round");
    vec![first, kept, closed, child]
}

#[tokio::test]
async fn report_pages_hold_what_the_store_holds() {
    for db in TestDb::all().await {
        let b = db.name;
        let store = db.store().await;
        let ids = items(&store).await;
        let mut want = Vec::new();
        for id in &ids {
            want.push(reported(&store.get_item(*id).await.expect("item")));
        }
        // One page, then pages of two.
        let page = store
            .report_items_page(Some("R2"), 0, 100)
            .await
            .expect("page");
        assert_eq!(page.iter().map(reported).collect::<Vec<_>>(), want, "[{b}]");
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let p = store
                .report_items_page(Some("R2"), after, 2)
                .await
                .expect("page");
            let Some(last) = p.last() else { break };
            after = last.id;
            paged.extend(p.iter().map(reported));
        }
        assert_eq!(paged, want, "[{b}] page after page, by id");
        let all = store.report_items_page(None, 0, 100).await.expect("page");
        assert_eq!(all.len(), ids.len() + 1, "[{b}] every round");
        assert!(
            store
                .report_items_page(Some("R2"), *ids.iter().max().unwrap(), 100)
                .await
                .expect("page")
                .is_empty(),
            "[{b}] nothing after the last"
        );

        // The transitions are the stored assignment events of the round's items, in order.
        let kinds = ["assigned", "reopened", "closed", "finished", "cancelled"];
        let events = store.round_events(Some("R2")).await.expect("events");
        let want: Vec<(ItemId, String, DateTime<Utc>)> = events
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .map(|e| (e.item_id, e.kind.clone(), e.at))
            .collect();
        assert!(want.iter().any(|t| t.1 == "closed"), "[{b}] {want:?}");
        let got = store
            .round_transitions_between(Some("R2"), 0, ItemId::MAX)
            .await
            .expect("transitions");
        assert_eq!(got, want, "[{b}]");
        // A range: only its items.
        let got = store
            .round_transitions_between(Some("R2"), ids[0], ids[2])
            .await
            .expect("transitions");
        let range: Vec<_> = want
            .iter()
            .filter(|t| t.0 > ids[0] && t.0 <= ids[2])
            .cloned()
            .collect();
        assert_eq!(got, range, "[{b}]");
        let every = store
            .round_transitions_between(None, 0, ItemId::MAX)
            .await
            .expect("transitions");
        assert_eq!(every.len(), want.len() + 1, "[{b}] the other round's too");
        drop(store);
        db.cleanup().await;
    }
}

/// A time in the file that no writer of the store made (SQLite takes any text in any column)
/// stops the report with the value named, instead of a report built on a wrong date.
#[tokio::test]
async fn a_stored_time_the_store_never_writes_is_named() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let (_, id) = assigned_item(&store, now()).await;
    store
        .db()
        .execute_unprepared(&format!(
            "UPDATE items SET acknowledged_at = 'last Tuesday' WHERE id = {id}"
        ))
        .await
        .expect("corrupt");
    let e = store
        .report_items_page(Some("R2"), 0, 100)
        .await
        .expect_err("a corrupt time");
    assert!(e.to_string().contains("last Tuesday"), "{e}");
    drop(store);
    db.cleanup().await;
}
