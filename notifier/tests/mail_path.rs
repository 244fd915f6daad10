//! The mail path, library level: items → reminder rows → a dispatcher pass → the outbox → a real
//! SMTP server on loopback ([`SmtpServer`]). Every assertion is on what the server received (or on
//! the outbox when nothing may be received).
//!
//! Every scenario goes through one harness, [`H`], and runs on SQLite, and on PostgreSQL too when
//! `RECTIFY_TEST_DATABASE_URL` is set (each in a fresh database).
//!
//! Dates are in 2026, Beijing time. The calendar facts the scenarios lean on: Mon 2026-03-02 and
//! Tue 2026-03-31 are ordinary working days; the Spring Festival is off Feb 15–23 with Saturday
//! Feb 14 a make-up working day; Qingming is off Apr 4–6 (Sat–Mon).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rectify_engine::calendar::WorkCalendar;
use rectify_engine::light::LightPolicy;
use rectify_engine::remind::ReminderPolicy;
use rectify_engine::{Actor, Command, Deadline, Item, Lang, NewItem, Offset, Role, Source};
use rectify_notifier::testing::{Received, SmtpServer};
use rectify_notifier::{
    DeliveryReport, DispatchConfig, Dispatcher, Job, PassReport, SHARDS, shard_job, shard_of,
};
use rectify_schema::entity::{outbox, reminder};
use rectify_schema::sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use rectify_schema::testing::TestDb;
use rectify_schema::{Operator, Planner, Round, Store, Unit};

// ---- the world every scenario starts from ---------------------------------------------------

const ROUND: &str = "XS-12-2";
const ROUND_TITLE: &str = "十二届省委第二轮巡视反馈问题整改";
/// When most items are assigned: Monday 2026-03-02, 09:00.
const ASSIGNED: &str = "2026-03-02T09:00:00+08:00";
/// The office's admin; an admin's email is "the office" in escalations and summaries.
const ADMIN: &str = "office";
const OFFICE: &str = "office@example.gov.cn";
const FGJ_OP: &str = "fgj-op";
/// 区发改局: the lead unit of most scenarios; its leader 周诚 is copied on escalations.
const FGJ: &str = "fgj@example.gov.cn";
const LEADER: &str = "周诚";
const LEADER_MAIL: &str = "zhoucheng@example.gov.cn";
/// 区司法局.
const SFJ: &str = "sfj@example.gov.cn";
/// 区财政局: a cooperating unit.
const CZJ: &str = "czj@example.gov.cn";

/// The default reminder ladder (7/3/1 working days before, on the day, every 2 working days
/// overdue, escalation after 3 and 10 working days), with acknowledgement and progress chasing
/// pushed far out of the way, so a scenario sees only the deadline reminders it is about.
fn deadline_policy() -> ReminderPolicy {
    ReminderPolicy {
        ack_within: Offset::working_days(100),
        progress_every: Offset::working_days(100),
        ..ReminderPolicy::default()
    }
}

/// Only "N before the deadline" reminders, written as in the configuration (`["1wd"]`).
fn before_only(before: &[&str]) -> ReminderPolicy {
    ReminderPolicy {
        before: before
            .iter()
            .map(|o| Offset::parse(o).expect("offset"))
            .collect(),
        on_due: false,
        overdue_every: Offset::working_days(0),
        escalate: vec![],
        ..deadline_policy()
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// The addresses of a header (`To`, `Cc`), lower-cased and sorted.
fn header_addrs(r: &Received, name: &str) -> Vec<String> {
    let mut v: Vec<String> = r
        .header(name)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let s = s.trim();
            match (s.rfind('<'), s.rfind('>')) {
                (Some(a), Some(b)) if b > a => s[a + 1..b].to_ascii_lowercase(),
                _ => s.to_ascii_lowercase(),
            }
        })
        .collect();
    v.sort();
    v
}

/// The envelope recipients of a message, sorted.
fn rcpts(r: &Received) -> Vec<String> {
    let mut v = r.rcpts.clone();
    v.sort();
    v
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The message of `list` sent to `addr` (exactly one).
#[track_caller]
fn to<'a>(list: &'a [Received], addr: &str) -> &'a Received {
    let m: Vec<&Received> = list
        .iter()
        .filter(|r| header_addrs(r, "To").contains(&addr.to_string()))
        .collect();
    assert_eq!(
        m.len(),
        1,
        "expected one message to {addr}, got {}: {:?}",
        m.len(),
        list.iter().map(|r| r.subject()).collect::<Vec<_>>()
    );
    m[0]
}

// ---- the harness ------------------------------------------------------------------------------

/// One scenario's world: a fresh database with units FGJ (leader 周诚), SFJ and CZJ, the admin
/// `office` and the FGJ operator, the round [`ROUND`]; a store planning with `policy`; an SMTP
/// server on loopback; and a dispatcher sending to it.
struct H {
    db: Option<TestDb>,
    store: Store,
    smtp: SmtpServer,
    d: Dispatcher,
    policy: ReminderPolicy,
    admin: Actor,
    fgj_op: Actor,
    /// How many received messages [`H::take`] has handed out.
    seen: Cell<usize>,
    tokens: Cell<u32>,
    numbers: Cell<u32>,
}

impl H {
    async fn new(db: TestDb, policy: ReminderPolicy) -> H {
        let planner = Planner {
            policy: policy.clone(),
            ..Planner::default()
        };
        let store = db.store().await.with_planner(planner);
        let smtp = SmtpServer::start().await.expect("start the SMTP server");
        let d = dispatcher(&store, &policy, smtp.port());
        let t0 = at("2026-01-05T09:00:00+08:00");
        let unit = |code: &str, name: &str, email: &str, leader: Option<(&str, &str)>| Unit {
            code: code.into(),
            name: name.into(),
            parent: None,
            emails: vec![email.into()],
            leader: leader.map(|l| l.0.to_string()),
            leader_email: leader.map(|l| l.1.to_string()),
            aliases: vec![],
        };
        for u in [
            unit("FGJ", "区发改局", FGJ, Some((LEADER, LEADER_MAIL))),
            unit("SFJ", "区司法局", SFJ, None),
            unit("CZJ", "区财政局", CZJ, None),
        ] {
            store.add_unit(&u, t0).await.expect("add unit");
        }
        let admin = store
            .add_operator(
                &Operator {
                    name: ADMIN.into(),
                    role: Role::Admin,
                    unit: None,
                    email: Some(OFFICE.into()),
                },
                t0,
            )
            .await
            .expect("add admin")
            .actor();
        let fgj_op = store
            .add_operator(
                &Operator {
                    name: FGJ_OP.into(),
                    role: Role::Unit,
                    unit: Some("FGJ".into()),
                    email: None,
                },
                t0,
            )
            .await
            .expect("add unit operator")
            .actor();
        store
            .add_round(
                &Round {
                    code: ROUND.into(),
                    title: ROUND_TITLE.into(),
                    source: Source::Inspection,
                },
                t0,
            )
            .await
            .expect("add round");
        H {
            db: Some(db),
            store,
            smtp,
            d,
            policy,
            admin,
            fgj_op,
            seen: Cell::new(0),
            tokens: Cell::new(0),
            numbers: Cell::new(0),
        }
    }

