//! The whole transition table, every state × every command, through one table-driven helper, and
//! a property test over random command sequences.

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use rectify_engine::chain::{ChainLink, GENESIS, StoredLink, verify_chain};
use rectify_engine::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn admin() -> Actor {
    Actor {
        name: "office".into(),
        role: Role::Admin,
        unit: None,
    }
}

fn unit_op(unit: &str) -> Actor {
    Actor {
        name: format!("op-{unit}"),
        role: Role::Unit,
        unit: Some(unit.into()),
    }
}

fn viewer() -> Actor {
    Actor {
        name: "reader".into(),
        role: Role::Viewer,
        unit: None,
    }
}

fn ctx(today: &str) -> Ctx {
    let today = d(today);
    Ctx {
        now: Utc.from_utc_datetime(&today.and_hms_opt(2, 0, 0).unwrap()),
        today,
        open_children: 0,
    }
}

/// A fresh draft item, then `state` forced, with a lead unit and deadline when the state has one.
fn item_in(state: ItemState) -> Item {
    let new = NewItem {
        round: "R1".into(),
        title: "着力解决推动实施稳经济政策不扎实问题".into(),
        number: "3.(1)".into(),
        ..Default::default()
    };
    let mut item = create(&new, 12, &admin(), &ctx("2026-03-01")).unwrap().item;
    item.state = state;
    if state != ItemState::Draft {
        item.lead_unit = Some("FGJ".into());
        item.deadline = Some(Deadline::Date(d("2026-06-30")));
    }
    item
}

fn commands() -> Vec<(&'static str, Command)> {
    vec![
        (
            "assign",
            Command::Assign {
                lead_unit: "FGJ".into(),
                co_units: vec!["CZJ".into()],
                leader: Some("周诚".into()),
                deadline: Deadline::Date(d("2026-06-30")),
            },
        ),
        ("ack", Command::Acknowledge),
        (
            "progress",
            Command::Progress {
                note: "已完成方案起草".into(),
                percent: Some(40),
                evidence: vec![],
            },
        ),
        (
            "submit",
            Command::Submit {
                note: "整改完成".into(),
                evidence: vec![],
            },
        ),
        ("verify", Command::Close { note: None }),
        (
            "verify-long-term",
            Command::KeepLongTerm {
                note: None,
                cadence: Cadence::Monthly,
            },
        ),
        (
            "reject",
            Command::SendBack {
                reason: "佐证不足".into(),
            },
        ),
        (
            "extend",
            Command::RequestExtension {
                to: d("2026-09-30"),
                reason: "涉及审批".into(),
            },
        ),
        ("ext-approve", Command::ApproveExtension { note: None }),
        ("ext-refuse", Command::RefuseExtension { note: None }),
        (
            "reassign",
            Command::Reassign {
                lead_unit: "SFJ".into(),
                reason: "职责调整".into(),
            },
        ),
        (
            "reopen",
            Command::Reopen {
                reason: "回头看发现反弹".into(),
                due: None,
            },
        ),
        ("finish", Command::Finish { note: None }),
        (
            "cancel",
            Command::Cancel {
                reason: "重复".into(),
                merged_into: Some(7),
            },
        ),
    ]
}

/// Runs one command on an item in `state` and renders the result as one line.
fn run(state: ItemState, name: &str, cmd: &Command, actor: &Actor) -> String {
    let mut item = item_in(state);
    if matches!(name, "ext-approve" | "ext-refuse") {
        item.pending_extension = Some(PendingExtension {
            to: d("2026-09-30"),
            reason: "r".into(),
            requested_by: "op".into(),
        });
    }
    match transition(&item, cmd, actor, &ctx("2026-03-01")) {
        Ok(o) => {
            assert_eq!(
                o.item.version,
                item.version + 1,
                "version must go up by one"
            );
            assert_eq!(o.event.kind, cmd.action().event_kind());
            format!("-> {}", o.item.state)
        }
        Err(r) => format!("refused: {}", r.message(Lang::En)),
    }
}

/// The one helper every table test goes through: renders the table for `actor` and compares.
fn check(actor: &Actor, expected: &str) {
    let mut out = String::new();
    for state in ItemState::ALL {
        for (name, cmd) in commands() {
            out.push_str(&format!(
                "{state} {name}: {}\n",
                run(*state, name, &cmd, actor)
            ));
        }
    }
    let expected: String = expected
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    if out != expected {
        for (a, b) in out.lines().zip(expected.lines()) {
            if a != b {
                eprintln!("got:      {a}\nexpected: {b}");
            }
        }
        panic!("transition table differs; full table:\n{out}");
    }
}

