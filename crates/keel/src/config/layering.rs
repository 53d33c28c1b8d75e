//! Layering: flag > environment > file > default, decided here and nowhere else.
//!
//! [`Origin`] and [`Setting`] (a value and where it came from), [`Flags`] (what the CLI
//! was given, as text per key), [`Env`] and [`ProcessEnv`] (the environment, behind a seam for tests) and
//! [`Layer::pick`], which every declared key goes through.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::*;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A configuration value and its origin.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// What the command line gave: the config file's path, and the text of each key's flag
/// as given (checked by clap against the key's type, read here by [`FromFlag`]).
#[derive(Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    /// Key name → (the flag that set it, its values in order).
    given: BTreeMap<&'static str, (&'static str, Vec<String>)>,
}

impl Flags {
    /// Records that `flag` set `key` to `values` (one per occurrence).
    pub fn set(&mut self, key: &'static str, flag: &'static str, values: Vec<String>) {
        self.given.insert(key, (flag, values));
    }

    /// The same flags with `key` set by `flag`, for tests.
    #[cfg(test)]
    pub fn with(mut self, key: &'static str, flag: &'static str, value: &str) -> Flags {
        self.set(key, flag, vec![value.to_owned()]);
        self
    }

    /// The flag that set `key` and its values, if one did.
    pub(crate) fn given(&self, key: &str) -> Option<(&'static str, &[String])> {
        self.given
            .get(key)
            .map(|(flag, values)| (*flag, values.as_slice()))
    }
}

/// Names which flags were given, never their values: `--token` is a secret.
impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flags")
            .field("config", &self.config)
            .field(
                "given",
                &self
                    .given
                    .values()
                    .map(|(flag, _)| flag)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Reads the process environment; a seam so tests can hand in their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Picks flag > env > file > default for one key.
pub(crate) struct Layer<'a> {
    pub(crate) env: &'a dyn Env,
}

impl Layer<'_> {
    pub(crate) fn pick<T: FromStr<Err = E> + FromFlag, E: fmt::Display>(
        &self,
        key: &str,
        flag: Option<(&'static str, &[String])>,
        env_name: &'static str,
        file: Option<Setting<T>>,
        default: T,
    ) -> Result<Setting<T>, ConfigError> {
        if let Some((name, values)) = flag {
            return T::from_flag(values)
                .map(|value| Setting {
                    value,
                    origin: Origin::Flag(name),
                })
                .map_err(|message| ConfigError::Invalid {
                    location: format!("flag {name}"),
                    key: key.to_owned(),
                    message,
                });
        }
        if let Some(text) = self.env.var(env_name) {
            return text
                .parse()
                .map(|value| Setting {
                    value,
                    origin: Origin::Env(env_name),
                })
                .map_err(|e: E| ConfigError::Invalid {
                    location: format!("environment variable {env_name}"),
                    key: key.to_owned(),
                    message: e.to_string(),
                });
        }
        Ok(file.unwrap_or(Setting {
            value: default,
            origin: Origin::Default,
        }))
    }
}
