//! The import path (`Bulk::create_batch`) writes exactly what the single-command path writes:
//! the same item rows, the same hash-chained events, the same reminder rows. A refused batch
//! writes nothing. SQLite always, PostgreSQL when `RECTIFY_TEST_DATABASE_URL` is set.

use chrono::{NaiveDate, TimeZone, Utc};
use rectify_engine::*;
use rectify_schema::entity::{event, item, reminder};
use rectify_schema::sea_orm::{EntityTrait, QueryOrder};
use rectify_schema::testing::TestDb;
use rectify_schema::{BatchError, BatchItem, Bulk, Operator, Round, Store, StoreError, Unit};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn today() -> NaiveDate {
    d("2026-03-02")
}

fn now() -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&today().and_hms_micro_opt(1, 2, 3, 456_789).unwrap())
}

async fn seed(store: &Store) -> Actor {
    for (code, name) in [("FGJ", "区发改局"), ("SFJ", "区司法局")] {
        store
            .add_unit(
                &Unit {
                    code: code.into(),
                    name: name.into(),
                    parent: None,
                    emails: vec![format!("{}@example.gov.cn", code.to_lowercase())],
                    leader: None,
                    leader_email: None,
                    aliases: vec![],
                },
                now(),
            )
            .await
            .unwrap();
    }
    store
        .add_round(
            &Round {
                code: "R1".into(),
                title: "巡视反馈问题整改".into(),
                source: Source::Inspection,
            },
            now(),
        )
        .await
        .unwrap();
    store
        .add_operator(
            &Operator {
                name: "office".into(),
                role: Role::Admin,
                unit: None,
                email: None,
            },
            now(),
        )
        .await
        .unwrap()
        .actor()
}

fn new(title: &str, parent: Option<ItemId>) -> NewItem {
    NewItem {
        round: "R1".into(),
        parent_id: parent,
        number: String::new(),
        title: title.into(),
        lead_unit: None,
        co_units: vec![],
        leader: None,
        deadline: None,
    }
}

fn assign(lead: &str, due: &str) -> Command {
    Command::Assign {
        lead_unit: lead.into(),
        co_units: if lead == "FGJ" {
            vec!["SFJ".into()]
        } else {
            vec![]
        },
        leader: Some("张三".into()),
        deadline: Deadline::Date(d(due)),
    }
}

fn submit() -> Command {
    Command::Submit {
        note: "已完成整改".into(),
        evidence: vec![],
    }
}

