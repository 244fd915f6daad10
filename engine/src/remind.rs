//! Reminder planning: which reminders an item should get and on which local date.
//!
//! Reminders are rows, not loops: when an item is assigned, or its deadline, unit or state
//! changes, the store calls [`plan`] and writes the result as rows keyed by
//! (item, kind, step, deadline version). Re-planning never duplicates (same key), and rows that
//! the new plan no longer contains are cancelled in the same transaction.
//!
//! The dispatcher then asks [`applicable`] whether a due row may still go out: a reminder whose
//! moment has passed is skipped, never sent late, and per item only the latest applicable one goes
//! out in a pass.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkCalendar;
use crate::model::{Cadence, Deadline, Item, ItemState};
use crate::{Lang, Offset};

/// Who besides the lead unit an escalation step copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cc {
    /// The item's responsible leader.
    Leader,
    /// The rectification office (the admins).
    Office,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationStep {
    pub after: Offset,
    pub cc: Vec<Cc>,
    /// Sends a supervision notice (督办单) instead of a plain reminder.
    pub notice: bool,
}

/// The reminder policy, from the `[reminders]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderPolicy {
    pub before: Vec<Offset>,
    pub on_due: bool,
    pub overdue_every: Offset,
    pub escalate: Vec<EscalationStep>,
    pub ack_within: Offset,
    pub progress_every: Offset,
}

impl Default for ReminderPolicy {
    fn default() -> Self {
        ReminderPolicy {
            before: vec![
                Offset::working_days(7),
                Offset::working_days(3),
                Offset::working_days(1),
            ],
            on_due: true,
            overdue_every: Offset::working_days(2),
            escalate: vec![
                EscalationStep {
                    after: Offset::working_days(3),
                    cc: vec![Cc::Leader],
                    notice: false,
                },
                EscalationStep {
                    after: Offset::working_days(10),
                    cc: vec![Cc::Leader, Cc::Office],
                    notice: true,
                },
            ],
            ack_within: Offset::working_days(2),
            progress_every: Offset::working_days(10),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    /// N days before the deadline.
    Before,
    /// On the deadline day.
    OnDue,
    /// Repeated while overdue.
    Overdue,
    /// A step of the escalation ladder while overdue.
    Escalation,
    /// An assignment not acknowledged in time.
    Ack,
    /// No progress report for too long (or a long-term item's report is due).
    Progress,
}

impl ReminderKind {
    pub const ALL: &'static [ReminderKind] = &[
        ReminderKind::Before,
        ReminderKind::OnDue,
        ReminderKind::Overdue,
        ReminderKind::Escalation,
        ReminderKind::Ack,
        ReminderKind::Progress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::Before => "before",
            ReminderKind::OnDue => "on_due",
            ReminderKind::Overdue => "overdue",
            ReminderKind::Escalation => "escalation",
            ReminderKind::Ack => "ack",
            ReminderKind::Progress => "progress",
        }
    }

    pub fn parse(s: &str) -> Option<ReminderKind> {
        ReminderKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// How loud the kind is, to choose among reminders of one item due on the same day.
    pub fn loudness(self) -> u8 {
        match self {
            ReminderKind::Progress => 0,
            ReminderKind::Ack => 1,
            ReminderKind::Before => 2,
            ReminderKind::OnDue => 3,
            ReminderKind::Overdue => 4,
            ReminderKind::Escalation => 5,
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            ReminderKind::Before => lang.pick("到期提醒", "deadline approaching"),
            ReminderKind::OnDue => lang.pick("今日到期", "due today"),
            ReminderKind::Overdue => lang.pick("逾期催办", "overdue"),
            ReminderKind::Escalation => lang.pick("逾期督办", "overdue, escalated"),
            ReminderKind::Ack => lang.pick("签收催办", "not yet acknowledged"),
            ReminderKind::Progress => lang.pick("进展催报", "progress report due"),
        }
    }

    /// Deadline reminders copy the cooperating units.
    pub fn copies_cooperating_units(self) -> bool {
        matches!(
            self,
            ReminderKind::Before
                | ReminderKind::OnDue
                | ReminderKind::Overdue
                | ReminderKind::Escalation
        )
    }
}

/// One reminder the item should get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub kind: ReminderKind,
    /// The index in the policy list (before, escalate) or the repeat number (overdue).
    pub step: i64,
    /// The local date it is to be sent on (a working day; the send window applies).
    pub send_on: NaiveDate,
    pub deadline_version: i64,
}

