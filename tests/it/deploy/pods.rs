//! The pod as the StatefulSet runs it, in a temporary directory: it counts, and
//! resumes from its volume after a kill -9; the sharded pods split the operations by
//! token.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use wolkvox_exporter::cli::Shard;

use super::manifests::{mount_path, secret_literals, sharded_container, statefulset};
use super::*;
use crate::helpers::*;

/// A pod's filesystem in a temporary directory: the ConfigMap's config pointed at the
/// simulator, the Secret's tokens as files with the volume's mode, the state volume.
struct PodFs {
    dir: tempfile::TempDir,
}

impl PodFs {
    fn new(config: &Value, tokens: &BTreeMap<String, String>) -> PodFs {
        let dir = tempdir();
        let (_, c) = statefulset();
        let tokens_dir = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens_dir).unwrap();
        for (k, v) in tokens {
            let f = tokens_dir.join(k);
            std::fs::write(&f, v).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o440)).unwrap();
        }
        let mut config = config.clone();
        for op in config["operations"].as_array_mut().unwrap() {
            let file = op["token_file"].as_str().unwrap().to_string();
            let rel = Path::new(&file)
                .strip_prefix(mount_path(&c, "tokens"))
                .unwrap();
            op["token_file"] = json!(tokens_dir.join(rel));
        }
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        // JSON is YAML: the exporter reads it as its config.
        std::fs::write(dir.path().join("etc/config.yaml"), config.to_string()).unwrap();
        PodFs { dir }
    }

    /// The container's arguments with the pod's paths; the listen address is the test's.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let (_, c) = statefulset();
        let map = [
            (
                mount_path(&c, "config").to_string(),
                self.dir.path().join("etc"),
            ),
            (
                mount_path(&c, "state").to_string(),
                self.dir.path().join("state"),
            ),
        ];
        let mut args: Vec<String> = strings(&c["args"])
            .into_iter()
            .filter(|a| !a.starts_with("--web.listen-address"))
            .map(|a| {
                let (flag, value) = a.split_once('=').unwrap_or((a.as_str(), ""));
                for (from, to) in &map {
                    if let Some(rest) = value.strip_prefix(from.as_str()) {
                        return format!("{flag}={}{rest}", to.display());
                    }
                }
                a.clone()
            })
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn start(&self, extra: &[&str]) -> Exporter {
        let args = self.args(extra);
        Exporter::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// The base config with every operation pointed at the simulator.
fn config_at(sim: &Sim) -> Value {
    let mut config: Value = yaml(&k8s().join("base/config.yaml"));
    for op in config["operations"].as_array_mut().unwrap() {
        let op = op.as_object_mut().unwrap();
        op.remove("server");
        op.insert("base_url".to_string(), json!(sim.url()));
    }
    config
}

async fn wait_ready(exp: &Exporter, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, body) = exp.get("/-/ready").await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after {secs} s: {body}\n{}",
            exp.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pod as the StatefulSet runs it, with the config and Secret of base/: ready once
/// the first cycle is done, every row of the backfill counted; killed with SIGKILL and
/// started again on the same volume, it serves the same counters from its first scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_counts_and_resumes_from_its_volume_after_kill_9() {
    let sim = Sim::start().await;
    let literals = secret_literals();
    let token = literals["acme"].clone();
    let z = tz("America/Bogota");
    sim.sim.add_tenant(&token, z.clone());
    let now = Timestamp::now();
    // Inside the first cycle's range whatever the clock: the default backfill is 1h, the
    // default delay 2m on 5m windows.
    let data = rows(
        &z,
        now - SignedDuration::from_mins(50),
        now - SignedDuration::from_mins(15),
        400,
        "pod",
    );
    sim.sim.add_rows(&token, data);
    let pod = PodFs::new(&config_at(&sim), &literals);
    let mut exp = pod.start(&[]);
    assert_eq!(exp.get("/-/healthy").await.0, 200);
    wait_ready(&exp, 30).await;
    let rows_of = |s: &Scrape| s.sum("wolkvox_ivr_rows_total", &[("operation", "acme")]);
    assert_eq!(rows_of(&exp.scrape().await), 400.0);
    assert!(
        state_file(pod.dir.path(), "acme").exists(),
        "no state on the volume\n{}",
        exp.log()
    );
    assert!(
        !exp.log().contains("readable by every user"),
        "{}",
        exp.log()
    );
    exp.kill9();

    let exp = pod.start(&[]);
    let first = exp.scrape().await;
    assert_eq!(
        rows_of(&first),
        400.0,
        "first scrape after kill -9\n{}",
        exp.log()
    );
    assert_eq!(
        first.sum("wolkvox_ivr_rows_duplicate_total", &[("operation", "acme")]),
        0.0
    );
    assert_eq!(exp.get("/-/healthy").await.0, 200);
}

