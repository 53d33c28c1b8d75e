//! The file: `keel.toml`'s tables that are not single keys (`[edge.zones.NAME]`,
//! `[[edge.limits]]`, `[edge.conn_zones.NAME]`, `[[edge.conn_limits]]`), the parse of the
//! whole file with the file:line of every value ([`Source`]) and of every error. The
//! single keys' schema (`FileConfig` and its sections) is generated from `keys.rs`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::*;

/// `[edge.conn_zones.NAME]`: nginx's `limit_conn_zone $binary_remote_addr zone=NAME:SIZE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnZoneFile {
    size: Option<Spanned<ZoneSetting>>,
}

/// `[[edge.conn_limits]]`: nginx's `limit_conn NAME N` inside a `location PATH`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnLimitFile {
    path: String,
    zone: String,
    conn: u32,
}

/// `[edge.zones.NAME]`: nginx's `limit_req_zone ... zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZoneFile {
    rate: Spanned<RateSetting>,
    size: Option<ZoneSetting>,
}

/// `[[edge.limits]]`: nginx's `limit_req zone=NAME burst=N [nodelay|delay=N]` inside a
/// `location PATH`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitFile {
    path: String,
    zone: String,
    #[serde(default)]
    burst: u32,
    delay: Option<DelaySetting>,
}

/// A parsed file plus what is needed to turn byte spans into line numbers.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    pub(crate) file: FileConfig,
}

impl Source {
    fn line_of(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |before| before.matches('\n').count() + 1)
    }
}

pub(crate) fn from_file<T>(
    source: Option<&Source>,
    value: Option<Spanned<T>>,
) -> Option<Setting<T>> {
    let source = source?;
    value.map(|spanned| {
        let line = source.line_of(spanned.span().start);
        Setting {
            value: spanned.into_inner(),
            origin: Origin::File {
                path: source.path.clone(),
                line,
            },
        }
    })
}

pub(crate) fn parse_file(path: &Path, text: String) -> Result<Source, ConfigError> {
    let deserializer = toml::Deserializer::new(&text);
    match serde_path_to_error::deserialize::<_, FileConfig>(deserializer) {
        Ok(file) => Ok(Source {
            path: path.to_owned(),
            text,
            file,
        }),
        Err(error) => {
            // Spanned<T> adds an internal segment to the path; users never wrote it.
            let key = error
                .path()
                .to_string()
                .split('.')
                .filter(|segment| !segment.starts_with("$__"))
                .collect::<Vec<_>>()
                .join(".");
            let inner = error.into_inner();
            let line = inner.span().map_or(1, |span| {
                text.get(..span.start)
                    .map_or(1, |before| before.matches('\n').count() + 1)
            });
            Err(ConfigError::Invalid {
                location: format!("{}:{line}", path.display()),
                key: if key == "." {
                    "(top level)".to_owned()
                } else {
                    key
                },
                message: inner.message().trim().to_owned(),
            })
        }
    }
}

/// Where in the file a byte offset is.
pub(crate) fn file_origin(src: Option<&Source>, offset: usize) -> Origin {
    src.map_or(Origin::Default, |source| Origin::File {
        path: source.path.clone(),
        line: source.line_of(offset),
    })
}

pub(crate) fn zone_defs(
    src: Option<&Source>,
    zones: std::collections::BTreeMap<String, ZoneFile>,
) -> Result<Vec<ZoneDef>, ConfigError> {
    let default_size = keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024)
        .map_err(|e| invalid("edge.zones", &Origin::Default, e.to_string()))?;
    zones
        .into_iter()
        .map(|(name, zone)| {
            let origin = file_origin(src, zone.rate.span().start);
            let setting = zone.rate.into_inner();
            match setting.0 {
                Some(rate) => Ok(ZoneDef {
                    name,
                    rate,
                    rate_text: setting.to_string(),
                    size: zone.size.map_or(default_size, |s| s.0),
                    origin,
                }),
                None => Err(invalid(
                    &format!("edge.zones.{name}.rate"),
                    &origin,
                    "a zone needs a rate; remove the zone instead of setting it off".to_owned(),
                )),
            }
        })
        .collect()
}

pub(crate) fn conn_zone_defs(
    src: Option<&Source>,
    zones: std::collections::BTreeMap<String, ConnZoneFile>,
) -> Result<Vec<ConnZoneDef>, ConfigError> {
    let default_size = keel_edge::ZoneSize::from_bytes(10 * 1024 * 1024)
        .map_err(|e| invalid("edge.conn_zones", &Origin::Default, e.to_string()))?;
    Ok(zones
        .into_iter()
        .map(|(name, zone)| match zone.size {
            Some(size) => ConnZoneDef {
                name,
                origin: file_origin(src, size.span().start),
                size: size.into_inner().0,
            },
            None => ConnZoneDef {
                name,
                size: default_size,
                origin: Origin::Default,
            },
        })
        .collect())
}

pub(crate) fn conn_limit_defs(
    src: Option<&Source>,
    limits: Vec<Spanned<ConnLimitFile>>,
) -> Result<Vec<ConnLimitDef>, ConfigError> {
    Ok(limits
        .into_iter()
        .map(|spanned| {
            let origin = file_origin(src, spanned.span().start);
            let limit = spanned.into_inner();
            ConnLimitDef {
                path: limit.path,
                zone: limit.zone,
                conn: limit.conn,
                origin,
            }
        })
        .collect())
}

pub(crate) fn limit_defs(
    src: Option<&Source>,
    limits: Vec<Spanned<LimitFile>>,
) -> Result<Vec<LimitDef>, ConfigError> {
    Ok(limits
        .into_iter()
        .map(|spanned| {
            let origin = file_origin(src, spanned.span().start);
            let limit = spanned.into_inner();
            LimitDef {
                path: limit.path,
                zone: limit.zone,
                burst: limit.burst,
                delay: limit.delay.unwrap_or(DelaySetting(None)),
                origin,
            }
        })
        .collect())
}
