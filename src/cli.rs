//! The command line: what the user typed, as clap sees it. Every flag also reads an
//! environment variable (shown in `--help`).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

use crate::logging;

#[derive(Debug, Parser)]
#[command(
    name = "wolkvox-exporter",
    version,
    about = "Prometheus exporter for the Wolkvox IVR call detail report (diagram_1)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// YAML config file. Without it, one operation comes from WOLKVOX_SERVER, WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE) and WOLKVOX_TIMEZONE.
    #[arg(long, env = "WOLKVOX_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on for /metrics and the web pages.
    #[arg(
        long = "web.listen-address",
        global = true,
        env = "WOLKVOX_EXPORTER_LISTEN_ADDRESS",
        default_value = ":10150",
        value_name = "ADDR"
    )]
    pub listen_address: String,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "WOLKVOX_EXPORTER_TELEMETRY_PATH",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,

    /// Exporter-toolkit web config (TLS, basic auth).
    #[arg(
        long = "web.config.file",
        global = true,
        env = "WOLKVOX_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Only log messages at this level or above.
    #[arg(
        long = "log.level",
        env = "WOLKVOX_EXPORTER_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: logging::Level,

    /// Log format.
    #[arg(
        long = "log.format",
        env = "WOLKVOX_EXPORTER_LOG_FORMAT",
        value_enum,
        default_value = "logfmt"
    )]
    pub log_format: logging::Format,

    /// Where state is saved (overrides the config's state_dir).
    #[arg(
        long = "state.dir",
        env = "WOLKVOX_EXPORTER_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,

    /// Move existing state files aside (timestamped) and start the counters afresh.
    #[arg(long = "state.reset", env = "WOLKVOX_EXPORTER_STATE_RESET", action = ArgAction::SetTrue)]
    pub state_reset: bool,

    /// Poll only shard I of N (0 <= I < N) of the configured operations: those whose token hashes to I modulo N, so every operation on one token stays in one instance and the API's per-token limits hold. Run N instances with the same config, I = 0..N-1.
    #[arg(long, env = "WOLKVOX_EXPORTER_SHARD", value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,

    /// Run against a built-in simulated Wolkvox with live IVR traffic; needs no account.
    #[arg(long, env = "WOLKVOX_EXPORTER_DEMO", action = ArgAction::SetTrue)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and make one small API call per operation; report in plain words.
    Check {
        #[arg(long, env = "WOLKVOX_EXPORTER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the running exporter answers /-/healthy (for container health checks).
    /// Without --url it finds the exporter from the settings it runs with: --web.listen-address and --web.config.file (or their environment variables): HTTPS when TLS is on, a 401 taken as alive when basic auth is on, and only a TCP connection when client certificates are required.
    Healthcheck {
        /// Check this URL instead, e.g. with credentials: https://user:password@127.0.0.1:10150/-/healthy (preferably through the environment variable rather than the command line).
        #[arg(long, env = "WOLKVOX_EXPORTER_HEALTHCHECK_URL")]
        url: Option<String>,
        /// Accept any TLS certificate: for checking over loopback an exporter whose certificate names another host.
        #[arg(
            long = "tls.insecure-skip-verify",
            env = "WOLKVOX_EXPORTER_HEALTHCHECK_INSECURE_SKIP_VERIFY",
            action = ArgAction::SetTrue
        )]
        insecure_skip_verify: bool,
    },
    /// Fetch a past range and write it as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
    Backfill {
        /// The exporter's YAML config (operations, tokens, zones, poll interval).
        #[arg(long, env = "WOLKVOX_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Start of the range: YYYY-mm-dd (midnight in each operation's zone) or an RFC 3339 instant.
        #[arg(long, value_name = "DATE")]
        from: String,
        /// End of the range (excluded), same forms as --from.
        #[arg(long, value_name = "DATE")]
        to: String,
        /// Where to write the OpenMetrics text (written atomically).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// Only this operation (default: every operation in the config).
        #[arg(long, value_name = "NAME")]
        operation: Option<String>,
    },
}

/// `--shard I/N`: which part of the operations this instance polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not I/N with 0 <= I < N, like 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the operation using `token` is polled by this shard. The token, not the
    /// operation's name: the API limits concurrent requests and the daily budget per
    /// token, and one instance can only keep to limits it sees whole. A fixed hash
    /// (never a per-process one), so every instance and every restart agree.
    pub fn selects(&self, token: &str) -> bool {
        xxhash_rust::xxh3::xxh3_64(token.as_bytes()) % self.count == self.index
    }
}

/// `:10150` means every interface, as Prometheus exporters write it.
pub fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        format!("--web.listen-address: {s:?} is not an address like :10150 or 127.0.0.1:10150")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr(":10150").unwrap().to_string(), "0.0.0.0:10150");
        assert_eq!(
            listen_addr("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert!(
            listen_addr("localhost")
                .unwrap_err()
                .contains("--web.listen-address")
        );
    }

    #[test]
    fn shards_split_operations_by_token() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "0/0", "1", "a/2", "-1/2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad:?}");
        }
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut per_shard = [0; 3];
        for t in 0..300 {
            let token = format!("token-{t}");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].selects(&token)).collect();
            assert_eq!(owners.len(), 1, "{token}");
            per_shard[owners[0]] += 1;
        }
        assert!(
            per_shard.iter().all(|n| (70..=130).contains(n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