/// One item of the comparison: (title, parent index, assignment, life).
type Planned = (&'static str, Option<usize>, Option<Command>, Vec<Command>);

fn plan() -> Vec<Planned> {
    vec![
        // A problem whose two measures are closed: it is closed after them.
        ("问题一", None, Some(assign("FGJ", "2026-06-30")), {
            vec![
                Command::Acknowledge,
                submit(),
                Command::Close { note: None },
            ]
        }),
        (
            "措施一",
            Some(0),
            Some(assign("FGJ", "2026-04-30")),
            vec![
                Command::Acknowledge,
                submit(),
                Command::Close {
                    // Quotes, a backslash, braces and a comma: PostgreSQL's import sends the
                    // events as array literals, which must carry them unchanged.
                    note: Some("验收通过 \"复核\" C:\\台账 {1,2}".into()),
                },
            ],
        ),
        (
            "措施二",
            Some(0),
            Some(assign("SFJ", "2026-05-29")),
            vec![
                Command::Acknowledge,
                submit(),
                Command::Close { note: None },
            ],
        ),
        // In progress with a note: reminders planned.
        (
            "问题二",
            None,
            Some(assign("SFJ", "2026-03-20")),
            vec![
                Command::Acknowledge,
                Command::Progress {
                    note: "正在推进".into(),
                    percent: None,
                    evidence: vec![],
                },
            ],
        ),
        // Assigned only, and a long-term one.
        ("问题三", None, Some(assign("FGJ", "2026-03-31")), vec![]),
        (
            "问题四",
            None,
            Some(assign("FGJ", "2026-04-15")),
            vec![
                Command::Acknowledge,
                submit(),
                Command::KeepLongTerm {
                    note: None,
                    cadence: Cadence::Monthly,
                },
            ],
        ),
        // A draft, and a cancelled draft.
        ("问题五", None, None, vec![]),
        (
            "问题六",
            None,
            None,
            vec![Command::Cancel {
                reason: "合并整改".into(),
                merged_into: None,
            }],
        ),
    ]
}

/// Everything stored about the items, without the events' and reminders' own row ids (the batch
/// inserts them in another order). Of the reminders, the pending ones: commands one by one also
/// leave the rows of the plans they replaced (cancelled); a batch writes only the final plan.
async fn rows(store: &Store) -> (Vec<item::Model>, Vec<event::Model>, Vec<reminder::Model>) {
    let items = item::Entity::find()
        .order_by_asc(item::Column::Id)
        .all(store.db())
        .await
        .unwrap();
    let mut events = event::Entity::find().all(store.db()).await.unwrap();
    for e in &mut events {
        e.id = 0;
    }
    events.sort_by_key(|e| (e.item_id, e.seq));
    let mut reminders = reminder::Entity::find().all(store.db()).await.unwrap();
    reminders.retain(|r| r.state == "pending");
    for r in &mut reminders {
        r.id = 0;
    }
    reminders.sort_by(|a, b| {
        (a.item_id, &a.kind, a.step, a.deadline_version).cmp(&(
            b.item_id,
            &b.kind,
            b.step,
            b.deadline_version,
        ))
    });
    (items, events, reminders)
}

async fn one_by_one(db: &TestDb) -> Store {
    let store = db.store().await;
    let admin = seed(&store).await;
    let plan = plan();
    let mut ids = Vec::new();
    for (title, parent, _, _) in &plan {
        let it = store
            .create_item(&new(title, parent.map(|p| ids[p])), &admin, now(), today())
            .await
            .unwrap();
        ids.push(it.id);
    }
    for (i, (_, _, a, _)) in plan.iter().enumerate() {
        if let Some(cmd) = a {
            store
                .apply(ids[i], cmd, &admin, now(), today())
                .await
                .unwrap();
        }
    }
    // Children before parents, as an import runs them.
    for i in (0..plan.len()).rev() {
        for cmd in &plan[i].3 {
            store
                .apply(ids[i], cmd, &admin, now(), today())
                .await
                .unwrap();
        }
    }
    store
}

async fn batched(db: &TestDb) -> Store {
    let store = db.store().await;
    let admin = seed(&store).await;
    let batch: Vec<BatchItem> = plan()
        .into_iter()
        .map(|(title, parent, assign, life)| BatchItem {
            new: new(title, None),
            parent,
            assign,
            assign_day: today(),
            life,
        })
        .collect();
    let bulk = store.bulk().await.unwrap();
    let done = bulk
        .create_batch(batch, &admin, now(), today(), &|_| {})
        .await
        .unwrap();
    bulk.commit().await.unwrap();
    let states: Vec<ItemState> = done.iter().map(|(_, s)| *s).collect();
    use ItemState::*;
    assert_eq!(
        states,
        vec![
            Closed, Closed, Closed, InProgress, Assigned, LongTerm, Draft, Cancelled
        ]
    );
    store
}

#[tokio::test]
async fn a_batch_writes_what_single_commands_write() {
    for backend in ["sqlite", "postgres"] {
        let pair = if backend == "sqlite" {
            Some((TestDb::sqlite(), TestDb::sqlite()))
        } else {
            match (TestDb::postgres().await, TestDb::postgres().await) {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            }
        };
        let Some((a, b)) = pair else { continue };
        let by_hand = one_by_one(&a).await;
        let imported = batched(&b).await;
        let (hi, he, hr) = rows(&by_hand).await;
        let (bi, be, br) = rows(&imported).await;
        assert_eq!(hi.len(), 8, "{backend}");
        assert!(!hr.is_empty(), "{backend}: reminders are planned");
        for (x, y) in hi.iter().zip(&bi) {
            assert_eq!(x, y, "{backend}: item {}", x.id);
        }
        assert_eq!(hi.len(), bi.len());
        assert_eq!(he, be, "{backend}: events");
        assert_eq!(hr, br, "{backend}: reminders");
        let (_, _, findings) = imported.audit_verify(false).await.unwrap();
        assert!(findings.is_empty(), "{backend}: {findings:?}");
        // Items made afterwards get fresh ids.
        let admin = seed_actor();
        let later = imported
            .create_item(&new("后来的事项", None), &admin, now(), today())
            .await
            .unwrap();
        assert_eq!(later.id, 9, "{backend}");
        by_hand.close().await.unwrap();
        imported.close().await.unwrap();
        a.cleanup().await;
        b.cleanup().await;
    }
}

fn seed_actor() -> Actor {
    Actor {
        name: "office".into(),
        role: Role::Admin,
        unit: None,
    }
}

#[tokio::test]
async fn a_refused_batch_writes_nothing_and_names_the_item() {
    for db in TestDb::all().await {
        let store = db.store().await;
        let admin = seed(&store).await;
        let good = |title: &str| BatchItem {
            new: new(title, None),
            parent: None,
            assign: Some(assign("FGJ", "2026-06-30")),
            assign_day: today(),
            life: vec![],
        };
        let refusals: Vec<(Vec<BatchItem>, usize, &str)> = vec![
            (
                vec![good("甲"), {
                    let mut b = good("乙");
                    b.assign = Some(assign("NOPE", "2026-06-30"));
                    b
                }],
                1,
                "unit",
            ),
            (
                vec![good("甲"), good("乙"), {
                    let mut b = good("丙");
                    b.assign = Some(assign("FGJ", "2026-01-05"));
                    b
                }],
                2,
                "past",
            ),
            // A parent closed while its child is still open.
            (
                vec![
                    BatchItem {
                        life: vec![
                            Command::Acknowledge,
                            submit(),
                            Command::Close { note: None },
                        ],
                        ..good("问题")
                    },
                    BatchItem {
                        parent: Some(0),
                        ..good("措施")
                    },
                ],
                0,
                "children",
            ),
        ];
        for (batch, index, what) in refusals {
            let bulk = store.bulk().await.unwrap();
            let e = bulk
                .create_batch(batch, &admin, now(), today(), &|_| {})
                .await
                .expect_err(what);
            bulk.rollback().await.unwrap();
            assert_eq!(e.index, Some(index), "{}: {what}: {:?}", db.name, e.error);
            if what == "unit" {
                assert!(
                    matches!(&e.error, StoreError::NotFound { what: "unit", key } if key == "NOPE"),
                    "{:?}",
                    e.error
                );
            }
            let (items, events, reminders) = rows(&store).await;
            assert!(
                items.is_empty() && events.is_empty() && reminders.is_empty(),
                "{}: {what}: nothing written",
                db.name
            );
        }
        store.close().await.unwrap();
        db.cleanup().await;
    }
}

/// Imports items titled `titles`, each assigned to FGJ and acknowledged.
async fn import(
    bulk: &Bulk<'_>,
    admin: &Actor,
    titles: &[&str],
) -> Result<Vec<(ItemId, ItemState)>, BatchError> {
    let batch = titles.iter().map(|t| good(t)).collect();
    bulk.create_batch(batch, admin, now(), today(), &|_| {})
        .await
}

fn good(title: &str) -> BatchItem {
    BatchItem {
        new: new(title, None),
        parent: None,
        assign: Some(assign("FGJ", "2026-06-30")),
        assign_day: today(),
        life: vec![Command::Acknowledge],
    }
}

/// An import is one transaction to its end: nothing of it is seen before the commit, and an
/// import dropped without one leaves nothing (on PostgreSQL it runs on a connection of its own,
/// its rows go in with COPY).
#[tokio::test]
async fn an_import_is_seen_only_once_committed() {
    for db in TestDb::all().await {
        let store = db.store().await;
        let admin = seed(&store).await;
        let bulk = store.bulk().await.unwrap();
        let done = import(&bulk, &admin, &["甲", "乙"]).await.unwrap();
        assert_eq!(done.len(), 2);
        let (items, events, reminders) = rows(&store).await;
        assert!(
            items.is_empty() && events.is_empty() && reminders.is_empty(),
            "{}: an open import is not seen",
            db.name
        );
        drop(bulk);
        let (items, ..) = rows(&store).await;
        assert!(
            items.is_empty(),
            "{}: a dropped import leaves nothing",
            db.name
        );
        // The writer the dropped import held (SQLite) serves the next commands.
        let by_hand = store
            .create_item(&new("手工事项", None), &admin, now(), today())
            .await
            .unwrap();
        store
            .apply(
                by_hand.id,
                &assign("FGJ", "2026-06-30"),
                &admin,
                now(),
                today(),
            )
            .await
            .unwrap();

        let bulk = store.bulk().await.unwrap();
        let done = import(&bulk, &admin, &["甲", "乙"]).await.unwrap();
        bulk.commit().await.unwrap();
        // And after a committed one, a command on an imported item.
        let progress = Command::Progress {
            note: "进展顺利".into(),
            percent: None,
            evidence: vec![],
        };
        store
            .apply(done[1].0, &progress, &admin, now(), today())
            .await
            .unwrap();
        let (items, events, reminders) = rows(&store).await;
        assert_eq!(items.len(), 3, "{}", db.name);
        assert_eq!(
            events.len(),
            2 + 6 + 1,
            "{}: by hand created, assigned; imported created, assigned, acknowledged; progress",
            db.name
        );
        assert!(!reminders.is_empty(), "{}", db.name);
        let (_, _, findings) = store.audit_verify(false).await.unwrap();
        assert!(findings.is_empty(), "{}: {findings:?}", db.name);
        store.close().await.unwrap();
        db.cleanup().await;
    }
}

/// PostgreSQL: when the import's connection is lost in the middle, the rest of the import
/// fails; it does not go on outside the transaction on a new connection.
#[tokio::test]
async fn an_import_whose_connection_is_lost_writes_nothing() {
    use rectify_schema::sea_orm::{ConnectionTrait, Statement};
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let admin = seed(&store).await;
    let bulk = store.bulk().await.unwrap();
    import(&bulk, &admin, &["甲"]).await.unwrap();
    let killed = store
        .db()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        ))
        .await
        .unwrap();
    assert_eq!(
        killed.len(),
        1,
        "the import's connection, idle in its transaction"
    );
    let e = import(&bulk, &admin, &["乙", "丙"])
        .await
        .expect_err("the connection is gone");
    let again = bulk.commit().await.expect_err("nothing to commit on");
    assert!(
        again.to_string().contains("failed part-way") && again.to_string().contains("nothing"),
        "{again} (after {:?})",
        e.error
    );
    let (items, events, reminders) = rows(&store).await;
    assert!(
        items.is_empty() && events.is_empty() && reminders.is_empty(),
        "nothing of either batch was written"
    );
    store.close().await.unwrap();
    db.cleanup().await;
}

