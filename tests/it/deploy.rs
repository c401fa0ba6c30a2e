//! deploy/: the Kubernetes manifests and the systemd unit agree with the exporter and with
//! the files they copy. The PrometheusRule holds exactly the groups of prometheus/rules/,
//! the dashboard ConfigMaps exactly dashboards/; the paths, ports, flags and token names
//! of the manifests are the ones the binary uses; the pod runs as the StatefulSet says
//! and resumes from its volume after a kill -9; the sharded variant splits the operations
//! by token. Rendering with kustomize and schema validation are in .ci/run (they need
//! kubectl and Python packages).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use wolkvox_exporter::cli::{Cli, Shard};

use crate::helpers::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v` at the JSON pointer `p`, or a panic naming what is missing.
fn at<'a>(v: &'a Value, p: &str) -> &'a Value {
    v.pointer(p).unwrap_or_else(|| panic!("no {p} in {v}"))
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    at(v, p)
        .as_str()
        .unwrap_or_else(|| panic!("{p} is not a string in {v}"))
}

fn list<'a>(v: &'a Value, p: &str) -> &'a Vec<Value> {
    at(v, p)
        .as_array()
        .unwrap_or_else(|| panic!("{p} is not a list in {v}"))
}

/// The element of the list at `p` whose `name` is `name`.
fn named<'a>(v: &'a Value, p: &str, name: &str) -> &'a Value {
    list(v, p)
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no {p} entry named {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

fn file_names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn prometheus_rule_holds_exactly_the_groups_of_the_rule_files() {
    let mut expected = Vec::new();
    for file in files_with_ext(&root().join("prometheus/rules"), "yml") {
        expected.extend(list(&yaml(&file), "/groups").iter().cloned());
    }
    let rule = yaml(&k8s().join("components/monitoring/prometheusrule.yaml"));
    assert_eq!(text(&rule, "/apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(text(&rule, "/kind"), "PrometheusRule");
    let groups = list(&rule, "/spec/groups");
    let names = |g: &[Value]| -> Vec<String> { g.iter().map(|g| g["name"].to_string()).collect() };
    assert_eq!(
        names(groups),
        names(&expected),
        "run deploy/kubernetes/generate.sh"
    );
    for (got, want) in groups.iter().zip(&expected) {
        assert_eq!(
            got, want,
            "group {}: run deploy/kubernetes/generate.sh",
            want["name"]
        );
    }
    assert!(!expected.is_empty(), "no group in prometheus/rules/");
    for g in &expected {
        assert!(
            !list(g, "/rules").is_empty(),
            "group {} has no rule",
            g["name"]
        );
    }
}

#[test]
fn dashboard_config_maps_hold_exactly_the_dashboards() {
    let dir = k8s().join("components/dashboards");
    let sources = files_with_ext(&root().join("dashboards"), "json");
    let copies = files_with_ext(&dir, "json");
    assert_eq!(
        file_names(&copies),
        file_names(&sources),
        "run deploy/kubernetes/generate.sh"
    );
    assert_eq!(sources.len(), 4);
    for (copy, source) in copies.iter().zip(&sources) {
        assert!(
            read(copy) == read(source),
            "{} differs from {}: run deploy/kubernetes/generate.sh",
            copy.display(),
            source.display()
        );
    }
    let k = yaml(&dir.join("kustomization.yaml"));
    let mut listed = Vec::new();
    for g in list(&k, "/configMapGenerator") {
        let files = strings(&g["files"]);
        assert_eq!(files.len(), 1, "one dashboard per ConfigMap: {g}");
        assert_eq!(g["options"]["labels"]["grafana_dashboard"], "1", "{g}");
        assert_eq!(g["options"]["disableNameSuffixHash"], true, "{g}");
        listed.extend(files);
    }
    assert_eq!(listed, file_names(&sources));
}

/// The generator's own check: what it would write is what is committed.
#[test]
fn generated_files_are_current() {
    let out = Command::new("bash")
        .arg(k8s().join("generate.sh"))
        .arg("--check")
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "generate.sh --check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The StatefulSet and its container.
fn statefulset() -> (Value, Value) {
    let sts = yaml(&k8s().join("base/statefulset.yaml"));
    let c = named(&sts, "/spec/template/spec/containers", "wolkvox-exporter").clone();
    (sts, c)
}

/// The container's arguments, parsed as the binary parses them.
fn container_cli(c: &Value) -> Cli {
    let args = strings(&c["args"]);
    Cli::try_parse_from(std::iter::once("wolkvox-exporter".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the StatefulSet's args: {e}"))
}

fn mount_path<'a>(c: &'a Value, volume: &str) -> &'a str {
    text(named(c, "/volumeMounts", volume), "/mountPath")
}

/// `name=value` literals of the base's token Secret.
fn secret_literals() -> BTreeMap<String, String> {
    let k = yaml(&k8s().join("base/kustomization.yaml"));
    let secret = named(&k, "/secretGenerator", "wolkvox-exporter-tokens");
    strings(&secret["literals"])
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("literal {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn statefulset_paths_ports_and_names_are_the_exporters() {
    let (sts, c) = statefulset();
    let cli = container_cli(&c);
    let pod = at(&sts, "/spec/template/spec");
    assert_eq!(at(&sts, "/spec/replicas"), 1);

    // State on the claim template's volume.
    let claim = &list(&sts, "/spec/volumeClaimTemplates")[0];
    assert_eq!(text(claim, "/metadata/name"), "state");
    assert_eq!(
        cli.state_dir.as_deref(),
        Some(Path::new(mount_path(&c, "state")))
    );

    // The config file is the generated ConfigMap's one key, where it is mounted.
    let k = yaml(&k8s().join("base/kustomization.yaml"));
    let generated = named(&k, "/configMapGenerator", "wolkvox-exporter-config");
    assert_eq!(strings(&generated["files"]), ["config.yaml"]);
    assert_eq!(
        text(named(pod, "/volumes", "config"), "/configMap/name"),
        "wolkvox-exporter-config"
    );
    let config_path = Path::new(mount_path(&c, "config")).join("config.yaml");
    assert_eq!(cli.config.as_deref(), Some(config_path.as_path()));
    let config = wolkvox_exporter::config::parse_yaml(&read(&k8s().join("base/config.yaml")))
        .unwrap_or_else(|e| panic!("base/config.yaml: {e}"));
    assert_eq!(
        config.state_dir, None,
        "the StatefulSet's --state.dir is the one state_dir"
    );

    // Each token_file is a key of the Secret, where it is mounted, readable by owner
    // and group (fsGroup) only: 0440.
    let tokens = named(pod, "/volumes", "tokens");
    assert_eq!(
        text(tokens, "/secret/secretName"),
        "wolkvox-exporter-tokens"
    );
    assert_eq!(at(tokens, "/secret/defaultMode"), 0o440);
    let literals = secret_literals();
    assert!(!config.operations.is_empty());
    for op in &config.operations {
        let file = op
            .token_file
            .as_deref()
            .unwrap_or_else(|| panic!("{}: no token_file", op.name));
        assert_eq!(
            file.parent(),
            Some(Path::new(mount_path(&c, "tokens"))),
            "{}",
            op.name
        );
        let key = file.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            literals.contains_key(key.as_ref()),
            "{}: no Secret key {key}",
            op.name
        );
    }

    // One port, the listen address's, probed on the health paths.
    let listen = cli
        .listen_address
        .as_deref()
        .unwrap_or_else(|| panic!("no --web.listen-address"));
    let port = named(&c, "/ports", "http");
    assert_eq!(
        Some(port["containerPort"].to_string().as_str()),
        listen.rsplit(':').next()
    );
    for (probe, path) in [
        ("startupProbe", "/-/healthy"),
        ("livenessProbe", "/-/healthy"),
        ("readinessProbe", "/-/ready"),
    ] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": path, "port": "http"}),
            "{probe}"
        );
    }

    // Non-root, as the image's user; nothing writable but the volume.
    let dockerfile = read(&root().join("Dockerfile"));
    assert!(
        dockerfile.lines().any(|l| l == "USER 65532:65532"),
        "the Dockerfile's USER"
    );
    let psc = &pod["securityContext"];
    assert_eq!(
        (
            &psc["runAsNonRoot"],
            &psc["runAsUser"],
            &psc["runAsGroup"],
            &psc["fsGroup"]
        ),
        (&json!(true), &json!(65532), &json!(65532), &json!(65532))
    );
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let csc = &c["securityContext"];
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]));

    // The image tag is this version.
    let image = named(&k, "/images", "wolkvox-exporter");
    assert_eq!(text(image, "/newTag"), env!("CARGO_PKG_VERSION"));
}

#[test]
fn service_and_service_monitor_reach_the_pods_as_the_rules_expect() {
    let (sts, c) = statefulset();
    let cli = container_cli(&c);
    let pod_labels = at(&sts, "/spec/template/metadata/labels");
    let svc = yaml(&k8s().join("base/service.yaml"));
    assert_eq!(
        text(&sts, "/spec/serviceName"),
        text(&svc, "/metadata/name")
    );
    assert_eq!(
        at(&svc, "/spec/clusterIP"),
        "None",
        "a StatefulSet's governing Service"
    );
    for (k, v) in at(&svc, "/spec/selector").as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }
    let port = named(&svc, "/spec/ports", "http");
    assert_eq!(port["targetPort"], "http");

    // The ServiceMonitor selects the Service by the labels kustomize gives it, scrapes
    // its port on the telemetry path, as the job the alert rules name.
    let k = yaml(&k8s().join("base/kustomization.yaml"));
    let common = at(&list(&k, "/labels")[0], "/pairs");
    let sm = yaml(&k8s().join("components/monitoring/servicemonitor.yaml"));
    for (k, v) in at(&sm, "/spec/selector/matchLabels").as_object().unwrap() {
        assert_eq!(&common[k], v, "ServiceMonitor selector {k}");
    }
    let endpoint = &list(&sm, "/spec/endpoints")[0];
    assert_eq!(endpoint["port"], "http");
    assert_eq!(endpoint["path"], cli.telemetry_path.as_str());
    let job = list(endpoint, "/relabelings")
        .iter()
        .find(|r| r["targetLabel"] == "job")
        .expect("a relabeling that sets job");
    let job = text(job, "/replacement");
    assert_eq!(job, "wolkvox");
    let alerts = read(&root().join("prometheus/rules/alerts.yml"));
    assert!(
        alerts.contains(&format!("up{{job=\"{job}\"}} == 0")),
        "exporter_job in alerts.yml"
    );
}

/// The sharded component's patch: the StatefulSet container's part of it.
fn sharded_container() -> Value {
    let k = yaml(&k8s().join("components/sharded/kustomization.yaml"));
    let patch = text(&list(&k, "/patches")[0], "/patch");
    let patch: Value = serde_saphyr::from_str(patch).expect("the patch is YAML");
    named(&patch, "/spec/template/spec/containers", "wolkvox-exporter").clone()
}

/// The sharded component: pod I gets `I/N` from its ordinal, N copied from the Shards
/// object into both spec.replicas and the flag's environment variable.
#[test]
fn sharded_component_builds_the_shard_flag_from_the_ordinal() {
    let c = &sharded_container();
    let index = named(c, "/env", "POD_INDEX");
    assert_eq!(
        text(index, "/valueFrom/fieldRef/fieldPath"),
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let shard = named(c, "/env", "WOLKVOX_EXPORTER_SHARD");
    assert_eq!(text(shard, "/value"), "$(POD_INDEX)/SHARDS");
    // The variable is the one --shard reads.
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let line = help
        .lines()
        .find(|l| l.contains("--shard"))
        .expect("--shard in --help");
    assert!(line.contains("[env: WOLKVOX_EXPORTER_SHARD="), "{line}");

    let k = yaml(&k8s().join("components/sharded/kustomization.yaml"));
    let replacement = &list(&k, "/replacements")[0];
    assert_eq!(
        (
            text(replacement, "/source/kind"),
            text(replacement, "/source/fieldPath")
        ),
        ("Shards", "spec.count")
    );
    let targets: Vec<(Vec<String>, Value)> = list(replacement, "/targets")
        .iter()
        .map(|t| (strings(&t["fieldPaths"]), t["options"].clone()))
        .collect();
    assert_eq!(targets[0], (vec!["spec.replicas".to_string()], Value::Null));
    assert_eq!(
        targets[1],
        (
            vec![
                "spec.template.spec.containers.[name=wolkvox-exporter].env.[name=WOLKVOX_EXPORTER_SHARD].value"
                    .to_string()
            ],
            json!({"delimiter": "/", "index": 1})
        )
    );
    let example = yaml(&k8s().join("examples/sharded/shards.yaml"));
    assert_eq!(text(&example, "/kind"), "Shards");
    assert_eq!(
        at(
            &example,
            "/metadata/annotations/config.kubernetes.io~1local-config"
        ),
        "true"
    );
    assert_eq!(at(&example, "/spec/count"), 3);
}

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

/// The unit's token credentials are the files the example config names, its state
/// directory is the exporter's --state.dir, and its flags are the binary's.
#[test]
fn systemd_unit_agrees_with_its_config_and_the_binary() {
    let dir = root().join("deploy/systemd");
    let unit = read(&dir.join("wolkvox-exporter.service"));
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    let one = |key: &str| -> String {
        let v = values(key);
        assert_eq!(v.len(), 1, "{key}= in the unit: {v:?}");
        v[0].clone()
    };
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    // A bad config is the exporter's exit code 2: not restarted in a loop.
    assert_eq!(one("RestartPreventExitStatus"), "2");
    let state = one("StateDirectory");

    // %S is /var/lib for a system unit.
    let exec = one("ExecStart").replace("%S", "/var/lib");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/wolkvox-exporter"));
    let cli = Cli::try_parse_from(std::iter::once("wolkvox-exporter").chain(words))
        .unwrap_or_else(|e| panic!("ExecStart: {e}"));
    assert_eq!(cli.state_dir, Some(Path::new("/var/lib").join(&state)));
    assert_eq!(
        cli.config.as_deref(),
        Some(Path::new("/etc/wolkvox-exporter/config.yaml"))
    );

    let credentials: BTreeSet<String> = values("LoadCredential")
        .iter()
        .map(|c| {
            c.split_once(':')
                .map(|(name, _)| name.to_string())
                .unwrap_or_default()
        })
        .collect();
    let config = wolkvox_exporter::config::parse_yaml(&read(&dir.join("config.yaml")))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.yaml: {e}"));
    assert_eq!(
        config.state_dir, None,
        "the unit's --state.dir is the one state_dir"
    );
    let named: BTreeSet<String> = config
        .operations
        .iter()
        .map(|op| {
            let f = op
                .token_file
                .as_deref()
                .unwrap_or_else(|| panic!("{}: no token_file", op.name));
            let name = f
                .strip_prefix("/run/credentials/wolkvox-exporter.service")
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: {} is not a credential of the unit",
                        op.name,
                        f.display()
                    )
                });
            name.to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(named, credentials);
    assert_eq!(credentials.len(), 1);
}

/// `wolkvox_exporter_build_info{revision}` is the commit this tree is checked out at
/// (build.rs), when the tree is a git checkout; the build argument or "unknown" else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_revision_is_the_checked_out_commit() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let expected = match top {
        Some(t) if t.canonicalize().ok() == root().canonicalize().ok() => {
            git(&["rev-parse", "--short=12", "HEAD"]).expect("git rev-parse HEAD")
        }
        _ => option_env!("WOLKVOX_REVISION")
            .unwrap_or("unknown")
            .to_string(),
    };
    let dir = tempdir();
    let exp = Exporter::spawn(&["--demo", "--state.dir", dir.path().to_str().unwrap()]);
    let s = exp.scrape().await;
    let info = s.by("wolkvox_exporter_build_info", &[], "revision");
    assert_eq!(info, BTreeMap::from([(expected, 1.0)]));
}
