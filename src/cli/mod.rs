//! The command line in two stages, as ripgrep's lowargs and hiargs: [`Cli`] is what the
//! user typed, as clap sees it (every flag also reads an environment variable, shown in
//! `--help`); [`Settings::from_cli`] turns it into validated [`Settings`] or one
//! [`SettingsError`] that names the flag, file or key.
//!
//! Flags are defined where they mean something: the exporter's listen and web-config
//! flags at the top (and on `healthcheck`, which finds the exporter from them), the
//! simulator's on `simulate` ([`simulate::SimulateArgs`]), with their own environment
//! variables, so one shell can hold the settings of both.

mod listen;
mod shard;
pub mod simulate;

pub use listen::{ListenAddr, ListenAddrError, ListenHost};
pub use shard::Shard;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser, Subcommand};

use crate::config::{Config, ConfigError, Env, Warnings};
use crate::logging;
use crate::web_config::WebConfigFile;

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

// ---------------------------------------------------------------- validated

/// What the command line asks for, validated: nothing past this re-checks input.
#[derive(Debug)]
pub enum Settings {
    Serve(Box<Serve>),
    Check {
        config: Config,
        warnings: Warnings,
    },
    Healthcheck(crate::check::Probe),
    /// `simulate`: the simulator's own run.
    Simulate(crate::simulate::Options),
    /// Passed through: `backfill` validates its own arguments.
    Backfill {
        config: PathBuf,
        from: String,
        to: String,
        output: PathBuf,
        operation: Option<String>,
    },
}

/// The exporter's own run.
#[derive(Debug)]
pub struct Serve {
    pub listen: ListenAddr,
    pub telemetry_path: String,
    pub web: Option<Arc<WebConfigFile>>,
    /// Found while loading the web config and the config; logged once logging runs.
    pub warnings: Vec<String>,
    pub source: Source,
    pub state_reset: bool,
    /// `--shard`, with how many operations the config had before it was applied.
    pub shard: Option<(Shard, usize)>,
    /// `--web.enable-lifecycle`.
    pub lifecycle: bool,
    /// Reads the config again as this start did, for SIGHUP and `/-/reload`; `None`
    /// for the demo.
    pub reload: Option<crate::ConfigLoader>,
}

/// Where the operations come from.
#[derive(Debug)]
pub enum Source {
    Config(Config),
    /// `--demo`: a simulator started at run time. `temporary`: the state directory is
    /// the demo's own and is removed on the way out.
    Demo {
        state_dir: PathBuf,
        temporary: bool,
    },
}

/// Why the command line cannot be acted on: one line naming the flag, file or key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--web.config.file`; its loader names the file and key.
    #[error("{0}")]
    WebConfig(String),
    #[error("--web.telemetry-path: {0:?} must start with / and name a path")]
    TelemetryPath(String),
    #[error(transparent)]
    ListenAddress(#[from] ListenAddrError),
    #[error("--web.listen-address: cannot resolve {addr}: {source}")]
    Resolve {
        addr: ListenAddr,
        source: std::io::Error,
    },
    #[error("--shard {}/{}: none of the {all} operations falls in this shard", shard.index, shard.count)]
    EmptyShard { shard: Shard, all: usize },
    #[error(
        "check: nothing to check: pass --config FILE, or set WOLKVOX_SERVER and WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE)"
    )]
    CheckWithoutConfig,
    /// A `simulate` flag with a value it cannot use.
    #[error("simulate: {0}")]
    Simulate(String),
    /// `healthcheck --url` is no URL it can ask.
    #[error("--url: {0}")]
    HealthcheckUrl(String),
    /// `healthcheck` cannot tell where the exporter is.
    #[error("healthcheck: {0}")]
    Healthcheck(Box<SettingsError>),
}

impl SettingsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            // Unhealthy rather than 2, which a container runtime reserves.
            SettingsError::Healthcheck(_) => 1,
            _ => 2,
        }
    }
}

