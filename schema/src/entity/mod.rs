//! sea-orm entities. Enums are stored as their snake_case strings so that SQLite and PostgreSQL
//! share one schema; times are UTC; deadlines are local dates as `YYYY-MM-DD` (or `long_term`).

pub mod event;
pub mod evidence;
pub mod extension;
pub mod item;
pub mod job;
pub mod operator;
pub mod outbox;
pub mod outbox_body;
pub mod reminder;
pub mod round;
pub mod unit;
