//! `--demo`: a simulated Wolkvox on loopback with live IVR traffic in two time zones,
//! and a config that polls it on short windows. Needs no account.

use std::time::Duration;

use jiff::tz::TimeZone;
use tokio::net::TcpListener;

use crate::config::{Config, DEFAULT_BUCKETS, Limits, Operation, Poll};
use crate::secret::Secret;
use crate::simulator::{DateFormat, Simulator, Traffic};

/// The demo's operations: name, token, zone, calls per minute, how rows write `date`.
const TENANTS: [(&str, &str, &str, f64, DateFormat); 2] = [
    (
        "acme",
        "demo-token-acme",
        "America/Bogota",
        24.0,
        DateFormat::Dashed,
    ),
    (
        "andina",
        "demo-token-andina",
        "America/Santiago",
        9.0,
        DateFormat::Compact,
    ),
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

/// Short windows so data shows within seconds; an hour of history on start.
pub fn poll() -> Poll {
    Poll {
        interval: Duration::from_secs(10),
        delay: Duration::from_secs(2),
        settle: Duration::from_secs(120),
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
    let mut operations = Vec::new();
    for (i, (name, token, zone, cpm, format)) in TENANTS.into_iter().enumerate() {
        let tz = TimeZone::get(zone).map_err(|source| DemoError::Zone {
            zone: zone.to_string(),
            source,
        })?;
        sim.add_tenant(token, tz.clone());
        sim.set_traffic(
            token,
            Traffic {
                seed: 42 + i as u64,
                calls_per_minute: cpm,
                date_format: format,
                incidents: true,
            },
        );
        // Now and then a gateway error or a maintenance answer, as the real service has.
        sim.set_random_faults(token, 0.02, 7 + i as u64);
        let base_url = reqwest::Url::parse(&format!("http://{addr}/"))
            .map_err(|e| DemoError::Url(e.into()))?;
        operations.push(Operation {
            name: name.to_string(),
            base_url,
            token: Secret::new(token),
            zone: tz,
            zone_name: zone.to_string(),
            customer_id: None,
            max_concurrent_requests: 1,
            poll: poll(),
            calls: demo_calls(),
        });
    }
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
