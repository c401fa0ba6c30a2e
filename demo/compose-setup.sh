#!/bin/sh
# The one-shot `setup` service of demo/compose.yaml: what demo/stack.sh does between
# starting the simulator and starting Prometheus, in POSIX sh for the busybox of the
# prom/prometheus image (which brings promtool; the compose file adds wolkvox-exporter).
#
#   1. From the config the simulator wrote (--write-config), the live exporter's config
#      (live.yaml: the simulator by service name, no startup backfill) and the backfill's
#      (backfill.yaml: one sample every 5 minutes), as stack.sh's sed lines make them.
#   2. Waits until the simulator answers there (`wolkvox-exporter check`).
#   3. Backfills HISTORY_DAYS days and 1 hour ending at the last 5-minute mark into
#      Prometheus blocks (promtool, week-long blocks), owned by Prometheus's user.
#
# A data directory that already holds blocks keeps them: a second `docker compose up`
# does not backfill over the first one's history (`docker compose down -v` starts anew).
# tests/it/compose.rs runs this file with Debian's busybox against a real simulator.
#
# Environment (the compose file sets the container's): WOLKVOX_DIR (where the simulator
# wrote exporter.yaml; live.yaml and backfill.yaml go beside it), PROMETHEUS_DATA,
# SIMULATOR_URL, HISTORY_DAYS (7; the simulator needs --history of one day more),
# WOLKVOX_EXPORTER_BIN, PROMTOOL, DATA_OWNER (uid:gid for the blocks, prom/prometheus's
# nobody; empty: leave them as written).
set -eu

DIR=${WOLKVOX_DIR:-/var/lib/wolkvox-exporter}
DATA=${PROMETHEUS_DATA:-/prometheus}
URL=${SIMULATOR_URL:-http://simulator:10160/}
HISTORY_DAYS=${HISTORY_DAYS:-7}
BIN=${WOLKVOX_EXPORTER_BIN:-wolkvox-exporter}
PROMTOOL=${PROMTOOL:-promtool}
DATA_OWNER=${DATA_OWNER-65534:65534}

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# 1. The simulator writes the URL it is reached at from inside its own container
#    (127.0.0.1); the exporter and the backfill reach it by service name.
[ -s "$DIR/exporter.yaml" ] || die "no $DIR/exporter.yaml: the simulator writes it (--write-config)"
{
    echo "# demo/compose-setup.sh: exporter.yaml with base_url $URL and backfill 0s"
    sed -e "s|^    base_url: .*|    base_url: \"$URL\"|" \
        -e 's/^  backfill: .*/  backfill: 0s/' "$DIR/exporter.yaml"
} >"$DIR/live.yaml.tmp"
mv "$DIR/live.yaml.tmp" "$DIR/live.yaml"
sed 's/^  interval: .*/  interval: 5m/' "$DIR/live.yaml" >"$DIR/backfill.yaml"

# 2. Up to a minute: the simulator answers while it starts, and fails 2% of requests.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
i=0
until "$BIN" check --config "$DIR/live.yaml" >"$WORK/check.log" 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 60 ] || die "the simulator does not answer at $URL: $(tail -n 3 "$WORK/check.log")"
    sleep 1
done
say "simulator answers at $URL"

# 3. History, in one file, into the data directory Prometheus will open.
mkdir -p "$DATA"
if ls "$DATA"/*/meta.json >/dev/null 2>&1; then
    say "$DATA already holds blocks: kept, no backfill (docker compose down -v for a new week)"
    exit 0
fi
NOW=$(date +%s)
END=$(( NOW / 300 * 300 ))
START=$(( END - HISTORY_DAYS * 86400 - 3600 ))
from=$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "@$END" +%Y-%m-%dT%H:%M:%SZ)
"$BIN" backfill --config "$DIR/backfill.yaml" --from "$from" --to "$to" \
    --output "$WORK/history.om" >"$WORK/backfill.log" 2>&1 ||
    die "backfill $from..$to failed: $(tail -n 3 "$WORK/backfill.log")"
"$PROMTOOL" tsdb create-blocks-from openmetrics --quiet --max-block-duration=168h \
    "$WORK/history.om" "$DATA" >>"$WORK/backfill.log" 2>&1 ||
    die "promtool failed: $(tail -n 3 "$WORK/backfill.log")"
[ -z "$DATA_OWNER" ] || chown -R "$DATA_OWNER" "$DATA"
say "backfilled $from..$to into $DATA"
