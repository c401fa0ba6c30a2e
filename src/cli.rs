//! The command line in two stages, as ripgrep's lowargs and hiargs: [`Cli`] is what the
//! user typed, as clap sees it (every flag also reads an environment variable, shown in
//! `--help`); [`Settings::from_cli`] turns it into validated [`Settings`] or one
//! [`SettingsError`] that names the flag, file or key.

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
        global = true,
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

/// Where the exporter listens unless told: every interface, as Prometheus exporters do.
pub const DEFAULT_LISTEN: &str = ":10150";
/// Where `--demo` listens unless told: loopback, since a demo is for the person at the
/// machine and its simulator needs no exposure.
pub const DEMO_LISTEN: &str = "127.0.0.1:10150";

/// A checked `--web.listen-address`: `HOST:PORT` where HOST is empty (every interface),
/// an IPv4 address, a bracketed IPv6 address or a host name, as Go's `net.Listen`
/// (and so every exporter-toolkit exporter) reads it. Names are resolved when binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: ListenHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenHost {
    /// `:PORT`: every IPv4 interface.
    Any,
    Ip(std::net::IpAddr),
    /// A host name such as `localhost`, resolved at bind time.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--web.listen-address: {0:?} is not an address like :10150, 127.0.0.1:10150, [::1]:10150 or localhost:10150"
)]
pub struct ListenAddrError(pub String);

impl ListenAddr {
    pub fn parse(s: &str) -> Result<ListenAddr, ListenAddrError> {
        let bad = || ListenAddrError(s.to_string());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
            (ListenHost::Ip(ip.into()), port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let host = if host.is_empty() {
                ListenHost::Any
            } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
                ListenHost::Ip(ip.into())
            } else if valid_host_name(host) {
                ListenHost::Name(host.to_string())
            } else {
                // A bare IPv6 address among others: its colons make the port ambiguous.
                return Err(bad());
            };
            (host, port)
        };
        // Digits only: `u16::from_str` would also take `+80`.
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(ListenAddr { host, port })
    }

    /// The socket addresses to try, in order: IPv4 first for a name, as Go's listener
    /// picks it, so `localhost` means 127.0.0.1 wherever that exists.
    pub fn resolve(&self) -> std::io::Result<Vec<std::net::SocketAddr>> {
        use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
        Ok(match &self.host {
            ListenHost::Any => vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port))],
            ListenHost::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            ListenHost::Name(name) => {
                let mut all: Vec<SocketAddr> =
                    (name.as_str(), self.port).to_socket_addrs()?.collect();
                all.sort_by_key(|a| a.is_ipv6());
                all.dedup();
                if all.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no address found",
                    ));
                }
                all
            }
        })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            ListenHost::Any => write!(f, ":{}", self.port),
            ListenHost::Ip(ip) => write!(f, "{}", std::net::SocketAddr::new(*ip, self.port)),
            ListenHost::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn valid_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

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
    #[error("check: --config FILE is required")]
    CheckWithoutConfig,
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
            }) => Ok(Settings::Healthcheck(crate::check::Probe {
                url,
                insecure_skip_verify,
                alive_on_unauthorized: false,
                connect_only: None,
            })),
            Some(Command::Healthcheck { url: None, .. }) => {
                healthcheck_probe(listen_text, cli.web_config_file.as_deref())
                    .map(Settings::Healthcheck)
                    .map_err(|e| SettingsError::Healthcheck(Box::new(e)))
            }
            Some(Command::Check { config }) => {
                let path = config
                    .or(cli.config)
                    .ok_or(SettingsError::CheckWithoutConfig)?;
                let (config, warnings) = Config::from_file(&path, env)?;
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

    #[test]
    fn listen_addresses_read_as_the_exporter_toolkit_reads_them() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let cases: &[(&str, ListenHost, u16)] = &[
            (":10150", ListenHost::Any, 10150),
            (
                "0.0.0.0:10150",
                ListenHost::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                10150,
            ),
            (
                "127.0.0.1:9",
                ListenHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                9,
            ),
            (
                "[::1]:10150",
                ListenHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                10150,
            ),
            (
                "[::]:0",
                ListenHost::Ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                0,
            ),
            (
                "localhost:10150",
                ListenHost::Name("localhost".into()),
                10150,
            ),
            (
                "metrics-1.example.org:65535",
                ListenHost::Name("metrics-1.example.org".into()),
                65535,
            ),
        ];
        for (text, host, port) in cases {
            let a = ListenAddr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((&a.host, a.port), (host, *port), "{text}");
            assert_eq!(a.to_string(), *text, "shown as typed");
        }
        for bad in [
            "",
            "nowhere",
            "localhost",
            ":",
            "localhost:",
            ":65536",
            ":-1",
            ":+80",
            "::1:10150",
            "[::1]",
            "[::1]10150",
            "[127.0.0.1]:1",
            "bad_name:1",
            "-x:1",
            "a..b:1",
            "host:http",
            " :1",
        ] {
            let e = ListenAddr::parse(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!(
                    "--web.listen-address: {bad:?} is not an address like :10150, 127.0.0.1:10150, [::1]:10150 or localhost:10150"
                )
            );
        }
    }

    #[test]
    fn listen_addresses_resolve_ipv4_first() {
        let any = ListenAddr::parse(":10150").unwrap().resolve().unwrap();
        assert_eq!(any, vec!["0.0.0.0:10150".parse().unwrap()]);
        let v6 = ListenAddr::parse("[::1]:7").unwrap().resolve().unwrap();
        assert_eq!(v6, vec!["[::1]:7".parse().unwrap()]);
        // `localhost` is in every /etc/hosts; 127.0.0.1 comes before ::1 when both are.
        let local = ListenAddr::parse("localhost:7").unwrap().resolve().unwrap();
        assert_eq!(local[0], "127.0.0.1:7".parse().unwrap(), "{local:?}");
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }

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
        assert_eq!(e.to_string(), "check: --config FILE is required");
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
