//! Mainland China's working-day calendar.
//!
//! Deadlines in a rectification office are counted in working days, and "working day" in China
//! is not "Monday to Friday": the State Council publishes, every autumn, the next year's
//! schedule of statutory holidays together with make-up working days (调休) that move weekend
//! days onto weekdays so that holidays join up into longer breaks. A Saturday can therefore be a
//! working day and a Tuesday a day off. This module carries those schedules as built-in data,
//! lets an office layer its own changes on top (from config), and answers the date arithmetic
//! the reminder planner needs.
//!
//! Years without a published schedule are answered by the plain weekend rule, because there is
//! nothing better to do, but never silently: every such year is recorded and can be taken with
//! [`WorkCalendar::take_uncovered_years`], so the caller can warn the operator to add the year.
//!
//! The module is pure: it reads no clock and does no I/O; "today" is always a parameter.

use crate::offset::{Offset, OffsetUnit};
use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, Ordering};

/// The largest working-day count [`WorkCalendar::add_working_days`] walks; larger counts are
/// clamped to it. It matches [`crate::offset::MAX_OFFSET_DAYS`]: about ten years of days, far
/// beyond any real deadline, so hitting it means a typo, and a typo must not hang the engine.
pub const MAX_WORKING_DAYS: i64 = 3660;

/// The largest calendar span, in days, that any walk or count covers (about forty years).
///
/// [`WorkCalendar::add_working_days`] never steps more calendar days than this, and
/// [`WorkCalendar::working_days_between`] only counts this far from `from`: the answers
/// saturate instead of looping or erroring. It is generous enough that `MAX_WORKING_DAYS`
/// working days always fit, even with every holiday of every year in between.
pub const MAX_SPAN_DAYS: i64 = 4 * MAX_WORKING_DAYS;

/// Name given to an office's own change when its config entry has no note.
const OFFICE_DEFAULT_ZH: &str = "本单位调整";
const OFFICE_DEFAULT_EN: &str = "office adjustment";

/// What kind of day a date is, with the festival's name where there is one.
///
/// Names are `Cow<'static, str>` so built-in days borrow their static names (no allocation per
/// query) while office overrides carry their own note.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DayKind {
    /// An ordinary Monday to Friday.
    Workday,
    /// An ordinary Saturday or Sunday.
    Weekend,
    /// A day off: a statutory holiday, the weekend days the State Council folds into it, or a
    /// day an office has given itself off.
    Holiday {
        zh: Cow<'static, str>,
        en: Cow<'static, str>,
    },
    /// A weekend day (or a holiday an office cancels) worked to pay for the named festival.
    MakeUpWorkday {
        zh: Cow<'static, str>,
        en: Cow<'static, str>,
    },
}

impl DayKind {
    pub fn is_working(&self) -> bool {
        matches!(self, DayKind::Workday | DayKind::MakeUpWorkday { .. })
    }

    /// The festival (or office note) name in the chosen language, if the day has one.
    pub fn name(&self, lang_is_zh: bool) -> Option<&str> {
        match self {
            DayKind::Workday | DayKind::Weekend => None,
            DayKind::Holiday { zh, en } | DayKind::MakeUpWorkday { zh, en } => {
                Some(if lang_is_zh { zh } else { en })
            }
        }
    }
}

/// An office's own change to the calendar, read from config: a day it takes off (e.g. a local
/// holiday) or a day it works (e.g. an inspection weekend). Office changes win over built-in
/// data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DayOverride {
    pub date: NaiveDate,
    pub working: bool,
    /// Why; shown as the day's name in both languages. May be empty.
    #[serde(default)]
    pub note: String,
}

/// Where an entry of the calendar comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaySource {
    /// The State Council's notice, built in.
    StateCouncil,
    /// The office's own config.
    Office,
}

/// One non-ordinary day of a year: a day off that is not a plain weekend, or a make-up
/// working day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedDay {
    pub date: NaiveDate,
    pub kind: DayKind,
    pub source: DaySource,
}

/// The holidays and make-up working days of one year, sorted by date, for display and for
/// checking the config against the published notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct YearListing {
    pub year: i32,
    /// Whether the year has a schedule (built in or entered by the office). When false, the
    /// year is answered by the weekend rule and `days` holds only office overrides, if any.
    pub covered: bool,
    pub days: Vec<ListedDay>,
}

/// The warning to log when the calendar was asked about a year it does not cover.
pub fn uncovered_warning(year: i32, lang_is_zh: bool) -> String {
    if lang_is_zh {
        format!(
            "工作日历未包含 {year} 年的节假日安排：该年仅按周末计算工作日；请在配置文件的 [calendar] 中补充该年份"
        )
    } else {
        format!(
            "calendar does not cover {year}: weekends only; add the year to [calendar] in the config"
        )
    }
}

/// A day that differs from, or is named on top of, the plain weekend rule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Special {
    working: bool,
    zh: Cow<'static, str>,
    en: Cow<'static, str>,
    source: DaySource,
}

impl Special {
    fn kind(&self) -> DayKind {
        if self.working {
            DayKind::MakeUpWorkday {
                zh: self.zh.clone(),
                en: self.en.clone(),
            }
        } else {
            DayKind::Holiday {
                zh: self.zh.clone(),
                en: self.en.clone(),
            }
        }
    }
}

/// One year's working days as a bitset indexed by day of year, so `is_working_day` is a binary
/// search over a handful of years plus a bit test, with no hashing or allocation.
#[derive(Clone, Debug)]
struct YearTable {
    year: i32,
    covered: bool,
    working: [u64; 6],
}

impl YearTable {
    fn is_working(&self, ordinal0: u32) -> bool {
        let i = ordinal0 as usize;
        self.working[i / 64] >> (i % 64) & 1 == 1
    }
}

/// Sentinel for "no uncovered year noted since the last take".
const NO_YEAR: i64 = i64::MIN;

