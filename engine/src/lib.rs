//! The pure domain of `rectify`.
//!
//! Architecture invariant: this crate does no I/O. No files, no network, no clock, no database,
//! no async runtime. The clock (`now`) and the work calendar are inputs, so every rule can be
//! tested without waiting.

pub mod calendar;
pub mod chain;
pub mod lang;
pub mod light;
pub mod model;
pub mod offset;
pub mod remind;
pub mod replay;
pub mod text;
pub mod transition;

pub use lang::Lang;
pub use light::{Light, LightPolicy};
pub use model::{
    Actor, Cadence, Deadline, EvidenceRef, Item, ItemId, ItemState, NewItem, PendingExtension,
    Role, Source,
};
pub use offset::{Offset, OffsetError, OffsetUnit};
pub use transition::{Action, Command, Ctx, Event, Outcome, Refusal, create, transition};
