use std::sync::Arc;

use jiff::civil::DateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::*;
use crate::ingest::rows_of;
use crate::secret::Secret;
use crate::simulator::{Fault, SimRow, Simulator};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn bogota() -> TimeZone {
    TimeZone::get("America/Bogota").unwrap()
}

/// What the engine handed over, in order: `("take", date_ini)`, `("commit", through)`.
#[derive(Default)]
struct Recorder {
    events: Vec<(&'static str, String)>,
    rows: usize,
    /// Fail the commit with this number (1-based), as a full disk would.
    fail_commit: Option<usize>,
    commits: usize,
}

impl Sink for Recorder {
    type Error = String;
    type Body = Vec<u8>;

    fn take(&mut self, body: &mut Vec<u8>, q: &Query) -> Result<Ingested, TakeError<String>> {
        let rows = rows_of(body).map_err(TakeError::Api)?;
        self.events.push(("take", q.date_ini_string()));
        self.rows += rows.len();
        Ok(Ingested::Applied {
            rows: rows.len(),
            new: rows.len(),
            capped: false,
        })
    }

    async fn commit(&mut self, through: Timestamp) -> Result<(), String> {
        self.commits += 1;
        if self.fail_commit == Some(self.commits) {
            return Err("disk full".into());
        }
        self.events.push(("commit", through.to_string()));
        Ok(())
    }
}

struct Bench {
    sim: Simulator,
    client: Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A simulator with one row a day from 2026-01-01 to 2026-04-10 (Bogota), and a
/// client for it.
async fn bench() -> Bench {
    let sim = Simulator::new();
    sim.add_tenant("tok", bogota());
    let start = DateTime::constant(2026, 1, 1, 12, 0, 0, 0);
    sim.add_rows(
        "tok",
        (0..100).map(|d| {
            SimRow::new(
                start + SignedDuration::from_hours(24 * d),
                "1",
                "A",
                "1",
                "",
                "ok",
                "5",
                &format!("c{d}"),
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.clone().serve(listener, async move {
        let _ = rx.await;
    }));
    let client = Client::new(
        &url.parse().unwrap(),
        Secret::new("tok"),
        None,
        Duration::from_secs(5),
        Arc::new(Semaphore::new(1)),
    )
    .unwrap();
    Bench {
        sim,
        client,
        _stop: tx,
    }
}

const QUICK: RetryPolicy = RetryPolicy {
    retries: 2,
    base: Duration::from_millis(5),
    max: Duration::from_millis(20),
    retry_maintenance: false,
};

/// 2026-01-01 to 2026-04-10 (Bogota midnights): 99 days, so four 31-day parts.
fn range() -> Range {
    Range::new(ts("2026-01-01T05:00:00Z"), ts("2026-04-10T05:00:00Z"))
}

fn report_dates(sim: &Simulator) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path_api == "diagram_1")
        .map(|r| r.date_ini.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn commits_each_part_in_date_order() {
    let b = bench().await;
    let mut sink = Recorder::default();
    let mut jitter = Jitter::new(1);
    let tz = bogota();
    let done = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(range(), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.rows, 99);
    assert_eq!((done.parts, done.requests, done.rows), (4, 4, 99));
    let ends = [
        "2026-02-01T05:00:00Z",
        "2026-03-04T05:00:00Z",
        "2026-04-04T05:00:00Z",
        "2026-04-10T05:00:00Z",
    ];
    let starts = [
        "20260101000000",
        "20260201000000",
        "20260304000000",
        "20260404000000",
    ];
    let want: Vec<(&str, String)> = starts
        .iter()
        .zip(ends)
        .flat_map(|(s, e)| [("take", s.to_string()), ("commit", e.to_string())])
        .collect();
    assert_eq!(sink.events, want);
}

#[tokio::test]
async fn a_failure_in_part_k_keeps_the_parts_before_and_resumes_at_k() {
    let b = bench().await;
    // Parts 1 and 2 answer; part 3 is refused (not retried).
    b.sim.push_faults(
        "tok",
        [
            Fault::Slow(Duration::ZERO),
            Fault::Slow(Duration::ZERO),
            Fault::BadRequest,
        ],
    );
    let tz = bogota();
    let mut jitter = Jitter::new(1);
    let mut sink = Recorder::default();
    let err = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(range(), &mut sink)
        .await
        .unwrap_err();
    let FetchError::Api {
        error,
        query,
        attempts,
    } = err
    else {
        panic!("not an API error: {err:?}");
    };
    assert_eq!(error.reason, Reason::BadRequest);
    assert_eq!(
        (query.date_ini_string(), attempts),
        ("20260304000000".into(), 1)
    );
    let committed: Vec<&str> = sink
        .events
        .iter()
        .filter(|(k, _)| *k == "commit")
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(committed, ["2026-02-01T05:00:00Z", "2026-03-04T05:00:00Z"]);
    // Resume from the last commit: only parts 3 and 4 are asked.
    let resume = Range::new(ts("2026-03-04T05:00:00Z"), range().end);
    Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(resume, &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.rows, 99);
    assert_eq!(
        report_dates(&b.sim),
        [
            "20260101000000",
            "20260201000000",
            "20260304000000",
            "20260304000000",
            "20260404000000"
        ]
    );
}

#[tokio::test]
async fn transient_errors_are_retried_within_the_policy() {
    let b = bench().await;
    b.sim.push_faults(
        "tok",
        [
            Fault::ServerErrorHtml(502),
            Fault::MalformedBody,
            Fault::ServerErrorHtml(503),
        ],
    );
    let tz = bogota();
    let mut jitter = Jitter::new(1);
    let mut sink = Recorder::default();
    // Two retries: the third failure in a row ends the fetch, nothing committed.
    let err = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(range(), &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::Api { error, attempts: 3, .. } if error.reason == Reason::Http5xx),
        "{err:?}"
    );
    assert_eq!(sink.commits, 0);
    // With one fault fewer, the same policy gets through.
    b.sim
        .push_faults("tok", [Fault::ServerErrorHtml(502), Fault::MalformedBody]);
    let done = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(range(), &mut sink)
        .await
        .unwrap();
    assert_eq!((done.retries, done.requests, done.parts), (2, 6, 4));
    assert_eq!(sink.rows, 99);
}

#[tokio::test]
async fn a_failed_commit_ends_the_fetch_before_the_next_request() {
    let b = bench().await;
    let tz = bogota();
    let mut jitter = Jitter::new(1);
    let mut sink = Recorder {
        fail_commit: Some(2),
        ..Recorder::default()
    };
    let err = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .run(range(), &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FetchError::Sink(e) if e == "disk full"),
        "{err:?}"
    );
    assert_eq!(
        report_dates(&b.sim).len(),
        2,
        "no request after the failed commit"
    );
}

#[tokio::test]
async fn shutdown_stops_between_requests() {
    let b = bench().await;
    let tz = bogota();
    let mut jitter = Jitter::new(1);
    let (tx, rx) = watch::channel(true);
    let mut sink = Recorder::default();
    let err = Engine::new(&b.client, &tz, QUICK, &mut jitter)
        .with_shutdown(rx)
        .run(range(), &mut sink)
        .await
        .unwrap_err();
    drop(tx);
    assert!(matches!(err, FetchError::Shutdown), "{err:?}");
    assert!(report_dates(&b.sim).is_empty());
}

#[test]
fn waits_double_up_to_the_cap_and_jitter_keeps_half() {
    let p = RetryPolicy {
        retries: 9,
        base: Duration::from_secs(1),
        max: Duration::from_secs(5),
        retry_maintenance: false,
    };
    let waits: Vec<u64> = (1..=5).map(|n| p.wait(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 5, 5]);
    assert!(!p.retries_on(Reason::Maintenance));
    assert!(
        RetryPolicy {
            retry_maintenance: true,
            ..p
        }
        .retries_on(Reason::Maintenance)
    );
    assert!(!p.retries_on(Reason::BadRequest));
    let mut j = Jitter::new(7);
    for _ in 0..1000 {
        let d = j.apply(Duration::from_secs(10));
        assert!(
            d >= Duration::from_secs(5) && d < Duration::from_secs(10),
            "{d:?}"
        );
    }
}
