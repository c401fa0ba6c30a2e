//! The per-token limits: unknown tokens, the daily budget and `token_info`, and the two
//! simultaneous requests.

use super::*;
use crate::simulator::messages::*;

#[tokio::test]
async fn token_errors_and_daily_budget() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    sim.set_daily_budget(TOKEN, Some(3));
    let server = start(&sim).await;
    let base = &server.base;
    let q =
        "/api/v2/reports_manager.php?api=diagram_1&date_ini=20261120000000&date_end=20261120235959";
    let (status, body) = get(base, None, q).await;
    assert_eq!(status, 401);
    assert!(body.contains(MSG_ENTER_TOKEN));
    let (status, body) = get(base, Some("not-a-token"), q).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], 403);
    assert_eq!(body["msg"], MSG_VALIDATE_TOKEN);

    // Budget of 3: token_info counts, then two reports, then refusals for both calls.
    let (status, body) = get(base, Some(TOKEN), "/api/v2/information.php?api=token_info").await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["data"]["token_limit"], 3);
    assert_eq!(info["data"]["token_use_today"], 1);
    assert_eq!(info["data"]["available_consumption_options"], 2);
    assert_eq!(get(base, Some(TOKEN), q).await.0, 200);
    assert_eq!(get(base, Some(TOKEN), q).await.0, 200);
    let (status, body) = get(base, Some(TOKEN), q).await;
    assert_eq!(status, 403);
    assert!(body.contains(MSG_TOKEN_LIMIT));
    let (status, _) = get(base, Some(TOKEN), "/api/v2/information.php?api=token_info").await;
    assert_eq!(status, 403);

    let records = sim.requests();
    let statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 403, 200, 200, 200, 403, 403]);
    let known: Vec<bool> = records.iter().map(|r| r.token_known).collect();
    assert_eq!(known, [false, false, true, true, true, true, true]);
    assert_eq!(records[2].path_api, "token_info");
    // The token is never kept.
    assert!(!format!("{records:?}").contains(TOKEN));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_simultaneous_request_is_refused() {
    let sim = sim_with_tenant();
    sim.add_rows(TOKEN, [row("2026-11-20T08:00:00", "a")]);
    let hold = Duration::from_millis(1500);
    sim.push_faults(TOKEN, [Fault::Slow(hold), Fault::Slow(hold)]);
    let server = start(&sim).await;
    let base = server.base.clone();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move { report(&base, "20261120000000", "20261120235959").await })
        })
        .collect();
    wait_for_in_flight(&sim, 2).await;
    let (status, body) = report(&base, "20261120000000", "20261120235959").await;
    assert_eq!(status, 403);
    assert_eq!(body["msg"], MSG_SIMULTANEOUS);
    for task in slow {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(data(&body).len(), 1);
    }
    assert_eq!(sim.max_in_flight(TOKEN), 3);
    // Slots were freed on the way out: two more in a row both pass.
    assert_eq!(
        report(&base, "20261120000000", "20261120235959").await.0,
        200
    );
    assert_eq!(
        report(&base, "20261120000000", "20261120235959").await.0,
        200
    );
    assert_eq!(sim.max_in_flight(TOKEN), 3);
    server.stop().await;
}