impl Settings {
    /// The one place the command line is checked. `env` supplies the operation when
    /// there is no `--config` (and lets tests swap the process environment).
    pub fn from_cli(cli: Cli, env: &dyn Env) -> Result<Settings, SettingsError> {
        let listen_text = match (&cli.listen_address, cli.demo) {
            (Some(a), _) => a.as_str(),
            (None, true) => DEMO_LISTEN,
            (None, false) => DEFAULT_LISTEN,
        };
        match cli.command {
            Some(Command::Healthcheck {
                url: Some(url),
                insecure_skip_verify,
                ..
            }) => {
                healthcheck_url(&url).map_err(|e| SettingsError::Healthcheck(Box::new(e)))?;
                Ok(Settings::Healthcheck(crate::check::Probe {
                    url,
                    insecure_skip_verify,
                    alive_on_unauthorized: false,
                    connect_only: None,
                }))
            }
            Some(Command::Healthcheck {
                url: None,
                listen_address,
                web_config_file,
                ..
            }) => {
                // Before or after the subcommand: both name the exporter's settings.
                let listen = listen_address.as_deref().unwrap_or(listen_text);
                let web = web_config_file.or(cli.web_config_file);
                healthcheck_probe(listen, web.as_deref())
                    .map(Settings::Healthcheck)
                    .map_err(|e| SettingsError::Healthcheck(Box::new(e)))
            }
            Some(Command::Simulate(args)) => args.validate().map(Settings::Simulate),
            Some(Command::Check { config }) => {
                // As the exporter reads it: the file, or the environment's one operation.
                let (config, warnings) = match config.or(cli.config) {
                    Some(path) => Config::from_file(&path, env)?,
                    None => Config::from_env(env).map_err(|e| match e {
                        ConfigError::Missing => SettingsError::CheckWithoutConfig,
                        e => e.into(),
                    })?,
                };
                Ok(Settings::Check { config, warnings })
            }
            Some(Command::Backfill {
                config,
                from,
                to,
                output,
                operation,
            }) => Ok(Settings::Backfill {
                config,
                from,
                to,
                output,
                operation,
            }),
            None => {
                let listen = ListenAddr::parse(listen_text);
                serve(cli, listen, env).map(|s| Settings::Serve(Box::new(s)))
            }
        }
    }
}

/// `healthcheck --url`: an http or https URL with a host. The message never repeats the
/// URL: it may hold a password.
fn healthcheck_url(url: &str) -> Result<(), SettingsError> {
    let bad = |why: String| {
        SettingsError::HealthcheckUrl(format!(
            "{why}: give one such as http://127.0.0.1:10150/-/healthy"
        ))
    };
    match reqwest::Url::parse(url) {
        Err(e) => Err(bad(format!("not a valid URL ({e})"))),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Err(bad(format!(
            "the scheme is {:?}, not http or https",
            u.scheme()
        ))),
        Ok(u) if u.host().is_none() => Err(bad("the URL has no host".to_string())),
        Ok(_) => Ok(()),
    }
}

/// `healthcheck`'s probe from the exporter's own listen address and web config.
fn healthcheck_probe(
    listen: &str,
    web_config: Option<&std::path::Path>,
) -> Result<crate::check::Probe, SettingsError> {
    let listen = ListenAddr::parse(listen)?;
    let addr = listen.resolve().map_err(|source| SettingsError::Resolve {
        addr: listen.clone(),
        source,
    })?[0];
    let web = match web_config {
        Some(path) => Some(
            crate::web_config::WebConfig::from_file(path)
                .map_err(SettingsError::WebConfig)?
                .0,
        ),
        None => None,
    };
    Ok(crate::check::Probe::from_settings(addr, web.as_ref()))
}

