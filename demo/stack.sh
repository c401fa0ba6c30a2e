#!/usr/bin/env bash
# The whole local stack without Docker: the simulated Wolkvox, a week of its history
# backfilled into Prometheus, Debian's prometheus with prometheus/rules/ (and
# prometheus-alertmanager when installed), and the exporter polling the simulator live.
# Prints the URLs; Ctrl-C or SIGTERM stops every process it started and removes its
# temporary directory.
#
#   demo/stack.sh                          # from the repository
#   PROM_PORT=19090 EXPORTER_PORT=20150 demo/stack.sh
#
# Environment: PROM_PORT (9090), EXPORTER_PORT (10150), SIM_PORT (10160),
# ALERTMANAGER_PORT (9093), SEED (42), HISTORY_DAYS (7), WOLKVOX_EXPORTER_BIN (else
# target/release, then target/debug, else `cargo build --release`), PROMETHEUS,
# PROMTOOL, ALERTMANAGER (binaries), KEEP=1 (keep the temporary directory).
#
# The simulator starts with a hang-up incident at acme's main menu that began 30
# minutes before: with the week of history as baseline,
# WolkvoxIVRRoutingPointHangupRateAboveBaseline holds from Prometheus's first rule
# evaluation, fires 10 minutes later (its `for:`) and resolves about an hour after the
# start. docs/demo.md says what fires when; src/simulator/incidents.rs has the arithmetic,
# tests/it/stack.rs and tests/it/start_incident.rs the measurements.
set -euo pipefail

PROM_PORT=${PROM_PORT:-9090}
EXPORTER_PORT=${EXPORTER_PORT:-10150}
SIM_PORT=${SIM_PORT:-10160}
ALERTMANAGER_PORT=${ALERTMANAGER_PORT:-9093}
SEED=${SEED:-42}
HISTORY_DAYS=${HISTORY_DAYS:-7}
PROMETHEUS=${PROMETHEUS:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
ALERTMANAGER=${ALERTMANAGER:-prometheus-alertmanager}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

for tool in "$PROMETHEUS" "$PROMTOOL" curl; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install prometheus curl)"
done

BIN=${WOLKVOX_EXPORTER_BIN:-}
if [[ -z $BIN ]]; then
    for b in "$ROOT/target/release/wolkvox-exporter" "$ROOT/target/debug/wolkvox-exporter"; do
        if [[ -x $b ]]; then BIN=$b; break; fi
    done
fi
if [[ -z $BIN ]]; then
    say "building the exporter (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet)
    BIN=$ROOT/target/release/wolkvox-exporter
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wolkvox-stack.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid
    trap - INT TERM EXIT
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # A failed start keeps its logs.
    if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'say "stopping"; exit 0' INT TERM

# Waits until URL answers 200, or the process PID is gone.
wait_http() {
    local url=$1 pid=$2 name=$3 i
    for i in $(seq 1 300); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$name stopped; its log: $WORK/$name.log:
$(tail -n 20 "$WORK/$name.log")"
        sleep 0.2
    done
    die "$name did not answer at $url within a minute; its log: $WORK/$name.log"
}

T0=$(date +%s)
since() { echo "$(( $(date +%s) - T0 ))s"; }

# 1. The simulator, and the exporter config it writes.
"$BIN" simulate --web.listen-address "127.0.0.1:$SIM_PORT" --seed "$SEED" \
    --history "$((HISTORY_DAYS + 1))d" --write-config "$WORK/exporter.yaml" \
    >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)
