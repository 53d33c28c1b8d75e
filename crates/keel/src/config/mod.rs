//! Configuration: `keel.toml`, then `KEEL_*` environment variables, then flags.
//!
//! Precedence is flag > environment > file > default, decided here and nowhere else.
//! Every value remembers where it came from ([`Origin`]), so a bad value is refused with
//! the file and line (or the variable, or the flag) and the key named, and `keel config`
//! can show the origin of each effective setting. The library crates never read files or
//! the environment: they receive the validated types built at the end of this module.
//!
//! Each key is declared once, in `keys.rs`; the rest is one file per concern:
//! `values.rs` (the value types), `file.rs` (`keel.toml`'s tables and its parse, with
//! file:line origins), `layering.rs` (flag > env > file > default), `settings.rs`
//! (`Settings::load`, validation, the libraries' configurations, reload) and `render.rs`
//! (`keel config`). The table below is [`KEYS`]; a test keeps it equal.
//!
//! The file is `--config PATH`, else `$KEEL_CONFIG`, else `./keel.toml` when it exists.

use std::path::PathBuf;

mod file;
mod keys;
mod layering;
mod render;
mod settings;
mod values;

#[cfg(test)]
mod tests;

use file::*;
pub use keys::*;
pub use layering::*;
use render::rendered_values;
use render::{line, section};
pub use settings::*;
pub use values::*;

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {key}: {message}")]
    Invalid {
        location: String,
        key: String,
        message: String,
    },
}

pub(crate) fn invalid(key: &str, origin: &Origin, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: origin.to_string(),
        key: key.to_owned(),
        message,
    }
}
