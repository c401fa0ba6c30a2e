//! Configuration in two stages: [`RawConfig`] is what the user wrote (YAML or the
//! environment), [`Config`] is validated and derived. Nothing past [`Config`] re-checks
//! input, and every error names the file and the key it is about, on one line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use reqwest::Url;
use serde::Deserialize;

use crate::secret::Secret;

/// Why a configuration cannot be used: one line naming the file (or the environment)
/// and the key. Callers can match on the variant and read [`ConfigError::key`] and
/// [`ConfigError::file`] instead of parsing the text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape (unknown key, wrong type, syntax):
    /// the parser's first line, with its position.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A key's value is wrong.
    #[error("{origin}: {error}")]
    Invalid { origin: Origin, error: InvalidKey },
    /// Neither a file nor the environment says what to poll.
    #[error(
        "no configuration: pass --config FILE, or set WOLKVOX_SERVER and WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE), or try --demo"
    )]
    Missing,
}

impl ConfigError {
    /// The key the error is about (`operations[0] (acme).timezone`), when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { error, .. } => Some(&error.key),
            _ => None,
        }
    }

    /// The file the error is about; `None` for the environment.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ConfigError::Read { path, .. } | ConfigError::Parse { path, .. } => Some(path),
            ConfigError::Invalid {
                origin: Origin::File(path),
                ..
            } => Some(path),
            _ => None,
        }
    }
}

/// Where a configuration came from, as error messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Environment,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Environment => f.write_str("environment"),
        }
    }
}

/// One key with a bad value, before it is known which file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// The key's path as the user wrote it: `poll.interval`, `operations[1].name`.
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> InvalidKey {
    InvalidKey {
        key: key.into(),
        message: message.into(),
    }
}

pub const DEFAULT_BUCKETS: [f64; 11] = [
    5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
pub const DEFAULT_TIMEZONE: &str = "America/Bogota";

// ---------------------------------------------------------------- what the user wrote

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub operations: Vec<RawOperation>,
    #[serde(default)]
    pub poll: RawPoll,
    #[serde(default)]
    pub limits: RawLimits,
    pub duration_buckets: Option<Vec<f64>>,
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub name: String,
    pub server: Option<String>,
    pub base_url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub timezone: Option<String>,
    pub customer_id: Option<String>,
    pub max_concurrent_requests: Option<i64>,
    #[serde(default)]
    pub poll: RawPoll,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub interval: Option<String>,
    pub delay: Option<String>,
    pub settle: Option<String>,
    pub backfill: Option<String>,
    pub timeout: Option<String>,
}