/// The working-day calendar. Cheap to query, `Send + Sync`, and meant to be shared (e.g. in an
/// `Arc`) by everything that computes deadlines.
pub struct WorkCalendar {
    /// Every named day: built-in holidays and make-up days, then office overrides on top.
    special: BTreeMap<NaiveDate, Special>,
    /// Years with a schedule: built-in years and years the office entered itself.
    covered: BTreeSet<i32>,
    /// Lookup tables for every covered year and every year with a named day, sorted by year.
    tables: Vec<YearTable>,
    /// Uncovered years asked about since the last `take_uncovered_years`.
    uncovered_seen: Mutex<BTreeSet<i32>>,
    /// The last year inserted into `uncovered_seen`, or `NO_YEAR`. Lets the hot path skip the
    /// lock when the same uncovered year is asked about again (a walk through 2030 asks about
    /// it hundreds of times). Written only while holding the lock, and reset by a take, so a
    /// reader that sees a year here knows the set held it at that moment.
    last_uncovered: AtomicI64,
}

impl Clone for WorkCalendar {
    fn clone(&self) -> Self {
        let seen = self
            .uncovered_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        WorkCalendar {
            special: self.special.clone(),
            covered: self.covered.clone(),
            tables: self.tables.clone(),
            uncovered_seen: Mutex::new(seen),
            last_uncovered: AtomicI64::new(NO_YEAR),
        }
    }
}

impl fmt::Debug for WorkCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkCalendar")
            .field("covered", &self.covered)
            .field("named_days", &self.special.len())
            .finish_non_exhaustive()
    }
}

impl Default for WorkCalendar {
    fn default() -> Self {
        WorkCalendar::china()
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Mondays to Fridays among the days numbered `1..=n` from 0001-01-01 (a Monday in chrono's
/// proleptic Gregorian calendar), extended to `n <= 0` by the same weekly pattern. The
/// difference of two values counts weekdays in a half-open range in constant time.
fn weekdays_through(n: i64) -> i64 {
    5 * n.div_euclid(7) + n.rem_euclid(7).min(5)
}

/// `date` moved by `days` calendar days, saturating at chrono's date range.
fn shift_days(date: NaiveDate, days: i64) -> NaiveDate {
    let magnitude = Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(magnitude).unwrap_or(NaiveDate::MAX)
    } else {
        date.checked_sub_days(magnitude).unwrap_or(NaiveDate::MIN)
    }
}

impl WorkCalendar {
    /// The calendar of mainland China with the built-in State Council schedules.
    pub fn china() -> Self {
        let mut special = BTreeMap::new();
        let mut covered = BTreeSet::new();
        for year in OFFICIAL {
            covered.insert(year.year);
            for festival in year.festivals {
                let (first, last) = (ymd(festival.off.0), ymd(festival.off.1));
                for date in first.iter_days().take_while(|d| *d <= last) {
                    special.insert(date, festival.special(false));
                }
                for &day in festival.make_up {
                    special.insert(ymd(day), festival.special(true));
                }
            }
        }
        let mut calendar = WorkCalendar {
            special,
            covered,
            tables: Vec::new(),
            uncovered_seen: Mutex::new(BTreeSet::new()),
            last_uncovered: AtomicI64::new(NO_YEAR),
        };
        calendar.rebuild_tables();
        calendar
    }

    /// Applies an office's own changes on top of the current data; they win over built-in
    /// days. `extra_covered_years` are years the office has entered itself (as overrides) and
    /// vouches for, so they are no longer reported as uncovered.
    ///
    /// When the same date appears twice, the later override wins. A plain weekday marked working
    /// (no built-in holiday to cancel) is simply an ordinary workday again: it leaves no entry,
    /// so it does not show up as a "make-up day" in listings.
    pub fn with_overrides(
        mut self,
        overrides: &[DayOverride],
        extra_covered_years: &[i32],
    ) -> Self {
        // Last one wins per date; collecting first also means a later "working" entry for a
        // plain weekday undoes an earlier "off" entry instead of stacking on it.
        let latest: BTreeMap<NaiveDate, &DayOverride> =
            overrides.iter().map(|o| (o.date, o)).collect();
        for (date, o) in latest {
            let builtin = self
                .special
                .get(&date)
                .is_some_and(|s| s.source == DaySource::StateCouncil);
            if o.working && !is_weekend(date) && !builtin {
                self.special.remove(&date);
                continue;
            }
            let note = o.note.trim();
            let (zh, en) = if note.is_empty() {
                (
                    Cow::Borrowed(OFFICE_DEFAULT_ZH),
                    Cow::Borrowed(OFFICE_DEFAULT_EN),
                )
            } else {
                (Cow::Owned(note.to_string()), Cow::Owned(note.to_string()))
            };
            self.special.insert(
                date,
                Special {
                    working: o.working,
                    zh,
                    en,
                    source: DaySource::Office,
                },
            );
        }
        self.covered.extend(extra_covered_years.iter().copied());
        self.rebuild_tables();
        self
    }

    /// Years with a schedule, ascending.
    pub fn covered_years(&self) -> Vec<i32> {
        self.covered.iter().copied().collect()
    }

    pub fn covers(&self, year: i32) -> bool {
        self.covered.contains(&year)
    }

    /// The kind of `date`, with the festival's name for holidays and make-up days.
    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        self.note_if_uncovered(date.year());
        match self.special.get(&date) {
            Some(special) => special.kind(),
            None if is_weekend(date) => DayKind::Weekend,
            None => DayKind::Workday,
        }
    }

    /// Whether `date` is a working day. This is the hot path (called millions of times by
    /// benchmarks and by long walks): a binary search over a few year tables and a bit test.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        let year = date.year();
        match self.tables.binary_search_by_key(&year, |t| t.year) {
            Ok(i) => {
                let table = &self.tables[i];
                if !table.covered {
                    self.note_uncovered(year);
                }
                table.is_working(date.ordinal0())
            }
            Err(_) => {
                // Every covered year has a table, so this year is uncovered and has no named
                // day: the weekend rule is all we know.
                self.note_uncovered(year);
                !is_weekend(date)
            }
        }
    }