    fn backend(&self) -> &'static str {
        self.db.as_ref().map_or("?", |d| d.name)
    }

    /// A new dispatcher (a new process, as far as the mail path can tell) sending to `port`.
    fn dispatcher(&self, port: u16) -> Dispatcher {
        dispatcher(&self.store, &self.policy, port)
    }

    /// A new item of `lead` (numbered in creation order) with deadline `due`; FGJ's items name
    /// its leader.
    fn new_item(&self, title: &str, lead: &str, due: &str) -> NewItem {
        self.numbers.set(self.numbers.get() + 1);
        NewItem {
            round: ROUND.into(),
            number: self.numbers.get().to_string(),
            title: title.into(),
            lead_unit: Some(lead.into()),
            leader: (lead == "FGJ").then(|| LEADER.to_string()),
            deadline: Some(Deadline::Date(date(due))),
            ..NewItem::default()
        }
    }

    /// A new item of `lead`, assigned at `when` with deadline `due`.
    async fn item(&self, title: &str, lead: &str, due: &str, when: &str) -> Item {
        self.assign(self.new_item(title, lead, due), when).await
    }

    /// Creates and assigns `new` at `when`.
    async fn assign(&self, new: NewItem, when: &str) -> Item {
        let now = at(when);
        let item = self
            .store
            .create_item(&new, &self.admin, now, self.d.today(now))
            .await
            .expect("create item");
        assert_eq!(item.state.as_str(), "assigned");
        item
    }

    async fn apply(&self, id: i64, cmd: Command, actor: &Actor, when: &str) -> Item {
        let now = at(when);
        self.store
            .apply(id, &cmd, actor, now, self.d.today(now))
            .await
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    fn token(&self) -> String {
        self.tokens.set(self.tokens.get() + 1);
        format!("test-pass-{}", self.tokens.get())
    }

    /// One scheduler round at `when`: plan and queue what is due, then deliver the outbox.
    async fn pass(&self, when: &str) -> (PassReport, DeliveryReport) {
        let now = at(when);
        let report = self
            .d
            .plan_pass(now, false)
            .await
            .unwrap_or_else(|e| panic!("[{}] pass at {when}: {e}", self.backend()));
        (report, self.deliver_at(now).await)
    }

    async fn deliver_at(&self, now: DateTime<Utc>) -> DeliveryReport {
        self.d
            .deliver(now, &self.token())
            .await
            .unwrap_or_else(|e| panic!("[{}] deliver at {now}: {e}", self.backend()))
    }

    /// The messages the SMTP server received since the last call.
    fn take(&self) -> Vec<Received> {
        let all = self.smtp.received();
        let new = all[self.seen.get().min(all.len())..].to_vec();
        self.seen.set(all.len());
        new
    }

    /// Asserts that exactly one message arrived since the last [`H::take`] and returns it.
    #[track_caller]
    fn take_one(&self, what: &str) -> Received {
        let got = self.take();
        assert_eq!(
            got.len(),
            1,
            "[{}] {what}: expected one message, got {:?}",
            self.backend(),
            got.iter().map(|r| r.subject()).collect::<Vec<_>>()
        );
        got.into_iter().next().expect("one message")
    }

    /// Asserts that nothing arrived since the last [`H::take`].
    #[track_caller]
    fn take_none(&self, what: &str) {
        let got = self.take();
        assert!(
            got.is_empty(),
            "[{}] {what}: expected no message, got {:?}",
            self.backend(),
            got.iter().map(|r| r.subject()).collect::<Vec<_>>()
        );
    }

    async fn outbox(&self, state: Option<&str>) -> Vec<outbox::Model> {
        self.store.list_outbox(state).await.expect("list outbox")
    }

    /// The outbox row carrying `r`'s Message-ID.
    async fn row_of(&self, r: &Received) -> outbox::Model {
        let mid = r.message_id().expect("a Message-ID header");
        self.outbox(None)
            .await
            .into_iter()
            .find(|m| m.message_id == mid)
            .unwrap_or_else(|| panic!("no outbox row with Message-ID {mid}"))
    }

    async fn reminders(&self, item: i64) -> Vec<reminder::Model> {
        reminder::Entity::find()
            .filter(reminder::Column::ItemId.eq(item))
            .order_by_asc(reminder::Column::Id)
            .all(self.store.db())
            .await
            .expect("reminder rows")
    }

    /// The send date of the item's pending reminder of `kind` and `step`.
    async fn send_on(&self, item: i64, kind: &str, step: i64) -> String {
        self.reminders(item)
            .await
            .into_iter()
            .find(|r| r.kind == kind && r.step == step && r.state == "pending")
            .unwrap_or_else(|| panic!("no pending {kind} {step} reminder for item {item}"))
            .send_on
    }

    async fn done(mut self) {
        self.smtp.stop();
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

fn dispatcher(store: &Store, policy: &ReminderPolicy, port: u16) -> Dispatcher {
    let mailer = rectify_notifier::testing::plain_mailer(port, 2, Duration::from_secs(5));
    let t = |s| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
    Dispatcher::new(
        store.clone(),
        mailer,
        DispatchConfig {
            lang: Lang::Zh,
            tz: chrono_tz::Asia::Shanghai,
            from: "整改办 <zgb@example.gov.cn>".into(),
            window: (t("08:30"), t("18:00")),
            policy: policy.clone(),
            // The lights follow the same policy as the reminders, as in the binary.
            light: LightPolicy {
                ack_within: policy.ack_within,
                progress_every: policy.progress_every,
                ..LightPolicy::default()
            },
            calendar: Arc::new(WorkCalendar::china()),
            lease: Duration::from_secs(60),
            max_connections: 2,
            instance: "mail-path-test".into(),
            sender: "整改办".into(),
        },
    )
}

// ---- scenarios ----------------------------------------------------------------------------------

#[tokio::test]
async fn one_digest_per_unit_and_cooperating_units_are_copied() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.assign(
            NewItem {
                co_units: vec!["CZJ".into()],
                ..h.new_item("整改甲:稳经济政策落实", "FGJ", "2026-03-31")
            },
            ASSIGNED,
        )
        .await;
        h.item("整改乙:项目审批提速", "FGJ", "2026-03-31", ASSIGNED)
            .await;
        h.item("整改丙:价格监测", "FGJ", "2026-03-31", ASSIGNED)
            .await;
        h.item("整改丁:行政复议", "SFJ", "2026-03-31", ASSIGNED)
            .await;
        h.item("整改戊:普法宣传", "SFJ", "2026-03-31", ASSIGNED)
            .await;

        // One working day before the deadline: one digest per unit, each listing its items.
        let (report, delivery) = h.pass("2026-03-30T09:00:00+08:00").await;
        assert_eq!(report.messages.len(), 2, "[{b}] {:?}", report.messages);
        assert_eq!(report.reminders_queued, 5, "[{b}]");
        assert_eq!(delivery.sent, 2, "[{b}]");
        let got = h.take();
        assert_eq!(got.len(), 2, "[{b}]");

        let fgj = to(&got, FGJ);
        assert_eq!(rcpts(fgj), sorted(&[CZJ, FGJ]), "[{b}] envelope recipients");
        assert_eq!(header_addrs(fgj, "Cc"), vec![CZJ], "[{b}] Cc");
        assert!(
            fgj.from.contains("zgb@example.gov.cn"),
            "[{b}] {}",
            fgj.from
        );
        assert_eq!(
            fgj.subject().as_deref(),
            Some("【整改提醒】区发改局:3 项整改事项需关注(2026-03-30)"),
            "[{b}]"
        );
        let text = fgj.text();
        for t in ["整改甲", "整改乙", "整改丙", "区发改局", "【到期提醒】"] {
            assert!(text.contains(t), "[{b}] FGJ digest lacks {t}:\n{text}");
        }
        assert_eq!(text.matches("剩余 1 个工作日").count(), 3, "[{b}]\n{text}");
        assert!(
            !text.contains("整改丁") && !text.contains("整改戊"),
            "[{b}]"
        );

        let sfj = to(&got, SFJ);
        assert_eq!(rcpts(sfj), vec![SFJ.to_string()], "[{b}]");
        assert_eq!(sfj.header("Cc"), None, "[{b}] nobody to copy");
        assert_eq!(
            sfj.subject().as_deref(),
            Some("【整改提醒】区司法局:2 项整改事项需关注(2026-03-30)"),
            "[{b}]"
        );
        let text = sfj.text();
        assert!(text.contains("整改丁") && text.contains("整改戊"), "[{b}]");
        assert!(!text.contains("整改甲"), "[{b}]");

        // Each message carries the stable Message-ID of its outbox row, distinct per unit.
        assert_ne!(fgj.message_id(), sfj.message_id(), "[{b}]");
        assert_eq!(h.row_of(fgj).await.unit_code.as_deref(), Some("FGJ"));
        assert_eq!(h.row_of(sfj).await.unit_code.as_deref(), Some("SFJ"));
        assert_eq!(h.outbox(Some("sent")).await.len(), 2, "[{b}]");

        // On the deadline day: again one digest per unit, now "due today".
        h.pass("2026-03-31T09:00:00+08:00").await;
        let got = h.take();
        assert_eq!(got.len(), 2, "[{b}]");
        let text = to(&got, FGJ).text();
        assert_eq!(text.matches("【今日到期】").count(), 3, "[{b}]\n{text}");
        assert_eq!(rcpts(to(&got, FGJ)), sorted(&[CZJ, FGJ]), "[{b}]");
        h.done().await;
    }
}

