//! The Prometheus side of the project, checked with the real tools: the recording and
//! alerting rules (`promtool check rules`), their unit tests (`promtool test rules`), the
//! example Prometheus configurations (`promtool check config`), the match between alerts,
//! their tests, the runbook and the thresholds table, and the Grafana dashboards
//! (`dashboards/check.py`).
//!
//! These tests need `promtool` (Debian: `apt-get install prometheus`) and `python3`. They
//! fail, rather than skip, when one is missing. `PROMTOOL` names another promtool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::prom::{assert_success, tool};

const RUNBOOK_BASE: &str =
    "https://github.com/wolkvox-exporter/wolkvox-exporter/blob/main/docs/alerting.md#runbook-";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prometheus_dir() -> PathBuf {
    root().join("prometheus")
}

fn promtool() -> PathBuf {
    tool("PROMTOOL", "promtool")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML file in {}", dir.display());
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert_success(what, &out);
}

#[test]
fn rule_files_pass_promtool_check_rules() {
    let promtool = promtool();
    for file in yaml_files(&prometheus_dir().join("rules")) {
        run(
            &format!("promtool check rules {}", file.display()),
            Command::new(&promtool).arg("check").arg("rules").arg(&file),
        );
    }
}

#[test]
fn rule_unit_tests_pass_promtool_test_rules() {
    let promtool = promtool();
    let dir = prometheus_dir().join("tests");
    // One promtool per file, all at once: the week-long test takes the longest.
    let children: Vec<_> = yaml_files(&dir)
        .into_iter()
        .map(|file| {
            let child = Command::new(&promtool)
                .arg("test")
                .arg("rules")
                .arg(&file)
                .current_dir(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start promtool: {e}"));
            (file, child)
        })
        .collect();
    for (file, child) in children {
        let out = child.wait_with_output().expect("promtool output");
        assert_success(&format!("promtool test rules {}", file.display()), &out);
    }
}

#[test]
fn example_configs_pass_promtool_check_config() {
    let promtool = promtool();
    let dir = prometheus_dir();
    for file in [
        dir.join("prometheus.yml"),
        dir.join("compose").join("prometheus.yml"),
    ] {
        run(
            &format!("promtool check config {}", file.display()),
            Command::new(&promtool)
                .arg("check")
                .arg("config")
                .arg(&file),
        );
    }
}

/// One `- alert:` block of a rule file, as text.
struct AlertBlock {
    name: String,
    text: String,
}

fn alert_blocks(rules_yml: &str) -> Vec<AlertBlock> {
    let mut blocks: Vec<AlertBlock> = Vec::new();
    for line in rules_yml.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            blocks.push(AlertBlock {
                name: name.trim().to_string(),
                text: String::new(),
            });
        } else if trimmed.starts_with("- name:") {
            // a new group: whatever follows belongs to no alert until the next one
            blocks.push(AlertBlock {
                name: String::new(),
                text: String::new(),
            });
        } else if let Some(block) = blocks.last_mut() {
            block.text.push_str(line);
            block.text.push('\n');
        }
    }
    blocks.retain(|b| !b.name.is_empty());
    blocks
}

/// GitHub's anchor for a Markdown heading.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// For every alert name in the promtool tests: (has a case where it must not fire, has a
/// case where it must fire).
fn tested_alerts(dir: &Path) -> BTreeMap<String, (bool, bool)> {
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in yaml_files(dir) {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line.strip_prefix("alertname:") else {
                continue;
            };
            let entry = seen.entry(name.trim().to_string()).or_default();
            let mut rest = lines[i + 1..]
                .iter()
                .filter(|l| !l.is_empty() && !l.starts_with('#'));
            match rest.next() {
                Some(&"exp_alerts: []") => entry.0 = true,
                Some(&"exp_alerts:")
                    if rest.next().is_some_and(|l| l.starts_with("- exp_labels:")) =>
                {
                    entry.1 = true;
                }
                _ => {}
            }
        }
    }
    seen
}

