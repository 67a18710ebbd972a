#!/usr/bin/env bash
# install.sh's systemd code paths (the default mode), run by tests/packaging/run.sh as root INSIDE a
# throw-away overlay root: with REAL_SYSTEMD=1 under a real systemd booted in namespaces (the unit's
# sandboxing, Type=notify, the watchdog), otherwise with tests/packaging/fake-systemctl.py standing in
# for systemctl (start waits for the service's READY=1 like Type=notify; no sandboxing).
# Environment: as lifecycle.sh (DIST_*, V*_BIN, PORT, REPO).
set -uo pipefail

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }

[ -f /.enclave-packaging-overlay ] || { echo "lifecycle-systemd.sh: not inside the test overlay; refusing" >&2; exit 2; }
CONFIG=/etc/enclave/enclave.toml
DATA=/var/lib/enclave
log=/tmp/lifecycle-systemd-logs
mkdir -p "$log"
if [ "${REAL_SYSTEMD:-}" != 1 ]; then
  mkdir -p /run/systemd/system
  install -m 0755 "$REPO/tests/packaging/fake-systemctl.py" /usr/bin/systemctl
fi
main_pid() { systemctl show -p MainPID --value enclave.service; }

is() { [ "$1" = "$2" ] || { echo "    expected '$2', got '$1'" >&2; return 1; }; }
user_version() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True).execute("pragma user_version").fetchone()[0])' "$1"
}
schema() { "$1" version | sed -n "s/.*$2 \([0-9]*\).*/\1/p"; }
ready() {
  python3 -c 'import sys,urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=3).status == 200 else 1)' \
    "http://127.0.0.1:$PORT/readyz" 2>/dev/null
}
active_ready() { systemctl is-active --quiet enclave.service && ready; }
run() {
  local name=$1; shift
  local t0=$SECONDS
  rc=0
  sh "$@" >"$log/$name.log" 2>&1 || rc=$?
  echo "    ($name: exit $rc, $((SECONDS - t0))s)"
}
logged() { grep -q -- "$2" "$log/$1.log" || { echo "    '$2' not in the output of $1:" >&2; tail -n 8 "$log/$1.log" >&2; return 1; }; }
listing() {
  find /etc/enclave /usr/local/bin/enclave /usr/local/bin/enclave.prev /usr/local/lib/enclave /etc/systemd/system/enclave.service \
    "$DATA" -maxdepth 1 2>/dev/null | grep -v '\.db\|-wal$\|-shm$\|/cache$\|/tenants$' | sort | while read -r f; do
    if [ -f "$f" ]; then printf '%s %s %s\n' "$f" "$(stat -c '%U:%G %a %s' "$f")" "$(sha256sum "$f" | cut -c1-16)"
    else printf '%s %s\n' "$f" "$(stat -c '%U:%G %a %F' "$f")"; fi
  done
}
tarball() { (cd "$1" && ls enclave-*-linux-amd64.tar.gz); }

echo "== fresh install (systemd)"
run fresh "$DIST_V1/install.sh" --listen "127.0.0.1:$PORT" --bundle "$DIST_V1/$(tarball "$DIST_V1")"
check "fresh install exits 0" is "$rc" 0
check "unit installed as shipped" cmp -s /etc/systemd/system/enclave.service "$REPO/systemd/enclave.service"
check "unit enabled" systemctl is-enabled --quiet enclave.service
check "service running and ready" active_ready
check "'is running' and the URL printed" logged fresh "is running: http://127.0.0.1:$PORT/"
check "bootstrap instructions printed" logged fresh "First sign-in: user 'admin'"
pid1=$(main_pid)
if [ "${REAL_SYSTEMD:-}" = 1 ]; then
  exposure=$(systemd-analyze security --no-pager enclave.service 2>/dev/null | sed -n 's/.*Overall exposure level for enclave.service: //p')
  echo "    systemd-analyze security enclave.service (running): $exposure"
  check "the running service is sandboxed (NoNewPrivs, no capabilities, seccomp)" \
    sh -c "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid1/status && grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/$pid1/status && grep -q '^Seccomp:[[:space:]]*2' /proc/$pid1/status"
  check "the running service sees / read-only and /var/lib/enclave writable (ProtectSystem=strict)" \
    sh -c "awk '\$5 == \"/\" && \$6 ~ /^ro/' /proc/$pid1/mountinfo | grep -q . && awk '\$5 == \"/var/lib/enclave\" && \$6 ~ /^rw/' /proc/$pid1/mountinfo | grep -q ."
fi

