//! `simulate`'s flags, and their check into [`crate::simulate::Options`]. Each reads a
//! `WOLKVOX_SIMULATE_*` variable, not the exporter's: the stack sets both side by side.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ListenAddr, SettingsError};
use crate::simulate::{
    DEFAULT_DAILY_BUDGET, DEFAULT_FAULTS, DEFAULT_LISTEN, DEFAULT_SEED, Options,
};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to listen on, HOST:PORT (port 0: any free port; the log says which).
    #[arg(
        long = "web.listen-address",
        env = "WOLKVOX_SIMULATE_LISTEN_ADDRESS",
        value_name = "ADDR",
        default_value = DEFAULT_LISTEN
    )]
    pub listen_address: String,

    /// Seed of the generated traffic: the same seed serves the same rows (the demo's is 42).
    #[arg(long, env = "WOLKVOX_SIMULATE_SEED", value_name = "N", default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// How far back the simulated operations have rows (humantime: 8d, 36h); older ranges answer 404.
    #[arg(
        long,
        env = "WOLKVOX_SIMULATE_HISTORY",
        value_name = "DURATION",
        default_value = "8d"
    )]
    pub history: String,

    /// Write an exporter config that points at this simulator to FILE (its tokens in FILE's directory, mode 0600), then serve.
    #[arg(
        long = "write-config",
        env = "WOLKVOX_SIMULATE_WRITE_CONFIG",
        value_name = "FILE"
    )]
    pub write_config: Option<PathBuf>,

    /// Share of report requests answered with a failure (a 502 or 503 page, a maintenance 403) or slowly, as the real service now and then does: 0 to 1.
    #[arg(long, env = "WOLKVOX_SIMULATE_FAULTS", value_name = "RATE", default_value_t = DEFAULT_FAULTS)]
    pub faults: f64,

    /// Requests each token may make per UTC day (every call counts); past it, 403 TOKEN LIMIT EXCEEDED. 0: no limit.
    #[arg(
        long = "daily-budget",
        env = "WOLKVOX_SIMULATE_DAILY_BUDGET",
        value_name = "REQUESTS",
        default_value_t = DEFAULT_DAILY_BUDGET
    )]
    pub daily_budget: u32,
}

impl SimulateArgs {
    pub fn validate(self) -> Result<Options, SettingsError> {
        let listen = ListenAddr::parse(&self.listen_address)?;
        let history = humantime::parse_duration(self.history.trim()).map_err(|_| {
            SettingsError::Simulate(format!(
                "--history: {:?} is not a duration like 8d or 36h",
                self.history
            ))
        })?;
        // At least a minute (the generator's unit); at most what a year of daily curves
        // holds, far past any backfill worth running.
        if history < Duration::from_secs(60) || history > Duration::from_secs(400 * 86_400) {
            return Err(SettingsError::Simulate(format!(
                "--history: {:?} must be between 1m and 400d",
                self.history
            )));
        }
        if !(0.0..=1.0).contains(&self.faults) {
            return Err(SettingsError::Simulate(format!(
                "--faults: {} must be between 0 and 1",
                self.faults
            )));
        }
        Ok(Options {
            listen,
            seed: self.seed,
            history,
            write_config: self.write_config,
            faults: self.faults,
            daily_budget: (self.daily_budget > 0).then_some(self.daily_budget),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Settings};
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, SettingsError> {
        let cli = Cli::try_parse_from([&["wolkvox-exporter", "simulate"], args].concat())
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let env = std::collections::HashMap::<String, String>::new();
        match Settings::from_cli(cli, &env)? {
            Settings::Simulate(o) => Ok(o),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.listen.to_string(), "127.0.0.1:10160");
        assert_eq!(o.seed, 42);
        assert_eq!(o.history, Duration::from_secs(8 * 86_400));
        assert_eq!(o.write_config, None);
        assert_eq!(o.faults, 0.02);
        assert_eq!(o.daily_budget, Some(10_000));
        let o = parse(&[
            "--web.listen-address",
            ":0",
            "--seed",
            "7",
            "--history",
            "36h",
            "--write-config",
            "/tmp/x.yaml",
            "--faults",
            "0",
            "--daily-budget",
            "0",
        ])
        .unwrap();
        assert_eq!(o.listen.to_string(), ":0");
        assert_eq!((o.seed, o.history), (7, Duration::from_secs(36 * 3600)));
        assert_eq!(o.write_config, Some(PathBuf::from("/tmp/x.yaml")));
        assert_eq!((o.faults, o.daily_budget), (0.0, None));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["--history", "soon"],
                "simulate: --history: \"soon\" is not a duration like 8d or 36h",
            ),
            (
                &["--history", "10s"],
                "simulate: --history: \"10s\" must be between 1m and 400d",
            ),
            (
                &["--faults", "1.5"],
                "simulate: --faults: 1.5 must be between 0 and 1",
            ),
            (
                &["--faults", "NaN"],
                "simulate: --faults: NaN must be between 0 and 1",
            ),
            (
                &["--web.listen-address", "10160"],
                "--web.listen-address: \"10160\" is not an address like :10150, 127.0.0.1:10150, [::1]:10150 or localhost:10150",
            ),
        ];
        for (args, want) in cases {
            let e = parse(args).unwrap_err();
            assert_eq!(e.to_string(), want, "{args:?}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
