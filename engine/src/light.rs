//! The traffic light (亮灯) of an item: red overdue; yellow near the deadline or behind on
//! acknowledging or reporting; green on track; none for items that are done or not yet assigned.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkCalendar;
use crate::model::{Cadence, Deadline, Item, ItemState};
use crate::{Lang, Offset};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    Green,
    Yellow,
    Red,
}

impl Light {
    pub fn as_str(self) -> &'static str {
        match self {
            Light::Green => "green",
            Light::Yellow => "yellow",
            Light::Red => "red",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Light::Green => lang.pick("绿灯", "green"),
            Light::Yellow => lang.pick("黄灯", "yellow"),
            Light::Red => lang.pick("红灯", "red"),
        }
    }
}

impl std::str::FromStr for Light {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "green" | "绿" | "绿灯" => Ok(Light::Green),
            "yellow" | "黄" | "黄灯" => Ok(Light::Yellow),
            "red" | "红" | "红灯" => Ok(Light::Red),
            other => Err(format!("unknown light `{other}`: use red, yellow or green")),
        }
    }
}

/// The thresholds, from the reminder policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LightPolicy {
    pub yellow_within: Offset,
    pub ack_within: Offset,
    pub progress_every: Offset,
}

impl Default for LightPolicy {
    fn default() -> Self {
        LightPolicy {
            yellow_within: Offset::working_days(3),
            ack_within: Offset::working_days(2),
            progress_every: Offset::working_days(10),
        }
    }
}

/// The last day something may happen: `offset` after `from`.
fn limit(cal: &WorkCalendar, from: NaiveDate, offset: Offset) -> NaiveDate {
    cal.after(from, offset)
}

/// Computes the light of `item` on `today`. `local_date` turns a stored UTC moment into the
/// office's local date (the engine knows no time zones).
pub fn light(
    item: &Item,
    today: NaiveDate,
    cal: &WorkCalendar,
    policy: &LightPolicy,
    local_date: &dyn Fn(DateTime<Utc>) -> NaiveDate,
) -> Option<Light> {
    use ItemState::*;
    let due = match (item.state, item.deadline) {
        (Draft | Closed | Cancelled, _) | (_, None) => return None,
        (_, Some(Deadline::Date(d))) => Some(d),
        (_, Some(Deadline::LongTerm)) => None,
    };
    if let Some(due) = due
        && matches!(item.state, Assigned | InProgress)
        && today > due
    {
        return Some(Light::Red);
    }
    let mut yellow = false;
    if let Some(due) = due
        && matches!(item.state, Assigned | InProgress)
    {
        yellow |= cal.working_days_between(today, due) <= i64::from(policy.yellow_within.count)
            && policy.yellow_within.unit == crate::OffsetUnit::WorkingDays
            || policy.yellow_within.unit == crate::OffsetUnit::CalendarDays
                && (due - today).num_days() <= i64::from(policy.yellow_within.count);
    }
    match item.state {
        Assigned => {
            if let Some(at) = item.assigned_at {
                yellow |= today > limit(cal, local_date(at), policy.ack_within);
            }
        }
        InProgress => {
            let since = item.last_progress_at.or(item.acknowledged_at);
            if let Some(at) = since {
                yellow |= today > limit(cal, local_date(at), policy.progress_every);
            }
        }
        LongTerm => {
            let since = item
                .last_progress_at
                .into_iter()
                .chain(item.closed_at)
                .chain(item.submitted_at)
                .max();
            if let Some(at) = since {
                let period = match item.cadence {
                    Some(Cadence::Quarterly) => Duration::days(92),
                    _ => Duration::days(31),
                };
                yellow |= today > local_date(at) + period;
            }
        }
        _ => {}
    }
    Some(if yellow { Light::Yellow } else { Light::Green })
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

    fn at(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&d(s).and_hms_opt(2, 0, 0).unwrap())
    }

    fn item(state: ItemState, due: Option<Deadline>, assigned: &str) -> Item {
        let admin = Actor {
            name: "a".into(),
            role: Role::Admin,
            unit: None,
        };
        let ctx = Ctx {
            now: at(assigned),
            today: d(assigned),
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
        i.state = state;
        i.deadline = due;
        i.lead_unit = Some("U".into());
        i.assigned_at = Some(at(assigned));
        if state != ItemState::Assigned {
            i.acknowledged_at = Some(at(assigned));
        }
        i
    }

    fn check(i: &Item, today: &str) -> Option<Light> {
        light(
            i,
            d(today),
            &WorkCalendar::china(),
            &LightPolicy::default(),
            &|t| t.date_naive(),
        )
    }

    #[test]
    fn lights() {
        let due = Some(Deadline::Date(d("2026-03-31")));
        let mut ip = item(ItemState::InProgress, due, "2026-03-02");
        ip.last_progress_at = Some(at("2026-03-20"));
        assert_eq!(check(&ip, "2026-03-03"), Some(Light::Green));
        // Within 3 working days of the deadline turns yellow; after it, red.
        assert_eq!(check(&ip, "2026-03-25"), Some(Light::Green));
        assert_eq!(check(&ip, "2026-03-26"), Some(Light::Yellow));
        assert_eq!(check(&ip, "2026-03-31"), Some(Light::Yellow));
        assert_eq!(check(&ip, "2026-04-01"), Some(Light::Red));
        // No progress report for more than 10 working days is yellow.
        let ip2 = item(
            ItemState::InProgress,
            Some(Deadline::Date(d("2026-12-31"))),
            "2026-03-02",
        );
        assert_eq!(check(&ip2, "2026-03-16"), Some(Light::Green));
        assert_eq!(check(&ip2, "2026-03-17"), Some(Light::Yellow));
        // Not acknowledged within 2 working days is yellow.
        let a = item(
            ItemState::Assigned,
            Some(Deadline::Date(d("2026-12-31"))),
            "2026-03-02",
        );
        assert_eq!(check(&a, "2026-03-04"), Some(Light::Green));
        assert_eq!(check(&a, "2026-03-05"), Some(Light::Yellow));
        // Pending verification is not red even after the deadline: the unit has done its part.
        let pv = item(ItemState::PendingVerification, due, "2026-03-02");
        assert_eq!(check(&pv, "2026-04-10"), Some(Light::Green));
        // Done, cancelled and drafts have no light.
        assert_eq!(
            check(&item(ItemState::Closed, due, "2026-03-02"), "2026-03-03"),
            None
        );
        assert_eq!(
            check(&item(ItemState::Cancelled, due, "2026-03-02"), "2026-03-03"),
            None
        );
        assert_eq!(
            check(&item(ItemState::Draft, None, "2026-03-02"), "2026-03-03"),
            None
        );
        // Long-term: yellow when the monthly report is missing.
        let mut lt = item(ItemState::LongTerm, Some(Deadline::LongTerm), "2026-03-02");
        lt.cadence = Some(Cadence::Monthly);
        lt.last_progress_at = Some(at("2026-03-02"));
        assert_eq!(check(&lt, "2026-03-20"), Some(Light::Green));
        assert_eq!(check(&lt, "2026-04-03"), Some(Light::Yellow));
    }
}
