#!/usr/bin/env python3
"""Check the Grafana dashboards of wolkvox-exporter (standard library only).

    python3 dashboards/check.py [--promtool PATH]
    python3 dashboards/check.py --list-queries   # JSON for tools, e.g. tests/it/prometheus_e2e.rs

For every dashboards/*.json:
  - it parses, has no __inputs, schemaVersion >= 36, a unique uid;
  - the data source is the template variable ${datasource} (type datasource, query
    prometheus), on every panel and every query;
  - panel ids are unique, grid positions fit 24 columns and do not overlap;
  - every $variable a query uses is defined (or a Grafana built-in);
  - every PromQL expression parses: the template variables are replaced by sample values
    and each expression goes into a temporary rule file for `promtool check rules`;
  - every metric name is one the exporter serves (the metrics table of README.md) or one
    recorded in a rule file of prometheus/rules/. The rule files are held to the same list.

Exit status 0 when everything passes, 1 otherwise, 2 when promtool is missing.

--list-queries checks nothing: it prints, as JSON, every dashboard's template variables and
every panel's queries exactly as written (variables not substituted), found the same way
as the checks find them, so that a test can run them against a real Prometheus.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RULES_DIR = os.path.join(ROOT, "prometheus", "rules")

# The metrics wolkvox-exporter serves: the metrics tables of README.md and of the
# contract (the call families are fixed there).
EXPORTER_METRICS = {
    "wolkvox_ivr_interactions_total",
    "wolkvox_ivr_pulse_total",
    "wolkvox_ivr_menu_option_total",
    "wolkvox_ivr_transfers_total",
    "wolkvox_ivr_interaction_duration_seconds_bucket",
    "wolkvox_ivr_interaction_duration_seconds_sum",
    "wolkvox_ivr_interaction_duration_seconds_count",
    "wolkvox_ivr_rows_total",
    "wolkvox_ivr_rows_invalid_total",
    # calls (rows grouped by conn_id): the contract's "Calls" section
    "wolkvox_ivr_calls_total",
    "wolkvox_ivr_call_steps_bucket",
    "wolkvox_ivr_call_steps_sum",
    "wolkvox_ivr_call_steps_count",
    "wolkvox_ivr_call_duration_seconds_bucket",
    "wolkvox_ivr_call_duration_seconds_sum",
    "wolkvox_ivr_call_duration_seconds_count",
    "wolkvox_ivr_call_rows_late_total",
    "wolkvox_ivr_rows_without_call_total",
    "wolkvox_up",
    "wolkvox_last_window_end_timestamp_seconds",
    "wolkvox_last_success_timestamp_seconds",
    "wolkvox_poll_duration_seconds",
    "wolkvox_api_requests_total",
    "wolkvox_poll_errors_total",
    "wolkvox_window_splits_total",
    "wolkvox_ivr_rows_duplicate_total",
    "wolkvox_label_overflow_total",
    "wolkvox_exporter_build_info",
    "wolkvox_state_save_failures_total",
    "wolkvox_state_last_save_timestamp_seconds",
    "wolkvox_api_requests_today",
    "wolkvox_api_token_limit",
    "wolkvox_api_token_used_today",
    "wolkvox_ledger_rows",
}

# Sample values for the template variables, so that expressions can be parsed.
SAMPLE_VALUES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "window": "5m",
    "operation": "acme",
    "rp": "101",
    "job": "wolkvox",
}
BUILTINS = {k for k in SAMPLE_VALUES if k.startswith("__")}

VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
WOLKVOX_NAME_RE = re.compile(r"(?<![\w:])(wolkvox_[a-z0-9_]+)")
RECORDED_NAME_RE = re.compile(r"(?<![\w:])([a-z_]+:wolkvox_[a-z0-9_]+:[a-z0-9_]+)")


class Report:
    def __init__(self):
        self.failures = []
        self.checks = 0

    def check(self, ok, where, what):
        self.checks += 1
        if not ok:
            self.failures.append(f"{where}: {what}")
        return ok


def recorded_names():
    names = set()
    for path in sorted(glob.glob(os.path.join(RULES_DIR, "*.yml"))):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r"^\s*-?\s*record:\s*(\S+)\s*$", f.read(), re.M))
    return names


def substitute(expr, defined):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return SAMPLE_VALUES.get(name, "x") if name in defined or name in BUILTINS else m.group(0)
    return VAR_RE.sub(repl, expr)


def variables_used(expr):
    return {m.group(1) or m.group(2) or m.group(3) for m in VAR_RE.finditer(expr)}


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def is_datasource_var(ds):
    return isinstance(ds, dict) and ds.get("uid") == "${datasource}" and ds.get("type") == "prometheus"


def label_values_selector(query):
    """label_values(selector, label) -> selector; label_values(label) -> None."""
    m = re.match(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", query, re.S)
    return m.group(1) if m else None


def check_metric_names(report, where, text, known):
    for name in set(WOLKVOX_NAME_RE.findall(text)) | set(RECORDED_NAME_RE.findall(text)):
        report.check(name in known, where, f"unknown metric {name!r}")


def check_dashboard(path, report, known, exprs, uids):
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        report.check(False, name, f"does not parse: {e}")
        return 0
    report.check("__inputs" not in dash, name, "has __inputs: export without 'share externally'")
    report.check(dash.get("schemaVersion", 0) >= 36, name, "schemaVersion below 36")
    report.check(dash.get("id") is None, name, "id must be null in a file")
    uid = dash.get("uid")
    report.check(bool(uid) and uid not in uids, name, f"missing or duplicate uid {uid!r}")
    uids.add(uid)

    templ = dash.get("templating", {}).get("list", [])
    defined = {v.get("name") for v in templ}
    ds_vars = [v for v in templ if v.get("name") == "datasource"]
    report.check(len(ds_vars) == 1 and ds_vars[0].get("type") == "datasource"
                 and ds_vars[0].get("query") == "prometheus",
                 name, "needs one variable 'datasource' of type datasource, query prometheus")
    report.check("operation" in defined, name, "needs a variable 'operation'")
    for v in templ:
        where = f"{name} variable {v.get('name')}"
        if v.get("type") == "query":
            report.check(is_datasource_var(v.get("datasource")), where, "data source is not ${datasource}")
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            for used in variables_used(q):
                report.check(used in defined or used in BUILTINS, where, f"uses undefined ${used}")
            sel = label_values_selector(q)
            report.check(sel is not None, where, "query is not label_values(selector, label)")
            if sel is not None:
                check_metric_names(report, where, sel, known)
                exprs.append((where, substitute(sel, defined)))

    panels = list(all_panels(dash.get("panels", [])))
    ids = [p.get("id") for p in panels]
    report.check(len(ids) == len(set(ids)) and None not in ids, name, "panel ids missing or not unique")
    boxes = []
    count = 0
    for p in panels:
        where = f"{name} panel {p.get('id')} {p.get('title')!r}"
        g = p.get("gridPos", {})
        ok = all(isinstance(g.get(k), int) for k in "hwxy") and g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24
        if report.check(ok, where, f"bad gridPos {g}"):
            for other_where, o in boxes:
                overlap = (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"]
                           and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"])
                report.check(not overlap, where, f"overlaps {other_where}")
            boxes.append((where, g))
        if p.get("type") == "row":
            continue
        report.check(bool(p.get("title")), where, "no title")
        report.check(is_datasource_var(p.get("datasource")), where, "panel data source is not ${datasource}")
        interval = p.get("interval")
        if interval:
            for used in variables_used(interval):
                report.check(used in defined, where, f"min interval uses undefined ${used}")
        targets = p.get("targets", [])
        report.check(bool(targets), where, "no queries")
        refs = [t.get("refId") for t in targets]
        report.check(len(refs) == len(set(refs)), where, "duplicate refId")
        for t in targets:
            twhere = f"{where} query {t.get('refId')}"
            report.check(is_datasource_var(t.get("datasource")), twhere, "query data source is not ${datasource}")
            expr = t.get("expr", "")
            if not report.check(bool(expr.strip()), twhere, "empty expr"):
                continue
            for used in variables_used(expr):
                report.check(used in defined or used in BUILTINS, twhere, f"uses undefined ${used}")
            check_metric_names(report, twhere, expr, known)
            exprs.append((twhere, substitute(expr, defined)))
            count += 1
    return count


def promtool_parse(promtool, exprs, report):
    """Put every expression into one rule file and let promtool check it; on failure, find
    the culprits one by one."""
    def write(path, items):
        with open(path, "w", encoding="utf-8") as f:
            f.write("groups:\n  - name: dashboard-check\n    rules:\n")
            for i, (_, expr) in enumerate(items):
                f.write(f"      - record: dashboard_check:expr:{i}\n")
                f.write("        expr: " + json.dumps(expr) + "\n")

    def run(items):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "exprs.yml")
            write(path, items)
            p = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            return p.returncode == 0, (p.stdout + p.stderr).strip()

    ok, _ = run(exprs)
    report.checks += len(exprs)
    if ok:
        return
    for where, expr in exprs:
        one_ok, out = run([(where, expr)])
        if not one_ok:
            report.failures.append(f"{where}: PromQL does not parse: {expr}\n    {out}")


def list_queries():
    """Every dashboard's variables and panel queries, raw, as JSON on stdout."""
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
        variables = []
        for v in dash.get("templating", {}).get("list", []):
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            variables.append({
                "name": v.get("name"),
                "type": v.get("type"),
                "query": q,
                "multi": bool(v.get("multi")),
                "includeAll": bool(v.get("includeAll")),
                "allValue": v.get("allValue"),
                "current": (v.get("current") or {}).get("value"),
            })
        panels = []
        for p in all_panels(dash.get("panels", [])):
            if p.get("type") == "row":
                continue
            panels.append({
                "id": p.get("id"),
                "title": p.get("title"),
                "type": p.get("type"),
                "interval": p.get("interval") or None,
                "targets": [{
                    "refId": t.get("refId"),
                    "expr": t.get("expr", ""),
                    "instant": bool(t.get("instant")),
                } for t in p.get("targets", [])],
            })
        out.append({"file": os.path.basename(path), "title": dash.get("title"),
                    "variables": variables, "panels": panels})
    json.dump({"dashboards": out}, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--promtool", default=os.environ.get("PROMTOOL", "promtool"))
    ap.add_argument("--list-queries", action="store_true",
                    help="print every dashboard's variables and queries as JSON; check nothing")
    args = ap.parse_args()
    if args.list_queries:
        return list_queries()
    promtool = shutil.which(args.promtool)
    if promtool is None:
        print(f"promtool not found ({args.promtool}): install it with `apt-get install prometheus` "
              "(Debian) or set PROMTOOL", file=sys.stderr)
        return 2

    report = Report()
    known = EXPORTER_METRICS | recorded_names()
    exprs = []
    uids = set()
    files = sorted(glob.glob(os.path.join(HERE, "*.json")))
    report.check(bool(files), "dashboards", "no dashboard found")
    queries = 0
    panels = 0
    for path in files:
        queries += check_dashboard(path, report, known, exprs, uids)
        with open(path, encoding="utf-8") as f:
            try:
                panels += sum(1 for p in all_panels(json.load(f).get("panels", [])) if p.get("type") != "row")
            except ValueError:
                pass
    for path in sorted(glob.glob(os.path.join(RULES_DIR, "*.yml"))):
        with open(path, encoding="utf-8") as f:
            check_metric_names(report, os.path.relpath(path, ROOT), f.read(), known)
    if exprs:
        promtool_parse(promtool, exprs, report)

    for failure in report.failures:
        print("FAIL " + failure)
    print(f"{len(files)} dashboards, {panels} panels, {queries} queries (+{len(exprs) - queries} variable queries)")
    print(f"{report.checks - len(report.failures)} passed, {len(report.failures)} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