#[test]
fn admin_transition_table() {
    check(
        &admin(),
        r#"
        draft assign: -> assigned
        draft ack: refused: item 12 is draft; only assigned items can be acknowledged
        draft progress: refused: item 12 is draft; only in_progress or long_term items can be reported on
        draft submit: refused: item 12 is draft; only in_progress items can be submitted for close-out
        draft verify: refused: item 12 is draft; only pending_verification items can be verified
        draft verify-long-term: refused: item 12 is draft; only pending_verification items can be verified as long-term
        draft reject: refused: item 12 is draft; only pending_verification items can be sent back
        draft extend: refused: item 12 is draft; only assigned or in_progress items can be given an extension request
        draft ext-approve: refused: item 12 is draft; only assigned or in_progress or pending_verification items can be given an extension approval
        draft ext-refuse: refused: item 12 is draft; only assigned or in_progress or pending_verification items can be given an extension refusal
        draft reassign: refused: item 12 is draft; only assigned or in_progress items can be reassigned
        draft reopen: refused: item 12 is draft; only closed or long_term items can be reopened
        draft finish: refused: item 12 is draft; only long_term items can be finished
        draft cancel: -> cancelled
        assigned assign: refused: item 12 is assigned; only draft items can be assigned
        assigned ack: -> in_progress
        assigned progress: refused: item 12 is assigned; only in_progress or long_term items can be reported on
        assigned submit: refused: item 12 is assigned; only in_progress items can be submitted for close-out
        assigned verify: refused: item 12 is assigned; only pending_verification items can be verified
        assigned verify-long-term: refused: item 12 is assigned; only pending_verification items can be verified as long-term
        assigned reject: refused: item 12 is assigned; only pending_verification items can be sent back
        assigned extend: -> assigned
        assigned ext-approve: -> assigned
        assigned ext-refuse: -> assigned
        assigned reassign: -> assigned
        assigned reopen: refused: item 12 is assigned; only closed or long_term items can be reopened
        assigned finish: refused: item 12 is assigned; only long_term items can be finished
        assigned cancel: -> cancelled
        in_progress assign: refused: item 12 is in_progress; only draft items can be assigned
        in_progress ack: refused: item 12 is in_progress; only assigned items can be acknowledged
        in_progress progress: -> in_progress
        in_progress submit: -> pending_verification
        in_progress verify: refused: item 12 is in_progress; only pending_verification items can be verified
        in_progress verify-long-term: refused: item 12 is in_progress; only pending_verification items can be verified as long-term
        in_progress reject: refused: item 12 is in_progress; only pending_verification items can be sent back
        in_progress extend: -> in_progress
        in_progress ext-approve: -> in_progress
        in_progress ext-refuse: -> in_progress
        in_progress reassign: -> assigned
        in_progress reopen: refused: item 12 is in_progress; only closed or long_term items can be reopened
        in_progress finish: refused: item 12 is in_progress; only long_term items can be finished
        in_progress cancel: -> cancelled
        pending_verification assign: refused: item 12 is pending_verification; only draft items can be assigned
        pending_verification ack: refused: item 12 is pending_verification; only assigned items can be acknowledged
        pending_verification progress: refused: item 12 is pending_verification; only in_progress or long_term items can be reported on
        pending_verification submit: refused: item 12 is pending_verification; only in_progress items can be submitted for close-out
        pending_verification verify: -> closed
        pending_verification verify-long-term: -> long_term
        pending_verification reject: -> in_progress
        pending_verification extend: refused: item 12 is pending_verification; only assigned or in_progress items can be given an extension request
        pending_verification ext-approve: -> pending_verification
        pending_verification ext-refuse: -> pending_verification
        pending_verification reassign: refused: item 12 is pending_verification; only assigned or in_progress items can be reassigned
        pending_verification reopen: refused: item 12 is pending_verification; only closed or long_term items can be reopened
        pending_verification finish: refused: item 12 is pending_verification; only long_term items can be finished
        pending_verification cancel: -> cancelled
        closed assign: refused: item 12 is closed; only draft items can be assigned
        closed ack: refused: item 12 is closed; only assigned items can be acknowledged
        closed progress: refused: item 12 is closed; only in_progress or long_term items can be reported on
        closed submit: refused: item 12 is closed; only in_progress items can be submitted for close-out
        closed verify: refused: item 12 is closed; only pending_verification items can be verified
        closed verify-long-term: refused: item 12 is closed; only pending_verification items can be verified as long-term
        closed reject: refused: item 12 is closed; only pending_verification items can be sent back
        closed extend: refused: item 12 is closed; only assigned or in_progress items can be given an extension request
        closed ext-approve: refused: item 12 is closed; only assigned or in_progress or pending_verification items can be given an extension approval
        closed ext-refuse: refused: item 12 is closed; only assigned or in_progress or pending_verification items can be given an extension refusal
        closed reassign: refused: item 12 is closed; only assigned or in_progress items can be reassigned
        closed reopen: -> in_progress
        closed finish: refused: item 12 is closed; only long_term items can be finished
        closed cancel: refused: item 12 is closed; only draft or assigned or in_progress or pending_verification or long_term items can be cancelled
        long_term assign: refused: item 12 is long_term; only draft items can be assigned
        long_term ack: refused: item 12 is long_term; only assigned items can be acknowledged
        long_term progress: -> long_term
        long_term submit: refused: item 12 is long_term; only in_progress items can be submitted for close-out
        long_term verify: refused: item 12 is long_term; only pending_verification items can be verified
        long_term verify-long-term: refused: item 12 is long_term; only pending_verification items can be verified as long-term
        long_term reject: refused: item 12 is long_term; only pending_verification items can be sent back
        long_term extend: refused: item 12 is long_term; only assigned or in_progress items can be given an extension request
        long_term ext-approve: refused: item 12 is long_term; only assigned or in_progress or pending_verification items can be given an extension approval
        long_term ext-refuse: refused: item 12 is long_term; only assigned or in_progress or pending_verification items can be given an extension refusal
        long_term reassign: refused: item 12 is long_term; only assigned or in_progress items can be reassigned
        long_term reopen: -> in_progress
        long_term finish: -> closed
        long_term cancel: -> cancelled
        cancelled assign: refused: item 12 is cancelled; only draft items can be assigned
        cancelled ack: refused: item 12 is cancelled; only assigned items can be acknowledged
        cancelled progress: refused: item 12 is cancelled; only in_progress or long_term items can be reported on
        cancelled submit: refused: item 12 is cancelled; only in_progress items can be submitted for close-out
        cancelled verify: refused: item 12 is cancelled; only pending_verification items can be verified
        cancelled verify-long-term: refused: item 12 is cancelled; only pending_verification items can be verified as long-term
        cancelled reject: refused: item 12 is cancelled; only pending_verification items can be sent back
        cancelled extend: refused: item 12 is cancelled; only assigned or in_progress items can be given an extension request
        cancelled ext-approve: refused: item 12 is cancelled; only assigned or in_progress or pending_verification items can be given an extension approval
        cancelled ext-refuse: refused: item 12 is cancelled; only assigned or in_progress or pending_verification items can be given an extension refusal
        cancelled reassign: refused: item 12 is cancelled; only assigned or in_progress items can be reassigned
        cancelled reopen: refused: item 12 is cancelled; only closed or long_term items can be reopened
        cancelled finish: refused: item 12 is cancelled; only long_term items can be finished
        cancelled cancel: refused: item 12 is cancelled; only draft or assigned or in_progress or pending_verification or long_term items can be cancelled
        "#,
    );
}

