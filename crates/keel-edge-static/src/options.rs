//! [`StaticOptions`]: the knobs of static serving, with units in their names.
//!
//! nginx spreads these over `expires`/`add_header Cache-Control`, `open_file_cache`,
//! `output_buffers` and `gzip_static`; here they are one struct that the edge's config
//! layer fills and [`StaticOptions::validate`] checks once, before any file is read.

use std::time::Duration;

use crate::error::StaticError;

/// Default for [`StaticOptions::memory_limit_per_file_bytes`]: 256 KiB.
pub const DEFAULT_MEMORY_LIMIT_PER_FILE_BYTES: u64 = 256 * 1024;
/// Default for [`StaticOptions::memory_limit_total_bytes`]: 64 MiB.
pub const DEFAULT_MEMORY_LIMIT_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Default for [`StaticOptions::max_age`] of names that are not content-hashed: 60 s.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Default for [`StaticOptions::stream_chunk_bytes`]: 64 KiB.
pub const DEFAULT_STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// How a static root is indexed and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticOptions {
    /// Files (and precompressed variants) up to this size are read into memory at load
    /// and served from there; larger ones are streamed from disk per request.
    pub memory_limit_per_file_bytes: u64,
    /// Upper bound on the bytes held in memory by one index. Files are taken in name
    /// order until the budget is spent; the rest are streamed. Identical contents (a
    /// file and its hashed copy) are held once and charged once.
    pub memory_limit_total_bytes: u64,
    /// `Cache-Control: public, max-age=<this>` for names that are not content-hashed.
    /// Hashed names always get one year and `immutable`. Whole seconds are used.
    pub max_age: Duration,
    /// Also treat names that merely *look* hashed (`name.<12 hex>.ext`, see
    /// [`keel_static::looks_hashed`]) as immutable, not only the hashed names listed in
    /// the current `manifest.json`. On by default: collectstatic leaves the hashed files
    /// of earlier deploys on disk but drops them from the manifest, and pages cached
    /// before a deploy still load them; they never change either.
    pub trust_hashed_names: bool,
    /// Size of each read when streaming a large file.
    pub stream_chunk_bytes: usize,
}

impl Default for StaticOptions {
    fn default() -> Self {
        StaticOptions {
            memory_limit_per_file_bytes: DEFAULT_MEMORY_LIMIT_PER_FILE_BYTES,
            memory_limit_total_bytes: DEFAULT_MEMORY_LIMIT_TOTAL_BYTES,
            max_age: DEFAULT_MAX_AGE,
            trust_hashed_names: true,
            stream_chunk_bytes: DEFAULT_STREAM_CHUNK_BYTES,
        }
    }
}

impl StaticOptions {
    /// Check every field; the error names the field.
    pub fn validate(&self) -> Result<(), StaticError> {
        if self.memory_limit_per_file_bytes > self.memory_limit_total_bytes {
            return Err(StaticError::InvalidOptions {
                key: "memory_limit_per_file_bytes",
                reason: format!(
                    "{} is more than memory_limit_total_bytes ({})",
                    self.memory_limit_per_file_bytes, self.memory_limit_total_bytes
                ),
            });
        }
        if self.stream_chunk_bytes == 0 || self.stream_chunk_bytes > 16 * 1024 * 1024 {
            return Err(StaticError::InvalidOptions {
                key: "stream_chunk_bytes",
                reason: format!(
                    "{} is not between 1 byte and 16 MiB",
                    self.stream_chunk_bytes
                ),
            });
        }
        // Browsers cap max-age; more than ten years is certainly a unit mistake.
        if self.max_age > Duration::from_secs(10 * 365 * 24 * 3600) {
            return Err(StaticError::InvalidOptions {
                key: "max_age",
                reason: format!("{:?} is more than ten years", self.max_age),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(StaticOptions::default().validate().is_ok());
        let bad = StaticOptions {
            memory_limit_per_file_bytes: 10,
            memory_limit_total_bytes: 5,
            ..StaticOptions::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(StaticError::InvalidOptions {
                key: "memory_limit_per_file_bytes",
                ..
            })
        ));
        let bad = StaticOptions {
            stream_chunk_bytes: 0,
            ..StaticOptions::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(StaticError::InvalidOptions {
                key: "stream_chunk_bytes",
                ..
            })
        ));
    }
}