#[tokio::test]
async fn nothing_is_sent_when_nothing_is_due_nor_twice_on_one_day() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;
        // The first reminder is 7 working days before the deadline: 2026-03-20.
        for when in [
            "2026-03-02T10:00:00+08:00",
            "2026-03-03T09:00:00+08:00",
            "2026-03-19T17:59:00+08:00",
        ] {
            let (report, delivery) = h.pass(when).await;
            assert!(report.messages.is_empty(), "[{b}] {when}");
            assert_eq!(report.not_run, None, "[{b}] {when}: the pass ran");
            assert_eq!(delivery, DeliveryReport::default(), "[{b}] {when}");
        }
        h.take_none("before any reminder is due");
        assert!(h.outbox(None).await.is_empty(), "[{b}] outbox");
        assert_eq!(h.smtp.connections(), 0, "[{b}] no connection at all");

        let first = h.pass("2026-03-20T09:00:00+08:00").await;
        assert_eq!(first.1.sent, 1, "[{b}]");
        let m = h.take_one("7 working days before");
        assert!(m.text().contains("剩余 7 个工作日"), "[{b}]\n{}", m.text());
        // Later the same day, and once more: nothing new.
        for when in ["2026-03-20T09:05:00+08:00", "2026-03-20T17:30:00+08:00"] {
            let (report, delivery) = h.pass(when).await;
            assert!(report.messages.is_empty(), "[{b}] {when}");
            assert_eq!(delivery, DeliveryReport::default(), "[{b}] {when}");
        }
        h.take_none("second pass the same day");
        assert_eq!(h.outbox(None).await.len(), 1, "[{b}]");
        h.done().await;
    }
}

#[tokio::test]
async fn one_working_day_before_a_spring_festival_deadline_is_the_make_up_saturday() {
    for db in TestDb::all().await {
        let h = H::new(db, before_only(&["1wd"])).await;
        let b = h.backend();
        let item = h
            .item(
                "节后到期事项",
                "FGJ",
                "2026-02-24",
                "2026-02-02T09:00:00+08:00",
            )
            .await;
        assert_eq!(h.send_on(item.id, "before", 0).await, "2026-02-14", "[{b}]");
        for when in [
            "2026-02-12T09:00:00+08:00",
            "2026-02-13T09:00:00+08:00",
            "2026-02-13T17:59:00+08:00",
        ] {
            h.pass(when).await;
        }
        h.take_none("before the make-up Saturday");
        // Saturday 2026-02-14 is a working day (调休): the reminder goes out.
        let (report, _) = h.pass("2026-02-14T09:00:00+08:00").await;
        assert_eq!(
            report.not_run, None,
            "[{b}] a make-up Saturday is a working day"
        );
        let m = h.take_one("on the make-up Saturday");
        assert_eq!(
            m.subject().as_deref(),
            Some("【整改提醒】区发改局:1 项整改事项需关注(2026-02-14)"),
            "[{b}]"
        );
        let text = m.text();
        assert!(
            text.contains("节后到期事项") && text.contains("2026-02-24"),
            "[{b}]"
        );
        assert!(text.contains("剩余 1 个工作日"), "[{b}]\n{text}");
        // The holiday and the deadline itself bring nothing more (no on-due reminder here).
        for when in ["2026-02-16T09:00:00+08:00", "2026-02-24T09:00:00+08:00"] {
            h.pass(when).await;
        }
        h.take_none("after the reminder");
        h.done().await;
    }
}

#[tokio::test]
async fn three_working_days_before_a_spring_festival_deadline_is_february_12() {
    for db in TestDb::all().await {
        let h = H::new(db, before_only(&["3wd"])).await;
        let b = h.backend();
        let item = h
            .item(
                "节后到期事项",
                "FGJ",
                "2026-02-24",
                "2026-02-02T09:00:00+08:00",
            )
            .await;
        assert_eq!(h.send_on(item.id, "before", 0).await, "2026-02-12", "[{b}]");
        h.pass("2026-02-11T09:00:00+08:00").await;
        h.take_none("the day before");
        h.pass("2026-02-12T09:00:00+08:00").await;
        let m = h.take_one("three working days before");
        assert!(m.text().contains("剩余 3 个工作日"), "[{b}]\n{}", m.text());
        h.pass("2026-02-13T09:00:00+08:00").await;
        h.pass("2026-02-14T09:00:00+08:00").await;
        h.take_none("after the reminder");
        h.done().await;
    }
}