echo "== second run: nothing changes, no restart"
listing >"$log/before.txt"
run again "$DIST_V1/install.sh" --bundle "$DIST_V1/$(tarball "$DIST_V1")"
listing >"$log/after.txt"
check "second run exits 0 with nothing to change" logged again "nothing to change"
check "second run changed no file" diff "$log/before.txt" "$log/after.txt"
check "the service was not restarted" is "$(main_pid)" "$pid1"
systemctl stop enclave.service
setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config "$CONFIG" tenant create "Before Upgrade" --id before-upgrade >"$log/tenant.log" 2>&1
check "a tenant created before the upgrade" grep -q before-upgrade "$log/tenant.log"
run stopped "$DIST_V1/install.sh" --bundle "$DIST_V1/$(tarball "$DIST_V1")"
check "a run with the service stopped starts it again" sh -c "systemctl is-active --quiet enclave.service"

echo "== upgrade v1 -> v2 (service running)"
run upgrade "$DIST_V2/install.sh" --bundle "$DIST_V2/$(tarball "$DIST_V2")"
check "upgrade exits 0" is "$rc" 0
check "  service stopped for the backup, started again" logged upgrade "stopping enclave.service"
check "  binary is v2, enclave.prev is v1" sh -c "cmp -s /usr/local/bin/enclave $V2_BIN && cmp -s /usr/local/bin/enclave.prev $V1_BIN"
check "  service running and ready" active_ready
check "  system.db at the v2 schema" is "$(user_version $DATA/system.db)" "$(schema "$V2_BIN" system)"
check "  pre-upgrade backup taken" sh -c "ls $DATA/backups/*pre-upgrade* >/dev/null"
check "  the tenant is still listed" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config $CONFIG tenant list 2>/dev/null | grep before-upgrade >/dev/null"

echo "== upgrade v2 -> v3 with a failing migration (service running)"
run failing "$DIST_V3/install.sh" --bundle "$DIST_V3/$(tarball "$DIST_V3")"
check "failing upgrade exits 1" is "$rc" 1
check "  rolled back" logged failing "rolled back to"
check "  binary is v2 again" cmp -s /usr/local/bin/enclave "$V2_BIN"
check "  the previous unit is back (v3 shipped a changed one)" cmp -s /etc/systemd/system/enclave.service "$REPO/systemd/enclave.service"
check "  the old service runs again and is ready" active_ready
check "  system.db still at the v2 schema" is "$(user_version $DATA/system.db)" "$(schema "$V2_BIN" system)"

echo "== a build of the same version whose server cannot start: rollback (no schema change, no restore)"
run broken "$DIST_V2_BROKEN/install.sh" --ready-timeout 60 --bundle "$DIST_V2_BROKEN/$(tarball "$DIST_V2_BROKEN")"
check "failed upgrade exits 1" is "$rc" 1
check "  rolled back without a restore" sh -c "grep -q 'rolled back to' $log/broken.log && ! grep -q 'restored the pre-upgrade' $log/broken.log"
check "  binary is v2 again" cmp -s /usr/local/bin/enclave "$V2_BIN"
check "  service running and ready" active_ready

echo "== uninstall"
run uninstall /usr/local/lib/enclave/install.sh --uninstall
check "uninstall exits 0" is "$rc" 0
check "  service stopped and disabled, unit removed" sh -c "! systemctl is-active --quiet enclave.service && ! systemctl is-enabled --quiet enclave.service && ! test -e /etc/systemd/system/enclave.service"
check "  data and config kept" sh -c "test -f $DATA/system.db && test -f $CONFIG"

if [ -n "${RELEASE_DIST:-}" ]; then
  echo "== the static release, air-gapped bundle, on a clean root (no network): a hardened running service"
  run purge "$DIST_V2/install.sh" --uninstall --purge
  run release "$RELEASE_DIST/install.sh" --listen "127.0.0.1:$PORT" --bundle "$RELEASE_DIST/$(cd "$RELEASE_DIST" && ls enclave-*-airgap.tar.gz)"
  check "release install exits 0" is "$rc" 0
  check "  service running and ready" active_ready
  check "  models installed" test -f $DATA/models/SmolLM2-135M-Instruct/SHA256SUMS
  check "  enclave doctor passes" setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config "$CONFIG" doctor
  check "  the web UI answers" python3 -c 'import sys,urllib.request; sys.exit(0 if b"<html" in urllib.request.urlopen(sys.argv[1], timeout=5).read().lower() else 1)' "http://127.0.0.1:$PORT/"
fi

echo "lifecycle-systemd: $failures failure(s); logs in the overlay at $log"
[ "$failures" -eq 0 ]