/// Overdue repeats are planned one step ahead: at most this many steps are ever numbered.
pub const MAX_OVERDUE_STEPS: i64 = 400;

/// The reminders `item` should have, given the policy, on `today`.
///
/// Reminders whose date is before `today` are not planned (a late-created item gets no stale
/// "7 working days left"). Overdue repeats: only the next one on or after `today`.
pub fn plan(
    item: &Item,
    policy: &ReminderPolicy,
    cal: &WorkCalendar,
    today: NaiveDate,
    local_date: &dyn Fn(DateTime<Utc>) -> NaiveDate,
) -> Vec<Planned> {
    let mut out = Vec::new();
    let dv = item.deadline_version;
    let mut push = |kind, step, send_on: NaiveDate| {
        if send_on >= today {
            out.push(Planned {
                kind,
                step,
                send_on,
                deadline_version: dv,
            });
        }
    };
    let active = matches!(item.state, ItemState::Assigned | ItemState::InProgress);
    if active && let Some(Deadline::Date(due)) = item.deadline {
        for (i, o) in policy.before.iter().enumerate() {
            let day = cal.before(due, *o);
            if day < due {
                push(ReminderKind::Before, i as i64, day);
            }
        }
        if policy.on_due {
            // On the deadline day; when that is not a working day, the last working day before it,
            // so the reminder still arrives before the deadline passes.
            let day = if cal.is_working_day(due) {
                due
            } else {
                cal.add_working_days(due, -1)
            };
            push(ReminderKind::OnDue, 0, day);
        }
        for (i, s) in policy.escalate.iter().enumerate() {
            push(ReminderKind::Escalation, i as i64, cal.after(due, s.after));
        }
        if policy.overdue_every.count > 0 {
            // Step n goes out n × overdue_every after the deadline; plan the next one only.
            let mut day = due;
            for n in 1..=MAX_OVERDUE_STEPS {
                day = cal.after(day, policy.overdue_every);
                if day >= today {
                    push(ReminderKind::Overdue, n, day);
                    break;
                }
            }
        }
    }
    match item.state {
        ItemState::Assigned => {
            if let Some(at) = item.assigned_at {
                // Chase on the first working day after the acknowledgement was due.
                let last_ok = cal.after(local_date(at), policy.ack_within);
                push(
                    ReminderKind::Ack,
                    item.reassignments,
                    cal.add_working_days(last_ok, 1),
                );
            }
        }
        ItemState::InProgress => {
            if let Some(at) = item.last_progress_at.or(item.acknowledged_at) {
                let last_ok = cal.after(local_date(at), policy.progress_every);
                let day = cal.add_working_days(last_ok, 1);
                // Keyed by the day the silence started, so each new report plans a new row.
                push(
                    ReminderKind::Progress,
                    local_date(at).num_days_from_ce_i64(),
                    day,
                );
            }
        }
        ItemState::LongTerm => {
            let since = item
                .last_progress_at
                .into_iter()
                .chain(item.closed_at)
                .chain(item.submitted_at)
                .max();
            if let Some(at) = since {
                let from = local_date(at);
                let next = match item.cadence {
                    Some(Cadence::Quarterly) => from.checked_add_months(chrono::Months::new(3)),
                    _ => from.checked_add_months(chrono::Months::new(1)),
                };
                if let Some(next) = next {
                    push(
                        ReminderKind::Progress,
                        from.num_days_from_ce_i64(),
                        cal.next_working_day_on_or_after(next),
                    );
                }
            }
        }
        _ => {}
    }
    out
}

trait DaysFromCe {
    fn num_days_from_ce_i64(&self) -> i64;
}

impl DaysFromCe for NaiveDate {
    fn num_days_from_ce_i64(&self) -> i64 {
        i64::from(chrono::Datelike::num_days_from_ce(self))
    }
}

/// Why a due reminder is not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its day passed before it could be sent (the service was down).
    MomentPassed,
    /// The deadline has passed: a "days left" reminder would be wrong.
    DeadlinePassed,
    /// The item no longer needs it (acknowledged, reported, closed, reassigned…).
    NoLongerApplies,
    /// Another reminder of the same item goes out in this pass.
    Superseded,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MomentPassed => "moment_passed",
            SkipReason::DeadlinePassed => "deadline_passed",
            SkipReason::NoLongerApplies => "no_longer_applies",
            SkipReason::Superseded => "superseded",
        }
    }
}

