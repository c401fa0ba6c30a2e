//! deploy/: the Kubernetes manifests and the systemd unit agree with the exporter and with
//! the files they copy. The PrometheusRule holds exactly the groups of prometheus/rules/,
//! the dashboard ConfigMaps exactly dashboards/; the paths, ports, flags and token names
//! of the manifests are the ones the binary uses; the pod runs as the StatefulSet says
//! and resumes from its volume after a kill -9; the sharded variant splits the operations
//! by token. Rendering with kustomize and schema validation are in .ci/run (they need
//! kubectl and Python packages).
//!
//! The tests, by what they check: [`copies`] (generated files match their sources),
//! [`manifests`] (the Kubernetes objects agree with the binary), [`pods`] (the pod run
//! as the StatefulSet runs it, and the sharded variant), [`systemd`] (the unit), and
//! [`build_info`] (the revision the binary reports). The helpers here read YAML.

mod build_info;
mod copies;
mod manifests;
mod pods;
mod systemd;

use std::path::{Path, PathBuf};

use serde_json::Value;

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
