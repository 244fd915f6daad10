//! Email for `rectify`: templates, the outbox dispatcher, periodic jobs and the `serve` loop.
//!
//! Architecture invariant: the notifier never changes an item. It reads items, writes reminder
//! and outbox rows through the store, and sends mail outside any transaction.

pub mod dispatch;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod render;
pub mod service;
pub mod testing;

pub use dispatch::{
    DeliveryReport, DispatchConfig, Dispatcher, PassReport, SHARDS, shard_job, shard_of,
};
pub use jobs::Job;
pub use mail::{Mailer, TlsMode, TransportConfig};
pub use service::{Clock, Schedules, Service, Stats};
