//! The event bus and supervisor's event-listener protocol.