#[tokio::test]
async fn reminders_go_out_only_in_the_send_window_on_working_days() {
    // Only the acknowledgement chase: it stays due until sent, so the same reminder can be
    // held back by the window and go out later.
    let policy = ReminderPolicy {
        before: vec![],
        on_due: false,
        overdue_every: Offset::working_days(0),
        escalate: vec![],
        ack_within: Offset::working_days(2),
        progress_every: Offset::working_days(100),
    };
    for db in TestDb::all().await {
        let h = H::new(db, policy.clone()).await;
        let b = h.backend();
        // Assigned Tuesday; two working days to acknowledge; chased on Friday 2026-03-27.
        let item = h
            .item(
                "未签收事项",
                "FGJ",
                "2026-06-30",
                "2026-03-24T10:00:00+08:00",
            )
            .await;
        assert_eq!(h.send_on(item.id, "ack", 0).await, "2026-03-27", "[{b}]");

        for (when, why) in [
            ("2026-03-27T07:00:00+08:00", "不在发送时段 08:30-18:00 内"),
            ("2026-03-27T08:29:59+08:00", "不在发送时段"),
            ("2026-03-27T18:00:00+08:00", "不在发送时段"),
            ("2026-03-29T10:00:00+08:00", "不是工作日"),
        ] {
            let (report, delivery) = h.pass(when).await;
            let not_run = report.not_run.unwrap_or_default();
            assert!(not_run.contains(why), "[{b}] {when}: {not_run:?}");
            assert!(report.messages.is_empty(), "[{b}] {when}");
            assert_eq!(delivery, DeliveryReport::default(), "[{b}] {when}");
        }
        h.take_none("outside the window");
        assert!(h.outbox(None).await.is_empty(), "[{b}]");
        let rows = h.reminders(item.id).await;
        assert!(
            rows.iter().all(|r| r.state == "pending"),
            "[{b}] untouched: {rows:?}"
        );

        // Monday at the opening of the window the same reminder goes out.
        let (report, _) = h.pass("2026-03-30T08:30:00+08:00").await;
        assert_eq!(report.not_run, None, "[{b}]");
        let m = h.take_one("in the window");
        assert!(m.text().contains("【签收催办】"), "[{b}]\n{}", m.text());
        assert!(m.text().contains("未签收事项"), "[{b}]");
        let rows = h.reminders(item.id).await;
        let ack = rows.iter().find(|r| r.kind == "ack").expect("ack row");
        assert_eq!(ack.state, "sent", "[{b}]");
        h.done().await;
    }
}

#[tokio::test]
async fn overdue_items_climb_the_escalation_ladder_to_a_supervision_notice() {
    let policy = ReminderPolicy {
        before: vec![],
        ..deadline_policy()
    };
    for db in TestDb::all().await {
        let h = H::new(db, policy.clone()).await;
        let b = h.backend();
        let item = h.item("逾期整改事项", "FGJ", "2026-03-31", ASSIGNED).await;

        h.pass("2026-03-31T09:00:00+08:00").await;
        let m = h.take_one("on the deadline day");
        assert!(m.text().contains("【今日到期】"), "[{b}]\n{}", m.text());
        assert_eq!(rcpts(&m), vec![FGJ.to_string()], "[{b}]");

        // The day after: the on-due reminder is stale; the first overdue repeat is tomorrow.
        h.pass("2026-04-01T09:00:00+08:00").await;
        h.take_none("first day overdue");

        h.pass("2026-04-02T09:00:00+08:00").await;
        let m = h.take_one("overdue");
        let text = m.text();
        assert!(text.contains("【逾期催办】"), "[{b}]\n{text}");
        assert!(text.contains("已逾期 2 个工作日"), "[{b}]\n{text}");
        assert_eq!(rcpts(&m), vec![FGJ.to_string()], "[{b}] no leader yet");

        // Three working days overdue: the warning copies the responsible leader.
        h.pass("2026-04-03T09:00:00+08:00").await;
        let m = h.take_one("escalation step 1");
        assert!(m.text().contains("【逾期督办】"), "[{b}]\n{}", m.text());
        assert_eq!(header_addrs(&m, "To"), vec![FGJ], "[{b}]");
        assert_eq!(header_addrs(&m, "Cc"), vec![LEADER_MAIL], "[{b}]");
        assert_eq!(rcpts(&m), sorted(&[FGJ, LEADER_MAIL]), "[{b}]");
        assert!(
            !m.subject().unwrap_or_default().contains("督办单"),
            "[{b}] a warning is not yet a notice"
        );

        // After Qingming (Apr 4–6) the overdue repeats go on.
        h.pass("2026-04-07T09:00:00+08:00").await;
        let m = h.take_one("overdue repeat");
        assert!(m.text().contains("【逾期催办】"), "[{b}]\n{}", m.text());

        // Ten working days overdue: a supervision notice to the unit, copying leader and office.
        let (report, _) = h.pass("2026-04-15T09:00:00+08:00").await;
        assert_eq!(report.messages.len(), 1, "[{b}]");
        assert_eq!(report.messages[0].kind, "notice", "[{b}]");
        let m = h.take_one("supervision notice");
        let subject = m.subject().unwrap_or_default();
        assert!(subject.contains("督办单"), "[{b}] {subject}");
        assert!(subject.contains(ROUND_TITLE), "[{b}] {subject}");
        assert_eq!(header_addrs(&m, "To"), vec![FGJ], "[{b}]");
        assert_eq!(
            header_addrs(&m, "Cc"),
            sorted(&[LEADER_MAIL, OFFICE]),
            "[{b}]"
        );
        assert_eq!(rcpts(&m), sorted(&[FGJ, LEADER_MAIL, OFFICE]), "[{b}]");
        // The text arrives with CRLF line ends.
        let text = m.text().replace("\r\n", "\n");
        for t in [
            "督 办 单",
            "逾期整改事项",
            "截至 2026-04-15 已逾期 10 个工作日,",
            "责任领导:周诚",
            // The reminders already sent, oldest first.
            "- 2026-03-31 今日到期\n- 2026-04-02 逾期催办\n- 2026-04-03 逾期督办\n- 2026-04-07 逾期催办\n",
        ] {
            assert!(text.contains(t), "[{b}] notice lacks {t:?}:\n{text}");
        }
        assert!(!text.contains("已已"), "[{b}] {text}");
        let rows = h.reminders(item.id).await;
        let notice = rows
            .iter()
            .find(|r| r.kind == "escalation" && r.step == 1)
            .expect("escalation row");
        assert_eq!(notice.state, "sent", "[{b}]");
        h.done().await;
    }
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_after_the_backoff_and_delivered_once() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;
        h.smtp.refuse_temporarily(FGJ, 1);
        let now = at("2026-03-30T09:00:00+08:00");
        let (_, delivery) = h.pass("2026-03-30T09:00:00+08:00").await;
        assert_eq!(
            delivery,
            DeliveryReport {
                sent: 0,
                retried: 1,
                failed: 0
            },
            "[{b}]"
        );
        h.take_none("refused with 451");
        let rows = h.outbox(Some("pending")).await;
        assert_eq!(rows.len(), 1, "[{b}]");
        let row = &rows[0];
        assert_eq!(row.attempts, 1, "[{b}]");
        assert_eq!(row.next_attempt_at, now + secs(30), "[{b}] 30 s backoff");
        assert_eq!(row.lease_until, None, "[{b}]");
        let err = row.last_error.clone().unwrap_or_default();
        assert!(err.contains("451"), "[{b}] {err}");

        // Not before the backoff has passed.
        let early = h.deliver_at(now + secs(10)).await;
        assert_eq!(early, DeliveryReport::default(), "[{b}]");
        h.take_none("during the backoff");

        let later = h.deliver_at(now + secs(30)).await;
        assert_eq!(later.sent, 1, "[{b}]");
        let m = h.take_one("after the backoff");
        let row = h.row_of(&m).await;
        assert_eq!(row.state, "sent", "[{b}]");
        assert_eq!(row.attempts, 2, "[{b}]");
        assert_eq!(row.last_error, None, "[{b}]");
        // Nothing left to send.
        assert_eq!(
            h.deliver_at(now + secs(3600)).await,
            DeliveryReport::default()
        );
        h.take_none("afterwards");
        h.done().await;
    }
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_message_until_the_office_retries_it() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;
        h.smtp.refuse_permanently(FGJ);
        let now = at("2026-03-30T09:00:00+08:00");
        let (_, delivery) = h.pass("2026-03-30T09:00:00+08:00").await;
        assert_eq!(
            delivery,
            DeliveryReport {
                sent: 0,
                retried: 0,
                failed: 1
            },
            "[{b}]"
        );
        h.take_none("refused with 550");
        let failed = h.outbox(Some("failed")).await;
        assert_eq!(failed.len(), 1, "[{b}]");
        let err = failed[0].last_error.clone().unwrap_or_default();
        assert!(err.contains("550"), "[{b}] {err}");
        assert!(h.outbox(Some("pending")).await.is_empty(), "[{b}]");
        // A failed message is never retried by itself.
        assert_eq!(
            h.deliver_at(now + secs(7200)).await,
            DeliveryReport::default(),
            "[{b}]"
        );
        // The next pass reports the failure to the office, once.
        h.pass("2026-03-30T10:00:00+08:00").await;
        let report = h.take();
        assert_eq!(report.len(), 1, "[{b}] one failure report");
        assert_eq!(rcpts(&report[0]), vec![OFFICE.to_string()], "[{b}]");
        let subject = report[0].subject().unwrap_or_default();
        assert!(subject.contains("发送失败"), "[{b}] {subject}");
        assert!(
            report[0].text().contains("550"),
            "[{b}] the reason is in the report"
        );
        h.pass("2026-03-30T11:00:00+08:00").await;
        h.take_none("the same failure is reported once");

        // The office puts it back in the queue; only failed messages can be retried.
        let id = failed[0].id;
        h.store
            .retry_outbox(id, now + secs(7200))
            .await
            .expect("retry");
        let pending = h.outbox(Some("pending")).await;
        assert_eq!(pending.len(), 1, "[{b}]");
        assert_eq!(pending[0].id, id, "[{b}]");
        assert_eq!(pending[0].attempts, 0, "[{b}]");
        assert!(h.outbox(Some("failed")).await.is_empty(), "[{b}]");
        assert!(
            h.store.retry_outbox(id, now).await.is_err(),
            "[{b}] a pending message cannot be retried"
        );
        assert!(
            h.store.retry_outbox(id + 1000, now).await.is_err(),
            "[{b}] unknown id"
        );
        // The address still refuses: failed again, not lost, not looping.
        let again = h.deliver_at(now + secs(7200)).await;
        assert_eq!(again.failed, 1, "[{b}]");
        assert_eq!(h.outbox(Some("failed")).await.len(), 1, "[{b}]");
        h.take_none("still refused");
        h.done().await;
    }
}