fn serve(
    cli: Cli,
    listen: Result<ListenAddr, ListenAddrError>,
    env: &dyn Env,
) -> Result<Serve, SettingsError> {
    let mut warnings = Vec::new();
    // Checked first: a broken web config must stop the start before anything listens.
    let web = match &cli.web_config_file {
        Some(path) => {
            let (web, w) = WebConfigFile::load(path).map_err(SettingsError::WebConfig)?;
            warnings.extend(w);
            Some(Arc::new(web))
        }
        None => None,
    };
    if !cli.telemetry_path.starts_with('/') || cli.telemetry_path.len() < 2 {
        return Err(SettingsError::TelemetryPath(cli.telemetry_path));
    }
    let listen = listen?;
    let mut shard = None;
    let mut reload: Option<crate::ConfigLoader> = None;
    let source = if cli.demo {
        match cli.state_dir {
            Some(state_dir) => Source::Demo {
                state_dir,
                temporary: false,
            },
            None => Source::Demo {
                state_dir: std::env::temp_dir()
                    .join(format!("wolkvox-exporter-demo-{}", std::process::id())),
                temporary: true,
            },
        }
    } else {
        let (config, w, all) = load_config(
            cli.config.as_deref(),
            cli.state_dir.as_deref(),
            cli.shard,
            env,
        )?;
        warnings.extend(w);
        if let Some(s) = cli.shard {
            shard = Some((s, all));
        }
        let (path, dir, sh) = (cli.config.clone(), cli.state_dir.clone(), cli.shard);
        reload = Some(crate::ConfigLoader::new(move || {
            load_config(
                path.as_deref(),
                dir.as_deref(),
                sh,
                &crate::config::ProcessEnv,
            )
            .map(|(c, w, _)| (c, w))
            .map_err(|e| e.to_string())
        }));
        Source::Config(config)
    };
    Ok(Serve {
        listen,
        telemetry_path: cli.telemetry_path,
        web,
        warnings,
        source,
        state_reset: cli.state_reset,
        shard,
        lifecycle: cli.enable_lifecycle,
        reload,
    })
}