/// A reminder row as the dispatcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueReminder {
    pub id: i64,
    pub kind: ReminderKind,
    pub step: i64,
    pub send_on: NaiveDate,
    pub deadline_version: i64,
}

/// Whether a due reminder may still go out on `today` for the item as it is now.
pub fn applicable(r: &DueReminder, item: &Item, today: NaiveDate) -> Result<(), SkipReason> {
    use ReminderKind::*;
    let active = matches!(item.state, ItemState::Assigned | ItemState::InProgress);
    let due = item.deadline.and_then(|d| d.date());
    if r.deadline_version != item.deadline_version {
        return Err(SkipReason::NoLongerApplies);
    }
    match r.kind {
        Before | OnDue => {
            if !active {
                return Err(SkipReason::NoLongerApplies);
            }
            let Some(due) = due else {
                return Err(SkipReason::NoLongerApplies);
            };
            if today > due || (r.kind == Before && today >= due) {
                return Err(SkipReason::DeadlinePassed);
            }
            if r.send_on < today {
                return Err(SkipReason::MomentPassed);
            }
        }
        Overdue | Escalation => {
            let overdue = active && due.is_some_and(|d| today > d);
            if !overdue {
                return Err(SkipReason::NoLongerApplies);
            }
        }
        Ack => {
            if item.state != ItemState::Assigned {
                return Err(SkipReason::NoLongerApplies);
            }
        }
        Progress => {
            if !matches!(item.state, ItemState::InProgress | ItemState::LongTerm) {
                return Err(SkipReason::NoLongerApplies);
            }
        }
    }
    Ok(())
}

/// Whether a reminder already queued in a message may still be delivered now (a retry after a
/// transient failure): the item must still need it, as [`applicable`] says, except that a
/// delayed delivery is not "late" — the reminder was decided on its day.
pub fn still_valid(r: &DueReminder, item: &Item, today: NaiveDate) -> Result<(), SkipReason> {
    match applicable(r, item, today) {
        Err(SkipReason::MomentPassed) => Ok(()),
        other => other,
    }
}