#[tokio::test]
async fn no_duplicate_after_a_crash_before_delivery_or_with_a_lease_held() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;

        // A pass queues the digest, then the process dies before delivering.
        let now = at("2026-03-30T09:00:00+08:00");
        let first = h.dispatcher(h.smtp.port());
        let report = first.plan_pass(now, false).await.expect("pass");
        assert_eq!(report.messages.len(), 1, "[{b}]");
        drop(first);
        assert_eq!(h.outbox(Some("pending")).await.len(), 1, "[{b}]");

        // The restarted process passes again (nothing new to queue) and delivers once.
        let second = h.dispatcher(h.smtp.port());
        let report = second.plan_pass(now + secs(60), false).await.expect("pass");
        assert!(report.messages.is_empty(), "[{b}] {:?}", report.messages);
        let d = second
            .deliver(now + secs(60), "restarted")
            .await
            .expect("deliver");
        assert_eq!(d.sent, 1, "[{b}]");
        let m = h.take_one("after the restart");
        assert_eq!(h.row_of(&m).await.state, "sent", "[{b}]");
        assert_eq!(h.outbox(None).await.len(), 1, "[{b}]");

        // Next day: an instance claims the digest and dies while holding the lease.
        let now = at("2026-03-31T09:00:00+08:00");
        second.plan_pass(now, false).await.expect("pass");
        let claimed = h
            .store
            .claim_outbox(now, now + secs(60), "crashed", 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "[{b}]");
        assert_eq!(claimed[0].state, "sending", "[{b}]");
        // While the lease holds, nobody else sends it.
        let d = second
            .deliver(now + secs(30), "other")
            .await
            .expect("deliver");
        assert_eq!(d, DeliveryReport::default(), "[{b}]");
        h.take_none("lease held");
        // After the lease expired it is taken over and delivered once, same Message-ID.
        let d = second
            .deliver(now + secs(61), "other")
            .await
            .expect("deliver");
        assert_eq!(d.sent, 1, "[{b}]");
        let m = h.take_one("taken over");
        assert_eq!(
            m.message_id().as_deref(),
            Some(claimed[0].message_id.as_str())
        );
        // The dead instance's token no longer counts.
        assert!(
            !h.store
                .mark_sent(claimed[0].id, "crashed", now + secs(62))
                .await
                .expect("mark"),
            "[{b}] fenced"
        );
        let row = h.row_of(&m).await;
        assert_eq!((row.state.as_str(), row.attempts), ("sent", 2), "[{b}]");
        assert_eq!(
            second
                .deliver(now + secs(300), "other")
                .await
                .expect("deliver"),
            DeliveryReport::default()
        );
        h.take_none("nothing more");
        h.done().await;
    }
}

