//! From [`RawConfig`] to [`Config`]: every key checked, defaults filled in, and each
//! error naming the key it is about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use reqwest::Url;

use super::{
    CallsConfig, Config, DEFAULT_BUCKETS, DEFAULT_TIMEZONE, Env, InvalidKey, Limits, Operation,
    Poll, RawCalls, RawConfig, RawOperation, RawPoll, Warnings, err,
};
use crate::calls::SelfService;
use crate::secret::Secret;

pub fn parse_duration(key: &str, value: &str) -> Result<Duration, InvalidKey> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        err(
            key,
            format!("invalid duration {value:?} ({e}); use e.g. 90s, 5m, 1h 30m"),
        )
    })
}

impl RawConfig {
    /// Checks every key; the error names the key, and the caller adds the file.
    pub fn validate(&self, env: &dyn Env) -> Result<(Config, Warnings), InvalidKey> {
        let mut warnings = Vec::new();
        if self.operations.is_empty() {
            return Err(err("operations", "at least one operation is required"));
        }
        // Defaults are validated once on their own so an error names `poll.*`.
        let defaults = RawPoll::default().or(&self.poll);
        let default_poll = validate_poll("poll", &defaults)?;
        validate_calls("calls", &self.calls, &default_poll)?;
        let mut operations = Vec::with_capacity(self.operations.len());
        for (i, raw) in self.operations.iter().enumerate() {
            let key = format!("operations[{i}]");
            let op = raw.validate(&key, &defaults, &self.calls, env, &mut warnings)?;
            if operations.iter().any(|o: &Operation| o.name == op.name) {
                return Err(err(
                    format!("{key}.name"),
                    format!("duplicate operation name {:?}", op.name),
                ));
            }
            operations.push(op);
        }
        let buckets = match &self.duration_buckets {
            None => DEFAULT_BUCKETS.to_vec(),
            Some(b) => validate_buckets(b)?,
        };
        let d = Limits::default();
        let limits = Limits {
            routing_points: positive(
                "limits.routing_points",
                self.limits.routing_points,
                d.routing_points,
            )?,
            options_per_routing_point: positive(
                "limits.options_per_routing_point",
                self.limits.options_per_routing_point,
                d.options_per_routing_point,
            )?,
            transfers_per_routing_point: positive(
                "limits.transfers_per_routing_point",
                self.limits.transfers_per_routing_point,
                d.transfers_per_routing_point,
            )?,
        };
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"));
        Ok((
            Config {
                operations,
                limits,
                buckets,
                state_dir,
            },
            warnings,
        ))
    }
}

fn positive(key: &str, v: Option<usize>, default: usize) -> Result<usize, InvalidKey> {
    match v {
        None => Ok(default),
        Some(0) => Err(err(key, "must be at least 1")),
        Some(n) => Ok(n),
    }
}

fn validate_buckets(b: &[f64]) -> Result<Vec<f64>, InvalidKey> {
    let key = "duration_buckets";
    if b.is_empty() {
        return Err(err(key, "at least one bucket is required"));
    }
    for (i, v) in b.iter().enumerate() {
        if !v.is_finite() || *v <= 0.0 {
            return Err(err(
                format!("{key}[{i}]"),
                format!("{v} is not a positive number of seconds"),
            ));
        }
        if i > 0 && *v <= b[i - 1] {
            return Err(err(
                format!("{key}[{i}]"),
                format!("buckets must increase ({} then {v})", b[i - 1]),
            ));
        }
    }
    Ok(b.to_vec())
}

fn validate_poll(key: &str, raw: &RawPoll) -> Result<Poll, InvalidKey> {
    let d = Poll::default();
    let get = |name: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(&format!("{key}.{name}"), s),
    };
    let poll = Poll {
        interval: get("interval", &raw.interval, d.interval)?,
        delay: get("delay", &raw.delay, d.delay)?,
        settle: get("settle", &raw.settle, d.settle)?,
        backfill: get("backfill", &raw.backfill, d.backfill)?,
        timeout: get("timeout", &raw.timeout, d.timeout)?,
    };
    if poll.interval < Duration::from_secs(1) || poll.interval.subsec_nanos() != 0 {
        return Err(err(
            format!("{key}.interval"),
            format!(
                "must be a whole number of seconds, at least 1s (got {:?})",
                poll.interval
            ),
        ));
    }
    for (name, v) in [
        ("delay", poll.delay),
        ("settle", poll.settle),
        ("backfill", poll.backfill),
    ] {
        if v.subsec_nanos() != 0 {
            return Err(err(
                format!("{key}.{name}"),
                "must be a whole number of seconds",
            ));
        }
    }
    if poll.timeout.is_zero() {
        return Err(err(format!("{key}.timeout"), "must be more than zero"));
    }
    Ok(poll)
}

