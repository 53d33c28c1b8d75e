//! limit_req as the edge is told it: this module owns the declarative spec a caller hands
//! over ([`LimitSpec`]: the zones by name, nginx's `limit_req_zone` lines, and per path
//! prefix the zones, bursts and delays checked together, nginx's `limit_req` lines in a
//! `location`), the zones and limiters the edge builds from it ([`LimitConfig`], internal),
//! and which zones a reload keeps. The decisions themselves are `keel-limit`'s;
//! `handler.rs` asks [`LimitConfig::for_path`] on every non-static request.
//!
//! The spec is pure data so that the binary builds no zone itself: only the edge knows
//! which zones are running, so only the edge can keep them across a reload.
//!
//! # Reload
//! A zone of the new spec whose name, size **and rate** equal a running zone's is that
//! running zone (the same `Arc<Zone>`): every address keeps its state (its excess and the
//! time of its last request). Any other zone starts afresh, empty. nginx keeps a zone when
//! its name and size are unchanged and applies a new rate to the kept states; keel also
//! asks for the same rate because a `keel_limit::Zone`'s rate is fixed when it is built
//! (its states are charged against it on every request, without a lock on the rate), and
//! a rate change is rare: starting those counts afresh costs each client at most one
//! burst, which is what a restart costs anyway. The limit_conn zones are kept by name
//! alone (`conn_limit.rs`): their counts are requests in flight, which must stay counted.
//!
//! [`LimitSpec::build`] is called once per start or reload, and the result is given to
//! every worker's state, so all workers share the same zones (see `Reloader::reload`).

use std::sync::Arc;

use axum::http::StatusCode;
use keel_limit::{DelayPolicy, Limit, Limiter, Rate, Zone, ZoneSize};

/// limit_req on backend routes, as data: the zones, and per path prefix the limits checked
/// together. Like nginx `location` blocks, the route with the longest matching prefix
/// decides; a request matching none is not limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// Every zone, by unique name (nginx's `limit_req_zone`). A zone no route uses is
    /// still kept, with its states, across reloads.
    pub zones: Vec<ZoneSpec>,
    /// Limits per path prefix, each prefix once.
    pub routes: Vec<RouteSpec>,
    /// Status of a rejected request (nginx's `limit_req_status`, 503 by default).
    pub status: StatusCode,
    /// nginx's `limit_req_dry_run`: the excess is logged but passed, on every route.
    pub dry_run: bool,
}

/// One zone: `limit_req_zone $binary_remote_addr zone=NAME:SIZE rate=RATE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneSpec {
    /// The zone's name; routes refer to it by this.
    pub name: String,
    /// Requests per second (or minute) each client address may make on average.
    pub rate: Rate,
    /// Bounds the number of client addresses remembered (`size / 128`).
    pub size: ZoneSize,
}

/// The limits of one path prefix (the `limit_req` lines of one `location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Requests whose path starts with this are limited here (`/` for all).
    pub path_prefix: String,
    /// The zones checked, in order (the order decides which one rejects first), each once.
    /// Empty: requests under this prefix are not limited.
    pub limits: Vec<LimitRef>,
}

/// One `limit_req zone=NAME burst=N [nodelay | delay=N]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRef {
    /// The name of a zone of [`LimitSpec::zones`].
    pub zone: String,
    /// Requests over the rate accepted (and delayed, per `delay`) before rejecting.
    pub burst: u32,
    /// Which accepted requests over the rate wait.
    pub delay: DelayPolicy,
}

/// A [`LimitSpec`] that nginx would refuse (`nginx -t`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitSpecError {
    /// Two zones with one name (nginx: `limit_req_zone "NAME" is already bound`).
    #[error("limit_req zone \"{0}\" is defined twice: give each zone its own name")]
    DuplicateZoneName(String),
    /// Two routes with one prefix: which one applies would be a guess.
    #[error("path {0} is listed twice: put all its limits in one route")]
    DuplicatePath(String),
    /// A route names a zone the spec does not define (nginx: `unknown limit_req_zone`).
    #[error("path {path}: no limit_req zone named \"{zone}\"")]
    UnknownZone {
        /// The route's prefix.
        path: String,
        /// The name given.
        zone: String,
    },
    /// A route's limits that `keel-limit` refuses, e.g. one zone twice.
    #[error("path {path}: {reason}")]
    Limit {
        /// The route's prefix.
        path: String,
        /// What `keel-limit` said (its wording is nginx's).
        reason: keel_limit::Error,
    },
}