#[tokio::test]
async fn an_approved_extension_cancels_the_old_reminders_and_plans_new_ones() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        let item = h.item("需延期事项", "FGJ", "2026-03-31", ASSIGNED).await;
        let old_dv = item.deadline_version;
        h.apply(
            item.id,
            Command::Acknowledge,
            &h.fgj_op,
            "2026-03-03T09:00:00+08:00",
        )
        .await;
        let before = h.reminders(item.id).await;
        assert!(
            before
                .iter()
                .any(|r| r.deadline_version == old_dv && r.state == "pending"),
            "[{b}] {before:?}"
        );
        h.apply(
            item.id,
            Command::RequestExtension {
                to: date("2026-04-30"),
                reason: "需等待上级批复".into(),
            },
            &h.fgj_op,
            "2026-03-10T09:00:00+08:00",
        )
        .await;
        let item = h
            .apply(
                item.id,
                Command::ApproveExtension {
                    note: Some("同意".into()),
                },
                &h.admin,
                "2026-03-11T09:00:00+08:00",
            )
            .await;
        assert_eq!(item.deadline_version, old_dv + 1, "[{b}]");

        let rows = h.reminders(item.id).await;
        let old: Vec<_> = rows
            .iter()
            .filter(|r| r.deadline_version == old_dv)
            .collect();
        assert!(!old.is_empty(), "[{b}]");
        assert!(
            old.iter().all(|r| r.state == "cancelled"),
            "[{b}] old rows: {old:?}"
        );
        let new: Vec<(&str, i64)> = rows
            .iter()
            .filter(|r| r.deadline_version == old_dv + 1 && r.state == "pending")
            .map(|r| (r.kind.as_str(), r.step))
            .collect();
        for k in [
            ("before", 0),
            ("before", 1),
            ("before", 2),
            ("on_due", 0),
            ("escalation", 0),
            ("escalation", 1),
            ("overdue", 1),
        ] {
            assert!(new.contains(&k), "[{b}] no new {k:?}: {new:?}");
        }
        assert!(
            rows.iter()
                .filter(|r| r.deadline_version == old_dv + 1)
                .all(|r| r.send_on.as_str() > "2026-03-31"),
            "[{b}] {rows:?}"
        );

        // The old deadline's reminder days pass in silence.
        for when in [
            "2026-03-20T09:00:00+08:00",
            "2026-03-26T09:00:00+08:00",
            "2026-03-30T09:00:00+08:00",
            "2026-03-31T09:00:00+08:00",
            "2026-04-02T09:00:00+08:00",
            "2026-04-03T09:00:00+08:00",
        ] {
            h.pass(when).await;
        }
        h.take_none("the old deadline's days");

        // The new deadline's reminder goes out on its day, naming the new deadline.
        let day = h.send_on(item.id, "before", 2).await;
        h.pass(&format!("{day}T09:00:00+08:00")).await;
        let m = h.take_one("the new deadline's reminder");
        let text = m.text();
        assert!(
            text.contains("2026-04-30") && text.contains("剩余 1 个工作日"),
            "[{b}]\n{text}"
        );
        assert!(!text.contains("2026-03-31"), "[{b}]\n{text}");
        h.done().await;
    }
}

#[tokio::test]
async fn a_queued_reminder_is_not_sent_after_the_deadline_moved() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        let item = h.item("需延期事项", "FGJ", "2026-03-31", ASSIGNED).await;
        // The 1-working-day reminder is queued, but the server asks to try again later.
        h.smtp.refuse_temporarily(FGJ, 1);
        let now = at("2026-03-30T09:00:00+08:00");
        let (_, d) = h.pass("2026-03-30T09:00:00+08:00").await;
        assert_eq!(d.retried, 1, "[{b}]");
        // Meanwhile the deadline moves to 2026-04-30.
        h.apply(
            item.id,
            Command::RequestExtension {
                to: date("2026-04-30"),
                reason: "需等待上级批复".into(),
            },
            &h.fgj_op,
            "2026-03-30T09:00:05+08:00",
        )
        .await;
        h.apply(
            item.id,
            Command::ApproveExtension { note: None },
            &h.admin,
            "2026-03-30T09:00:10+08:00",
        )
        .await;
        h.deliver_at(now + secs(30)).await;
        let stale: Vec<_> = h
            .take()
            .into_iter()
            .filter(|m| m.text().contains("完成时限:2026-03-31"))
            .collect();
        assert!(
            stale.is_empty(),
            "[{b}] a reminder about the old deadline went out after the extension:\n{}",
            stale[0].text()
        );
        h.done().await;
    }
}

#[tokio::test]
async fn a_refused_copy_address_does_not_cost_the_lead_unit_its_reminder() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.assign(
            NewItem {
                co_units: vec!["CZJ".into()],
                ..h.new_item("整改甲", "FGJ", "2026-03-31")
            },
            ASSIGNED,
        )
        .await;
        // The cooperating unit's mailbox no longer exists.
        h.smtp.refuse_permanently(CZJ);
        h.pass("2026-03-30T09:00:00+08:00").await;
        let got = h.take();
        assert!(
            got.iter().any(|m| rcpts(m).contains(&FGJ.to_string())),
            "[{b}] the lead unit got nothing; outbox: {:?}",
            h.outbox(None)
                .await
                .iter()
                .map(|m| (m.state.clone(), m.last_error.clone()))
                .collect::<Vec<_>>()
        );
        h.done().await;
    }
}

#[tokio::test]
async fn a_late_item_gets_no_stale_reminders() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        // Assigned two working days before its deadline (Fri for Tue).
        let late = h
            .item(
                "临期交办事项",
                "FGJ",
                "2026-03-31",
                "2026-03-27T10:00:00+08:00",
            )
            .await;
        let befores: Vec<i64> = h
            .reminders(late.id)
            .await
            .iter()
            .filter(|r| r.kind == "before")
            .map(|r| r.step)
            .collect();
        assert_eq!(befores, vec![2], "[{b}] only the 1-working-day reminder");
        // An item assigned in time whose 7- and 3-day reminders were missed (service down).
        let missed = h.item("错过提醒事项", "SFJ", "2026-03-31", ASSIGNED).await;

        let (report, _) = h.pass("2026-03-27T11:00:00+08:00").await;
        assert!(report.messages.is_empty(), "[{b}] {:?}", report.messages);
        let skipped: Vec<&str> = report.skipped.iter().map(|(_, why)| *why).collect();
        assert_eq!(skipped, vec!["moment_passed", "moment_passed"], "[{b}]");
        h.take_none("nothing stale");
        let missed_rows = h.reminders(missed.id).await;
        assert_eq!(
            missed_rows
                .iter()
                .filter(|r| r.kind == "before" && r.state == "skipped")
                .count(),
            2,
            "[{b}] {missed_rows:?}"
        );

        h.pass("2026-03-30T09:00:00+08:00").await;
        let got = h.take();
        assert_eq!(got.len(), 2, "[{b}]");
        for m in &got {
            let text = m.text();
            assert!(text.contains("剩余 1 个工作日"), "[{b}]\n{text}");
            assert!(
                !text.contains("剩余 7") && !text.contains("剩余 3"),
                "[{b}]\n{text}"
            );
        }
        assert!(to(&got, FGJ).text().contains("临期交办事项"), "[{b}]");
        h.done().await;
    }
}

/// Waits until nothing accepts connections on `addr` (the stopped server let go of its port).
async fn wait_until_refused(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn smtp_server_down_retries_with_backoff_and_delivers_once_when_back() {
    for db in TestDb::all().await {
        let mut h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;
        // The server is up for the first reminder (the transport keeps the connection for
        // reuse), then goes down.
        h.pass("2026-03-20T09:00:00+08:00").await;
        h.take_one("while the server is up");
        let addr = h.smtp.addr;
        h.smtp.stop();
        wait_until_refused(addr).await;

        let now = at("2026-03-26T09:00:00+08:00");
        let started = Instant::now();
        let (report, delivery) = h.pass("2026-03-26T09:00:00+08:00").await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "[{b}] deliver returns promptly, took {:?}",
            started.elapsed()
        );
        assert_eq!(report.messages.len(), 1, "[{b}]");
        assert_eq!(delivery.retried, 1, "[{b}] {delivery:?}");
        let row = &h.outbox(Some("pending")).await[0];
        assert_eq!(row.attempts, 1, "[{b}]");
        assert_eq!(row.next_attempt_at, now + secs(30), "[{b}]");
        assert!(row.last_error.is_some(), "[{b}]");

        // Still down at the next attempt: the backoff doubles.
        let d = h.deliver_at(now + secs(30)).await;
        assert_eq!(d.retried, 1, "[{b}] {d:?}");
        let row = &h.outbox(Some("pending")).await[0];
        assert_eq!(row.attempts, 2, "[{b}]");
        assert_eq!(row.next_attempt_at, now + secs(90), "[{b}]");
        // Before that, nothing is tried at all.
        assert_eq!(
            h.deliver_at(now + secs(60)).await,
            DeliveryReport::default()
        );

        // The server comes back on the same port (or, if the port was taken meanwhile, on
        // another one with a dispatcher pointed at it).
        match SmtpServer::start_on(&addr.to_string()).await {
            Ok(s) => h.smtp = s,
            Err(_) => {
                h.smtp = SmtpServer::start().await.expect("start");
                h.d = h.dispatcher(h.smtp.port());
            }
        }
        h.seen.set(0);
        let d = h.deliver_at(now + secs(90)).await;
        assert_eq!(d.sent, 1, "[{b}] {d:?}");
        let m = h.take_one("server back");
        let row = h.row_of(&m).await;
        assert_eq!((row.state.as_str(), row.attempts), ("sent", 3), "[{b}]");
        assert_eq!(
            h.deliver_at(now + secs(3600)).await,
            DeliveryReport::default()
        );
        h.take_none("once");
        h.done().await;
    }
}

