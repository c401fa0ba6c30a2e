//! A hostile or broken upstream: a hand-written fake Wolkvox (raw TCP, because the
//! simulator only sends well-formed answers) that floods labels, sends newlines, quotes,
//! backslashes and invalid UTF-8 in names, megabyte-long strings, numbers and objects
//! where text belongs, missing fields, `data: null`, bodies over the size cap, and
//! bodies that never end. The exporter must keep running, keep `/metrics` valid for
//! `promtool check metrics`, and count exactly what it was sent.
//!
//! Hostile clients on the exporter's own port are in [`clients`].

mod clients;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wolkvox_exporter::secret::Secret;
use wolkvox_exporter::window::{Range, query_for};
use wolkvox_exporter::wolkvox::Reason;
use wolkvox_exporter::wolkvox::client::Client;

use crate::helpers::*;

/// One scripted answer to one report request.
#[derive(Clone)]
enum Reply {
    /// Status and body, with a Content-Length.
    Body(u16, Vec<u8>),
    /// 200 and a chunked body: no Content-Length to refuse it by.
    Chunked(Vec<u8>),
    /// Headers and the start of a 1000-byte body, then nothing, for as long as the client waits.
    Stall,
    /// Accepts the request and never answers at all.
    Silent,
}

/// The fake upstream. Report requests take the next scripted reply; with none left,
/// and for any other request, it answers 404 (the API's "no rows").
struct Fake {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    served: Arc<Mutex<usize>>,
}

impl Fake {
    async fn start(script: Vec<Reply>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let served = Arc::new(Mutex::new(0));
        let (s, n) = (Arc::clone(&script), Arc::clone(&served));
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (s, n) = (Arc::clone(&s), Arc::clone(&n));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(60), answer(conn, s, n)).await;
                });
            }
        });
        Fake {
            addr,
            script,
            served,
        }
    }

    fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn served(&self) -> usize {
        *self.served.lock().unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer(
    mut conn: TcpStream,
    script: Arc<Mutex<VecDeque<Reply>>>,
    served: Arc<Mutex<usize>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 65536 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let reply = if line.lines().next().unwrap_or("").contains("api=diagram_1") {
        *served.lock().unwrap() += 1;
        script.lock().unwrap().pop_front()
    } else {
        None
    };
    let reply = reply.unwrap_or_else(|| {
        Reply::Body(
            404,
            br#"{"code":404,"error":null,"msg":"No records found","data":null}"#.to_vec(),
        )
    });
    match reply {
        Reply::Body(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(&body).await?;
        }
        Reply::Chunked(body) => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").await?;
            for chunk in body.chunks(1000) {
                conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                conn.write_all(chunk).await?;
                conn.write_all(b"\r\n").await?;
            }
            conn.write_all(b"0\r\n\r\n").await?;
        }
        Reply::Stall => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"code\":200,\"data\":[")
                .await?;
            // Hold the connection until the client gives up (read sees its close).
            while conn.read(&mut buf).await? > 0 {}
        }
        Reply::Silent => while conn.read(&mut buf).await? > 0 {},
    }
    conn.shutdown().await
}

/// A report body from rows given as JSON text (or raw bytes, for invalid UTF-8).
fn body(rows: &[Vec<u8>]) -> Vec<u8> {
    let mut b = format!(
        r#"{{"code":200,"error":null,"msg":"{} records were found","data":["#,
        rows.len()
    )
    .into_bytes();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(r);
    }
    b.extend_from_slice(b"]}");
    b
}

fn row(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// A plain good row in rp `rp`, dated ten minutes ago in Bogotá.
fn plain(rp: &str, option: &str, transfer: &str, conn: &str) -> serde_json::Value {
    let date = tz("America/Bogota")
        .to_datetime(Timestamp::now() - SignedDuration::from_mins(10))
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    json!({"rp_id": rp, "rp_name": format!("RP {rp}"), "cod_opc_menu": option,
           "dn_transfer": transfer, "date": date, "result": "ok", "ani": "3001234567",
           "time": "7", "customer_id": "", "conn_id": conn})
}

fn yaml(fake: &Fake, dir: &std::path::Path, limits: &str) -> String {
    let token = dir.join("acme.token");
    std::fs::write(&token, "fake-token").unwrap();
    format!(
        "operations:\n  - name: acme\n    base_url: \"{}\"\n    token_file: {}\n    timezone: America/Bogota\npoll: {{interval: 1s, delay: 1s, settle: 5s, timeout: 2s, backfill: 1h}}\nlimits: {limits}\nstate_dir: {}\n",
        fake.url(),
        token.display(),
        dir.join("state").display()
    )
}

/// `promtool check metrics` on `text`; fails (never skips) when promtool is missing.
fn promtool_check(text: &str) {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{tool} not found ({e}): install it with `apt-get install prometheus`")
        });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        &text[..text.len().min(20_000)]
    );
}

