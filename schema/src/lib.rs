//! Persistence for `rectify`: sea-orm entities, migrations, and the store that applies one command
//! in one transaction.
//!
//! Architecture invariant: the store never decides a rule. It asks `rectify_engine` and persists
//! what the engine returned. It never updates or deletes an event row.

pub mod bulk;
pub mod entity;
pub mod error;
pub mod evidence_files;
pub mod migration;
pub mod reminders;
pub mod report_read;
mod sqlite_direct;
pub mod store;
pub mod testing;

pub use sea_orm;

pub use bulk::{BatchError, BatchItem, Bulk};
pub use error::{ErrorClass, StoreError};
pub use reminders::{Directory, NewMessage, PLAN_CHANNEL, Planner, UnitSet};
pub use report_read::EventRow;
pub use store::{
    AuditFinding, ConnectSettings, HistoryEntry, ItemFilter, Operator, Round, Store, Unit,
};
