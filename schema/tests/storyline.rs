//! One storyline through the store, on SQLite and (when `RECTIFY_TEST_DATABASE_URL` is set) on
//! PostgreSQL, each in a fresh database.

use chrono::{NaiveDate, TimeZone, Utc};
use rectify_engine::chain::ChainFault;
use rectify_engine::*;
use rectify_schema::testing::TestDb;
use rectify_schema::{ErrorClass, ItemFilter, Operator, Round, Store, StoreError, Unit};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn at(s: &str) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&d(s).and_hms_micro_opt(1, 2, 3, 456_789).unwrap())
}

fn unit(code: &str, name: &str) -> Unit {
    Unit {
        code: code.into(),
        name: name.into(),
        parent: None,
        emails: vec![format!("{}@example.gov.cn", code.to_lowercase())],
        leader: None,
        leader_email: None,
        aliases: vec![],
    }
}

async fn seed(store: &Store) -> (Actor, Actor) {
    let now = at("2026-03-02");
    store.add_unit(&unit("FGJ", "区发改局"), now).await.unwrap();
    store.add_unit(&unit("SFJ", "区司法局"), now).await.unwrap();
    store.add_unit(&unit("CZJ", "区财政局"), now).await.unwrap();
    let admin = store
        .add_operator(
            &Operator {
                name: "office".into(),
                role: Role::Admin,
                unit: None,
                email: None,
            },
            now,
        )
        .await
        .unwrap();
    let op = store
        .add_operator(
            &Operator {
                name: "fgj-op".into(),
                role: Role::Unit,
                unit: Some("FGJ".into()),
                email: None,
            },
            now,
        )
        .await
        .unwrap();
    store
        .add_round(
            &Round {
                code: "R2".into(),
                title: "十二届省委第二轮巡视".into(),
                source: Source::Inspection,
            },
            now,
        )
        .await
        .unwrap();
    (admin.actor(), op.actor())
}

