//! `check` and `healthcheck`: plain-word answers for a person or a container runtime.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Semaphore;

use crate::config::{Config, Operation};
use crate::fetch::{Engine, FetchError, Jitter, RetryPolicy, Sink, TakeError};
use crate::ingest::{Ingested, ROW_CAP, rows_of};
use crate::window::{self, Query};
use crate::wolkvox::Reason;
use crate::wolkvox::client::Client;

mod zone;

/// Validates each operation with one small request (the last 10 minutes of the report
/// and the next 20, which are empty in the right zone), and one more when it has no
/// rows, to tell whether the zone is right ([`zone`]); says in plain words what is
/// wrong, or that all is well. Exit 0 when nothing is wrong.
pub async fn check(config: &Config) -> ExitCode {
    println!("config: OK ({} operation(s))", config.operations.len());
    let mut all_ok = true;
    for op in &config.operations {
        let (ok, lines) = check_operation(op, Timestamp::now()).await;
        all_ok &= ok;
        for line in lines {
            println!("{}: {}", op.name, line);
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Hands every row of an answer to the zone's [`zone::Sample`].
struct Rows<'a>(&'a mut zone::Sample);

impl Sink for Rows<'_> {
    type Error = std::convert::Infallible;
    type Body = Vec<u8>;

    fn take(&mut self, body: &mut Vec<u8>, _q: &Query) -> Result<Ingested, TakeError<Self::Error>> {
        let rows = rows_of(body).map_err(TakeError::Api)?;
        for r in &rows {
            self.0.add(r.date.as_str(), r.conn_id.as_str());
        }
        // One request a probe is all `check` spends: an answer at the cap is not cut.
        Ok(Ingested::Applied {
            rows: rows.len(),
            new: rows.len(),
            capped: rows.len() >= ROW_CAP,
        })
    }

    async fn commit(&mut self, _through: Timestamp) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// No retries: each request of `check` is asked once, and it says what went wrong.
const CHECK_POLICY: RetryPolicy = RetryPolicy {
    retries: 0,
    base: Duration::from_secs(1),
    max: Duration::from_secs(1),
    retry_maintenance: false,
};

/// Whether the operation passed, and its lines: the API's answer, then the zone's.
async fn check_operation(op: &Operation, now: Timestamp) -> (bool, Vec<String>) {
    let client = match Client::for_operation(op, Arc::new(Semaphore::new(1))) {
        Ok(c) => c,
        Err(e) => return (false, vec![e.to_string()]),
    };
    let host = shown_base_url(&op.base_url);
    let mut sample = zone::Sample::new(&op.zone, now);
    let mut jitter = Jitter::new(now.as_nanosecond() as u64);
    let mut probe = async |p: zone::Probe, sample: &mut zone::Sample| {
        Engine::new(&client, &op.zone, CHECK_POLICY, &mut jitter)
            .run(p.range(now), &mut Rows(sample))
            .await
            .map(|_| ())
    };
    let recent = zone::Probe::Recent;
    let first = match probe(recent, &mut sample).await {
        Ok(()) if sample.rows_in_last_minutes() == 0 => {
            let q = window::query_for(zone::Probe::last_minutes(now), &op.zone);
            format!(
                "OK: {host} answered; no rows in the last 10 minutes ({} to {}, {})",
                q.date_ini_string(),
                q.date_end_string(),
                op.zone_name
            )
        }
        Ok(()) => format!(
            "OK: {} rows in the last 10 minutes ({})",
            sample.rows_in_last_minutes(),
            op.zone_name
        ),
        Err(e) => return (false, vec![failure(e, &host)]),
    };
    let mut asked = vec![recent];
    let verdict = loop {
        match zone::next(&sample, &asked, &op.zone, now) {
            Ok(v) => break v,
            Err(p) => {
                asked.push(p);
                if let Err(e) = probe(p, &mut sample).await {
                    break zone::Verdict::CannotTell(format!(
                        "the second request failed: {}",
                        failure(e, &host)
                    ));
                }
            }
        }
    };
    (
        !verdict.is_wrong(),
        vec![first, verdict.line(&op.zone_name)],
    )
}

/// A failed request in plain words, with what to check.
fn failure(e: FetchError<std::convert::Infallible>, host: &str) -> String {
    match e {
        FetchError::Api { error: e, .. } => match e.reason {
            Reason::InvalidToken => "token refused (PLEASE VALIDATE TOKEN): check the token in wolkvox Manager, Configuration, Integrations, Tokens".to_string(),
            Reason::MissingToken => "no token was sent: check token_file / token_env".to_string(),
            Reason::TokenLimit => "the token's daily request budget is spent (TOKEN LIMIT EXCEEDED); it comes back tomorrow".to_string(),
            Reason::Maintenance => format!("the API refused with 403 ({}): maintenance, or this machine's IP is not on the operation's allow-list", e.detail),
            Reason::Network | Reason::Timeout => format!("API not reachable at {host} ({}): check `server`/`base_url`, DNS and the firewall", e.detail),
            Reason::Decode => format!("the API answered with something that is not a report ({})", e.detail),
            _ => format!("the API answered with an error: {e}"),
        },
        FetchError::Sink(never) => match never {},
        FetchError::Shutdown => "interrupted".to_string(),
    }
}

/// What `healthcheck` asks, and what it takes for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub url: String,
    pub insecure_skip_verify: bool,
    /// With basic auth on and no credentials to send, a 401 still shows the server up.
    pub alive_on_unauthorized: bool,
    /// With client certificates required, the check has none to present: it can only
    /// see that this address accepts connections.
    pub connect_only: Option<std::net::SocketAddr>,
}

impl Probe {
    /// The exporter's own `/-/healthy`, found from the settings it runs with (the same
    /// flags' environment variables in a container): its listen address (an unspecified
    /// one reached over loopback) and its web config (HTTPS when TLS is on, with the
    /// certificate unchecked: it is the exporter's own, and names another host than
    /// 127.0.0.1 as a rule; a TCP connection alone when it requires client certificates).
    pub fn from_settings(
        listen: std::net::SocketAddr,
        web: Option<&crate::web_config::WebConfig>,
    ) -> Probe {
        let mut addr = listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let tls = web.is_some_and(|w| w.tls_enabled());
        Probe {
            url: format!("{}://{addr}/-/healthy", if tls { "https" } else { "http" }),
            insecure_skip_verify: tls,
            alive_on_unauthorized: web.is_some_and(|w| !w.users.is_empty()),
            connect_only: web.filter(|w| w.client_certs_required).map(|_| addr),
        }
    }
}

/// Exit 0 when the probe's URL answers 200 (or 401, when that is taken as alive), 1
/// otherwise (a container runtime reserves 2). Credentials in the URL are sent as basic
/// auth and never printed.
pub async fn healthcheck(probe: &Probe) -> ExitCode {
    let (url, insecure_skip_verify) = (probe.url.as_str(), probe.insecure_skip_verify);
    if let Some(addr) = probe.connect_only {
        let connect = tokio::net::TcpStream::connect(addr);
        return match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("healthcheck: {addr}: {e}");
                ExitCode::from(1)
            }
            Err(_) => {
                eprintln!("healthcheck: {addr}: no connection within 5 s");
                ExitCode::from(1)
            }
        };
    }
    let shown = redact_url(url);
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(insecure_skip_verify)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {}", crate::wolkvox::client::describe(&e));
            return ExitCode::from(1);
        }
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) if probe.alive_on_unauthorized && r.status() == reqwest::StatusCode::UNAUTHORIZED => {
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("healthcheck: {shown} answered {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!(
                "healthcheck: {shown}: {}",
                crate::wolkvox::client::describe(&e)
            );
            ExitCode::from(1)
        }
    }
}

