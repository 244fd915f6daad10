//! Offsets such as `7wd` (seven working days) or `3d` (three calendar days), as written in the
//! reminder policy.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetUnit {
    /// Working days of the work calendar (`wd`).
    WorkingDays,
    /// Calendar days (`d`).
    CalendarDays,
}

/// A non-negative count of working or calendar days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offset {
    pub count: u32,
    pub unit: OffsetUnit,
}

/// The largest offset accepted: about ten years of days. Anything larger is a typo.
pub const MAX_OFFSET_DAYS: u32 = 3660;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    #[error(
        "empty offset: write a number followed by `wd` (working days) or `d` (calendar days), e.g. `3wd`"
    )]
    Empty,
    #[error(
        "offset `{0}` has an unknown unit: write a number followed by `wd` (working days) or `d` (calendar days), e.g. `3wd`"
    )]
    UnknownUnit(String),
    #[error("offset `{0}` has no number: write e.g. `3wd` or `7d`")]
    NoNumber(String),
    #[error("offset `{0}` is too large: at most {MAX_OFFSET_DAYS} days")]
    TooLarge(String),
}

impl Offset {
    pub const fn working_days(count: u32) -> Self {
        Offset {
            count,
            unit: OffsetUnit::WorkingDays,
        }
    }

    pub const fn calendar_days(count: u32) -> Self {
        Offset {
            count,
            unit: OffsetUnit::CalendarDays,
        }
    }

    pub fn parse(text: &str) -> Result<Self, OffsetError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(OffsetError::Empty);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let unit = match unit.trim().to_ascii_lowercase().as_str() {
            "wd" => OffsetUnit::WorkingDays,
            "d" => OffsetUnit::CalendarDays,
            _ => return Err(OffsetError::UnknownUnit(t.to_string())),
        };
        if digits.is_empty() {
            return Err(OffsetError::NoNumber(t.to_string()));
        }
        let count: u32 = digits
            .parse()
            .map_err(|_| OffsetError::TooLarge(t.to_string()))?;
        if count > MAX_OFFSET_DAYS {
            return Err(OffsetError::TooLarge(t.to_string()));
        }
        Ok(Offset { count, unit })
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            OffsetUnit::WorkingDays => write!(f, "{}wd", self.count),
            OffsetUnit::CalendarDays => write!(f, "{}d", self.count),
        }
    }
}

impl FromStr for Offset {
    type Err = OffsetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Offset::parse(s)
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Offset::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Offset::parse("7wd"), Ok(Offset::working_days(7)));
        assert_eq!(Offset::parse(" 3d "), Ok(Offset::calendar_days(3)));
        assert_eq!(Offset::parse("0wd"), Ok(Offset::working_days(0)));
        assert!(matches!(
            Offset::parse("3x"),
            Err(OffsetError::UnknownUnit(_))
        ));
        assert!(matches!(Offset::parse("wd"), Err(OffsetError::NoNumber(_))));
        assert!(matches!(Offset::parse(""), Err(OffsetError::Empty)));
        assert!(matches!(
            Offset::parse("-3wd"),
            Err(OffsetError::UnknownUnit(_))
        ));
        assert!(matches!(
            Offset::parse("99999999999wd"),
            Err(OffsetError::TooLarge(_))
        ));
        assert_eq!(Offset::parse("10wd").unwrap().to_string(), "10wd");
    }
}
