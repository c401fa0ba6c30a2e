//! The exporter in-process, as zero-to-production's `spawn_app`: the library's own
//! [`run`] on port 0 against the simulator (the fake upstream) on port 0, with its log
//! captured; and the tenant and operation set-up the tests share ([`Bench`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use wolkvox_exporter::config::Config;
use wolkvox_exporter::logging::{self, Format, Level};
use wolkvox_exporter::{RunOptions, run};

use crate::helpers::{Endpoint, Exporter, Op, Sim, config, tempdir, tz};

/// The operation most tests poll: token `tok`, in Bogota.
pub const ACME: Op<'static> = Op {
    name: "acme",
    token: "tok",
    zone: "America/Bogota",
    extra: "",
};

/// A simulator on port 0 and a scratch directory for the config, token files and state.
pub struct Bench {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

impl Bench {
    pub async fn new() -> Bench {
        Bench {
            sim: Sim::start().await,
            dir: tempdir(),
        }
    }

    /// A bench whose simulator knows [`ACME`]'s token.
    pub async fn acme() -> Bench {
        let bench = Bench::new().await;
        bench.tenant(ACME.token, ACME.zone);
        bench
    }

    /// A simulator tenant: `token` is accepted and its rows are dated in `zone`.
    pub fn tenant(&self, token: &str, zone: &str) -> TimeZone {
        let z = tz(zone);
        self.sim.sim.add_tenant(token, z.clone());
        z
    }

    /// The config text for `ops` on this simulator; see [`config`].
    pub fn yaml(&self, ops: &[Op<'_>], poll: &str) -> String {
        config(&self.sim, self.dir.path(), ops, poll)
    }

    /// Writes [`Bench::yaml`] to `dir/config.yaml` and returns its path.
    pub fn config_file(&self, ops: &[Op<'_>], poll: &str) -> PathBuf {
        let path = self.dir.path().join("config.yaml");
        std::fs::write(&path, self.yaml(ops, poll)).expect("write config");
        path
    }

    /// What the binary would read from [`Bench::config_file`], read and validated
    /// in-process. No environment: every token is in a file the bench wrote.
    pub fn config(&self, ops: &[Op<'_>], poll: &str) -> Config {
        let path = self.config_file(ops, poll);
        match Config::from_file(&path, &HashMap::<String, String>::new()) {
            Ok((config, _)) => config,
            Err(e) => panic!("{e}"),
        }
    }

    /// The exporter in-process for `ops`: [`spawn_app`].
    pub fn app(&self, ops: &[Op<'_>], poll: &str) -> App {
        spawn_app(self.config(ops, poll))
    }

    /// The binary for `ops`, `args` after `--config`.
    pub fn binary(&self, ops: &[Op<'_>], poll: &str, args: &[&str]) -> Exporter {
        Exporter::start(self.dir.path(), &self.yaml(ops, poll), args)
    }
}

/// The exporter running in-process, on a runtime of its own, so that its log is its
/// own while tests run side by side, and so that dropping it stops every task at their
/// next await with nothing saved on the way out, close to `kill -9` (a state save
/// already under way on a blocking thread still finishes).
pub struct App {
    endpoint: Endpoint,
    runtime: Option<Runtime>,
}

impl std::ops::Deref for App {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

thread_local! {
    /// The app's log as the default of each of its runtime's threads.
    static LOG: RefCell<Option<tracing::dispatcher::DefaultGuard>> = const { RefCell::new(None) };
}

/// Starts [`run`] with `config` on a free loopback port, as the binary's `serve` does
/// after the command line (default `--web.*` flags), logging at debug level in logfmt.
/// Returns once the port is bound: a request waits there until the state is restored
/// and the server accepts, as with the binary.
pub fn spawn_app(config: Config) -> App {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    let dispatch = logging::dispatch(Level::Debug, Format::Logfmt, move || {
        LogWriter(Arc::clone(&sink))
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app")
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&dispatch);
            LOG.with(|l| *l.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| LOG.with(|l| drop(l.borrow_mut().take())))
        .build()
        .expect("app runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind app");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().expect("app address");
    let failed = Arc::clone(&log);
    runtime.spawn(async move {
        let listener = TcpListener::from_std(listener).expect("app listener");
        let options = RunOptions {
            telemetry_path: "/metrics".into(),
            web: None,
            state_reset: false,
            lifecycle: false,
            reload: None,
        };
        // Stopped by dropping the runtime, never by this future.
        if let Err(e) = run(config, listener, options, std::future::pending()).await {
            failed
                .lock()
                .unwrap()
                .push_str(&format!("run failed: {e}\n"));
        }
    });
    App {
        endpoint: Endpoint { addr, log },
        runtime: Some(runtime),
    }
}

impl App {
    /// Stops it at once, with nothing saved on the way out: see [`App`].
    pub fn crash(self) {
        drop(self);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Does not wait for the tasks, so it may run inside a test's runtime.
            runtime.shutdown_background();
        }
    }
}

/// Appends the app's log lines to its [`Endpoint::log`].
struct LogWriter(Arc<Mutex<String>>);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
