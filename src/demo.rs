//! `--demo`: a simulated Wolkvox on loopback with live IVR traffic in two time zones,
//! and a config that polls it on short windows. Needs no account. Its operations
//! ([`populate`]) are also what `wolkvox-exporter simulate` serves.

use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::net::TcpListener;

use crate::config::{Config, DEFAULT_BUCKETS, Limits, Operation, Poll};
use crate::secret::Secret;
use crate::simulator::{DateFormat, MAX_LATENESS_SECS, Simulator, Traffic};

/// The demo's operations: name, zone, calls per minute, how rows write `date`.
const TENANTS: [(&str, &str, f64, DateFormat); 2] = [
    ("acme", "America/Bogota", 24.0, DateFormat::Dashed),
    ("andina", "America/Santiago", 9.0, DateFormat::Compact),
];

/// Calls show within a minute: a call closes 20 s after its latest row; the simulator's
/// self-service options.
fn demo_calls() -> crate::config::CallsConfig {
    crate::config::CallsConfig {
        close_after: std::time::Duration::from_secs(20),
        self_service: crate::calls::SelfService {
            options: ["SALDO".to_string(), "HORARIOS".to_string()].into(),
            transfers: Default::default(),
        },
    }
}

/// Seed of the demo's traffic; operation `i` uses `DEMO_SEED + i`.
pub const DEMO_SEED: u64 = 42;

/// Short windows so data shows within seconds; an hour of history on start. `settle`
/// covers the simulator's latest rows ([`MAX_LATENESS_SECS`]) and two windows more.
pub fn poll() -> Poll {
    Poll {
        interval: Duration::from_secs(10),
        delay: Duration::from_secs(2),
        settle: Duration::from_secs(MAX_LATENESS_SECS as u64 + 20),
        backfill: Duration::from_secs(3600),
        timeout: Duration::from_secs(30),
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: cannot start the simulator: {0}")]
    Simulator(#[source] std::io::Error),
    /// The system has no zone data for one of the demo's operations.
    #[error("demo: {zone}: {source}")]
    Zone { zone: String, source: jiff::Error },
    /// Boxed: the `url` crate's error is not re-exported by reqwest.
    #[error("demo: {0}")]
    Url(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One simulated operation, as [`populate`] set it up.
#[derive(Debug, Clone)]
pub struct SimOperation {
    pub name: &'static str,
    /// The token the simulator accepts for it.
    pub token: String,
    pub zone: TimeZone,
    pub zone_name: &'static str,
    pub traffic: Traffic,
}

/// Adds the demo's operations to `sim`: operation `i` gets the token
/// `{token_prefix}-{name}`, the traffic of seed `seed + i` (hang-up incidents on), and
/// random failures at rate `faults` (their order drawn from `seed`).
pub fn populate(
    sim: &Simulator,
    seed: u64,
    token_prefix: &str,
    faults: f64,
) -> Result<Vec<SimOperation>, DemoError> {
    let mut ops = Vec::new();
    for (i, (name, zone_name, cpm, format)) in TENANTS.into_iter().enumerate() {
        let zone = TimeZone::get(zone_name).map_err(|source| DemoError::Zone {
            zone: zone_name.to_string(),
            source,
        })?;
        let token = format!("{token_prefix}-{name}");
        let traffic = Traffic {
            seed: seed.wrapping_add(i as u64),
            calls_per_minute: cpm,
            date_format: format,
            incidents: true,
        };
        sim.add_tenant(&token, zone.clone());
        sim.set_traffic(&token, traffic.clone());
        // Now and then a gateway error or a maintenance answer, as the real service has.
        sim.set_random_faults(&token, faults, seed.wrapping_add(1000 + i as u64));
        ops.push(SimOperation {
            name,
            token,
            zone,
            zone_name,
            traffic,
        });
    }
    Ok(ops)
}

/// Starts the simulator and returns its address and a config pointing at it.
pub async fn start(
    state_dir: std::path::PathBuf,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(std::net::SocketAddr, Config), DemoError> {
    let sim = Simulator::new();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Simulator)?;
    let addr = listener.local_addr().map_err(DemoError::Simulator)?;
    let base_url =
        reqwest::Url::parse(&format!("http://{addr}/")).map_err(|e| DemoError::Url(e.into()))?;
    let operations = populate(&sim, DEMO_SEED, "demo-token", 0.02)?
        .into_iter()
        .map(|op| Operation {
            name: op.name.to_string(),
            base_url: base_url.clone(),
            token: Secret::new(&op.token),
            zone: op.zone,
            zone_name: op.zone_name.to_string(),
            customer_id: None,
            max_concurrent_requests: 1,
            poll: poll(),
            calls: demo_calls(),
        })
        .collect();
    let mut stop = shutdown;
    tokio::spawn(sim.serve(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    Ok((
        addr,
        Config {
            operations,
            limits: Limits::default(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            state_dir,
        },
    ))
}