/// The config from `path` (or the environment), with `--state.dir` and `--shard`
/// applied; also how many operations it had before the shard was taken.
fn load_config(
    path: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
    shard: Option<Shard>,
    env: &dyn Env,
) -> Result<(Config, crate::config::Warnings, usize), SettingsError> {
    let (mut config, warnings) = match path {
        Some(path) => Config::from_file(path, env)?,
        None => Config::from_env(env)?,
    };
    if let Some(d) = state_dir {
        config.state_dir = d.to_path_buf();
    }
    let all = config.operations.len();
    if let Some(s) = shard {
        config.operations.retain(|op| s.selects(op.token.expose()));
        if config.operations.is_empty() {
            return Err(SettingsError::EmptyShard { shard: s, all });
        }
    }
    Ok((config, warnings, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let cli = Cli::try_parse_from([&["wolkvox-exporter"], args].concat()).unwrap();
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_cli(cli, &env)
    }

    fn serve(args: &[&str], env: &[(&str, &str)]) -> Serve {
        match settings(args, env) {
            Ok(Settings::Serve(s)) => *s,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    const ENV: &[(&str, &str)] = &[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN", "t")];

    #[test]
    fn the_demo_listens_on_loopback_unless_told() {
        let s = serve(&["--demo"], &[]);
        assert_eq!(s.listen.to_string(), "127.0.0.1:10150");
        assert!(
            matches!(&s.source, Source::Demo { temporary: true, state_dir } if state_dir.starts_with(std::env::temp_dir())),
            "{:?}",
            s.source
        );
        let s = serve(
            &[
                "--demo",
                "--web.listen-address",
                ":9999",
                "--state.dir",
                "/x",
            ],
            &[],
        );
        assert_eq!(s.listen.to_string(), ":9999");
        assert!(
            matches!(&s.source, Source::Demo { temporary: false, state_dir } if state_dir == std::path::Path::new("/x"))
        );
        // Everything else: every interface, as the contract's default `:10150`.
        assert_eq!(serve(&[], ENV).listen.to_string(), ":10150");
    }

    #[test]
    fn bad_input_is_one_typed_error_with_exit_code_2() {
        let e = settings(&["--web.telemetry-path", "metrics"], ENV).unwrap_err();
        assert!(matches!(e, SettingsError::TelemetryPath(_)));
        assert_eq!(
            e.to_string(),
            "--web.telemetry-path: \"metrics\" must start with / and name a path"
        );
        assert_eq!(e.exit_code(), 2);
        let e = settings(&["--web.listen-address", "nowhere"], ENV).unwrap_err();
        assert!(matches!(e, SettingsError::ListenAddress(_)), "{e:?}");
        assert_eq!(e.exit_code(), 2);
        let e = settings(&[], &[]).unwrap_err();
        assert!(
            matches!(e, SettingsError::Config(ConfigError::Missing)),
            "{e:?}"
        );
        let e = settings(&["check"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "check: nothing to check: pass --config FILE, or set WOLKVOX_SERVER and WOLKVOX_TOKEN (or WOLKVOX_TOKEN_FILE)"
        );
        // The environment's one operation, as the exporter reads it.
        match settings(&["check"], ENV) {
            Ok(Settings::Check { config, .. }) => {
                assert_eq!(config.operations[0].name, "default");
                assert_eq!(
                    config.operations[0].base_url.as_str(),
                    "https://wv0042.wolkvox.com/"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = settings(
            &["check"],
            &[
                ("WOLKVOX_SERVER", "0042"),
                ("WOLKVOX_TOKEN", "t"),
                ("WOLKVOX_TIMEZONE", "X"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment: WOLKVOX_TIMEZONE: unknown time zone \"X\" (use an IANA name such as America/Bogota)"
        );
        // The token "t" hashes to one shard of two; the other polls nothing.
        let owner = (0..2)
            .find(|i| {
                Shard {
                    index: *i,
                    count: 2,
                }
                .selects("t")
            })
            .unwrap();
        let other = format!("{}/2", 1 - owner);
        let e = settings(&["--shard", &other], ENV).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("--shard {other}: none of the 1 operations falls in this shard")
        );
        let s = serve(
            &["--shard", &format!("{owner}/2"), "--state.dir", "/s"],
            ENV,
        );
        let Source::Config(c) = &s.source else {
            panic!()
        };
        assert_eq!(c.state_dir, std::path::PathBuf::from("/s"));
        assert_eq!(s.shard.map(|(_, all)| all), Some(1));
    }

    #[test]
    fn healthcheck_finds_the_exporter_from_its_listen_address() {
        let probe = |args: &[&str]| match settings(args, &[]) {
            Ok(Settings::Healthcheck(p)) => p,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            probe(&["healthcheck"]).url,
            "http://127.0.0.1:10150/-/healthy"
        );
        assert_eq!(
            probe(&["healthcheck", "--web.listen-address", "localhost:9"]).url,
            "http://127.0.0.1:9/-/healthy"
        );
        assert_eq!(
            probe(&["healthcheck", "--web.listen-address", "[::]:9"]).url,
            "http://[::1]:9/-/healthy"
        );
        // Unhealthy (1), and it speaks as the healthcheck.
        let e = settings(&["healthcheck", "--web.listen-address", "x"], &[]).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .starts_with("healthcheck: --web.listen-address: \"x\" is not an address"),
            "{e}"
        );
    }

    #[test]
    fn healthcheck_says_why_a_url_is_not_one() {
        let e = |url: &str| {
            let e = settings(&["healthcheck", "--url", url], &[]).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{url}");
            e.to_string()
        };
        assert_eq!(
            e("garbage"),
            "healthcheck: --url: not a valid URL (relative URL without a base): give one such as http://127.0.0.1:10150/-/healthy"
        );
        assert_eq!(
            e("ftp://u:secret@host/"),
            "healthcheck: --url: the scheme is \"ftp\", not http or https: give one such as http://127.0.0.1:10150/-/healthy"
        );
        assert_eq!(
            e("http://[::1/"),
            "healthcheck: --url: not a valid URL (invalid IPv6 address): give one such as http://127.0.0.1:10150/-/healthy"
        );
        assert!(matches!(
            settings(
                &["healthcheck", "--url", "https://u:p@127.0.0.1:1/-/healthy"],
                &[]
            ),
            Ok(Settings::Healthcheck(_))
        ));
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
