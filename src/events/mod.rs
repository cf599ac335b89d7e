//! The event bus and supervisor's event-listener protocol.
//!
//! - [`types`]: every event type, its family, and payloads rendered byte for byte
//!   as supervisord renders them (corral's own `CORRAL_*` payloads are documented
//!   there; only pools naming them receive them, `EVENT` does not include them).
//! - [`protocol`]: the listener protocol (ACKNOWLEDGED → READY → BUSY → result)
//!   as a pure state machine over the bytes a listener writes.
//! - [`pool`]: an `[eventlistener:x]` pool: bounded buffer, serials, dispatch,
//!   requeue.
//! - [`tick`]: TICK_5/60/3600 slices; a timer only runs while some pool
//!   subscribes to a tick type.
//! - [`bus`]: the task tying them together; the engine feeds it through
//!   `engine::listeners`.

pub mod bus;
pub mod pool;
pub mod protocol;
pub mod tick;
pub mod types;

pub use bus::{Bus, BusChannels, BusInput, OutputTag};
pub use types::{Event, EventType, Subscription};
