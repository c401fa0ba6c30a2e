//! The command line in two stages, as ripgrep's lowargs and hiargs: [`Cli`] is what the
//! user typed, as clap sees it (every flag also reads an environment variable, shown in
//! `--help`); [`Settings::from_cli`] turns it into validated [`Settings`] or one
//! [`SettingsError`] that names the flag, file or key (the second stage is in
//! [`settings`]).
//!
//! Flags are defined where they mean something: the exporter's listen and web-config
//! flags at the top (and on `healthcheck`, which finds the exporter from them), the
//! simulator's on `simulate` ([`simulate::SimulateArgs`]), with their own environment
//! variables, so one shell can hold the settings of both.

mod listen;
mod settings;
mod shard;
pub mod simulate;

pub use listen::{ListenAddr, ListenAddrError, ListenHost};
pub use settings::{Serve, Settings, SettingsError, Source};
pub use shard::Shard;

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

    /// Address to listen on for /metrics and the web pages: HOST:PORT, as the Prometheus exporter-toolkit reads it: :10150 (every interface), 127.0.0.1:10150, [::1]:10150, localhost:10150. [default: :10150; with --demo, 127.0.0.1:10150]
    #[arg(
        long = "web.listen-address",
        env = "WOLKVOX_EXPORTER_LISTEN_ADDRESS",
        value_name = "ADDR"
    )]
    pub listen_address: Option<String>,

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
        env = "WOLKVOX_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Only log messages at this level or above.
    #[arg(
        long = "log.level",
        global = true,
        env = "WOLKVOX_EXPORTER_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: logging::Level,

    /// Log format.
    #[arg(
        long = "log.format",
        global = true,
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

    /// Enable POST /-/reload (re-read the config, as SIGHUP does); refused otherwise.
    #[arg(long = "web.enable-lifecycle", env = "WOLKVOX_EXPORTER_ENABLE_LIFECYCLE", action = ArgAction::SetTrue)]
    pub enable_lifecycle: bool,

    /// Poll only shard I of N (0 <= I < N) of the configured operations: those whose token hashes to I modulo N, so every operation on one token stays in one instance and the API's per-token limits hold. Run N instances with the same config, I = 0..N-1.
    #[arg(long, env = "WOLKVOX_EXPORTER_SHARD", value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,

    /// Run against a built-in simulated Wolkvox with live IVR traffic; needs no account.
    #[arg(long, env = "WOLKVOX_EXPORTER_DEMO", action = ArgAction::SetTrue)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and make one small API call per operation (two when the first has no rows, to tell whether the zone is right); report in plain words.
    Check {
        /// The exporter's YAML config. Without it, the one operation of WOLKVOX_SERVER, WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE) and WOLKVOX_TIMEZONE, as the exporter reads them.
        #[arg(long, env = "WOLKVOX_EXPORTER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the running exporter answers /-/healthy (for container health checks).
    /// Without --url it finds the exporter from the settings it runs with: --web.listen-address and --web.config.file (or their environment variables): HTTPS when TLS is on, a 401 taken as alive when basic auth is on, and only a TCP connection when client certificates are required.
    Healthcheck {
        /// The exporter's --web.listen-address, to find it (default :10150).
        #[arg(
            long = "web.listen-address",
            env = "WOLKVOX_EXPORTER_LISTEN_ADDRESS",
            value_name = "ADDR"
        )]
        listen_address: Option<String>,
        /// The exporter's --web.config.file: HTTPS when it turns TLS on, a 401 taken as alive with basic auth.
        #[arg(
            long = "web.config.file",
            env = "WOLKVOX_EXPORTER_WEB_CONFIG_FILE",
            value_name = "FILE"
        )]
        web_config_file: Option<PathBuf>,
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
    /// Run the built-in simulated Wolkvox as its own server (the demo's operations, live traffic, limits and failures) until SIGTERM or Ctrl-C; --write-config writes an exporter config that points at it.
    Simulate(simulate::SimulateArgs),
}

/// Where the exporter listens unless told: every interface, as Prometheus exporters do.
pub const DEFAULT_LISTEN: &str = ":10150";
/// Where `--demo` listens unless told: loopback, since a demo is for the person at the
/// machine and its simulator needs no exposure.
pub const DEMO_LISTEN: &str = "127.0.0.1:10150";

#[cfg(test)]
mod tests;
