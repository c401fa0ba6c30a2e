//! What the user wrote: the config file's shape as serde reads it, before any check.

use std::path::PathBuf;

use serde::Deserialize;

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
    #[serde(default)]
    pub calls: RawCalls,
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
    #[serde(default)]
    pub calls: RawCalls,
}

/// `calls:`, top level or per operation; an operation's keys win one by one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalls {
    pub close_after: Option<String>,
    #[serde(default)]
    pub self_service: RawSelfService,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelfService {
    pub options: Option<Vec<String>>,
    pub transfers: Option<Vec<String>>,
}

impl RawCalls {
    /// `self` with every unset key taken from `defaults`.
    pub(super) fn or(&self, defaults: &RawCalls) -> RawCalls {
        RawCalls {
            close_after: self
                .close_after
                .clone()
                .or_else(|| defaults.close_after.clone()),
            self_service: RawSelfService {
                options: (self.self_service.options.clone())
                    .or_else(|| defaults.self_service.options.clone()),
                transfers: (self.self_service.transfers.clone())
                    .or_else(|| defaults.self_service.transfers.clone()),
            },
        }
    }
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
    pub(super) fn or(&self, defaults: &RawPoll) -> RawPoll {
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

/// YAML text to [`RawConfig`]; the error is the parser's first line (position and cause).
pub fn parse_yaml(text: &str) -> Result<RawConfig, String> {
    serde_saphyr::from_str::<RawConfig>(text).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML");
        first.trim_start_matches("error: ").to_string()
    })
}