impl LimitSpec {
    /// One zone, limiting every path with `burst` and `delay`.
    pub fn everywhere(zone: ZoneSpec, burst: u32, delay: DelayPolicy, status: StatusCode) -> Self {
        LimitSpec {
            routes: vec![RouteSpec {
                path_prefix: "/".to_owned(),
                limits: vec![LimitRef {
                    zone: zone.name.clone(),
                    burst,
                    delay,
                }],
            }],
            zones: vec![zone],
            status,
            dry_run: false,
        }
    }

    /// The route for `path`: the longest matching prefix, as the edge picks it.
    pub fn route_for(&self, path: &str) -> Option<&RouteSpec> {
        self.routes
            .iter()
            .filter(|route| path.starts_with(&route.path_prefix))
            .max_by_key(|route| route.path_prefix.len())
    }

    /// Checks what [`Edge::build`](crate::Edge::build) and
    /// [`Reloader::reload`](crate::Reloader::reload) would refuse, without building a zone:
    /// zone names and path prefixes are unique, every route names defined zones, each once.
    pub fn validate(&self) -> Result<(), LimitSpecError> {
        for (i, zone) in self.zones.iter().enumerate() {
            if self.zones[..i].iter().any(|other| other.name == zone.name) {
                return Err(LimitSpecError::DuplicateZoneName(zone.name.clone()));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let path = &route.path_prefix;
            if self.routes[..i]
                .iter()
                .any(|other| other.path_prefix == *path)
            {
                return Err(LimitSpecError::DuplicatePath(path.clone()));
            }
            for (j, limit) in route.limits.iter().enumerate() {
                if !self.zones.iter().any(|zone| zone.name == limit.zone) {
                    return Err(LimitSpecError::UnknownZone {
                        path: path.clone(),
                        zone: limit.zone.clone(),
                    });
                }
                // keel-limit finds duplicates by zone identity; by name here, before any
                // zone exists, with its wording.
                if route.limits[..j]
                    .iter()
                    .any(|other| other.zone == limit.zone)
                {
                    return Err(LimitSpecError::Limit {
                        path: path.clone(),
                        reason: keel_limit::Error::DuplicateZone(limit.zone.clone()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The zones and limiters of this spec for an edge whose running limits are `running`
    /// (`None` at start, or when limit_req was off): each zone equal to a running one (same
    /// name, size and rate; see the module doc) is the running one, with its states; the
    /// others are new.
    pub(crate) fn build(
        &self,
        running: Option<&LimitConfig>,
    ) -> Result<LimitConfig, LimitSpecError> {
        self.validate()?;
        let zones: Vec<(ZoneSpec, Arc<Zone>)> = self
            .zones
            .iter()
            .map(|spec| {
                let kept = running.and_then(|running| {
                    running
                        .zones
                        .iter()
                        .find(|(built, _)| built == spec)
                        .map(|(_, zone)| zone.clone())
                });
                let zone = kept.unwrap_or_else(|| {
                    Arc::new(Zone::new(spec.name.clone(), spec.rate, spec.size))
                });
                (spec.clone(), zone)
            })
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|route| {
                let path = &route.path_prefix;
                let limits = route
                    .limits
                    .iter()
                    .map(|limit| {
                        zones
                            .iter()
                            .find(|(spec, _)| spec.name == limit.zone)
                            .map(|(_, zone)| Limit::new(zone.clone(), limit.burst, limit.delay))
                            // validate() checked it; kept as an error, not a panic.
                            .ok_or_else(|| LimitSpecError::UnknownZone {
                                path: path.clone(),
                                zone: limit.zone.clone(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let limiter = Limiter::new(limits).map_err(|reason| LimitSpecError::Limit {
                    path: path.clone(),
                    reason,
                })?;
                Ok(RouteLimit {
                    path_prefix: path.clone(),
                    limiter: Arc::new(limiter.with_dry_run(self.dry_run)),
                })
            })
            .collect::<Result<Vec<_>, LimitSpecError>>()?;
        Ok(LimitConfig {
            zones,
            routes,
            status: self.status,
        })
    }
}

/// A [`LimitSpec`] built: the running zones and, per path prefix, the limiter checking them.
/// Cloning shares the zones.
#[derive(Debug, Clone)]
pub(crate) struct LimitConfig {
    /// Every zone with the spec it was built from, which the next reload compares with.
    zones: Vec<(ZoneSpec, Arc<Zone>)>,
    routes: Vec<RouteLimit>,
    /// Status of a rejected request.
    pub(crate) status: StatusCode,
}

/// The limiter of one path prefix.
#[derive(Debug, Clone)]
struct RouteLimit {
    path_prefix: String,
    limiter: Arc<Limiter>,
}

impl LimitConfig {
    /// The limits for `path`: the longest matching prefix.
    pub(crate) fn for_path(&self, path: &str) -> Option<&Limiter> {
        self.routes
            .iter()
            .filter(|route| path.starts_with(&route.path_prefix))
            .max_by_key(|route| route.path_prefix.len())
            .map(|route| route.limiter.as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn zone(name: &str, rate: &str, size: &str) -> ZoneSpec {
        ZoneSpec {
            name: name.to_owned(),
            rate: rate.parse().unwrap(),
            size: size.parse().unwrap(),
        }
    }

    fn one(zone: ZoneSpec) -> LimitSpec {
        LimitSpec::everywhere(
            zone,
            0,
            DelayPolicy::NoDelay,
            StatusCode::SERVICE_UNAVAILABLE,
        )
    }

    fn zone_of(config: &LimitConfig, name: &str) -> Arc<Zone> {
        config
            .zones
            .iter()
            .find(|(spec, _)| spec.name == name)
            .map(|(_, zone)| zone.clone())
            .unwrap()
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn a_reload_keeps_a_zone_with_the_same_name_size_and_rate() {
        let first = one(zone("z", "1r/m", "1m")).build(None).unwrap();
        let limiter = first.for_path("/x").unwrap();
        assert!(!limiter.check(&CLIENT, 0).is_rejected());
        assert!(limiter.check(&CLIENT, 1).is_rejected());

        let same = one(zone("z", "1r/m", "1m")).build(Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&zone_of(&first, "z"), &zone_of(&same, "z")));
        assert!(
            same.for_path("/x").unwrap().check(&CLIENT, 2).is_rejected(),
            "the client's count survived"
        );

        for changed in [zone("z", "1r/m", "2m"), zone("z", "2r/m", "1m")] {
            let fresh = one(changed.clone()).build(Some(&same)).unwrap();
            assert!(
                !Arc::ptr_eq(&zone_of(&same, "z"), &zone_of(&fresh, "z")),
                "{changed:?}"
            );
            assert!(!fresh
                .for_path("/x")
                .unwrap()
                .check(&CLIENT, 3)
                .is_rejected());
        }
        let renamed = one(zone("y", "1r/m", "1m")).build(Some(&same)).unwrap();
        assert!(!renamed
            .for_path("/")
            .unwrap()
            .check(&CLIENT, 3)
            .is_rejected());
    }

    #[test]
    fn routes_share_zones_and_the_longest_prefix_decides() {
        let spec = LimitSpec {
            zones: vec![zone("all", "10r/s", "1m"), zone("login", "1r/m", "1m")],
            routes: vec![
                RouteSpec {
                    path_prefix: "/".to_owned(),
                    limits: vec![LimitRef {
                        zone: "all".to_owned(),
                        burst: 20,
                        delay: DelayPolicy::NoDelay,
                    }],
                },
                RouteSpec {
                    path_prefix: "/login".to_owned(),
                    limits: vec![
                        LimitRef {
                            zone: "all".to_owned(),
                            burst: 20,
                            delay: DelayPolicy::NoDelay,
                        },
                        LimitRef {
                            zone: "login".to_owned(),
                            burst: 0,
                            delay: DelayPolicy::NoDelay,
                        },
                    ],
                },
            ],
            status: StatusCode::TOO_MANY_REQUESTS,
            dry_run: true,
        };
        assert_eq!(spec.route_for("/login/x").unwrap().limits.len(), 2);
        let built = spec.build(None).unwrap();
        let login = built.for_path("/login/x").unwrap();
        assert_eq!(login.limits().len(), 2);
        assert!(login.dry_run());
        let all = built.for_path("/about").unwrap();
        assert!(Arc::ptr_eq(
            all.limits()[0].zone(),
            login.limits()[0].zone()
        ));
    }

    #[test]
    fn a_spec_nginx_would_refuse_is_an_error() {
        let mut unknown = one(zone("z", "1r/s", "1m"));
        unknown.routes[0].limits[0].zone = "nope".to_owned();
        assert_eq!(
            unknown.build(None).unwrap_err().to_string(),
            "path /: no limit_req zone named \"nope\""
        );

        let mut twice = one(zone("z", "1r/s", "1m"));
        let again = twice.routes[0].limits[0].clone();
        twice.routes[0].limits.push(again);
        assert_eq!(
            twice.validate().unwrap_err().to_string(),
            "path /: limit_req zone \"z\" is duplicate: list each zone once per limiter"
        );

        let mut zones = one(zone("z", "1r/s", "1m"));
        zones.zones.push(zone("z", "2r/s", "1m"));
        assert_eq!(
            zones.validate(),
            Err(LimitSpecError::DuplicateZoneName("z".to_owned()))
        );

        let mut paths = one(zone("z", "1r/s", "1m"));
        let route = paths.routes[0].clone();
        paths.routes.push(route);
        assert_eq!(
            paths.validate(),
            Err(LimitSpecError::DuplicatePath("/".to_owned()))
        );
    }
}