fn alive(exp: &mut Exporter) {
    assert!(
        exp.child.try_wait().unwrap().is_none(),
        "the exporter died\n{}",
        exp.log()
    );
}

const MB: usize = 1024 * 1024;

/// Label floods, weird text, wrong types and missing fields in one answer: counted
/// exactly, folded into `_other` past the limits, capped in length, and `/metrics`
/// stays small and valid. Then answers that are not reports fail their cycle without
/// touching a counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rows_are_counted_exactly_and_metrics_stay_valid() {
    let mut rows: Vec<Vec<u8>> = Vec::new();
    // Odd but single rows first, each its own routing point (9 of them, all distinct).
    rows.push(row(
        json!({"rp_id": "w1", "rp_name": "line\nbreak \"quoted\" back\\slash",
        "cod_opc_menu": "a\"b\\c\nd", "dn_transfer": "x\ny", "result": "ok", "time": "3",
        "date": "2026-11-27 08:00:00", "conn_id": "w1"}),
    ));
    let mut bad_utf8 = br#"{"rp_id":"w2","rp_name":"caf"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(br#"","cod_opc_menu":"op"#);
    bad_utf8.push(0x80);
    bad_utf8.extend_from_slice(br#"","result":"ok","time":"1","conn_id":"w2"}"#);
    rows.push(bad_utf8);
    rows.push(row(json!({"rp_id": "long", "rp_name": "n".repeat(MB),
        "cod_opc_menu": "o".repeat(MB), "dn_transfer": "t".repeat(MB),
        "result": "r".repeat(MB), "time": "9".repeat(MB), "date": "d".repeat(MB),
        "ani": "a".repeat(MB), "conn_id": "c".repeat(MB)})));
    rows.push(row(
        json!({"rp_id": 42, "rp_name": 3.5, "cod_opc_menu": 1, "dn_transfer": 3001,
        "result": true, "time": 12.5, "date": 20261127, "conn_id": 7}),
    ));
    rows.push(row(
        json!({"rp_id": {"nested": [1, 2]}, "rp_name": ["a", "b"],
        "cod_opc_menu": {"x": null}, "time": [], "conn_id": "nested"}),
    ));
    rows.push(row(json!({})));
    rows.push(row(
        json!({"rp_id": null, "rp_name": null, "time": null, "extra": "ignored"}),
    ));
    rows.push(row(
        json!({"rp_id": "\u{0}\u{7}ctl", "rp_name": "\t tabs \r", "result": "HUNG_UP",
        "time": "-5", "conn_id": "ctl"}),
    ));
    rows.push(row(
        json!({"rp_id": "emoji", "rp_name": "☎️ Menú 😀", "cod_opc_menu": " pulse ",
        "time": "01:02:03", "result": "hung up", "conn_id": "emoji"}),
    ));
    // rp 1: 2000 distinct options and transfers; limit 10 each.
    for i in 0..2000 {
        rows.push(row(plain(
            "1",
            &format!("opt-{i}"),
            &format!("dn-{i}"),
            &format!("c1-{i}"),
        )));
    }
    // 1000 distinct routing points; limit 20 in all.
    for i in 0..1000 {
        rows.push(row(plain(&format!("rp-{i}"), "", "", &format!("rp-{i}"))));
    }
    let n = rows.len() as f64;
    let big = body(&rows);
    assert!(big.len() > 8 * MB);

    let fake = Fake::start(vec![Reply::Body(200, big)]).await;
    let dir = tempdir();
    let cfg = yaml(
        &fake,
        dir.path(),
        "{routing_points: 20, options_per_routing_point: 10, transfers_per_routing_point: 10}",
    );
    let mut exp = Exporter::start(dir.path(), &cfg, &[]);
    let s = exp
        .wait_for(60, "the hostile answer counted", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) >= n
        })
        .await;
    alive(&mut exp);
    promtool_check(&s.text);
    assert!(
        s.text.len() < MB / 2,
        "metrics stay small: {} bytes",
        s.text.len()
    );

    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[("operation", "acme")]), n);
    assert_eq!(s.sum("wolkvox_ivr_interactions_total", &[]), n);
    // Routing points: w1, w2, long, 42, unknown (three rows), \0\7ctl, emoji and 1 make
    // 8 keys; of the 1000 flood ones, 12 fit under the limit of 20.
    let rp_ids = s.by("wolkvox_ivr_interactions_total", &[], "rp_id");
    assert_eq!(rp_ids.len(), 21, "{rp_ids:?}");
    assert_eq!(rp_ids["_other"], 1000.0 - 12.0);
    assert_eq!(rp_ids["unknown"], 3.0);
    assert_eq!(
        s.sum("wolkvox_label_overflow_total", &[("label", "rp_id")]),
        1000.0 - 12.0
    );
    // rp 1: the first 10 options and transfers keep their names, the rest fold.
    let opts = s.by("wolkvox_ivr_menu_option_total", &[("rp_id", "1")], "option");
    assert_eq!(opts.len(), 11, "{opts:?}");
    assert_eq!(opts["_other"], 1990.0);
    assert_eq!(opts["opt-0"], 1.0);
    let dns = s.by(
        "wolkvox_ivr_transfers_total",
        &[("rp_id", "1")],
        "dn_transfer",
    );
    assert_eq!((dns.len(), dns["_other"]), (11, 1990.0));
    assert_eq!(
        s.sum("wolkvox_label_overflow_total", &[("label", "option")]),
        1990.0
    );
    assert_eq!(
        s.sum("wolkvox_label_overflow_total", &[("label", "dn_transfer")]),
        1990.0
    );
    // Text survives escaping both ways; invalid UTF-8 becomes U+FFFD; long text is cut.
    assert!(s.has(
        "wolkvox_ivr_menu_option_total",
        &[
            ("rp_name", "line\nbreak \"quoted\" back\\slash"),
            ("option", "a\"b\\c\nd")
        ]
    ));
    assert!(s.has("wolkvox_ivr_transfers_total", &[("dn_transfer", "x\ny")]));
    let names = s.by("wolkvox_ivr_interactions_total", &[], "rp_name");
    assert!(
        names.contains_key("caf\u{fffd}\u{fffd}\u{fffd}"),
        "{names:?}"
    );
    assert!(s.has("wolkvox_ivr_menu_option_total", &[("option", "op\u{fffd}")]));
    assert!(
        names.contains_key(&"n".repeat(128)),
        "long name cut to 128 bytes"
    );
    assert!(s.has(
        "wolkvox_ivr_menu_option_total",
        &[("option", &"o".repeat(128))]
    ));
    assert!(s.has(
        "wolkvox_ivr_transfers_total",
        &[("dn_transfer", &"t".repeat(128))]
    ));
    assert!(names.contains_key("☎️ Menú 😀"));
    // Numbers are read as their text; objects and arrays as empty.
    assert!(s.has(
        "wolkvox_ivr_menu_option_total",
        &[("rp_id", "42"), ("rp_name", "3.5"), ("option", "1")]
    ));
    assert!(s.has(
        "wolkvox_ivr_transfers_total",
        &[("rp_id", "42"), ("dn_transfer", "3001")]
    ));
    assert_eq!(s.sum("wolkvox_ivr_pulse_total", &[("rp_id", "emoji")]), 1.0);
    assert_eq!(
        s.sum(
            "wolkvox_ivr_interactions_total",
            &[("rp_id", "emoji"), ("result", "hung_up")]
        ),
        1.0
    );
    // Invalid durations: long (a million nines is not finite), nested (an array), {},
    // the null row, and ctl ("-5").
    assert_eq!(
        s.sum("wolkvox_ivr_rows_invalid_total", &[("field", "time")]),
        5.0
    );
    // Invalid dates: the odd rows but w1, the only one dated (8 of 9); plain rows are dated.
    assert_eq!(
        s.sum("wolkvox_ivr_rows_invalid_total", &[("field", "date")]),
        8.0
    );
    assert_eq!(s.sum("wolkvox_up", &[]), 1.0);

    // Answers that are not reports: each fails its cycle as `decode` (or is "no rows"),
    // none changes a business counter, and the exporter goes on. A `code` written as a
    // string is the vendor's own form: an answer with no rows, not a decode error.
    let before = fake.served();
    fake.push([
        Reply::Body(200, b"<html><body>Fatal error</body></html>".to_vec()),
        Reply::Body(200, br#"{"code":200,"data":"nope"}"#.to_vec()),
        Reply::Body(200, br#"{"code":200,"data":[{"rp_id":"1""#.to_vec()),
        Reply::Body(200, vec![0xff; 10_000]),
        Reply::Body(200, b"[]".to_vec()),
        Reply::Body(200, br#"{"code":200,"msg":"ok","data":null}"#.to_vec()),
        Reply::Body(200, br#"{"code":200}"#.to_vec()),
        Reply::Body(200, br#"{"code":"200","data":[]}"#.to_vec()),
        Reply::Body(200, b"".to_vec()),
    ]);
    let s = exp
        .wait_for(60, "the broken answers consumed", |s| {
            s.sum("wolkvox_poll_errors_total", &[("reason", "decode")]) >= 4.0
                && fake.served() >= before + 9
                && s.sum("wolkvox_up", &[]) == 1.0
        })
        .await;
    alive(&mut exp);
    promtool_check(&s.text);
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), n);
    assert_eq!(s.sum("wolkvox_ivr_interactions_total", &[]), n);
    let (status, _) = exp.get("/-/healthy").await;
    assert_eq!(status, 200);
}

/// Bodies that never end and answers that never come: the request times out, the
/// cycle fails and is asked again, and the next good answer is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_answers_time_out_and_the_range_is_asked_again() {
    let good = body(&[
        row(plain("1", "1", "", "a")),
        row(plain("1", "2", "3001", "b")),
        row(plain("2", "", "", "c")),
    ]);
    let fake = Fake::start(vec![Reply::Stall, Reply::Silent, Reply::Body(200, good)]).await;
    let dir = tempdir();
    let started = Instant::now();
    let mut exp = Exporter::start(dir.path(), &yaml(&fake, dir.path(), "{}"), &[]);
    let s = exp
        .wait_for(60, "the good answer after two stalls", |s| {
            s.sum("wolkvox_ivr_rows_total", &[]) >= 3.0
        })
        .await;
    alive(&mut exp);
    promtool_check(&s.text);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "two 2 s timeouts came first"
    );
    assert_eq!(
        s.sum("wolkvox_poll_errors_total", &[("reason", "timeout")]),
        2.0,
        "{}",
        s.text
    );
    assert_eq!(s.sum("wolkvox_ivr_rows_total", &[]), 3.0);
    assert_eq!(
        s.sum("wolkvox_api_requests_total", &[("code", "error")]),
        1.0,
        "the silent server gave no status; the stalled one gave 200 then stopped"
    );
    // The log says what happened without the token.
    let log = exp.log();
    assert!(log.contains("timeout"), "{log}");
    assert!(!log.contains("fake-token"), "{log}");
}

