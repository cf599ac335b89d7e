//! The engine: one task owning all process state, the pure process state machine, commands.