    /// `n > 0`: the `n`-th working day after `date`; `n < 0`: the `|n|`-th working day before
    /// it; `n == 0`: `date` itself, working or not.
    ///
    /// Saturating: `|n|` is clamped to [`MAX_WORKING_DAYS`], at most [`MAX_SPAN_DAYS`] calendar
    /// days are stepped, and the walk stops at the ends of chrono's date range; in those cases
    /// the date reached is returned. None of this happens with a real deadline.
    pub fn add_working_days(&self, date: NaiveDate, n: i64) -> NaiveDate {
        let n = n.clamp(-MAX_WORKING_DAYS, MAX_WORKING_DAYS);
        let forward = n > 0;
        let mut remaining = n.unsigned_abs();
        let mut current = date;
        let mut stepped = 0;
        while remaining > 0 && stepped < MAX_SPAN_DAYS {
            let next = if forward {
                current.succ_opt()
            } else {
                current.pred_opt()
            };
            let Some(next) = next else { break };
            current = next;
            stepped += 1;
            if self.is_working_day(current) {
                remaining -= 1;
            }
        }
        current
    }

    /// The number of working days `d` with `from < d <= to`; the negated count of `to < d <=
    /// from` when `to < from`; 0 when equal. So "how many working days have passed since
    /// `from`" for a deadline check.
    ///
    /// Computed in closed form (weekdays minus holidays plus make-up days in the range), so it
    /// costs the same for a week as for a decade. The far end is clamped to [`MAX_SPAN_DAYS`]
    /// from `from` (saturating), which bounds the uncovered-year bookkeeping too.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let span = to.signed_duration_since(from).num_days();
        if span > 0 {
            let to = shift_days(from, span.min(MAX_SPAN_DAYS));
            self.count_working(from, to)
        } else if span < 0 {
            let to = shift_days(from, span.max(-MAX_SPAN_DAYS));
            -self.count_working(to, from)
        } else {
            0
        }
    }

    /// `date` if it is a working day, else the first working day after it: where a deadline
    /// falling on a day off moves to.
    pub fn next_working_day_on_or_after(&self, date: NaiveDate) -> NaiveDate {
        if self.is_working_day(date) {
            date
        } else {
            self.add_working_days(date, 1)
        }
    }

    /// `offset` before `date`: `Nwd` is the N-th working day before it, `Nd` is N calendar days
    /// before it (saturating at chrono's date range).
    pub fn before(&self, date: NaiveDate, offset: Offset) -> NaiveDate {
        match offset.unit {
            OffsetUnit::WorkingDays => self.add_working_days(date, -i64::from(offset.count)),
            OffsetUnit::CalendarDays => shift_days(date, -i64::from(offset.count)),
        }
    }

    /// `offset` after `date`: `Nwd` is the N-th working day after it, `Nd` is N calendar days
    /// after it (saturating at chrono's date range).
    pub fn after(&self, date: NaiveDate, offset: Offset) -> NaiveDate {
        match offset.unit {
            OffsetUnit::WorkingDays => self.add_working_days(date, i64::from(offset.count)),
            OffsetUnit::CalendarDays => shift_days(date, i64::from(offset.count)),
        }
    }

    /// The named days of `year` (holidays, office days off, make-up working days; not plain
    /// weekends), sorted by date, and whether the year is covered. Asking for a listing is
    /// explicit about coverage, so it does not record the year as uncovered.
    pub fn year_listing(&self, year: i32) -> YearListing {
        let days = match (
            NaiveDate::from_ymd_opt(year, 1, 1),
            NaiveDate::from_ymd_opt(year, 12, 31),
        ) {
            (Some(first), Some(last)) => self
                .special
                .range(first..=last)
                .map(|(date, special)| ListedDay {
                    date: *date,
                    kind: special.kind(),
                    source: special.source,
                })
                .collect(),
            _ => Vec::new(),
        };
        YearListing {
            year,
            covered: self.covers(year),
            days,
        }
    }

    /// Returns, ascending, the uncovered years asked about since the last call, and clears
    /// them. The caller logs [`uncovered_warning`] for each.
    pub fn take_uncovered_years(&self) -> Vec<i32> {
        let mut seen = self
            .uncovered_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let years = std::mem::take(&mut *seen);
        self.last_uncovered.store(NO_YEAR, Ordering::Release);
        years.into_iter().collect()
    }

    /// Working days in `(from, to]`, for `from < to`.
    fn count_working(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let weekdays = weekdays_through(i64::from(to.num_days_from_ce()))
            - weekdays_through(i64::from(from.num_days_from_ce()));
        let adjustment: i64 = self
            .special
            .range((Bound::Excluded(from), Bound::Included(to)))
            .map(|(date, special)| i64::from(special.working) - i64::from(!is_weekend(*date)))
            .sum();
        // The first counted day is `from + 1`, which may fall in the next year.
        let first_year = from.succ_opt().map_or(to.year(), |d| d.year());
        for year in first_year..=to.year() {
            self.note_if_uncovered(year);
        }
        weekdays + adjustment
    }

    fn note_if_uncovered(&self, year: i32) {
        if !self.covered.contains(&year) {
            self.note_uncovered(year);
        }
    }

    fn note_uncovered(&self, year: i32) {
        let year64 = i64::from(year);
        if self.last_uncovered.load(Ordering::Acquire) == year64 {
            return;
        }
        let mut seen = self
            .uncovered_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.insert(year);
        self.last_uncovered.store(year64, Ordering::Release);
    }

    /// Rebuilds the per-year bitsets from `special`, `covered` and the weekend rule.
    fn rebuild_tables(&mut self) {
        let mut years: BTreeSet<i32> = self.covered.clone();
        years.extend(self.special.keys().map(|d| d.year()));
        self.tables = years
            .into_iter()
            .filter_map(|year| {
                // A year outside chrono's range can be "covered" in config but never queried.
                let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
                let mut working = [0u64; 6];
                for date in first.iter_days().take_while(|d| d.year() == year) {
                    let is_working = match self.special.get(&date) {
                        Some(special) => special.working,
                        None => !is_weekend(date),
                    };
                    if is_working {
                        let i = date.ordinal0() as usize;
                        working[i / 64] |= 1 << (i % 64);
                    }
                }
                Some(YearTable {
                    year,
                    covered: self.covered.contains(&year),
                    working,
                })
            })
            .collect();
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in data.
//
// Copied from the State Council General Office's notices (国务院办公厅关于 YYYY 年部分节假日安排的
// 通知), as republished by Xinhua, People's Daily and Guangming Daily. Each festival lists the
// days off exactly as the notice's "X月X日至X日放假" range (which includes the weekend days folded
// into the break) and the days the notice says "上班". Where a notice says "与周末连休" (joined
// to the weekend) only the statutory day is listed: the adjoining weekend is off anyway.
// Do not add a year before its notice is published: a guessed schedule is worse than the
// explicit "uncovered" warning.
// ---------------------------------------------------------------------------------------------

type Ymd = (i32, u32, u32);

struct Festival {
    zh: &'static str,
    en: &'static str,
    /// First and last day off, inclusive.
    off: (Ymd, Ymd),
    /// Weekend days worked to pay for this break.
    make_up: &'static [Ymd],
}

impl Festival {
    fn special(&self, working: bool) -> Special {
        Special {
            working,
            zh: Cow::Borrowed(self.zh),
            en: Cow::Borrowed(self.en),
            source: DaySource::StateCouncil,
        }
    }
}

struct OfficialYear {
    year: i32,
    festivals: &'static [Festival],
}

/// Converts built-in data; the test `builtin_data_is_well_formed` checks every entry, so this
/// cannot fail at run time.
fn ymd((y, m, d): Ymd) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("built-in calendar data holds valid dates")
}

