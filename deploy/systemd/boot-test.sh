#!/usr/bin/env bash
# Boots deploy/systemd/wolkvox-exporter.service under a real systemd, on a machine where
# none runs (a container, CI), and checks that the hardened unit works: the credential
# is readable, the state directory writable, /proc enough for process_*, a kill -9 is
# restarted and resumes from the saved state, a stop is clean.
#
#   sudo deploy/systemd/boot-test.sh BINARY
#
# systemd runs as PID 1 of a new PID and mount namespace. Overlays over /etc, /var and
# /usr/local/bin keep every file it or the unit writes away from the machine's, and it
# boots only a target of the test's, so none of the machine's services start. The unit is
# installed as it is, plus a drop-in that changes only what the test needs: no
# sysinit.target (udev, sysctl, fstab), the log in a file, a free loopback port. The
# upstream is a stand-in on loopback that answers 404 ("no rows") to everything.
set -euo pipefail
bin=$(realpath "${1:?usage: $0 BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
ns_init=""
upstream=""
cleanup() {
  # Killing the namespace's PID 1 ends every process in it, and its mounts with it.
  [ -n "$ns_init" ] && kill -9 "$ns_init" 2>/dev/null || true
  [ -n "$upstream" ] && kill "$upstream" 2>/dev/null || true
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -n "$ns_init" ] && nsenter -t "$ns_init" -m -p cat /run/exporter.log >&2 2>/dev/null; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port=$(free_port)
up_port=$(free_port)
python3 - "$up_port" >/dev/null 2>&1 <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404); self.send_header("content-type", "application/json"); self.end_headers()
        self.wfile.write(b'{"code":404,"error":"no data"}')
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
upstream=$!

cat >"$work/inner.sh" <<EOF
set -euo pipefail
mount --make-rprivate /
for d in etc var usrlocalbin; do mkdir -p "$work/up/\$d" "$work/wk/\$d"; done
mount -t overlay overlay -o lowerdir=/etc,upperdir=$work/up/etc,workdir=$work/wk/etc /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=$work/up/var,workdir=$work/wk/var /var
mount -t overlay overlay -o lowerdir=/usr/local/bin,upperdir=$work/up/usrlocalbin,workdir=$work/wk/usrlocalbin /usr/local/bin
mount -t tmpfs tmpfs /run
# systemd moves the credentials' ramfs into place from a child namespace: / must share.
mount --make-rshared /
cp "$bin" /usr/local/bin/wolkvox-exporter
install -m 0644 "$here/wolkvox-exporter.service" /etc/systemd/system/
install -m 0644 -D "$here/config.yaml" /etc/wolkvox-exporter/config.yaml
sed -i 's|^    server: .*|    base_url: "http://127.0.0.1:$up_port"|' /etc/wolkvox-exporter/config.yaml
install -m 0600 /dev/null /etc/wolkvox-exporter/acme.token
echo boot-test-token >/etc/wolkvox-exporter/acme.token
mkdir -p /etc/systemd/system/wolkvox-exporter.service.d
printf '[Unit]\nDefaultDependencies=no\n[Service]\nStandardError=append:/run/exporter.log\nEnvironment=WOLKVOX_EXPORTER_LISTEN_ADDRESS=127.0.0.1:$port\n' \
  >/etc/systemd/system/wolkvox-exporter.service.d/boot-test.conf
printf '[Unit]\nDefaultDependencies=no\nWants=wolkvox-exporter.service\n' >/etc/systemd/system/boot-test.target
exec /lib/systemd/systemd --system --unit=boot-test.target
EOF
unshare --pid --fork --mount --mount-proc bash "$work/inner.sh" >"$work/systemd.out" 2>&1 &
launcher=$!
for _ in $(seq 50); do ns_init=$(pgrep -P "$launcher" || true); [ -n "$ns_init" ] && break; sleep 0.1; done
[ -n "$ns_init" ] || fail "systemd did not start: $(cat "$work/systemd.out")"
in_ns() { nsenter -t "$ns_init" -m -p "$@"; }
prop() { in_ns systemctl show -p "$1" --value wolkvox-exporter; }
wait_for() { # wait_for SECONDS WHAT COMMAND...
  local until=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do [ "$SECONDS" -lt "$until" ] || fail "$what"; sleep 0.2; done
}
# GET, body on stdout; fails unless the answer is 200.
get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$port$1"; }
ready() { get /-/ready; }
restarted() { [ "$(prop NRestarts)" = 1 ] && [ "$(prop ActiveState)" = active ]; }

wait_for 30 "not ready on 127.0.0.1:$port" ready
echo "ok   started under systemd $(in_ns systemctl --version | head -n 1 | cut -d' ' -f2) as $(prop User), ready after its first cycle"
metrics=$(get /metrics)
grep -q '^wolkvox_up{operation="acme"} 1$' <<<"$metrics" || fail "wolkvox_up is not 1 (token credential unread?)"
echo "ok   read its token from the credential, wolkvox_up{operation=\"acme\"} 1"
grep -q '^process_start_time_seconds ' <<<"$metrics" || fail "no process_start_time_seconds"
echo "ok   process_* metrics under ProtectProc=invisible"
state=$(in_ns stat -c '%a %U' /var/lib/private/wolkvox-exporter/acme.json) || fail "no state file"
[ "$state" = "600 wolkvox-exporter" ] || fail "state file: $state"
echo "ok   state saved in /var/lib/private/wolkvox-exporter/acme.json ($state)"
in_ns grep -q 'readable by every user' /run/exporter.log && fail "a token-file warning"
main=$(prop MainPID)
in_ns kill -9 "$main"
wait_for 20 "not restarted after kill -9" restarted
wait_for 10 "state not restored" in_ns grep -q 'msg="state restored" operation=acme' /run/exporter.log
echo "ok   restarted after kill -9 (NRestarts=1) and restored its state"
in_ns systemctl stop wolkvox-exporter
[ "$(prop ExecMainStatus)" = 0 ] && [ "$(prop Result)" = success ] || fail "stop: status $(prop ExecMainStatus), $(prop Result)"
echo "ok   stopped cleanly (exit 0)"
echo "systemd boot test: 6 checks ok"