impl RawPoll {
    /// `self` with every unset key taken from `defaults`.
    fn or(&self, defaults: &RawPoll) -> RawPoll {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        RawPoll {
            interval: pick(&self.interval, &defaults.interval),
            delay: pick(&self.delay, &defaults.delay),
            settle: pick(&self.settle, &defaults.settle),
            backfill: pick(&self.backfill, &defaults.backfill),
            timeout: pick(&self.timeout, &defaults.timeout),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub routing_points: Option<usize>,
    pub options_per_routing_point: Option<usize>,
    pub transfers_per_routing_point: Option<usize>,
}

// ---------------------------------------------------------------- validated

#[derive(Debug, Clone)]
pub struct Config {
    pub operations: Vec<Operation>,
    pub limits: Limits,
    pub buckets: Vec<f64>,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    /// Base URL without the API path, e.g. `https://wv0042.wolkvox.com/`.
    pub base_url: Url,
    pub token: Secret,
    pub zone: TimeZone,
    pub zone_name: String,
    pub customer_id: Option<String>,
    pub max_concurrent_requests: usize,
    pub poll: Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Window length; a whole number of seconds, at least one.
    pub interval: Duration,
    pub delay: Duration,
    pub settle: Duration,
    pub backfill: Duration,
    pub timeout: Duration,
}

impl Default for Poll {
    fn default() -> Self {
        Poll {
            interval: Duration::from_secs(300),
            delay: Duration::from_secs(120),
            settle: Duration::from_secs(1800),
            backfill: Duration::from_secs(3600),
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub routing_points: usize,
    pub options_per_routing_point: usize,
    pub transfers_per_routing_point: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            routing_points: 500,
            options_per_routing_point: 50,
            transfers_per_routing_point: 50,
        }
    }
}

/// Where a token or a variable comes from; lets tests swap the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Warnings found while validating (inline token, world-readable token file); the
/// caller logs them once logging is set up.
pub type Warnings = Vec<String>;

impl Config {
    /// Reads and validates a YAML config file.
    pub fn from_file(path: &Path, env: &dyn Env) -> Result<(Config, Warnings), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = parse_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        raw.validate(env).map_err(|error| ConfigError::Invalid {
            origin: Origin::File(path.to_path_buf()),
            error,
        })
    }

    /// One operation from `WOLKVOX_SERVER`, `WOLKVOX_TOKEN`/`WOLKVOX_TOKEN_FILE` and
    /// `WOLKVOX_TIMEZONE`, for running without a config file.
    pub fn from_env(env: &dyn Env) -> Result<(Config, Warnings), ConfigError> {
        let server = env
            .var("WOLKVOX_SERVER")
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing)?;
        let mut op = RawOperation {
            name: "default".into(),
            server: Some(server),
            timezone: env.var("WOLKVOX_TIMEZONE").filter(|s| !s.is_empty()),
            ..RawOperation::default()
        };
        match (env.var("WOLKVOX_TOKEN_FILE"), env.var("WOLKVOX_TOKEN")) {
            (Some(f), _) if !f.is_empty() => op.token_file = Some(f.into()),
            _ => op.token_env = Some("WOLKVOX_TOKEN".into()),
        }
        let raw = RawConfig {
            operations: vec![op],
            ..RawConfig::default()
        };
        raw.validate(env).map_err(|error| ConfigError::Invalid {
            origin: Origin::Environment,
            error,
        })
    }
}