#[tokio::test]
async fn periodic_summaries_go_to_units_and_office_once_per_fire() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("红灯事项", "FGJ", "2026-03-10", ASSIGNED).await;
        h.item("黄灯事项", "FGJ", "2026-03-18", ASSIGNED).await;
        h.item("绿灯事项", "SFJ", "2026-06-30", ASSIGNED).await;

        // Daily digest (Monday 2026-03-16): one message per unit with open items.
        let fire = at("2026-03-16T09:00:00+08:00");
        assert_eq!(
            h.d.run_summary(Job::DailyDigest, fire)
                .await
                .expect("daily"),
            2
        );
        h.deliver_at(fire).await;
        let got = h.take();
        assert_eq!(got.len(), 2, "[{b}]");
        let fgj = to(&got, FGJ);
        assert_eq!(
            fgj.subject().as_deref(),
            Some("【每日提醒】区发改局:在办事项 2 项(红灯 1,黄灯 1)"),
            "[{b}]"
        );
        let text = fgj.text();
        assert!(
            text.contains("[红灯] 1 红灯事项") && text.contains("[黄灯] 2 黄灯事项"),
            "[{b}]\n{text}"
        );
        assert!(!text.contains("绿灯事项"), "[{b}]");
        let sfj = to(&got, SFJ);
        assert_eq!(
            sfj.subject().as_deref(),
            Some("【每日提醒】区司法局:在办事项 1 项(红灯 0,黄灯 0)"),
            "[{b}]"
        );
        assert!(sfj.text().contains("[绿灯] 3 绿灯事项"), "[{b}]");
        // No daily digest on a weekend or a holiday (Qingming Monday).
        for day in ["2026-03-21T09:00:00+08:00", "2026-04-06T09:00:00+08:00"] {
            assert_eq!(
                h.d.run_summary(Job::DailyDigest, at(day))
                    .await
                    .expect("daily"),
                0,
                "[{b}] {day}"
            );
        }

        // Weekly dispatch: one message to the office with the red and yellow items.
        assert_eq!(
            h.d.run_summary(Job::WeeklyDispatch, fire)
                .await
                .expect("weekly"),
            1
        );
        h.deliver_at(fire).await;
        let m = h.take_one("weekly dispatch");
        assert_eq!(rcpts(&m), vec![OFFICE.to_string()], "[{b}]");
        assert_eq!(
            m.subject().as_deref(),
            Some("【周调度】红灯 1 项,黄灯 1 项(2026-03-16)"),
            "[{b}]"
        );
        let text = m.text();
        assert!(
            text.contains("红灯事项") && text.contains("黄灯事项") && !text.contains("绿灯事项"),
            "[{b}]\n{text}"
        );

        // Monthly notice: to the office, copying the units' leaders, units ranked.
        let month = at("2026-04-01T09:00:00+08:00");
        assert_eq!(
            h.d.run_summary(Job::MonthlyNotice, month)
                .await
                .expect("monthly"),
            1
        );
        h.deliver_at(month).await;
        let m = h.take_one("monthly notice");
        assert_eq!(header_addrs(&m, "To"), vec![OFFICE], "[{b}]");
        assert_eq!(header_addrs(&m, "Cc"), vec![LEADER_MAIL], "[{b}]");
        assert_eq!(
            m.subject().as_deref(),
            Some("【月通报】各单位整改进展排名(2026-04-01)"),
            "[{b}]"
        );
        let text = m.text();
        let first = text.find("1. 区发改局:交办 2,销号 0,逾期 2");
        let second = text.find("2. 区司法局:交办 1,销号 0,逾期 0");
        assert!(
            first.is_some() && second.is_some() && first < second,
            "[{b}]\n{text}"
        );

        // The same fires again queue and send nothing new.
        let queued = h.outbox(None).await.len();
        assert_eq!(queued, 4, "[{b}]");
        for (job, t) in [
            (Job::DailyDigest, fire),
            (Job::WeeklyDispatch, fire),
            (Job::MonthlyNotice, month),
        ] {
            h.d.run_summary(job, t).await.expect("again");
        }
        assert_eq!(h.outbox(None).await.len(), queued, "[{b}]");
        assert_eq!(h.deliver_at(month).await, DeliveryReport::default());
        h.take_none("same fires again");
        h.done().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_job_fire_is_claimed_by_exactly_one_of_three_instances() {
    for db in TestDb::all().await {
        let store = db.store().await;
        let b = db.name;
        let race = |fire: DateTime<Utc>| {
            let tasks: Vec<_> = (0..3)
                .map(|n| {
                    let s = store.clone();
                    tokio::spawn(async move {
                        s.claim_job("daily_digest", fire, &format!("instance-{n}"))
                            .await
                            .expect("claim")
                    })
                })
                .collect();
            async move {
                let mut wins = 0;
                for t in tasks {
                    wins += usize::from(t.await.expect("task"));
                }
                wins
            }
        };
        let monday = at("2026-03-16T09:00:00+08:00");
        assert_eq!(race(monday).await, 1, "[{b}] first fire, no row yet");
        assert_eq!(race(monday).await, 0, "[{b}] the same fire again");
        assert_eq!(
            store.job_last_fire("daily_digest").await.expect("last"),
            Some(monday)
        );
        let tuesday = at("2026-03-17T09:00:00+08:00");
        assert_eq!(race(tuesday).await, 1, "[{b}] the next fire");
        assert_eq!(race(monday).await, 0, "[{b}] an older fire never wins");
        store.close().await.expect("close");
        db.cleanup().await;
    }
}

