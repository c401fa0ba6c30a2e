//! Configuration in two stages: [`RawConfig`] is what the user wrote (YAML or the
//! environment), [`Config`] is validated and derived. Nothing past [`Config`] re-checks
//! input, and every error names the file and the key it is about, on one line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use reqwest::Url;

use crate::secret::Secret;

mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use raw::{RawCalls, RawConfig, RawLimits, RawOperation, RawPoll, RawSelfService, parse_yaml};
pub use validate::parse_duration;

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

#[derive(Debug, Clone)]
pub struct Config {
    pub operations: Vec<Operation>,
    pub limits: Limits,
    pub buckets: Vec<f64>,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
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
    pub calls: CallsConfig,
}

/// `calls:` of one operation, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallsConfig {
    /// A call is counted once the watermark has passed its latest row by this much;
    /// `poll.settle` unless set.
    pub close_after: Duration,
    pub self_service: crate::calls::SelfService,
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
    /// `WOLKVOX_TIMEZONE`, for running without a config file. Errors and warnings name
    /// the variable, not the key of the operation it stands for.
    pub fn from_env(env: &dyn Env) -> Result<(Config, Warnings), ConfigError> {
        let server = env
            .var("WOLKVOX_SERVER")
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing)?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            origin: Origin::Environment,
            error: err(key, message),
        };
        let mut op = RawOperation {
            name: "default".into(),
            server: Some(server),
            timezone: env.var("WOLKVOX_TIMEZONE").filter(|s| !s.is_empty()),
            ..RawOperation::default()
        };
        let token_var = match env.var("WOLKVOX_TOKEN_FILE").filter(|f| !f.is_empty()) {
            Some(f) => {
                op.token_file = Some(f.into());
                "WOLKVOX_TOKEN_FILE"
            }
            None => {
                match env.var("WOLKVOX_TOKEN") {
                    None => {
                        return Err(invalid(
                            "WOLKVOX_TOKEN",
                            "is not set: set it to the token, or WOLKVOX_TOKEN_FILE to a file holding it",
                        ));
                    }
                    Some(t) if t.trim().is_empty() => {
                        return Err(invalid("WOLKVOX_TOKEN", "is empty"));
                    }
                    Some(_) => {}
                }
                op.token_env = Some("WOLKVOX_TOKEN".into());
                "WOLKVOX_TOKEN"
            }
        };
        let raw = RawConfig {
            operations: vec![op],
            ..RawConfig::default()
        };
        match raw.validate(env) {
            Ok((config, warnings)) => {
                let warnings = warnings
                    .into_iter()
                    .map(|w| match w.split_once(": ") {
                        Some((key, rest)) => format!("{}: {rest}", env_name(key, token_var)),
                        None => w,
                    })
                    .collect();
                Ok((config, warnings))
            }
            Err(mut error) => {
                error.key = env_name(&error.key, token_var);
                Err(ConfigError::Invalid {
                    origin: Origin::Environment,
                    error,
                })
            }
        }
    }
}

/// The variable that stands for a key of the environment's one operation; `token_var`
/// for the operation itself (a token with control characters).
fn env_name(key: &str, token_var: &str) -> String {
    let name = match key.strip_prefix("operations[0] (default)") {
        Some("") => token_var,
        Some(".server") => "WOLKVOX_SERVER",
        Some(".timezone") => "WOLKVOX_TIMEZONE",
        Some(".token_file") => "WOLKVOX_TOKEN_FILE",
        Some(".token_env") => "WOLKVOX_TOKEN",
        _ => key,
    };
    name.to_string()
}
