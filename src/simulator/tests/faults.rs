//! Scripted faults answer as scripted, a hung body holds its slot until shutdown, and
//! the demo's random faults are of the demo's kinds.

use super::*;
use crate::simulator::messages::*;

#[tokio::test]
async fn every_fault_kind_answers_as_scripted() {
    let sim = sim_with_tenant();
    sim.add_rows(
        TOKEN,
        [
            row("2026-11-20T08:00:00", "a"),
            row("2026-11-20T08:01:00", "b"),
        ],
    );
    sim.push_faults(
        TOKEN,
        [
            Fault::ServerErrorHtml(502),
            Fault::Maintenance,
            Fault::TokenLimit,
            Fault::ConcurrencyLimit,
            Fault::InvalidToken,
            Fault::BadRequest,
            Fault::MalformedBody,
            Fault::TruncatedBody,
            Fault::WrongShape,
            Fault::Slow(Duration::from_millis(300)),
        ],
    );
    let server = start(&sim).await;
    let url = format!(
        "{}/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        server.base
    );
    let fetch = || async {
        let response = client()
            .get(&url)
            .header("wolkvox-token", TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let length = response
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        let body = response.bytes().await.unwrap();
        (status, content_type, length, body)
    };
    let json = |body: &[u8]| serde_json::from_slice::<Value>(body);

    let (status, content_type, _, body) = fetch().await;
    assert_eq!(status, 502);
    assert!(content_type.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("502 Bad Gateway"));
    for expected in [
        (403, MSG_MAINTENANCE),
        (403, MSG_TOKEN_LIMIT),
        (403, MSG_SIMULTANEOUS),
        (403, MSG_VALIDATE_TOKEN),
        (400, MSG_PARAMETERS_REQUIRED),
    ] {
        let (status, _, _, body) = fetch().await;
        let body = json(&body).unwrap();
        assert_eq!((status, body["msg"].as_str().unwrap()), expected);
        assert_eq!(body["code"], expected.0);
    }
    let (status, _, _, body) = fetch().await;
    assert_eq!(status, 200);
    assert!(json(&body).is_err(), "malformed body must not parse");
    let (status, _, length, truncated) = fetch().await;
    assert_eq!(status, 200);
    assert!(json(&truncated).is_err(), "truncated body must not parse");
    assert_eq!(
        length,
        Some(truncated.len()),
        "Content-Length matches what is sent"
    );
    let (status, _, _, body) = fetch().await;
    assert_eq!(status, 200);
    let body = json(&body).unwrap();
    assert!(body["data"].is_string());
    let started = Instant::now();
    let (status, _, _, slow) = fetch().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(json(&slow).unwrap()["msg"], "2 records were found");
    // Faults are used up: back to normal, and the truncated body was a prefix of it.
    let (status, _, _, normal) = fetch().await;
    assert_eq!(status, 200);
    assert_eq!(normal, slow);
    assert!(normal.starts_with(&truncated) && truncated.len() < normal.len());

    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [502, 403, 403, 403, 403, 400, 200, 200, 200, 200, 200]
    );
    let rows: Vec<usize> = sim.requests().iter().map(|r| r.rows).collect();
    assert_eq!(rows, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_sends_part_of_the_body_then_ends_at_shutdown() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.push_faults(TOKEN, [Fault::Hang]);
    let server = start(&sim).await;
    let url = format!(
        "{}/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        server.base
    );
    let mut response = client()
        .get(&url)
        .header("wolkvox-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"{\"code\":200"));
    let next = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(next.is_err(), "the body must not finish");
    // A hung request still holds its slot.
    sim.push_faults(TOKEN, [Fault::Slow(Duration::from_millis(300))]);
    let second = {
        let url = url.clone();
        tokio::spawn(async move {
            client()
                .get(&url)
                .header("wolkvox-token", TOKEN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    wait_for_in_flight(&sim, 2).await;
    let (status, _) = report(&server.base, "20261120000000", "20261120235959").await;
    assert_eq!(status, 403);
    assert_eq!(second.await.unwrap(), 200);
    server.stop().await;
    let rest = tokio::time::timeout(Duration::from_secs(2), response.chunk())
        .await
        .expect("the hung body ends at shutdown");
    assert!(rest.is_err() || matches!(rest, Ok(None)));
}

#[tokio::test]
async fn random_faults_are_the_demo_kinds() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.set_random_faults(TOKEN, 1.0, 5);
    let server = start(&sim).await;
    for _ in 0..4 {
        let (status, _) = get(
            &server.base,
            Some(TOKEN),
            "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959",
        )
        .await;
        assert!([502, 503, 403, 200].contains(&status), "{status}");
    }
    sim.set_random_faults(TOKEN, 0.0, 5);
    assert_eq!(
        report(&server.base, "20261120000000", "20261120235959")
            .await
            .0,
        200
    );
    server.stop().await;
}