/// The sorted Message-IDs and skipped rows of a pass.
fn pass_key(r: &PassReport) -> (Vec<String>, Vec<(i64, &'static str)>, usize) {
    let mut ids: Vec<String> = r.messages.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    let mut skipped = r.skipped.clone();
    skipped.sort();
    (ids, skipped, r.reminders_queued)
}

#[tokio::test]
async fn the_shards_of_a_pass_together_queue_exactly_what_one_pass_queues() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        for (title, lead) in [
            ("整改甲", "FGJ"),
            ("整改乙", "FGJ"),
            ("整改丙", "SFJ"),
            ("整改丁", "CZJ"),
            ("整改戊", "CZJ"),
        ] {
            h.item(title, lead, "2026-03-31", ASSIGNED).await;
        }
        // A lead unit the directory does not know (a hand-edited database): its rows are
        // skipped by shard 0, once.
        let orphan = h.item("整改己", "SFJ", "2026-03-31", ASSIGNED).await;
        h.store
            .execute_unprepared(&format!(
                "UPDATE items SET lead_unit = 'GONE' WHERE id = {}",
                orphan.id
            ))
            .await
            .expect("orphan");
        let now = at("2026-03-30T09:00:00+08:00");
        let orphan_rows: Vec<i64> = h.reminders(orphan.id).await.iter().map(|r| r.id).collect();
        let whole = h.d.plan_pass(now, true).await.expect("preview");
        assert_eq!(whole.messages.len(), 3, "[{b}] three digests");
        assert!(
            whole
                .skipped
                .iter()
                .any(|(_, why)| *why == "unit_has_no_email"),
            "[{b}] the orphan is skipped: {:?}",
            whole.skipped
        );

        let mut union = PassReport::default();
        for s in 0..SHARDS {
            let r = h.d.plan_shard(now, s).await.expect("shard");
            for m in &r.messages {
                let unit = m.unit_code.as_deref().expect("a digest's unit");
                assert_eq!(
                    shard_of(unit),
                    s,
                    "[{b}] {unit}'s digest came from shard {s}"
                );
            }
            // The orphan's rows are skipped by shard 0, and only there.
            let orphans = r
                .skipped
                .iter()
                .filter(|(id, _)| orphan_rows.contains(id))
                .count();
            assert_eq!(orphans > 0, s == 0, "[{b}] shard {s}: {:?}", r.skipped);
            union.messages.extend(r.messages);
            union.skipped.extend(r.skipped);
            union.reminders_queued += r.reminders_queued;
        }
        assert_eq!(pass_key(&union), pass_key(&whole), "[{b}]");
        // Everything is queued: the shards again queue nothing, and one pass neither.
        for s in 0..SHARDS {
            let r = h.d.plan_shard(now, s).await.expect("shard again");
            assert!(
                r.messages.is_empty() && r.skipped.is_empty(),
                "[{b}] shard {s}"
            );
        }
        assert!(
            h.d.plan_pass(now, false)
                .await
                .expect("pass")
                .messages
                .is_empty()
        );
        assert_eq!(h.deliver_at(now).await.sent, 3, "[{b}]");
        assert_eq!(h.take().len(), 3, "[{b}]");
        h.done().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn instances_share_the_shards_of_a_fire_and_plan_each_once() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        for n in 0..12 {
            let lead = ["FGJ", "SFJ", "CZJ"][n % 3];
            h.item(&format!("整改{n}"), lead, "2026-03-31", ASSIGNED)
                .await;
        }
        let now = at("2026-03-30T09:00:00+08:00");
        let fire = at("2026-03-30T09:00:00+08:00");
        let remind = Job::Remind.name();
        assert!(h.store.claim_job(remind, fire, "one").await.expect("claim"));
        // Three instances at once: every shard is planned by exactly one of them.
        let runs: Vec<_> = (0..3)
            .map(|n| {
                let mut d = h.dispatcher(h.smtp.port());
                d.cfg.instance = format!("instance-{n}");
                tokio::spawn(async move { d.run_shards(now).await.expect("shards") })
            })
            .collect();
        let mut won = 0;
        let mut messages = Vec::new();
        for r in runs {
            let (report, n) = r.await.expect("task");
            won += n;
            messages.extend(report.messages.into_iter().map(|m| m.message_id));
        }
        assert_eq!(won, SHARDS, "[{b}] each shard once");
        messages.sort();
        let before = messages.len();
        messages.dedup();
        assert_eq!(messages.len(), before, "[{b}] no message planned twice");
        assert_eq!(messages.len(), 3, "[{b}] a digest per unit");
        // The same fire again: nothing left to claim.
        let (_, again) = h.d.run_shards(now).await.expect("again");
        assert_eq!(again, 0, "[{b}]");

        // A shard still being planned from the last fire is not claimed for the next one;
        // once finished (or its planner's lease has run out) it is.
        let next = fire + secs(60);
        assert!(h.store.claim_job(remind, next, "one").await.expect("claim"));
        let busy = shard_job(0);
        assert!(
            h.store
                .claim_shard(&busy, next, "slow", next, next + secs(600))
                .await
                .expect("claim shard")
        );
        let later = next + secs(120);
        assert!(
            h.store
                .claim_job(remind, later, "one")
                .await
                .expect("claim")
        );
        assert!(
            !h.store
                .claim_shard(&busy, later, "other", later, later + secs(600))
                .await
                .expect("busy"),
            "[{b}] busy"
        );
        let (_, n) = h.d.run_shards(later).await.expect("run");
        assert_eq!(n, SHARDS - 1, "[{b}] all but the busy shard");
        let expired = next + secs(601);
        assert!(
            h.store
                .claim_shard(&busy, later, "other", expired, expired + secs(600))
                .await
                .expect("expired"),
            "[{b}] a dead planner's shard is free once its lease ran out"
        );
        h.store
            .finish_shard(&busy, later, "other")
            .await
            .expect("finish");
        let rows = h
            .store
            .job_rows(std::slice::from_ref(&busy))
            .await
            .expect("rows");
        assert_eq!(rows[&busy].busy_until, None, "[{b}] finished");

        // A fire with nothing due closes every shard at once: no instance reads them.
        let idle = later + secs(60);
        assert!(h.store.claim_job(remind, idle, "one").await.expect("claim"));
        let opened = h.d.open_pass(idle, idle).await.expect("open");
        assert!(opened.messages.is_empty(), "[{b}]");
        let (_, n) = h.d.run_shards(idle).await.expect("run");
        assert_eq!(n, 0, "[{b}] nothing due: every shard closed");
        h.done().await;
    }
}

#[tokio::test]
async fn a_message_without_its_body_fails_permanently_and_names_its_row() {
    for db in TestDb::all().await {
        let h = H::new(db, deadline_policy()).await;
        let b = h.backend();
        h.item("整改甲", "FGJ", "2026-03-31", ASSIGNED).await;
        let now = at("2026-03-30T09:00:00+08:00");
        let report = h.d.plan_pass(now, false).await.expect("pass");
        assert_eq!(report.messages.len(), 1, "[{b}]");
        let row = h.outbox(Some("pending")).await.remove(0);
        // The body row is gone (a hand-edited or damaged database).
        h.store
            .execute_unprepared(&format!(
                "DELETE FROM outbox_bodies WHERE outbox_id = {}",
                row.id
            ))
            .await
            .expect("delete body");
        let d = h.deliver_at(now).await;
        assert_eq!(
            d,
            DeliveryReport {
                sent: 0,
                retried: 0,
                failed: 1
            },
            "[{b}]"
        );
        h.take_none("nothing without a body");
        let failed = h.outbox(Some("failed")).await;
        assert_eq!(failed.len(), 1, "[{b}]");
        let err = failed[0].last_error.clone().unwrap_or_default();
        assert!(
            err.contains("body is missing") && err.contains(&row.id.to_string()),
            "[{b}] {err}"
        );
        h.done().await;
    }
}