SIM_PID=$!
for i in $(seq 1 100); do
    [[ -s $WORK/exporter.yaml ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || die "the simulator stopped: $(tail -n 5 "$WORK/simulator.log")"
    sleep 0.1
done
[[ -s $WORK/exporter.yaml ]] || die "the simulator wrote no config"
# The live exporter starts where the backfill ends; the backfill samples every 5 minutes.
sed -i 's/^  backfill: .*/  backfill: 0s/' "$WORK/exporter.yaml"
sed 's/^  interval: .*/  interval: 5m/' "$WORK/exporter.yaml" >"$WORK/backfill.yaml"
say "simulator up at http://127.0.0.1:$SIM_PORT/ ($(since))"

# 2. History, in one file (a week is about 200 MB; promtool holds it in memory, 300 MB,
#    and reads it once per block: week-long blocks make that one pass), into the data
#    directory Prometheus will open. The range ends at the last 5-minute mark.
NOW=$(date +%s)
END=$(( NOW / 300 * 300 ))
START=$(( END - HISTORY_DAYS * 86400 - 3600 ))
from=$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "@$END" +%Y-%m-%dT%H:%M:%SZ)
"$BIN" backfill --config "$WORK/backfill.yaml" --from "$from" --to "$to" \
    --output "$WORK/history.om" >"$WORK/backfill.log" 2>&1 \
    || die "backfill $from..$to failed: $(tail -n 3 "$WORK/backfill.log")"
"$PROMTOOL" tsdb create-blocks-from openmetrics --quiet --max-block-duration=168h \
    "$WORK/history.om" "$WORK/prometheus-data" >>"$WORK/backfill.log" 2>&1 \
    || die "promtool failed: $(tail -n 3 "$WORK/backfill.log")"
rm -f "$WORK/history.om"
say "backfilled $(( (END - START) / 3600 )) hours into Prometheus blocks ($(since))"

# 3. Alertmanager, when installed.
ALERTING=""
if command -v "$ALERTMANAGER" >/dev/null; then
    cat >"$WORK/alertmanager.yml" <<EOF
route:
  receiver: nobody
  group_wait: 10s
receivers:
  - name: nobody
EOF
    "$ALERTMANAGER" --config.file="$WORK/alertmanager.yml" \
        --storage.path="$WORK/alertmanager-data" \
        --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" \
        --cluster.listen-address= >"$WORK/alertmanager.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" "$!" alertmanager
    ALERTING="alerting:
  alertmanagers:
    - static_configs:
        - targets: [\"127.0.0.1:$ALERTMANAGER_PORT\"]"
fi

# 4. Prometheus, with the project's rules, evaluated every 5 s (their windows are
#    minutes; this only makes an alert fire as soon as its `for:` has passed).
RULES=""
for f in "$ROOT"/prometheus/rules/*.yml; do RULES+="  - $f"$'\n'; done
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 15s
  evaluation_interval: 5s
rule_files:
$RULES$ALERTING
scrape_configs:
  - job_name: wolkvox
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
EOF
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/prometheus-data" \
    --storage.tsdb.retention.time=30d \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" "$!" prometheus
say "prometheus up ($(since))"

# 5. The exporter, live against the simulator.
"$BIN" --config "$WORK/exporter.yaml" --web.listen-address "127.0.0.1:$EXPORTER_PORT" \
    >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
EXPORTER_PID=$!
wait_http "http://127.0.0.1:$EXPORTER_PORT/-/ready" "$EXPORTER_PID" exporter
say "exporter up, first poll done ($(since))"

cat >&2 <<EOF

  wolkvox stack is running (everything under $WORK):
    exporter status   http://127.0.0.1:$EXPORTER_PORT/
    exporter metrics  http://127.0.0.1:$EXPORTER_PORT/metrics
    prometheus        http://127.0.0.1:$PROM_PORT/   (alerts: http://127.0.0.1:$PROM_PORT/alerts)
    simulated Wolkvox http://127.0.0.1:$SIM_PORT/   (config: $WORK/exporter.yaml)
$( [[ -n $ALERTING ]] && echo "    alertmanager      http://127.0.0.1:$ALERTMANAGER_PORT/" )
  An alert (WolkvoxIVRRoutingPointHangupRateAboveBaseline, acme's main menu) fires
  about 10 minutes after prometheus started. Ctrl-C stops it all.

EOF

# Until a signal, or until one of them stops.
while :; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid stopped; logs in $WORK"
    done
    sleep 1
done