fn validate_calls(key: &str, raw: &RawCalls, poll: &Poll) -> Result<CallsConfig, InvalidKey> {
    let close_after = match &raw.close_after {
        None => poll.settle,
        Some(s) => {
            let k = format!("{key}.close_after");
            let d = parse_duration(&k, s)?;
            if d.subsec_nanos() != 0 {
                return Err(err(k, "must be a whole number of seconds"));
            }
            d
        }
    };
    let list = |name: &str, values: &Option<Vec<String>>, read: fn(&str) -> Option<String>| {
        let mut set = std::collections::HashSet::new();
        for (i, v) in values.iter().flatten().enumerate() {
            let value = read(v).ok_or_else(|| {
                err(
                    format!("{key}.self_service.{name}[{i}]"),
                    "is empty; list the values as the report writes them",
                )
            })?;
            set.insert(value);
        }
        Ok(set)
    };
    // As rows are read: trimmed and cut as labels are, `PULSE` in any case as `PULSE`.
    let option = |s: &str| {
        crate::wolkvox::row::parse_option(crate::wolkvox::row::label_value(s))
            .map(|o| o.into_owned())
    };
    let transfer =
        |s: &str| Some(crate::wolkvox::row::label_value(s).to_string()).filter(|t| !t.is_empty());
    Ok(CallsConfig {
        close_after,
        self_service: SelfService {
            options: list("options", &raw.self_service.options, option)?,
            transfers: list("transfers", &raw.self_service.transfers, transfer)?,
        },
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl RawOperation {
    fn validate(
        &self,
        key: &str,
        defaults: &RawPoll,
        call_defaults: &RawCalls,
        env: &dyn Env,
        warnings: &mut Warnings,
    ) -> Result<Operation, InvalidKey> {
        if !valid_name(&self.name) {
            return Err(err(
                format!("{key}.name"),
                format!(
                    "{:?} is not a valid operation name (use letters, digits, _ and -)",
                    self.name
                ),
            ));
        }
        let key = format!("{key} ({})", self.name);
        let base_url = match (&self.server, &self.base_url) {
            (Some(_), Some(_)) => {
                return Err(err(key, "set either server or base_url, not both"));
            }
            (None, None) => return Err(err(key, "server or base_url is required")),
            (Some(s), None) => {
                let s = s.trim();
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err(
                        format!("{key}.server"),
                        format!("{s:?} is not a Wolkvox server name (e.g. \"0042\")"),
                    ));
                }
                Url::parse(&format!("https://wv{s}.wolkvox.com/"))
                    .map_err(|e| err(format!("{key}.server"), e.to_string()))?
            }
            (None, Some(u)) => {
                let mut url = Url::parse(u.trim()).map_err(|e| {
                    err(
                        format!("{key}.base_url"),
                        format!("invalid URL {u:?} ({e})"),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(err(
                        format!("{key}.base_url"),
                        format!("{u:?} must be an http or https URL with a host"),
                    ));
                }
                if !url.path().ends_with('/') {
                    let p = format!("{}/", url.path());
                    url.set_path(&p);
                }
                url
            }
        };
        let token = self.token(&key, env, warnings)?;
        let zone_name = self
            .timezone
            .clone()
            .unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
        let zone = TimeZone::get(&zone_name).map_err(|_| {
            err(
                format!("{key}.timezone"),
                format!(
                    "unknown time zone {zone_name:?} (use an IANA name such as America/Bogota)"
                ),
            )
        })?;
        let max_concurrent_requests = match self.max_concurrent_requests {
            None => 1,
            Some(n @ 1..=2) => n as usize,
            Some(n) => {
                return Err(err(
                    format!("{key}.max_concurrent_requests"),
                    format!(
                        "must be 1 or 2 (got {n}); the API refuses a third simultaneous request per token"
                    ),
                ));
            }
        };
        let poll = validate_poll(&format!("{key}.poll"), &self.poll.or(defaults))?;
        let calls = validate_calls(
            &format!("{key}.calls"),
            &self.calls.or(call_defaults),
            &poll,
        )?;
        let customer_id = self
            .customer_id
            .as_ref()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        Ok(Operation {
            name: self.name.clone(),
            base_url,
            token,
            zone,
            zone_name,
            customer_id,
            max_concurrent_requests,
            poll,
            calls,
        })
    }

    fn token(
        &self,
        key: &str,
        env: &dyn Env,
        warnings: &mut Warnings,
    ) -> Result<Secret, InvalidKey> {
        let set = [
            self.token.is_some(),
            self.token_file.is_some(),
            self.token_env.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(err(key, "set only one of token, token_file and token_env"));
        }
        let value = if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(
                    format!("{key}.token_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if world_readable(path) {
                warnings.push(format!(
                    "{key}.token_file: {} is readable by every user; chmod 600 it",
                    path.display()
                ));
            }
            (
                text.trim().to_string(),
                err(
                    format!("{key}.token_file"),
                    format!("{} is empty", path.display()),
                ),
            )
        } else if let Some(var) = &self.token_env {
            let v = env.var(var).ok_or_else(|| {
                err(
                    format!("{key}.token_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            (
                v.trim().to_string(),
                err(
                    format!("{key}.token_env"),
                    format!("environment variable {var} is empty"),
                ),
            )
        } else if let Some(t) = &self.token {
            warnings.push(format!(
                "{key}.token: the token is written in the config file; prefer token_file or token_env"
            ));
            (
                t.trim().to_string(),
                err(format!("{key}.token"), "is empty"),
            )
        } else {
            return Err(err(key, "no token: set token_file, token_env or token"));
        };
        let (token, empty) = value;
        if token.is_empty() {
            return Err(empty);
        }
        if token.chars().any(|c| c.is_control()) {
            return Err(err(key, "the token contains control characters"));
        }
        Ok(Secret::new(token))
    }
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn world_readable(_: &Path) -> bool {
    false
}