/// SQLite: an import meeting another connection's write lock waits for it on the runtime (the
/// writer has no busy handler of SQLite's own, which would block the one thread here that must
/// run the lock holder's commit).
#[tokio::test(flavor = "current_thread")]
async fn an_import_waits_for_the_write_lock() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let admin = seed(&store).await;
    let other = store.begin_write().await.unwrap();
    let holder = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        other.commit().await.unwrap();
    });
    let started = std::time::Instant::now();
    let bulk = store.bulk().await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "the import began only once the lock was free"
    );
    import(&bulk, &admin, &["甲"]).await.unwrap();
    bulk.commit().await.unwrap();
    holder.await.unwrap();
    assert_eq!(rows(&store).await.0.len(), 1);
    store.close().await.unwrap();
}

/// The sequence's increment, as the server has it.
async fn items_increment(store: &Store) -> i64 {
    use rectify_schema::sea_orm::{ConnectionTrait, Statement};
    store
        .db()
        .query_one_raw(Statement::from_string(
            store.backend(),
            "SELECT s.seqincrement FROM pg_sequence s \
             WHERE s.seqrelid = pg_get_serial_sequence('items', 'id')::regclass",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// PostgreSQL: an import takes its item ids as one range of the sequence while commands create
/// items beside it: no id is given twice, the range is consecutive, the sequence counts by one
/// again afterwards, and the next item by hand comes after the range.
#[tokio::test]
async fn an_import_reserves_its_ids_while_commands_create_items() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let admin = seed(&store).await;
    let titles: Vec<String> = (0..300).map(|i| format!("导入事项{i}")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let by_hand = async {
        let mut ids = Vec::new();
        for i in 0..40 {
            let it = store
                .create_item(&new(&format!("手工事项{i}"), None), &admin, now(), today())
                .await
                .unwrap();
            ids.push(it.id);
            tokio::task::yield_now().await;
        }
        ids
    };
    let imported = async {
        let bulk = store.bulk().await.unwrap();
        let done = import(&bulk, &admin, &titles).await.unwrap();
        bulk.commit().await.unwrap();
        done.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
    };
    let (by_hand, imported) = tokio::join!(by_hand, imported);
    let mut sorted = imported.clone();
    sorted.sort();
    assert!(
        sorted.windows(2).all(|w| w[1] == w[0] + 1),
        "one consecutive range: {sorted:?}"
    );
    for id in &by_hand {
        assert!(!imported.contains(id), "id {id} given twice");
    }
    assert_eq!(
        items_increment(&store).await,
        1,
        "the increment is set back"
    );
    let next = store
        .create_item(&new("之后的事项", None), &admin, now(), today())
        .await
        .unwrap();
    assert!(next.id > *sorted.last().unwrap() && by_hand.iter().all(|&i| next.id > i));
    let (items, ..) = rows(&store).await;
    assert_eq!(items.len(), 300 + 40 + 1);
    let (_, _, findings) = store.audit_verify(false).await.unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    store.close().await.unwrap();
    db.cleanup().await;
}

/// PostgreSQL: a sequence that does not count by one (set so by hand) is not altered: the
/// import takes its ids one `nextval` at a time, and the sequence keeps its increment.
#[tokio::test]
async fn an_import_takes_ids_one_by_one_from_a_sequence_counting_otherwise() {
    use rectify_schema::sea_orm::ConnectionTrait;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let admin = seed(&store).await;
    store
        .db()
        .execute_unprepared("ALTER SEQUENCE items_id_seq INCREMENT BY 5")
        .await
        .unwrap();
    let bulk = store.bulk().await.unwrap();
    let done = import(&bulk, &admin, &["甲", "乙", "丙"]).await.unwrap();
    bulk.commit().await.unwrap();
    let ids: Vec<ItemId> = done.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[1] - w[0] == 5), "{ids:?}");
    assert_eq!(items_increment(&store).await, 5);
    let (items, ..) = rows(&store).await;
    assert_eq!(items.len(), 3);
    store.close().await.unwrap();
    db.cleanup().await;
}

/// PostgreSQL: while another transaction that took an item id stays open (it holds the
/// sequence's lock), the import does not wait for it beyond a second: it takes its ids one by
/// one, and none is the one already given.
#[tokio::test]
async fn an_import_does_not_wait_for_a_transaction_holding_the_sequence() {
    use rectify_schema::sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let admin = seed(&store).await;
    let open = store.db().begin().await.unwrap();
    let held: i64 = open
        .query_one_raw(Statement::from_string(
            store.backend(),
            "SELECT nextval('items_id_seq')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let started = std::time::Instant::now();
    let bulk = store.bulk().await.unwrap();
    let done = import(&bulk, &admin, &["甲", "乙", "丙"]).await.unwrap();
    bulk.commit().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let ids: Vec<ItemId> = done.iter().map(|(id, _)| *id).collect();
    assert!(
        !ids.contains(&held) && ids.iter().all(|&i| i > held),
        "{ids:?} / {held}"
    );
    open.rollback().await.unwrap();
    assert_eq!(items_increment(&store).await, 1);
    store.close().await.unwrap();
    db.cleanup().await;
}