const NEW_YEAR: (&str, &str) = ("元旦", "New Year's Day");
const SPRING: (&str, &str) = ("春节", "Spring Festival");
const QINGMING: (&str, &str) = ("清明节", "Qingming Festival");
const LABOUR: (&str, &str) = ("劳动节", "Labour Day");
const DRAGON_BOAT: (&str, &str) = ("端午节", "Dragon Boat Festival");
const MID_AUTUMN: (&str, &str) = ("中秋节", "Mid-Autumn Festival");
const NATIONAL: (&str, &str) = ("国庆节", "National Day");
const NATIONAL_MID_AUTUMN: (&str, &str) =
    ("国庆节、中秋节", "National Day and Mid-Autumn Festival");

const fn festival(
    name: (&'static str, &'static str),
    off: (Ymd, Ymd),
    make_up: &'static [Ymd],
) -> Festival {
    Festival {
        zh: name.0,
        en: name.1,
        off,
        make_up,
    }
}

static OFFICIAL: &[OfficialYear] = &[
    // Notice of 2023-10-25 (国办发明电〔2023〕7号).
    OfficialYear {
        year: 2024,
        festivals: &[
            festival(NEW_YEAR, ((2024, 1, 1), (2024, 1, 1)), &[]),
            festival(
                SPRING,
                ((2024, 2, 10), (2024, 2, 17)),
                &[(2024, 2, 4), (2024, 2, 18)],
            ),
            festival(QINGMING, ((2024, 4, 4), (2024, 4, 6)), &[(2024, 4, 7)]),
            festival(
                LABOUR,
                ((2024, 5, 1), (2024, 5, 5)),
                &[(2024, 4, 28), (2024, 5, 11)],
            ),
            festival(DRAGON_BOAT, ((2024, 6, 10), (2024, 6, 10)), &[]),
            festival(MID_AUTUMN, ((2024, 9, 15), (2024, 9, 17)), &[(2024, 9, 14)]),
            festival(
                NATIONAL,
                ((2024, 10, 1), (2024, 10, 7)),
                &[(2024, 9, 29), (2024, 10, 12)],
            ),
        ],
    },
    // Notice of 2024-11-12, the first under the revised holiday rules (New Year's Eve and
    // May 2 became statutory).
    OfficialYear {
        year: 2025,
        festivals: &[
            festival(NEW_YEAR, ((2025, 1, 1), (2025, 1, 1)), &[]),
            festival(
                SPRING,
                ((2025, 1, 28), (2025, 2, 4)),
                &[(2025, 1, 26), (2025, 2, 8)],
            ),
            festival(QINGMING, ((2025, 4, 4), (2025, 4, 6)), &[]),
            festival(LABOUR, ((2025, 5, 1), (2025, 5, 5)), &[(2025, 4, 27)]),
            festival(DRAGON_BOAT, ((2025, 5, 31), (2025, 6, 2)), &[]),
            festival(
                NATIONAL_MID_AUTUMN,
                ((2025, 10, 1), (2025, 10, 8)),
                &[(2025, 9, 28), (2025, 10, 11)],
            ),
        ],
    },
    // Notice of 2025-11-04.
    OfficialYear {
        year: 2026,
        festivals: &[
            festival(NEW_YEAR, ((2026, 1, 1), (2026, 1, 3)), &[(2026, 1, 4)]),
            festival(
                SPRING,
                ((2026, 2, 15), (2026, 2, 23)),
                &[(2026, 2, 14), (2026, 2, 28)],
            ),
            festival(QINGMING, ((2026, 4, 4), (2026, 4, 6)), &[]),
            festival(LABOUR, ((2026, 5, 1), (2026, 5, 5)), &[(2026, 5, 9)]),
            festival(DRAGON_BOAT, ((2026, 6, 19), (2026, 6, 21)), &[]),
            festival(MID_AUTUMN, ((2026, 9, 25), (2026, 9, 27)), &[]),
            festival(
                NATIONAL,
                ((2026, 10, 1), (2026, 10, 7)),
                &[(2026, 9, 20), (2026, 10, 10)],
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Parses "YYYY-MM-DD"; test tables are easier to check against the notices this way.
    fn p(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Expands "YYYY-MM-DD..YYYY-MM-DD" (inclusive) or a single date.
    fn days(spec: &str) -> Vec<NaiveDate> {
        match spec.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (p(a), p(b));
                a.iter_days().take_while(|x| *x <= b).collect()
            }
            None => vec![p(spec)],
        }
    }

    /// The one table-driven checker: every date in every spec must have the expected working
    /// status, and where a name is given, that Chinese name.
    fn check(cal: &WorkCalendar, table: &[(&str, bool, Option<&str>)]) {
        for &(spec, working, name) in table {
            for date in days(spec) {
                assert_eq!(
                    cal.is_working_day(date),
                    working,
                    "{date} ({}) should be {}",
                    date.weekday(),
                    if working { "working" } else { "off" }
                );
                let kind = cal.day_kind(date);
                assert_eq!(kind.is_working(), working, "{date}: {kind:?}");
                if let Some(name) = name {
                    assert_eq!(kind.name(true), Some(name), "{date}: {kind:?}");
                }
            }
        }
    }

    const WORK: bool = true;
    const OFF: bool = false;

    #[test]
    fn calendar_2026_matches_the_notice() {
        let cal = WorkCalendar::china();
        check(
            &cal,
            &[
                ("2026-01-01..2026-01-03", OFF, Some("元旦")),
                ("2026-01-04", WORK, Some("元旦")),
                ("2025-12-31", WORK, None),
                ("2026-01-05", WORK, None),
                ("2026-02-14", WORK, Some("春节")),
                ("2026-02-15..2026-02-23", OFF, Some("春节")),
                ("2026-02-28", WORK, Some("春节")),
                ("2026-02-13", WORK, None),
                ("2026-02-24..2026-02-27", WORK, None),
                ("2026-03-01", OFF, None),
                ("2026-02-07..2026-02-08", OFF, None),
                ("2026-04-04..2026-04-06", OFF, Some("清明节")),
                ("2026-04-03", WORK, None),
                ("2026-04-07", WORK, None),
                ("2026-04-11..2026-04-12", OFF, None),
                ("2026-05-01..2026-05-05", OFF, Some("劳动节")),
                ("2026-05-09", WORK, Some("劳动节")),
                ("2026-05-10", OFF, None),
                ("2026-04-30", WORK, None),
                ("2026-06-19..2026-06-21", OFF, Some("端午节")),
                ("2026-06-18", WORK, None),
                ("2026-06-22", WORK, None),
                ("2026-09-25..2026-09-27", OFF, Some("中秋节")),
                ("2026-09-20", WORK, Some("国庆节")),
                ("2026-09-19", OFF, None),
                ("2026-10-01..2026-10-07", OFF, Some("国庆节")),
                ("2026-10-10", WORK, Some("国庆节")),
                ("2026-10-08..2026-10-09", WORK, None),
                ("2026-10-11", OFF, None),
                ("2026-12-31", WORK, None),
            ],
        );
    }

    #[test]
    fn calendar_2025_matches_the_notice() {
        let cal = WorkCalendar::china();
        check(
            &cal,
            &[
                ("2025-01-01", OFF, Some("元旦")),
                ("2025-01-02", WORK, None),
                ("2025-01-04..2025-01-05", OFF, None),
                ("2025-01-26", WORK, Some("春节")),
                ("2025-01-27", WORK, None),
                ("2025-01-28..2025-02-04", OFF, Some("春节")),
                ("2025-02-05..2025-02-07", WORK, None),
                ("2025-02-08", WORK, Some("春节")),
                ("2025-02-09", OFF, None),
                ("2025-04-04..2025-04-06", OFF, Some("清明节")),
                ("2025-04-07", WORK, None),
                ("2025-04-27", WORK, Some("劳动节")),
                ("2025-04-26", OFF, None),
                ("2025-05-01..2025-05-05", OFF, Some("劳动节")),
                ("2025-05-06", WORK, None),
                ("2025-05-31..2025-06-02", OFF, Some("端午节")),
                ("2025-06-03", WORK, None),
                ("2025-09-28", WORK, Some("国庆节、中秋节")),
                ("2025-09-27", OFF, None),
                ("2025-10-01..2025-10-08", OFF, Some("国庆节、中秋节")),
                ("2025-10-09..2025-10-10", WORK, None),
                ("2025-10-11", WORK, Some("国庆节、中秋节")),
                ("2025-10-12", OFF, None),
            ],
        );
    }

    #[test]
    fn calendar_2024_spot_checks() {
        let cal = WorkCalendar::china();
        check(
            &cal,
            &[
                ("2024-01-01", OFF, Some("元旦")),
                ("2024-02-04", WORK, Some("春节")),
                ("2024-02-09", WORK, None),
                ("2024-02-10..2024-02-17", OFF, Some("春节")),
                ("2024-02-18", WORK, Some("春节")),
                ("2024-04-04..2024-04-06", OFF, Some("清明节")),
                ("2024-04-07", WORK, Some("清明节")),
                ("2024-04-28", WORK, Some("劳动节")),
                ("2024-05-01..2024-05-05", OFF, Some("劳动节")),
                ("2024-05-11", WORK, Some("劳动节")),
                ("2024-06-08..2024-06-09", OFF, None),
                ("2024-06-10", OFF, Some("端午节")),
                ("2024-09-14", WORK, Some("中秋节")),
                ("2024-09-15..2024-09-17", OFF, Some("中秋节")),
                ("2024-09-29", WORK, Some("国庆节")),
                ("2024-10-01..2024-10-07", OFF, Some("国庆节")),
                ("2024-10-12", WORK, Some("国庆节")),
                ("2024-10-13", OFF, None),
            ],
        );
        assert!(cal.take_uncovered_years().is_empty());
    }

    #[test]
    fn builtin_data_is_well_formed() {
        for year in OFFICIAL {
            for f in year.festivals {
                let (first, last) = (ymd(f.off.0), ymd(f.off.1));
                assert!(first <= last, "{}: {first}..{last}", f.en);
                assert_eq!(first.year(), year.year, "{}", f.en);
                for &m in f.make_up {
                    let m = ymd(m);
                    // The State Council only ever moves weekend days onto weekdays.
                    assert!(is_weekend(m), "make-up day {m} for {} is a weekday", f.en);
                    assert!(m < first || m > last, "{m} inside {}", f.en);
                }
            }
        }
        // Lengths announced by the notices ("共N天").
        let cal = WorkCalendar::china();
        let count = |year, zh: &str| {
            cal.year_listing(year)
                .days
                .iter()
                .filter(|l| !l.kind.is_working() && l.kind.name(true) == Some(zh))
                .count()
        };
        assert_eq!(count(2026, "春节"), 9);
        assert_eq!(count(2025, "春节"), 8);
        assert_eq!(count(2024, "春节"), 8);
        assert_eq!(count(2025, "国庆节、中秋节"), 8);
        assert_eq!(count(2026, "国庆节"), 7);
        assert_eq!(count(2026, "劳动节"), 5);
        assert_eq!(cal.covered_years(), vec![2024, 2025, 2026]);
    }

    #[test]
    fn before_and_after_across_spring_festival() {
        let cal = WorkCalendar::china();
        let wd = Offset::working_days;
        let cd = Offset::calendar_days;
        let cases: &[(&str, Offset, &str, &str)] = &[
            // (date, offset, before, after)
            ("2026-02-24", wd(1), "2026-02-14", "2026-02-25"),
            ("2026-02-24", wd(3), "2026-02-12", "2026-02-27"),
            ("2026-02-24", wd(0), "2026-02-24", "2026-02-24"),
            ("2026-02-24", cd(10), "2026-02-14", "2026-03-06"),
            ("2026-02-13", wd(1), "2026-02-12", "2026-02-14"),
            ("2026-02-13", wd(2), "2026-02-11", "2026-02-24"),
            ("2026-02-27", wd(1), "2026-02-26", "2026-02-28"),
            ("2026-02-27", wd(2), "2026-02-25", "2026-03-02"),
            // National Day 2026: Sun 09-20 and Sat 10-10 worked.
            ("2026-09-30", wd(1), "2026-09-29", "2026-10-08"),
            // 09-25..27 is the Mid-Autumn break, so the third working day back is Thu 09-24.
            ("2026-09-30", wd(3), "2026-09-24", "2026-10-10"),
            ("2026-09-21", wd(1), "2026-09-20", "2026-09-22"),
            // National Day and Mid-Autumn 2025.
            ("2025-09-30", wd(1), "2025-09-29", "2025-10-09"),
            // Sun 09-28 and Sat 10-11 are make-up days.
            ("2025-10-09", wd(3), "2025-09-28", "2025-10-13"),
            // Across a year boundary and New Year 2026.
            ("2025-12-31", wd(1), "2025-12-30", "2026-01-04"),
            ("2026-01-04", wd(1), "2025-12-31", "2026-01-05"),
        ];
        for &(date, offset, before, after) in cases {
            assert_eq!(
                cal.before(p(date), offset),
                p(before),
                "{offset} before {date}"
            );
            assert_eq!(
                cal.after(p(date), offset),
                p(after),
                "{offset} after {date}"
            );
        }
        // A deadline on a day off moves to the next working day.
        assert_eq!(
            cal.next_working_day_on_or_after(p("2026-02-15")),
            p("2026-02-24")
        );
        assert_eq!(
            cal.next_working_day_on_or_after(p("2026-02-14")),
            p("2026-02-14")
        );
        assert_eq!(
            cal.next_working_day_on_or_after(p("2026-10-03")),
            p("2026-10-08")
        );
    }

    #[test]
    fn add_and_between_with_zero_and_negative_counts() {
        let cal = WorkCalendar::china();
        let adds: &[(&str, i64, &str)] = &[
            ("2026-02-24", 0, "2026-02-24"),
            ("2026-02-15", 0, "2026-02-15"),
            ("2026-02-24", -1, "2026-02-14"),
            ("2026-02-24", -3, "2026-02-12"),
            ("2026-02-15", -1, "2026-02-14"),
            ("2026-02-15", 1, "2026-02-24"),
            ("2026-10-08", -2, "2026-09-29"),
        ];
        for &(date, n, expected) in adds {
            assert_eq!(
                cal.add_working_days(p(date), n),
                p(expected),
                "{date} {n:+}"
            );
        }
        // Whole-year totals worked out by hand from the notices: weekdays, minus holidays
        // falling on weekdays, plus make-up days. 2024: 262 - 19 + 8; 2025: 261 - 18 + 5;
        // 2026: 261 - 19 + 6.
        let betweens: &[(&str, &str, i64)] = &[
            ("2026-02-13", "2026-02-24", 2), // Sat 14 and Tue 24
            ("2026-02-24", "2026-02-13", -2),
            ("2026-02-14", "2026-02-23", 0), // nothing but days off
            ("2026-02-24", "2026-02-24", 0),
            ("2026-09-30", "2026-10-10", 3), // 10-08, 10-09 and Sat 10-10
            ("2026-10-10", "2026-09-30", -3),
            ("2025-09-26", "2025-10-12", 6), // Sun 28, 29, 30, 9, 10, Sat 11
            ("2023-12-31", "2024-12-31", 251),
            ("2024-12-31", "2025-12-31", 248),
            ("2025-12-31", "2026-12-31", 248),
            ("2026-12-31", "2025-12-31", -248),
        ];
        for &(from, to, expected) in betweens {
            assert_eq!(
                cal.working_days_between(p(from), p(to)),
                expected,
                "{from} -> {to}"
            );
        }
        // The year-boundary cases count from Dec 31 exclusive, so 2023 and 2027 are not touched.
        assert_eq!(cal.take_uncovered_years(), Vec::<i32>::new());
    }

    /// The closed-form count and the walk must agree with a day-by-day count, including around
    /// every holiday, across year boundaries and into uncovered years.
    #[test]
    fn arithmetic_agrees_with_brute_force() {
        let cal = WorkCalendar::china().with_overrides(
            &[DayOverride {
                date: d(2027, 1, 4),
                working: false,
                note: String::new(),
            }],
            &[],
        );
        let brute_between = |from: NaiveDate, to: NaiveDate| -> i64 {
            let (lo, hi, sign) = if from <= to {
                (from, to, 1)
            } else {
                (to, from, -1)
            };
            sign * lo
                .iter_days()
                .skip(1)
                .take_while(|x| *x <= hi)
                .filter(|x| cal.is_working_day(*x))
                .count() as i64
        };
        let start = d(2023, 12, 1);
        for offset in (0..1200).step_by(3) {
            let from = start + Days::new(offset);
            for n in [-40_i64, -9, -3, -1, 1, 2, 5, 12, 40] {
                let to = cal.add_working_days(from, n);
                assert!(cal.is_working_day(to), "{from} {n:+} -> {to}");
                assert_eq!((to > from), n > 0, "{from} {n:+}");
                let counted = brute_between(from, to);
                // Forward: (from, to] holds exactly n working days. Backward: (to, from] holds
                // |n| - 1 working days plus `from` itself when it is a working day.
                let expected = if n > 0 {
                    n
                } else {
                    n + 1 - i64::from(cal.is_working_day(from))
                };
                assert_eq!(counted, expected, "{from} {n:+} -> {to}");
                assert_eq!(cal.working_days_between(from, to), counted, "{from} {to}");
            }
            for span in [0_u64, 1, 6, 7, 30, 400] {
                let to = from + Days::new(span);
                assert_eq!(cal.working_days_between(from, to), brute_between(from, to));
                assert_eq!(cal.working_days_between(to, from), brute_between(to, from));
            }
        }
    }

    #[test]
    fn weekday_formula_matches_chrono() {
        let mut count = 0;
        let mut previous = d(1999, 12, 31);
        for date in d(2000, 1, 1).iter_days().take(800) {
            count += i64::from(!is_weekend(date));
            let formula = weekdays_through(i64::from(date.num_days_from_ce()))
                - weekdays_through(i64::from(d(1999, 12, 31).num_days_from_ce()));
            assert_eq!(formula, count, "{date}");
            previous = date;
        }
        assert_eq!(previous, d(2002, 3, 10));
        // Before the common era the pattern continues.
        let bc = NaiveDate::from_ymd_opt(-5, 3, 1).unwrap();
        let plain = (1..=30).filter(|i| !is_weekend(bc + Days::new(*i))).count() as i64;
        let formula = weekdays_through(i64::from((bc + Days::new(30)).num_days_from_ce()))
            - weekdays_through(i64::from(bc.num_days_from_ce()));
        assert_eq!(formula, plain);
    }

    #[test]
    fn runaway_counts_are_bounded() {
        let cal = WorkCalendar::china();
        let start = d(2026, 3, 2);
        let far = cal.add_working_days(start, i64::MAX);
        assert_eq!(far, cal.add_working_days(start, MAX_WORKING_DAYS));
        assert_eq!(cal.working_days_between(start, far), MAX_WORKING_DAYS);
        let back = cal.add_working_days(start, i64::MIN);
        assert_eq!(back, cal.add_working_days(start, -MAX_WORKING_DAYS));
        // Ends of chrono's range: saturate, do not panic.
        assert_eq!(cal.add_working_days(NaiveDate::MAX, 5), NaiveDate::MAX);
        assert_eq!(cal.add_working_days(NaiveDate::MIN, -5), NaiveDate::MIN);
        assert_eq!(
            cal.after(NaiveDate::MAX, Offset::calendar_days(3)),
            NaiveDate::MAX
        );
        let huge = cal.working_days_between(NaiveDate::MIN, NaiveDate::MAX);
        let capped =
            cal.working_days_between(NaiveDate::MIN, shift_days(NaiveDate::MIN, MAX_SPAN_DAYS));
        assert_eq!(huge, capped);
        assert!(huge > 0 && huge <= MAX_SPAN_DAYS);
        assert_eq!(
            cal.working_days_between(NaiveDate::MAX, NaiveDate::MIN),
            -cal.working_days_between(shift_days(NaiveDate::MAX, -MAX_SPAN_DAYS), NaiveDate::MAX)
        );
        // About forty uncovered years were recorded, not hundreds of thousands.
        assert!(cal.take_uncovered_years().len() < 200);
    }

    #[test]
    fn office_overrides_win() {
        let cal = WorkCalendar::china().with_overrides(
            &[
                // A local holiday on an ordinary Wednesday.
                DayOverride {
                    date: d(2026, 3, 11),
                    working: false,
                    note: "本地节日".into(),
                },
                // An inspection weekend.
                DayOverride {
                    date: d(2026, 3, 14),
                    working: true,
                    note: "迎检加班".into(),
                },
                // The office works the last day of National Day, without a note.
                DayOverride {
                    date: d(2026, 10, 7),
                    working: true,
                    note: "  ".into(),
                },
                // A weekday marked working with nothing to cancel: no effect, no trace.
                DayOverride {
                    date: d(2026, 3, 12),
                    working: true,
                    note: "noise".into(),
                },
                // Marked off, then corrected: the later entry wins and leaves no trace.
                DayOverride {
                    date: d(2026, 3, 13),
                    working: false,
                    note: "typo".into(),
                },
                DayOverride {
                    date: d(2026, 3, 13),
                    working: true,
                    note: String::new(),
                },
                // The office enters 2027 itself.
                DayOverride {
                    date: d(2027, 1, 1),
                    working: false,
                    note: "元旦".into(),
                },
            ],
            &[2027],
        );
        check(
            &cal,
            &[
                ("2026-03-11", OFF, Some("本地节日")),
                ("2026-03-14", WORK, Some("迎检加班")),
                ("2026-03-15", OFF, None),
                ("2026-10-07", WORK, Some(OFFICE_DEFAULT_ZH)),
                ("2026-10-06", OFF, Some("国庆节")),
                ("2026-03-12", WORK, None),
                ("2027-01-01", OFF, Some("元旦")),
                ("2027-01-02..2027-01-03", OFF, None),
                ("2027-01-04", WORK, None),
            ],
        );
        assert_eq!(cal.day_kind(d(2026, 3, 12)), DayKind::Workday);
        assert_eq!(cal.day_kind(d(2026, 3, 13)), DayKind::Workday);
        assert_eq!(cal.day_kind(d(2026, 3, 15)), DayKind::Weekend);
        assert_eq!(cal.day_kind(d(2026, 3, 14)).name(false), Some("迎检加班"));
        assert_eq!(cal.covered_years(), vec![2024, 2025, 2026, 2027]);
        assert!(cal.covers(2027));
        // 2027 is vouched for by the office: no warning.
        assert!(cal.take_uncovered_years().is_empty());
        // Working-day arithmetic sees the changes.
        assert_eq!(cal.add_working_days(d(2026, 3, 10), 1), d(2026, 3, 12));
        assert_eq!(cal.add_working_days(d(2026, 3, 13), 1), d(2026, 3, 14));
        assert_eq!(cal.add_working_days(d(2026, 9, 30), 1), d(2026, 10, 7));
        assert_eq!(cal.working_days_between(d(2026, 3, 9), d(2026, 3, 16)), 5);
        let listing = cal.year_listing(2026);
        let office: Vec<_> = listing
            .days
            .iter()
            .filter(|l| l.source == DaySource::Office)
            .map(|l| l.date)
            .collect();
        assert_eq!(office, vec![d(2026, 3, 11), d(2026, 3, 14), d(2026, 10, 7)]);
    }

    #[test]
    fn uncovered_years_use_the_weekend_rule_and_are_reported() {
        let cal = WorkCalendar::china();
        assert!(!cal.covers(2030));
        check(
            &cal,
            &[
                // 2030-01-01 is a Tuesday: without a schedule it is a working day.
                ("2030-01-01", WORK, None),
                ("2030-02-04..2030-02-08", WORK, None),
                ("2030-02-09..2030-02-10", OFF, None),
                ("2030-10-01", WORK, None),
            ],
        );
        assert_eq!(cal.day_kind(d(2030, 10, 5)), DayKind::Weekend);
        assert_eq!(cal.take_uncovered_years(), vec![2030]);
        assert!(cal.take_uncovered_years().is_empty(), "taking clears");
        // The same year is reported again after a take (the lock-free shortcut is reset).
        assert!(cal.is_working_day(d(2030, 1, 2)));
        assert_eq!(cal.take_uncovered_years(), vec![2030]);
        // Walks and counts into uncovered years record every year they touch.
        assert_eq!(cal.add_working_days(d(2026, 12, 31), 1), d(2027, 1, 1));
        let _ = cal.working_days_between(d(2026, 6, 1), d(2029, 1, 1));
        assert_eq!(cal.take_uncovered_years(), vec![2027, 2028, 2029]);
        // Pure queries about coverage record nothing.
        let _ = cal.year_listing(2031);
        let _ = cal.covers(2032);
        assert!(cal.take_uncovered_years().is_empty());
        assert_eq!(
            uncovered_warning(2027, false),
            "calendar does not cover 2027: weekends only; add the year to [calendar] in the config"
        );
        assert!(uncovered_warning(2027, true).contains("2027"));
        assert!(uncovered_warning(2027, true).contains("[calendar]"));
    }

    #[test]
    fn year_listing_2026_in_order_with_names() {
        let cal = WorkCalendar::china();
        let listing = cal.year_listing(2026);
        assert!(listing.covered);
        let got: Vec<(NaiveDate, bool, &str, &str)> = listing
            .days
            .iter()
            .map(|l| {
                (
                    l.date,
                    l.kind.is_working(),
                    l.kind.name(true).unwrap_or(""),
                    l.kind.name(false).unwrap_or(""),
                )
            })
            .collect();
        let mut expected = Vec::new();
        let mut push = |spec: &str, working: bool, name: (&'static str, &'static str)| {
            for date in days(spec) {
                expected.push((date, working, name.0, name.1));
            }
        };
        push("2026-01-01..2026-01-03", OFF, NEW_YEAR);
        push("2026-01-04", WORK, NEW_YEAR);
        push("2026-02-14", WORK, SPRING);
        push("2026-02-15..2026-02-23", OFF, SPRING);
        push("2026-02-28", WORK, SPRING);
        push("2026-04-04..2026-04-06", OFF, QINGMING);
        push("2026-05-01..2026-05-05", OFF, LABOUR);
        push("2026-05-09", WORK, LABOUR);
        push("2026-06-19..2026-06-21", OFF, DRAGON_BOAT);
        push("2026-09-20", WORK, NATIONAL);
        push("2026-09-25..2026-09-27", OFF, MID_AUTUMN);
        push("2026-10-01..2026-10-07", OFF, NATIONAL);
        push("2026-10-10", WORK, NATIONAL);
        assert_eq!(got, expected);
        assert!(
            listing
                .days
                .iter()
                .all(|l| l.source == DaySource::StateCouncil)
        );
        assert_eq!(got[0].3, "New Year's Day");
        let empty = cal.year_listing(2030);
        assert!(!empty.covered && empty.days.is_empty());
    }

    #[test]
    fn calendar_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WorkCalendar>();
        let cal = std::sync::Arc::new(WorkCalendar::china());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let cal = std::sync::Arc::clone(&cal);
                std::thread::spawn(move || {
                    cal.is_working_day(d(2040 + i, 1, 1));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cal.take_uncovered_years(), vec![2040, 2041, 2042, 2043]);
        let copy = (*cal).clone();
        assert_eq!(copy.covered_years(), cal.covered_years());
        assert_eq!(copy.year_listing(2025), cal.year_listing(2025));
    }
}
