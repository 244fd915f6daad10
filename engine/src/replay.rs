//! Rebuilds an item from its recorded events, to see it as it stood at a past moment.
//!
//! Each stored event is turned back into the command that produced it and run through the same
//! [`create`] / [`transition`] functions, so a replayed item follows exactly the rules a live one
//! does. Checks that depend on the day the command was given (a deadline in the past, an
//! extension after the deadline) or on other items (open children) were passed when the event
//! was recorded and are not checked again.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::model::{Actor, Cadence, Deadline, Item, ItemId, NewItem, Role};
use crate::transition::{Command, Ctx, create, transition};

/// One recorded event: kind, actor, time and payload as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
    pub payload: &'a Value,
}

fn s(p: &Value, k: &str) -> Option<String> {
    p.get(k).and_then(Value::as_str).map(str::to_string)
}

fn list(p: &Value, k: &str) -> Vec<String> {
    p.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn date(p: &Value, k: &str) -> Result<NaiveDate, String> {
    s(p, k)
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("payload has no date `{k}`"))
}

/// The command an event records, or `None` for `created`.
pub fn command_of(kind: &str, p: &Value) -> Result<Option<Command>, String> {
    let req = |k: &str| s(p, k).ok_or_else(|| format!("{kind} event without `{k}`"));
    Ok(Some(match kind {
        "created" => return Ok(None),
        "assigned" => Command::Assign {
            lead_unit: req("lead_unit")?,
            co_units: list(p, "co_units"),
            leader: s(p, "leader"),
            deadline: s(p, "deadline")
                .and_then(|d| Deadline::from_db(&d))
                .ok_or("assigned event without a readable deadline")?,
        },
        "acknowledged" => Command::Acknowledge,
        "progress_reported" => Command::Progress {
            note: req("note")?,
            percent: p
                .get("percent")
                .and_then(Value::as_u64)
                .and_then(|v| u8::try_from(v).ok()),
            evidence: Vec::new(),
        },
        "submitted" => Command::Submit {
            note: req("note")?,
            evidence: Vec::new(),
        },
        "closed" => Command::Close { note: s(p, "note") },
        "kept_long_term" => Command::KeepLongTerm {
            note: s(p, "note"),
            cadence: s(p, "cadence")
                .and_then(|c| c.parse::<Cadence>().ok())
                .unwrap_or(Cadence::Monthly),
        },
        "sent_back" => Command::SendBack {
            reason: req("reason")?,
        },
        "extension_requested" => Command::RequestExtension {
            to: date(p, "to")?,
            reason: req("reason")?,
        },
        "extension_approved" => Command::ApproveExtension { note: s(p, "note") },
        "extension_refused" => Command::RefuseExtension { note: s(p, "note") },
        "reassigned" => Command::Reassign {
            lead_unit: req("to")?,
            reason: req("reason")?,
        },
        "reopened" => Command::Reopen {
            reason: req("reason")?,
            due: s(p, "deadline").and_then(|d| Deadline::from_db(&d)),
        },
        "finished" => Command::Finish { note: s(p, "note") },
        "cancelled" => Command::Cancel {
            reason: req("reason")?,
            merged_into: p.get("merged_into").and_then(Value::as_i64),
        },
        other => return Err(format!("unknown event kind `{other}`")),
    }))
}

/// Replays the events of item `id` (oldest first, starting with `created`) up to and including
/// `until`. `None` when the item did not exist yet then.
pub fn replay(
    id: ItemId,
    events: &[Recorded<'_>],
    until: DateTime<Utc>,
) -> Result<Option<Item>, String> {
    let mut item: Option<Item> = None;
    for e in events.iter().filter(|e| e.at <= until) {
        let actor = Actor {
            name: e.actor.to_string(),
            role: Role::Admin,
            unit: None,
        };
        let ctx = Ctx {
            now: e.at,
            today: NaiveDate::MIN,
            open_children: 0,
        };
        match (command_of(e.kind, e.payload)?, item.take()) {
            (None, None) => {
                let p = e.payload;
                let new = NewItem {
                    round: s(p, "round").unwrap_or_default(),
                    parent_id: p.get("parent_id").and_then(Value::as_i64),
                    number: s(p, "number").unwrap_or_default(),
                    title: s(p, "title").unwrap_or_default(),
                    lead_unit: s(p, "lead_unit"),
                    co_units: list(p, "co_units"),
                    leader: s(p, "leader"),
                    deadline: s(p, "deadline").and_then(|d| Deadline::from_db(&d)),
                };
                let o = create(&new, id, &actor, &ctx).map_err(|r| r.message(crate::Lang::En))?;
                item = Some(o.item);
            }
            (Some(cmd), Some(current)) => {
                let o = transition(&current, &cmd, &actor, &ctx)
                    .map_err(|r| r.message(crate::Lang::En))?;
                item = Some(o.item);
            }
            (None, Some(_)) => return Err(format!("item {id} is created twice")),
            (Some(_), None) => return Err(format!("item {id} has events before it was created")),
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ItemState;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 2, 0, 0).unwrap()
    }

    #[test]
    fn replay_follows_the_live_rules() {
        let admin = Actor {
            name: "office".into(),
            role: Role::Admin,
            unit: None,
        };
        let new = NewItem {
            round: "r".into(),
            number: "1".into(),
            title: "t".into(),
            ..NewItem::default()
        };
        let ctx = |d| Ctx {
            now: at(d),
            today: at(d).date_naive(),
            open_children: 0,
        };
        let created = create(&new, 7, &admin, &ctx(1)).unwrap();
        let mut log = vec![(created.event.kind, created.event.payload.clone(), at(1))];
        let mut item = created.item;
        let steps = [
            (
                2,
                Command::Assign {
                    lead_unit: "u".into(),
                    co_units: vec![],
                    leader: None,
                    deadline: Deadline::Date(NaiveDate::from_ymd_opt(2026, 3, 20).unwrap()),
                },
            ),
            (3, Command::Acknowledge),
            (
                4,
                Command::Submit {
                    note: "done".into(),
                    evidence: vec![],
                },
            ),
            (
                5,
                Command::SendBack {
                    reason: "no".into(),
                },
            ),
            (
                6,
                Command::Submit {
                    note: "again".into(),
                    evidence: vec![],
                },
            ),
            (7, Command::Close { note: None }),
        ];
        for (d, cmd) in steps {
            let o = transition(&item, &cmd, &admin, &ctx(d)).unwrap();
            log.push((o.event.kind, o.event.payload.clone(), at(d)));
            item = o.item;
        }
        let recorded: Vec<Recorded> = log
            .iter()
            .map(|(k, p, t)| Recorded {
                kind: k,
                actor: "office",
                at: *t,
                payload: p,
            })
            .collect();
        assert_eq!(replay(7, &recorded, at(30)).unwrap(), Some(item));
        let mid = replay(7, &recorded, at(5)).unwrap().unwrap();
        assert_eq!(mid.state, ItemState::InProgress);
        assert_eq!(mid.send_backs, 1);
        assert_eq!(
            replay(7, &recorded, at(1) - chrono::Duration::hours(1)),
            Ok(None)
        );
    }
}