/// Permissions come before state: a unit operator gets "not permitted" for the office's verbs in
/// any state, and is judged by state only for its own four verbs on its own unit's items.
#[test]
fn unit_operator_and_viewer_permissions() {
    let own = unit_op("FGJ");
    let other = unit_op("SFJ");
    for state in ItemState::ALL {
        for (name, cmd) in commands() {
            let action = cmd.action();
            let own_verb = matches!(
                action,
                Action::Acknowledge | Action::Progress | Action::Submit | Action::RequestExtension
            );
            let got_own = run(*state, name, &cmd, &own);
            let got_admin = run(*state, name, &cmd, &admin());
            if own_verb && *state != ItemState::Draft {
                assert_eq!(
                    got_own.replace("op-FGJ", "office"),
                    got_admin,
                    "{state} {name}"
                );
            } else {
                assert!(
                    got_own.starts_with("refused: operator op-FGJ (role unit) may not"),
                    "{state} {name}: {got_own}"
                );
            }
            let got_other = run(*state, name, &cmd, &other);
            assert!(got_other.starts_with("refused: operator op-SFJ (role unit) may not"));
            let got_viewer = run(*state, name, &cmd, &viewer());
            assert!(
                got_viewer.starts_with("refused: operator reader (role viewer) may not"),
                "{got_viewer}"
            );
        }
    }
    let err = create(
        &NewItem {
            round: "R".into(),
            title: "t".into(),
            ..Default::default()
        },
        1,
        &own,
        &ctx("2026-03-01"),
    )
    .unwrap_err();
    assert!(err.is_forbidden());
}