/// YAML text to [`RawConfig`]; the error is the parser's first line (position and cause).
pub fn parse_yaml(text: &str) -> Result<RawConfig, String> {
    serde_saphyr::from_str::<RawConfig>(text).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML");
        first.trim_start_matches("error: ").to_string()
    })
}

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
        validate_poll("poll", &defaults)?;
        let mut operations = Vec::with_capacity(self.operations.len());
        for (i, raw) in self.operations.iter().enumerate() {
            let key = format!("operations[{i}]");
            let op = raw.validate(&key, &defaults, env, &mut warnings)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(yaml: &str, e: &HashMap<String, String>) -> Result<Config, String> {
        let raw = parse_yaml(yaml)?;
        raw.validate(e).map(|(c, _)| c).map_err(|e| e.to_string())
    }

    const GOOD: &str = "operations:\n  - name: acme\n    server: \"0042\"\n    token_env: T\n";

    #[test]
    fn minimal_config_takes_the_documented_defaults() {
        let c = load(GOOD, &env(&[("T", "tok")])).unwrap();
        let op = &c.operations[0];
        assert_eq!(op.base_url.as_str(), "https://wv0042.wolkvox.com/");
        assert_eq!(op.zone_name, "America/Bogota");
        assert_eq!(op.max_concurrent_requests, 1);
        assert_eq!(op.poll, Poll::default());
        assert_eq!(op.token.expose(), "tok");
        assert_eq!(c.buckets, DEFAULT_BUCKETS.to_vec());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.state_dir, PathBuf::from("data"));
    }

    #[test]
    fn operation_poll_overrides_only_its_keys() {
        let yaml = "poll: {interval: 10s, settle: 1m}\noperations:\n  - name: a\n    base_url: http://127.0.0.1:9/x\n    token: t\n    poll: {interval: 2s}\n";
        let c = load(yaml, &env(&[])).unwrap();
        let p = c.operations[0].poll;
        assert_eq!(p.interval, Duration::from_secs(2));
        assert_eq!(p.settle, Duration::from_secs(60));
        assert_eq!(p.delay, Duration::from_secs(120));
        assert_eq!(c.operations[0].base_url.as_str(), "http://127.0.0.1:9/x/");
    }

    #[test]
    fn broken_configs_name_the_key() {
        let e = env(&[("T", "tok")]);
        let cases: &[(&str, &str)] = &[
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    bogus: 1\n",
                "unknown field `bogus`",
            ),
            ("operations: []\n", "operations: at least one operation"),
            (
                "operations:\n  - name: a b\n    server: \"1\"\n    token: t\n",
                "operations[0].name",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    timezone: Mars/Base\n",
                "operations[0] (a).timezone: unknown time zone \"Mars/Base\"",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    poll: {interval: 5 parsecs}\n",
                "operations[0] (a).poll.interval: invalid duration",
            ),
            (
                "poll: {interval: 500ms}\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
                "poll.interval: must be a whole number of seconds",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token_env: NOPE\n",
                "operations[0] (a).token_env: environment variable NOPE is not set",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token: t\n  - name: a\n    server: \"2\"\n    token: t\n",
                "operations[1].name: duplicate operation name \"a\"",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n    token: t\n    max_concurrent_requests: 3\n",
                "max_concurrent_requests: must be 1 or 2 (got 3)",
            ),
            (
                "duration_buckets: [5, 3]\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
                "duration_buckets[1]: buckets must increase",
            ),
            (
                "operations:\n  - name: a\n    base_url: \"ftp://x\"\n    token: t\n",
                "base_url: \"ftp://x\" must be an http or https URL",
            ),
            (
                "operations:\n  - name: a\n    base_url: \"::\"\n    token: t\n",
                "base_url: invalid URL",
            ),
            (
                "operations:\n  - name: a\n    server: \"1\"\n",
                "operations[0] (a): no token",
            ),
            (
                "operations:\n  - name: a\n    token: t\n",
                "server or base_url is required",
            ),
            ("operations: [\n", "unclosed bracket"),
            (
                "limits: {routing_points: 0}\noperations:\n  - name: a\n    server: \"1\"\n    token: t\n",
                "limits.routing_points: must be at least 1",
            ),
        ];
        for (yaml, want) in cases {
            let got = load(yaml, &e).expect_err(yaml);
            assert!(got.contains(want), "{yaml:?}: got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "one line: {got:?}");
        }
    }

    #[test]
    fn environment_mode() {
        let c = Config::from_env(&env(&[
            ("WOLKVOX_SERVER", "0042"),
            ("WOLKVOX_TOKEN", "x"),
            ("WOLKVOX_TIMEZONE", "America/Santiago"),
        ]))
        .unwrap()
        .0;
        assert_eq!(c.operations[0].name, "default");
        assert_eq!(c.operations[0].zone_name, "America/Santiago");
        let e = Config::from_env(&env(&[("WOLKVOX_SERVER", "0042")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment: operations[0] (default).token_env: environment variable WOLKVOX_TOKEN is not set"
        );
        assert_eq!(e.key(), Some("operations[0] (default).token_env"));
        assert_eq!(e.file(), None);
        let e = Config::from_env(&env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Missing));
        assert!(e.to_string().starts_with("no configuration"));
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        let e = Config::from_file(&path, &env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        assert_eq!(e.file(), Some(path.as_path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read config file: No such file or directory (os error 2)",
                path.display()
            )
        );
        std::fs::write(&path, "operations: [\n").unwrap();
        let e = Config::from_file(&path, &env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
        assert_eq!(e.key(), None);
        std::fs::write(
            &path,
            GOOD.replace("token_env: T", "token_env: T\n    timezone: Mars/Base"),
        )
        .unwrap();
        let e = Config::from_file(&path, &env(&[("T", "tok")])).unwrap_err();
        assert_eq!(e.key(), Some("operations[0] (acme).timezone"));
        assert_eq!(e.file(), Some(path.as_path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: operations[0] (acme).timezone: unknown time zone \"Mars/Base\" (use an IANA name such as America/Bogota)",
                path.display()
            )
        );
    }

    #[test]
    fn inline_token_warns_and_never_echoes_it() {
        let raw =
            parse_yaml("operations:\n  - name: a\n    server: \"1\"\n    token: s3cr3t\n").unwrap();
        let (_, w) = raw.validate(&env(&[])).unwrap();
        assert_eq!(w.len(), 1);
        assert!(!w[0].contains("s3cr3t"));
    }
}
