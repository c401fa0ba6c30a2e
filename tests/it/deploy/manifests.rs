//! The Kubernetes manifests agree with the binary: the StatefulSet's paths, ports,
//! flags, token names and security context, the Service and ServiceMonitor, and the
//! sharded component's flag.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use serde_json::{Value, json};
use wolkvox_exporter::cli::Cli;

use super::*;
use crate::helpers::BIN;

/// The StatefulSet and its container.
pub(super) fn statefulset() -> (Value, Value) {
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

pub(super) fn mount_path<'a>(c: &'a Value, volume: &str) -> &'a str {
    text(named(c, "/volumeMounts", volume), "/mountPath")
}

/// `name=value` literals of the base's token Secret.
pub(super) fn secret_literals() -> BTreeMap<String, String> {
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
pub(super) fn sharded_container() -> Value {
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