/// The rules beyond the state table, each with its exact refusal.
#[test]
fn rule_refusals() {
    let cases: Vec<(ItemState, Command, &str, u64, &str)> = vec![
        (
            ItemState::Draft,
            Command::Assign {
                lead_unit: "FGJ".into(),
                co_units: vec![],
                leader: None,
                deadline: Deadline::Date(d("2026-02-28")),
            },
            "2026-03-01",
            0,
            "the deadline 2026-02-28 is before today (2026-03-01); give today or a later date",
        ),
        (
            ItemState::Draft,
            Command::Assign {
                lead_unit: "FGJ".into(),
                co_units: vec!["FGJ".into()],
                leader: None,
                deadline: Deadline::LongTerm,
            },
            "2026-03-01",
            0,
            "FGJ is the lead unit and cannot also be a cooperating unit",
        ),
        (
            ItemState::InProgress,
            Command::Progress {
                note: "  ".into(),
                percent: None,
                evidence: vec![],
            },
            "2026-03-01",
            0,
            "note must not be empty",
        ),
        (
            ItemState::InProgress,
            Command::Progress {
                note: "x".into(),
                percent: Some(101),
                evidence: vec![],
            },
            "2026-03-01",
            0,
            "percent 101 is out of range; give a whole number from 0 to 100",
        ),
        (
            ItemState::InProgress,
            Command::Submit {
                note: "".into(),
                evidence: vec![],
            },
            "2026-03-01",
            0,
            "note must not be empty",
        ),
        (
            ItemState::PendingVerification,
            Command::SendBack { reason: "".into() },
            "2026-03-01",
            0,
            "reason must not be empty",
        ),
        (
            ItemState::PendingVerification,
            Command::Close { note: None },
            "2026-03-01",
            2,
            "item 12 still has 2 open child item(s); close or cancel them first",
        ),
        (
            ItemState::LongTerm,
            Command::Finish { note: None },
            "2026-03-01",
            1,
            "item 12 still has 1 open child item(s); close or cancel them first",
        ),
        (
            ItemState::InProgress,
            Command::RequestExtension {
                to: d("2026-06-01"),
                reason: "r".into(),
            },
            "2026-03-01",
            0,
            "the new date 2026-06-01 must be later than the current deadline 2026-06-30",
        ),
        (
            ItemState::InProgress,
            Command::RequestExtension {
                to: d("2026-09-01"),
                reason: "r".into(),
            },
            "2026-07-01",
            0,
            "item 12 was due 2026-06-30 and today is 2026-07-01; an extension must be requested before the deadline",
        ),
        (
            ItemState::InProgress,
            Command::ApproveExtension { note: None },
            "2026-03-01",
            0,
            "item 12 has no extension request waiting",
        ),
        (
            ItemState::InProgress,
            Command::Reassign {
                lead_unit: "FGJ".into(),
                reason: "r".into(),
            },
            "2026-03-01",
            0,
            "the item is already led by FGJ; reassign it to another unit",
        ),
        (
            ItemState::InProgress,
            Command::Cancel {
                reason: "dup".into(),
                merged_into: Some(12),
            },
            "2026-03-01",
            0,
            "item 12 cannot be merged into itself",
        ),
        (
            ItemState::InProgress,
            Command::Progress {
                note: "a\u{7}b".into(),
                percent: None,
                evidence: vec![],
            },
            "2026-03-01",
            0,
            "note contains the control character U+0007; remove it",
        ),
    ];
    for (state, cmd, today, open_children, expected) in cases {
        let item = item_in(state);
        let mut c = ctx(today);
        c.open_children = open_children;
        let got = transition(&item, &cmd, &admin(), &c).map(|o| o.item.state);
        match got {
            Err(r) => assert_eq!(r.message(Lang::En), expected, "{state} {cmd:?}"),
            Ok(s) => panic!("{state} {cmd:?} was allowed (-> {s}); expected: {expected}"),
        }
    }
}