/// Of one item's due reminders, the one to send now (the latest, and the loudest on a tie) and
/// the reasons the others are skipped.
pub fn choose(
    due: &[DueReminder],
    item: &Item,
    today: NaiveDate,
) -> (Option<i64>, Vec<(i64, SkipReason)>) {
    let mut skipped = Vec::new();
    let mut best: Option<&DueReminder> = None;
    for r in due {
        match applicable(r, item, today) {
            Err(why) => skipped.push((r.id, why)),
            Ok(()) => {
                let better = match best {
                    None => true,
                    Some(b) => {
                        (r.send_on, r.kind.loudness(), r.step)
                            > (b.send_on, b.kind.loudness(), b.step)
                    }
                };
                if better {
                    if let Some(b) = best {
                        skipped.push((b.id, SkipReason::Superseded));
                    }
                    best = Some(r);
                } else {
                    skipped.push((r.id, SkipReason::Superseded));
                }
            }
        }
    }
    (best.map(|b| b.id), skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewItem;
    use crate::{Actor, Ctx, Role, create};
    use chrono::TimeZone;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn assigned(due: &str, on: &str) -> Item {
        let admin = Actor {
            name: "a".into(),
            role: Role::Admin,
            unit: None,
        };
        let now = Utc.from_utc_datetime(&d(on).and_hms_opt(2, 0, 0).unwrap());
        let ctx = Ctx {
            now,
            today: d(on),
            open_children: 0,
        };
        let mut i = create(
            &NewItem {
                round: "R".into(),
                title: "t".into(),
                ..Default::default()
            },
            1,
            &admin,
            &ctx,
        )
        .unwrap()
        .item;
        i.state = ItemState::Assigned;
        i.lead_unit = Some("U".into());
        i.deadline = Some(Deadline::Date(d(due)));
        i.deadline_version = 1;
        i.assigned_at = Some(now);
        i
    }

    fn render(p: &[Planned]) -> Vec<String> {
        p.iter()
            .map(|p| format!("{} {} {}", p.kind.as_str(), p.step, p.send_on))
            .collect()
    }

    fn check(item: &Item, policy: &ReminderPolicy, today: &str, expected: &[&str]) {
        let got = render(&plan(
            item,
            policy,
            &WorkCalendar::china(),
            d(today),
            &|t| t.date_naive(),
        ));
        assert_eq!(got, expected);
    }

    #[test]
    fn spring_festival_make_up_day() {
        let item = assigned("2026-02-24", "2026-01-05");
        let one = ReminderPolicy {
            before: vec![Offset::working_days(1)],
            on_due: false,
            escalate: vec![],
            overdue_every: Offset::working_days(0),
            ..Default::default()
        };
        check(
            &item,
            &one,
            "2026-01-05",
            &["before 0 2026-02-14", "ack 0 2026-01-08"],
        );
        let three = ReminderPolicy {
            before: vec![Offset::working_days(3)],
            ..one.clone()
        };
        check(
            &item,
            &three,
            "2026-01-05",
            &["before 0 2026-02-12", "ack 0 2026-01-08"],
        );
    }

    #[test]
    fn default_policy_plan() {
        let item = assigned("2026-03-31", "2026-03-02");
        check(
            &item,
            &ReminderPolicy::default(),
            "2026-03-02",
            &[
                "before 0 2026-03-20",
                "before 1 2026-03-26",
                "before 2 2026-03-30",
                "on_due 0 2026-03-31",
                "escalation 0 2026-04-03",
                "escalation 1 2026-04-15",
                "overdue 1 2026-04-02",
                "ack 0 2026-03-05",
            ],
        );
    }

    #[test]
    fn late_created_item_gets_no_stale_reminders() {
        let item = assigned("2026-03-31", "2026-03-27");
        check(
            &item,
            &ReminderPolicy::default(),
            "2026-03-27",
            &[
                "before 2 2026-03-30",
                "on_due 0 2026-03-31",
                "escalation 0 2026-04-03",
                "escalation 1 2026-04-15",
                "overdue 1 2026-04-02",
                "ack 0 2026-04-01",
            ],
        );
        // Re-planned while overdue: only the next overdue repeat (04-04..06 is Qingming).
        check(
            &item,
            &ReminderPolicy::default(),
            "2026-04-07",
            &["escalation 1 2026-04-15", "overdue 2 2026-04-07"],
        );
    }

    #[test]
    fn deadline_on_a_holiday_reminds_the_working_day_before() {
        // 2026-10-03 is in the National Day break; the last working day before it is 2026-09-30.
        let item = assigned("2026-10-03", "2026-09-01");
        let p = ReminderPolicy {
            before: vec![],
            escalate: vec![],
            overdue_every: Offset::working_days(0),
            ..Default::default()
        };
        check(
            &item,
            &p,
            "2026-09-01",
            &["on_due 0 2026-09-30", "ack 0 2026-09-04"],
        );
    }

    #[test]
    fn choose_sends_latest_and_skips_stale() {
        let item = assigned("2026-03-31", "2026-03-02");
        let r = |id, kind, step, send_on: &str| DueReminder {
            id,
            kind,
            step,
            send_on: d(send_on),
            deadline_version: 1,
        };
        // The service was down: the 7wd and 3wd reminders are both due on 03-27.
        let due = [
            r(1, ReminderKind::Before, 0, "2026-03-20"),
            r(2, ReminderKind::Before, 1, "2026-03-26"),
        ];
        let (send, skipped) = choose(&due, &item, d("2026-03-27"));
        assert_eq!(send, None);
        assert_eq!(
            skipped,
            vec![(1, SkipReason::MomentPassed), (2, SkipReason::MomentPassed)]
        );
        // On its day it goes out.
        let (send, _) = choose(&due[1..], &item, d("2026-03-26"));
        assert_eq!(send, Some(2));
        // After the deadline no "days left" reminder goes out; the escalation wins over overdue.
        let due = [
            r(3, ReminderKind::Before, 2, "2026-03-30"),
            r(4, ReminderKind::Overdue, 1, "2026-04-02"),
            r(5, ReminderKind::Escalation, 0, "2026-04-03"),
        ];
        let (send, skipped) = choose(&due, &item, d("2026-04-03"));
        assert_eq!(send, Some(5));
        assert_eq!(
            skipped,
            vec![(3, SkipReason::DeadlinePassed), (4, SkipReason::Superseded)]
        );
        // An old deadline version no longer applies.
        let old = [DueReminder {
            deadline_version: 0,
            ..r(6, ReminderKind::OnDue, 0, "2026-03-31")
        }];
        assert_eq!(
            choose(&old, &item, d("2026-03-31")).1,
            vec![(6, SkipReason::NoLongerApplies)]
        );
    }
}