fn client(fake: &Fake, max_body: usize, timeout: Duration) -> Client {
    Client::new(
        &fake.url().parse().unwrap(),
        Secret::new("fake-token"),
        None,
        timeout,
        Arc::new(Semaphore::new(1)),
    )
    .unwrap()
    .with_max_body(max_body)
}

fn query() -> wolkvox_exporter::window::Query {
    let end = Timestamp::now();
    query_for(
        Range::new(end - SignedDuration::from_mins(5), end),
        &tz("America/Bogota"),
    )
}

/// The body cap, with and without a Content-Length to tell the size up front, and the
/// client's own timeouts. (The binary's cap is 256 MiB; a small one tests the same code.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_bodies_over_the_cap_and_gives_up_on_stalls() {
    let cap = 64 * 1024;
    let over = vec![b' '; cap + 1];
    let at = body(&[row(json!({"rp_name": "x".repeat(cap - 200)}))]);
    assert!(at.len() <= cap);
    let fake = Fake::start(vec![
        Reply::Body(200, over.clone()),
        Reply::Chunked(over),
        Reply::Chunked(vec![b'x'; 10 * MB]),
        Reply::Body(200, at.clone()),
        Reply::Chunked(at.clone()),
        Reply::Stall,
        Reply::Silent,
    ])
    .await;
    let c = client(&fake, cap, Duration::from_secs(1));
    for what in ["with length", "chunked", "chunked 10 MB"] {
        let a = c.fetch(&query()).await;
        assert_eq!(a.status, Some(200), "{what}");
        let e = a.result.unwrap_err();
        assert_eq!(e.reason, Reason::Other, "{what}: {e}");
        assert!(
            e.detail.contains(&format!("larger than {cap} bytes")),
            "{what}: {e}"
        );
    }
    for what in ["with length", "chunked"] {
        let a = c.fetch(&query()).await;
        assert_eq!(
            a.result.unwrap().len(),
            at.len(),
            "{what}: at the cap is fine"
        );
    }
    for what in ["stalled body", "no answer"] {
        let t = Instant::now();
        let a = c.fetch(&query()).await;
        let e = a.result.unwrap_err();
        assert_eq!(e.reason, Reason::Timeout, "{what}: {e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{what}: bounded");
        assert!(!e.to_string().contains("fake-token"));
    }
}
