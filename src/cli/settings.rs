//! The second stage: [`Settings::from_cli`] turns what the user typed ([`Cli`]) into
//! validated [`Settings`], or one [`SettingsError`] that names the flag, file or key.
//! Nothing past this re-checks input.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Cli, Command, DEFAULT_LISTEN, DEMO_LISTEN, ListenAddr, ListenAddrError, Shard};
use crate::config::{Config, ConfigError, Env, Warnings};
use crate::web_config::WebConfigFile;

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