async fn storyline(db: &TestDb) {
    let store = db.store().await;
    let (admin, op) = seed(&store).await;
    let today = d("2026-03-02");
    let now = at("2026-03-02");

    // A category with one measure.
    let parent = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                number: "3".into(),
                title: "关于对\"三新一高\"发展理念把握不精准问题".into(),
                ..Default::default()
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap();
    assert_eq!(parent.state, ItemState::Draft);
    let m = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                parent_id: Some(parent.id),
                number: "3.(1).一".into(),
                title: "创新体制机制和业务模式".into(),
                lead_unit: Some("FGJ".into()),
                co_units: vec!["CZJ".into()],
                leader: Some("周诚".into()),
                deadline: Some(Deadline::Date(d("2026-06-30"))),
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap();
    assert_eq!(
        m.state,
        ItemState::Assigned,
        "lead unit + deadline → assigned at once"
    );

    // Bad input writes nothing.
    let before = store
        .list_items(&ItemFilter::default())
        .await
        .unwrap()
        .len();
    let err = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                title: "x".into(),
                lead_unit: Some("NOPE".into()),
                deadline: Some(Deadline::LongTerm),
                ..Default::default()
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "unit", .. }),
        "{err}"
    );
    let err = store
        .create_item(
            &NewItem {
                round: "R2".into(),
                title: "  ".into(),
                ..Default::default()
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::BadInput);
    assert_eq!(
        store
            .list_items(&ItemFilter::default())
            .await
            .unwrap()
            .len(),
        before
    );

    // The unit acknowledges and reports with evidence.
    let m = store
        .apply(m.id, &Command::Acknowledge, &op, now, today)
        .await
        .unwrap();
    let file = db.dir.join("方案.txt");
    std::fs::write(&file, "整改方案").unwrap();
    let ev = store.store_evidence(std::slice::from_ref(&file)).unwrap();
    assert_eq!(ev[0].name, "方案.txt");
    let m = store
        .apply(
            m.id,
            &Command::Progress {
                note: "方案已起草".into(),
                percent: Some(50),
                evidence: ev.clone(),
            },
            &op,
            at("2026-03-10"),
            d("2026-03-10"),
        )
        .await
        .unwrap();
    assert_eq!(m.progress_percent, Some(50));

    // Extension: request, then approve changes the deadline.
    let m = store
        .apply(
            m.id,
            &Command::RequestExtension {
                to: d("2026-08-31"),
                reason: "需上级审批".into(),
            },
            &op,
            at("2026-03-11"),
            d("2026-03-11"),
        )
        .await
        .unwrap();
    let exts = store.extensions(m.id).await.unwrap();
    assert_eq!(exts.len(), 1);
    assert_eq!(
        store.pending_extension_item(exts[0].id).await.unwrap(),
        m.id
    );
    let m = store
        .apply(
            m.id,
            &Command::ApproveExtension {
                note: Some("同意".into()),
            },
            &admin,
            at("2026-03-12"),
            d("2026-03-12"),
        )
        .await
        .unwrap();
    assert_eq!(m.deadline, Some(Deadline::Date(d("2026-08-31"))));
    assert_eq!(store.extensions(m.id).await.unwrap()[0].state, "approved");
    assert!(store.pending_extension_item(exts[0].id).await.is_err());

    // Submit, send back, submit, verify.
    let m = store
        .apply(
            m.id,
            &Command::Submit {
                note: "已完成".into(),
                evidence: vec![],
            },
            &op,
            at("2026-04-01"),
            d("2026-04-01"),
        )
        .await
        .unwrap();
    let err = store
        .apply(
            m.id,
            &Command::Close { note: None },
            &op,
            at("2026-04-02"),
            d("2026-04-02"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Forbidden);
    let m = store
        .apply(
            m.id,
            &Command::SendBack {
                reason: "佐证不足".into(),
            },
            &admin,
            at("2026-04-02"),
            d("2026-04-02"),
        )
        .await
        .unwrap();
    let m = store
        .apply(
            m.id,
            &Command::Submit {
                note: "补充佐证".into(),
                evidence: ev,
            },
            &op,
            at("2026-04-03"),
            d("2026-04-03"),
        )
        .await
        .unwrap();
    // The parent cannot be closed while its child is open.
    let p = store
        .apply(
            parent.id,
            &Command::Assign {
                lead_unit: "FGJ".into(),
                co_units: vec![],
                leader: None,
                deadline: Deadline::Date(d("2026-12-31")),
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap();
    let p = store
        .apply(p.id, &Command::Acknowledge, &admin, now, today)
        .await
        .unwrap();
    let p = store
        .apply(
            p.id,
            &Command::Submit {
                note: "x".into(),
                evidence: vec![],
            },
            &admin,
            now,
            today,
        )
        .await
        .unwrap();
    let err = store
        .apply(p.id, &Command::Close { note: None }, &admin, now, today)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Refused(Refusal::ChildrenOpen { open: 1, .. })
        ),
        "{err}"
    );
    let m = store
        .apply(
            m.id,
            &Command::Close {
                note: Some("验收通过".into()),
            },
            &admin,
            at("2026-04-05"),
            d("2026-04-05"),
        )
        .await
        .unwrap();
    assert_eq!(m.state, ItemState::Closed);
    assert_eq!(m.send_backs, 1);
    store
        .apply(p.id, &Command::Close { note: None }, &admin, now, today)
        .await
        .unwrap();

    // The history is complete and the chain verifies.
    let h = store.history(m.id).await.unwrap();
    let kinds: Vec<&str> = h.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "assigned",
            "acknowledged",
            "progress_reported",
            "extension_requested",
            "extension_approved",
            "submitted",
            "sent_back",
            "submitted",
            "closed"
        ]
    );
    assert_eq!(h[3].evidence.len(), 1);
    assert_eq!(
        h[3].at,
        at("2026-03-10"),
        "microseconds survive the round trip"
    );
    let (items, events, findings) = store.audit_verify(true).await.unwrap();
    assert_eq!((items, findings.len()), (2, 0), "{findings:?}");
    assert_eq!(events, 10 + 5);

    // Filters.
    let overdue = store
        .list_items(&ItemFilter {
            overdue_on: Some(d("2027-01-01")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(overdue.is_empty());
    let by_unit = store
        .list_items(&ItemFilter {
            unit: Some("FGJ".into()),
            state: Some(ItemState::Closed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_unit.len(), 2);

    // Tampering behind the tool's back is detected, and named.
    let target = h[3].event_id;
    store
        .execute_unprepared(&format!(
            "UPDATE events SET payload = REPLACE(payload, '50', '90') WHERE id = {target}"
        ))
        .await
        .unwrap();
    let (_, _, findings) = store.audit_verify(true).await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].item_id, m.id);
    assert_eq!(
        findings[0].fault,
        ChainFault::HashMismatch {
            event_id: target,
            seq: 4
        }
    );
    let last = h.last().unwrap().event_id;
    store
        .execute_unprepared(&format!("DELETE FROM events WHERE id = {last}"))
        .await
        .unwrap();
    let (_, _, findings) = store.audit_verify(true).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| matches!(f.fault, ChainFault::HeadMismatch { .. })),
        "{findings:?}"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn storyline_on_every_backend() {
    for db in TestDb::all().await {
        eprintln!("storyline on {}", db.name);
        storyline(&db).await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn stale_version_is_a_conflict_not_a_lost_update() {
    for db in TestDb::all().await {
        let store = db.store().await;
        let (admin, _) = seed(&store).await;
        let now = at("2026-03-02");
        let today = d("2026-03-02");
        let item = store
            .create_item(
                &NewItem {
                    round: "R2".into(),
                    title: "t".into(),
                    lead_unit: Some("FGJ".into()),
                    deadline: Some(Deadline::LongTerm),
                    ..Default::default()
                },
                &admin,
                now,
                today,
            )
            .await
            .unwrap();
        // Two writers race: run both at once many times; every attempt either applies or is a
        // conflict, and the version always equals 1 + the number of applied commands.
        let store2 = Store::connect(&db.settings()).await.unwrap();
        let mut applied = 0;
        for i in 0..10 {
            let note = format!("n{i}");
            let c1 = Command::Progress {
                note: note.clone(),
                percent: None,
                evidence: vec![],
            };
            let a = async {
                if i == 0 {
                    store
                        .apply(item.id, &Command::Acknowledge, &admin, now, today)
                        .await
                } else {
                    store.apply(item.id, &c1, &admin, now, today).await
                }
            };
            let c2 = Command::Reassign {
                lead_unit: if i % 2 == 0 {
                    "SFJ".into()
                } else {
                    "FGJ".into()
                },
                reason: "r".into(),
            };
            let b = store2.apply(item.id, &c2, &admin, now, today);
            let (ra, rb) = tokio::join!(a, b);
            for r in [ra, rb] {
                match r {
                    Ok(_) => applied += 1,
                    Err(e) => assert!(
                        matches!(e.class(), ErrorClass::Conflict | ErrorClass::BadInput),
                        "{e}"
                    ),
                }
            }
        }
        let last = store.get_item(item.id).await.unwrap();
        assert_eq!(
            last.version,
            2 + applied,
            "created(1) + assigned(1) + applied"
        );
        let (_, _, findings) = store.audit_verify(true).await.unwrap();
        assert!(findings.is_empty(), "{findings:?}");
        store.close().await.unwrap();
        store2.close().await.unwrap();
        db.cleanup().await;
    }
}