/// Three pods of the sharded variant, each with `$(POD_INDEX)/3` expanded, the same
/// config and every token: each operation is polled by exactly one pod, the one its token
/// hashes to, and the operations that share a token are on the same pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_pods_split_the_operations_by_token() {
    let sim = Sim::start().await;
    let z = tz("America/Bogota");
    let now = Timestamp::now();
    // Operation -> token; "shop" and "shop-sales" share one.
    let ops = [
        ("acme", "token-acme"),
        ("andina", "token-andina"),
        ("bravo", "token-bravo"),
        ("caribe", "token-caribe"),
        ("delta", "token-delta"),
        ("shop", "token-shop"),
        ("shop-sales", "token-shop"),
    ];
    let n = 3u64;
    let owner = |token: &str| {
        (0..n)
            .find(|&i| Shard { index: i, count: n }.selects(token))
            .unwrap()
    };
    let owners: BTreeSet<u64> = ops.iter().map(|(_, t)| owner(t)).collect();
    assert_eq!(owners.len(), 3, "the test's tokens leave a shard empty");
    let mut operations = Vec::new();
    let mut tokens = BTreeMap::new();
    for (i, (name, token)) in ops.iter().enumerate() {
        if !tokens.contains_key(*token) {
            sim.sim.add_tenant(token, z.clone());
            let from = now - SignedDuration::from_mins(50);
            let data = rows(&z, from, now - SignedDuration::from_mins(15), 10 + i, name);
            sim.sim.add_rows(token, data);
        }
        tokens.insert(token.to_string(), token.to_string());
        operations.push(json!({
            "name": name,
            "base_url": sim.url(),
            "token_file": format!("/run/secrets/wolkvox/{token}"),
            "timezone": "America/Bogota",
        }));
    }
    let config = json!({ "operations": operations });
    let shard = text(
        named(&sharded_container(), "/env", "WOLKVOX_EXPORTER_SHARD"),
        "/value",
    )
    .to_string();
    let mut pods = Vec::new();
    for i in 0..n {
        // What the replacement (N) and the kubelet ($(POD_INDEX)) make of the value.
        let value = shard
            .replace("$(POD_INDEX)", &i.to_string())
            .replace("SHARDS", &n.to_string());
        let fs = PodFs::new(&config, &tokens);
        let exp = fs.start(&[&format!("--shard={value}")]);
        pods.push((fs, exp));
    }
    let mut polled_by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (i, (_, exp)) in pods.iter().enumerate() {
        wait_ready(exp, 30).await;
        let s = exp.scrape().await;
        for name in s.by("wolkvox_up", &[], "operation").keys() {
            polled_by.entry(name.clone()).or_default().push(i as u64);
        }
    }
    let expected: BTreeMap<String, Vec<u64>> = ops
        .iter()
        .map(|(name, token)| (name.to_string(), vec![owner(token)]))
        .collect();
    assert_eq!(polled_by, expected);
    assert_eq!(polled_by["shop"], polled_by["shop-sales"]);
}
