//! What deploy/kubernetes/generate.sh writes: the PrometheusRule holds exactly the groups
//! of prometheus/rules/, the dashboard ConfigMaps exactly dashboards/.

use std::process::Command;

use serde_json::Value;

use super::*;

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