#[test]
fn extension_flow_and_counters() {
    let mut item = item_in(ItemState::InProgress);
    let c = ctx("2026-03-01");
    let req = Command::RequestExtension {
        to: d("2026-09-30"),
        reason: "审批".into(),
    };
    item = transition(&item, &req, &unit_op("FGJ"), &c).unwrap().item;
    let again = transition(&item, &req, &unit_op("FGJ"), &c).unwrap_err();
    assert_eq!(
        again.message(Lang::En),
        "item 12 already has an extension request waiting (to 2026-09-30); approve or refuse it first"
    );
    let dv = item.deadline_version;
    item = transition(
        &item,
        &Command::ApproveExtension { note: None },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    assert_eq!(item.deadline, Some(Deadline::Date(d("2026-09-30"))));
    assert_eq!(item.deadline_version, dv + 1);
    assert!(item.pending_extension.is_none());
    item = transition(
        &item,
        &Command::Submit {
            note: "done".into(),
            evidence: vec![],
        },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    item = transition(
        &item,
        &Command::SendBack {
            reason: "redo".into(),
        },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    item = transition(
        &item,
        &Command::Submit {
            note: "done".into(),
            evidence: vec![],
        },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    item = transition(
        &item,
        &Command::SendBack {
            reason: "redo".into(),
        },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    assert_eq!(item.send_backs, 2);
    item = transition(
        &item,
        &Command::Reassign {
            lead_unit: "SFJ".into(),
            reason: "r".into(),
        },
        &admin(),
        &c,
    )
    .unwrap()
    .item;
    assert_eq!(item.reassignments, 1);
    assert_eq!(item.lead_unit.as_deref(), Some("SFJ"));
    // The old unit's operator can no longer act on it; the new unit's can.
    assert!(
        transition(&item, &Command::Acknowledge, &unit_op("FGJ"), &c)
            .unwrap_err()
            .is_forbidden()
    );
    assert!(transition(&item, &Command::Acknowledge, &unit_op("SFJ"), &c).is_ok());
}

#[test]
fn chinese_messages_are_the_default() {
    let item = item_in(ItemState::InProgress);
    let r = transition(
        &item,
        &Command::Close { note: None },
        &admin(),
        &ctx("2026-03-01"),
    )
    .unwrap_err();
    assert_eq!(
        r.message(Lang::Zh),
        "事项 12 当前状态为“整改中”;只有“待验收”状态的事项才能验收销号"
    );
}

fn any_command() -> impl Strategy<Value = Command> {
    let unit = prop::sample::select(vec!["FGJ", "SFJ", "CZJ"]).prop_map(String::from);
    let note = prop::sample::select(vec!["", "进展", "x\u{1}y", "done"]).prop_map(String::from);
    let date = (0i64..400).prop_map(|n| d("2026-01-01") + chrono::Duration::days(n));
    prop_oneof![
        (unit.clone(), date.clone(), any::<bool>()).prop_map(|(u, due, lt)| Command::Assign {
            lead_unit: u,
            co_units: vec![],
            leader: None,
            deadline: if lt {
                Deadline::LongTerm
            } else {
                Deadline::Date(due)
            },
        }),
        Just(Command::Acknowledge),
        (note.clone(), prop::option::of(0u8..120)).prop_map(|(n, p)| Command::Progress {
            note: n,
            percent: p,
            evidence: vec![]
        }),
        note.clone().prop_map(|n| Command::Submit {
            note: n,
            evidence: vec![]
        }),
        Just(Command::Close { note: None }),
        Just(Command::KeepLongTerm {
            note: None,
            cadence: Cadence::Quarterly
        }),
        note.clone().prop_map(|r| Command::SendBack { reason: r }),
        (date.clone(), note.clone())
            .prop_map(|(to, r)| Command::RequestExtension { to, reason: r }),
        Just(Command::ApproveExtension { note: None }),
        Just(Command::RefuseExtension { note: None }),
        (unit, note.clone()).prop_map(|(u, r)| Command::Reassign {
            lead_unit: u,
            reason: r
        }),
        (note.clone(), prop::option::of(date.clone())).prop_map(|(r, d)| Command::Reopen {
            reason: r,
            due: d.map(Deadline::Date)
        }),
        Just(Command::Finish { note: None }),
        (note, prop::option::of(1i64..20)).prop_map(|(r, m)| Command::Cancel {
            reason: r,
            merged_into: m
        }),
    ]
}

/// Invariants every stored item must satisfy, whatever sequence of commands led there.
fn assert_valid(item: &Item) {
    use ItemState::*;
    if matches!(
        item.state,
        Assigned | InProgress | PendingVerification | LongTerm | Closed
    ) && item.assigned_at.is_some()
    {
        assert!(item.lead_unit.is_some(), "{item:?}");
        assert!(item.deadline.is_some(), "{item:?}");
    }
    if matches!(item.state, Assigned | InProgress | PendingVerification) {
        assert!(
            item.lead_unit.is_some() && item.deadline.is_some(),
            "{item:?}"
        );
    }
    if item.state == Closed {
        assert!(item.closed_at.is_some());
    }
    if item.state == LongTerm {
        assert!(item.cadence.is_some());
    }
    if let Some(p) = &item.pending_extension {
        assert!(
            matches!(item.state, Assigned | InProgress | PendingVerification),
            "{item:?}"
        );
        assert!(
            matches!(item.deadline, Some(Deadline::Date(due)) if p.to > due),
            "{item:?}"
        );
    }
    assert!(item.progress_percent.is_none_or(|p| p <= 100));
    assert!(
        !item
            .co_units
            .iter()
            .any(|u| Some(u) == item.lead_unit.as_ref())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_sequences_stay_valid_and_chain_verifies(
        cmds in prop::collection::vec((any_command(), 0u8..3, 0i64..30), 1..40)
    ) {
        let start = ctx("2026-01-01");
        let created = create(
            &NewItem { round: "R".into(), title: "t".into(), ..Default::default() },
            5,
            &admin(),
            &start,
        ).unwrap();
        let mut item = created.item;
        let mut events = vec![created.event];
        let mut day = d("2026-01-01");
        for (cmd, who, advance) in cmds {
            day += chrono::Duration::days(advance);
            let actor = match who { 0 => admin(), 1 => unit_op("FGJ"), _ => viewer() };
            let c = Ctx { now: Utc.from_utc_datetime(&day.and_hms_opt(1, 0, 0).unwrap()), today: day, open_children: 0 };
            if let Ok(o) = transition(&item, &cmd, &actor, &c) {
                prop_assert_eq!(o.item.version, item.version + 1);
                item = o.item;
                events.push(o.event);
                assert_valid(&item);
            }
        }
        // Build the stored chain as the store would, and verify it.
        let mut prev = GENESIS.to_string();
        let mut links = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let ev: Vec<String> = e.evidence.iter().map(|x| x.sha256.clone()).collect();
            let hash = ChainLink { item_id: 5, seq: i as i64 + 1, kind: e.kind, actor: &e.actor, at: e.at, payload: &e.payload, evidence: &ev, prev_hash: &prev }.hash();
            links.push(StoredLink { event_id: 100 + i as i64, seq: i as i64 + 1, kind: e.kind.into(), actor: e.actor.clone(), at: e.at, payload: e.payload.clone(), evidence: ev, prev_hash: prev.clone(), hash: hash.clone() });
            prev = hash;
        }
        let n = links.len() as i64;
        prop_assert!(verify_chain(5, &links, n, &prev).is_empty());
        // Any edit is detected.
        let mut edited = links.clone();
        edited[0].actor.push('x');
        prop_assert!(!verify_chain(5, &edited, n, &prev).is_empty());
        if links.len() > 1 {
            let mut dropped = links.clone();
            dropped.remove(0);
            prop_assert!(!verify_chain(5, &dropped, n, &prev).is_empty());
            let mut last_dropped = links.clone();
            last_dropped.pop();
            prop_assert!(!verify_chain(5, &last_dropped, n, &prev).is_empty());
            let mut swapped = links.clone();
            swapped.swap(0, 1);
            prop_assert!(!verify_chain(5, &swapped, n, &prev).is_empty());
        }
    }
}

#[test]
fn megabyte_strings_are_refused() {
    let mb = "字".repeat(1_000_000);
    let err = create(
        &NewItem {
            round: "R".into(),
            title: mb.clone(),
            ..Default::default()
        },
        1,
        &admin(),
        &ctx("2026-03-01"),
    )
    .unwrap_err();
    assert!(
        err.message(Lang::En)
            .starts_with("title is too long (1000000 characters; at most 2000)"),
        "{}",
        err.message(Lang::En)
    );
    let item = item_in(ItemState::InProgress);
    let err = transition(
        &item,
        &Command::Progress {
            note: mb,
            percent: None,
            evidence: vec![],
        },
        &admin(),
        &ctx("2026-03-01"),
    )
    .unwrap_err();
    assert!(err.message(Lang::En).contains("too long"));
}
