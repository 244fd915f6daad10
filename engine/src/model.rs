//! The things the office tracks: rounds, units, operators and items.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::Lang;

pub type ItemId = i64;

/// Declares a string-backed enum: stored as its snake_case name in the database and in JSON, so
/// SQLite and PostgreSQL share one schema and old rows stay readable.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal, $zh:literal;)+ } what = $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The name shown to users in the given language.
            pub fn label(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(($name::$variant, Lang::Zh) => $zh,)+
                    $(($name::$variant, Lang::En) => $text,)+
                }
            }

            /// All accepted spellings, for error messages.
            pub fn choices() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                names.join("|")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) || t == $zh { return Ok($name::$variant); })+
                Err(format!("unknown {} `{}`: use one of {}", $what, t, Self::choices()))
            }
        }
    };
}

string_enum! {
    /// Where a round of items comes from.
    Source {
        Inspection => "inspection", "巡视巡察";
        Audit => "audit", "审计";
        Meeting => "meeting", "会议";
        Instruction => "instruction", "领导批示";
        Other => "other", "其他";
    } what = "source"
}

string_enum! {
    /// What an operator may do: `admin` everything, `unit` its own unit's items, `viewer` read.
    Role {
        Admin => "admin", "管理员";
        Unit => "unit", "责任单位";
        Viewer => "viewer", "只读";
    } what = "role"
}

string_enum! {
    /// The life of an item. See ARCHITECTURE.md for the transition table.
    ItemState {
        Draft => "draft", "待交办";
        Assigned => "assigned", "已交办";
        InProgress => "in_progress", "整改中";
        PendingVerification => "pending_verification", "待验收";
        Closed => "closed", "已销号";
        LongTerm => "long_term", "长期坚持";
        Cancelled => "cancelled", "已撤销";
    } what = "state"
}

string_enum! {
    /// How often a long-term item must report.
    Cadence {
        Monthly => "monthly", "每月";
        Quarterly => "quarterly", "每季度";
    } what = "cadence"
}

impl ItemState {
    /// Closed and cancelled items are done; every other state still needs work or watching.
    pub fn is_open(self) -> bool {
        !matches!(self, ItemState::Closed | ItemState::Cancelled)
    }
}

/// The deadline of an item: a local calendar date, or "keep at it long-term" (长期坚持).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    Date(NaiveDate),
    LongTerm,
}

impl Deadline {
    pub fn date(self) -> Option<NaiveDate> {
        match self {
            Deadline::Date(d) => Some(d),
            Deadline::LongTerm => None,
        }
    }

    /// The stored form: `YYYY-MM-DD` or `long_term`.
    pub fn to_db(self) -> String {
        match self {
            Deadline::Date(d) => d.format("%Y-%m-%d").to_string(),
            Deadline::LongTerm => "long_term".to_string(),
        }
    }

    pub fn from_db(s: &str) -> Option<Deadline> {
        if s == "long_term" {
            return Some(Deadline::LongTerm);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(Deadline::Date)
    }

    pub fn label(self, lang: Lang) -> String {
        match self {
            Deadline::Date(d) => d.format("%Y-%m-%d").to_string(),
            Deadline::LongTerm => lang.pick("长期坚持", "long-term").to_string(),
        }
    }
}

/// Parses a date typed by a user on the command line: `YYYY-MM-DD` only, so that a typo can never
/// become a different valid date.
pub fn parse_cli_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a valid date: write YYYY-MM-DD, e.g. 2026-06-30"))
}

/// Who acts. Every event stores the actor's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The unit a `unit` operator belongs to.
    pub unit: Option<String>,
}

/// An extension request waiting for the office's decision. At most one per item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExtension {
    pub to: NaiveDate,
    pub reason: String,
    pub requested_by: String,
}

/// A file recorded as evidence: copied into the content-addressed evidence folder by the store
/// before the command runs, and referred to here by its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub sha256: String,
    pub size: u64,
    pub name: String,
}

/// One rectification item: a category, a problem or a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    pub round: String,
    pub parent_id: Option<ItemId>,
    pub number: String,
    pub title: String,
    pub lead_unit: Option<String>,
    pub co_units: Vec<String>,
    pub leader: Option<String>,
    pub deadline: Option<Deadline>,
    pub state: ItemState,
    pub version: i64,
    /// Bumped whenever the deadline changes, so reminders planned for an old deadline are told
    /// apart from the new ones.
    pub deadline_version: i64,
    pub send_backs: i64,
    pub reassignments: i64,
    pub cadence: Option<Cadence>,
    pub pending_extension: Option<PendingExtension>,
    pub merged_into: Option<ItemId>,
    pub progress_percent: Option<u8>,
    pub last_progress: Option<String>,
    pub created_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub last_progress_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// What is needed to create an item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewItem {
    pub round: String,
    pub parent_id: Option<ItemId>,
    pub number: String,
    pub title: String,
    pub lead_unit: Option<String>,
    pub co_units: Vec<String>,
    pub leader: Option<String>,
    pub deadline: Option<Deadline>,
}
