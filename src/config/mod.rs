//! supervisord-format configuration: INI parsing, expansion, includes and validation.
//!
//! [`load`] reads a supervisord.conf (and its `[include]` files) unchanged and
//! returns a validated [`Config`]; [`ConfigError`] names file, line, section,
//! option and what was expected, and keeps supervisord's exact message.

mod describe;
mod environment;
mod error;
mod expand;
mod ini;
mod known;
mod load;
pub mod model;
mod parser;
mod paths;
mod programs;
pub mod pyfmt;
pub mod readiness;
pub mod users;
pub mod values;

pub use describe::{describe, describe_limits};
pub use environment::Environment;
pub use error::{ConfigError, Location};
pub use load::{
    default_search_paths, find_config, load, load_ctl_with, load_text_with, load_with, DiskFiles,
    IncludeFiles, MemoryFiles, CORRAL_CONFIG_PATH,
};
pub use model::*;
pub use readiness::{HealthAction, HealthCheck, HealthConfig, Probe, Readiness};