/// The operation's base URL as messages show it: scheme, host, port and path, without
/// credentials (a proxy's URL may hold some).
fn shown_base_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// `url` with its password replaced, for messages.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        // Unparseable: it may still hold a password, so show none of it.
        Err(_) => "(the URL given)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_config::WebConfig;

    #[test]
    fn the_probe_follows_the_exporters_own_settings() {
        let addr = |s: &str| crate::cli::ListenAddr::parse(s).unwrap().resolve().unwrap()[0];
        let plain = |url: &str| Probe {
            url: url.into(),
            insecure_skip_verify: false,
            alive_on_unauthorized: false,
            connect_only: None,
        };
        assert_eq!(
            Probe::from_settings(addr(":10150"), None),
            plain("http://127.0.0.1:10150/-/healthy")
        );
        assert_eq!(
            Probe::from_settings(addr("[::]:9000"), None),
            plain("http://[::1]:9000/-/healthy")
        );
        assert_eq!(
            Probe::from_settings(addr("10.1.2.3:9000"), None),
            plain("http://10.1.2.3:9000/-/healthy")
        );
        // Basic auth without TLS: a 401 shows the server up.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
        let web = WebConfig::from_file(&path).unwrap().0;
        assert_eq!(
            Probe::from_settings(addr(":10150"), Some(&web)),
            Probe {
                alive_on_unauthorized: true,
                ..plain("http://127.0.0.1:10150/-/healthy")
            }
        );
        // An empty web config: plain HTTP, no auth.
        std::fs::write(&path, "# nothing\n").unwrap();
        let web = WebConfig::from_file(&path).unwrap().0;
        assert_eq!(
            Probe::from_settings(addr(":10150"), Some(&web)),
            plain("http://127.0.0.1:10150/-/healthy")
        );
    }
}