/// Every rule file of prometheus/rules/, one after the other: alerts and thresholds live
/// in alerts.yml and in calls-slo.yml.
fn all_rules_text(dir: &Path) -> String {
    yaml_files(&dir.join("rules"))
        .iter()
        .map(|f| read(f))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_alert_has_labels_annotations_a_runbook_and_tests() {
    let dir = prometheus_dir();
    let rules_yml = all_rules_text(&dir);
    let alerting_doc = read(&root().join("docs").join("alerting.md"));
    let anchors: BTreeSet<String> = alerting_doc
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| github_anchor(l.trim_start_matches('#')))
        .collect();
    let tested = tested_alerts(&dir.join("tests"));
    let blocks = alert_blocks(&rules_yml);
    assert!(!blocks.is_empty(), "no alert found in prometheus/rules/");

    let mut problems = Vec::new();
    for AlertBlock { name, text } in &blocks {
        let lower = name.to_lowercase();
        let has = |needle: &str| text.lines().any(|l| l.trim_start().starts_with(needle));
        if !["severity: critical", "severity: warning", "severity: info"]
            .iter()
            .any(|s| has(s))
        {
            problems.push(format!(
                "{name}: no severity label (critical, warning or info)"
            ));
        }
        for key in ["summary:", "description:"] {
            if !has(key) {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        if !has(&format!("runbook_url: {RUNBOOK_BASE}{lower}")) {
            problems.push(format!("{name}: runbook_url is not {RUNBOOK_BASE}{lower}"));
        }
        if !anchors.contains(&format!("runbook-{lower}")) {
            problems.push(format!(
                "{name}: docs/alerting.md has no heading \"Runbook: {name}\" (anchor runbook-{lower})"
            ));
        }
        match tested.get(name) {
            None => problems.push(format!("{name}: no promtool test")),
            Some((not_firing, firing)) => {
                if !not_firing {
                    problems.push(format!("{name}: no test case where it must not fire"));
                }
                if !firing {
                    problems.push(format!("{name}: no test case where it must fire"));
                }
            }
        }
    }
    let names: BTreeSet<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    for name in tested.keys() {
        if !names.contains(name.as_str()) {
            problems.push(format!(
                "the tests name an alert that does not exist: {name}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every threshold is one literal, marked `# T: name` on its line in a rule file (once in
/// all of them), and listed in the thresholds table of docs/alerting.md.
#[test]
fn every_threshold_is_one_literal_and_in_the_readme_table() {
    let dir = prometheus_dir();
    let rules_yml = all_rules_text(&dir);
    let alerting_doc = read(&root().join("docs").join("alerting.md"));
    let mut markers: BTreeMap<&str, usize> = BTreeMap::new();
    for name in rules_yml
        .lines()
        .filter_map(|l| l.split_once("# T: ").map(|(_, t)| t))
        .filter_map(|t| t.split_whitespace().next())
    {
        *markers.entry(name).or_default() += 1;
    }
    assert!(
        !markers.is_empty(),
        "no `# T: name` marker in prometheus/rules/"
    );
    let mut problems = Vec::new();
    for (name, count) in &markers {
        if *count != 1 {
            problems.push(format!(
                "threshold {name} is marked {count} times, not once"
            ));
        }
        if !alerting_doc.contains(&format!("`{name}`")) {
            problems.push(format!(
                "threshold {name} is missing from the thresholds table in docs/alerting.md"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboards_pass_the_checker() {
    let promtool = promtool();
    let script = root().join("dashboards").join("check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--promtool")
        .arg(&promtool)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 {}: {e} (install python3)",
                script.display()
            )
        });
    assert_success(&format!("python3 {}", script.display()), &out);
}

// The end-to-end run against a live exporter and a real Prometheus is in prometheus_e2e.rs.
