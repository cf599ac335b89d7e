//! supervisord-format configuration: INI parsing, expansion, includes and validation.

pub mod model;

pub use model::*;
