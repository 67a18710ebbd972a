#!/usr/bin/env bash
# The install.sh lifecycle, run by tests/packaging/run.sh as root INSIDE a throw-away overlay root
# (chroot, own mount and network namespaces: only loopback, as on an air-gapped server). Never run it on
# a real machine: it installs, upgrades and purges Enclave in /usr/local, /etc and /var/lib.
#
# Environment (set by run.sh): DIST_V1 (v1 bundles with models), DIST_V2, DIST_V2_BROKEN (v2 whose
# server cannot start), DIST_V3 (a failing migration), V1_BIN, V2_BIN, V3_BIN, UNIT (systemd unit of
# the repo), PORT. Prints PASS/FAIL lines; exit 1 if any check failed.
set -uo pipefail

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: PASS if the command succeeds.
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }

[ -f /.enclave-packaging-overlay ] || { echo "lifecycle.sh: not inside the test overlay; refusing" >&2; exit 2; }
CONFIG=/etc/enclave/enclave.toml
DATA=/var/lib/enclave
log=/tmp/lifecycle-logs
mkdir -p "$log"

mode_of() { stat -c '%U:%G %a' "$1" 2>/dev/null; }
is() { [ "$1" = "$2" ] || { echo "    expected '$2', got '$1'" >&2; return 1; }; }
as_enclave() { setpriv --reuid=enclave --regid=enclave --init-groups env HOME="$DATA" "$@"; }
user_version() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True).execute("pragma user_version").fetchone()[0])' "$1"
}
schema() { "$1" version | sed -n "s/.*$2 \([0-9]*\).*/\1/p"; }
tenant_db() { find "$DATA/tenants" -maxdepth 2 -name tenant.db | head -n 1; }
# A listing of everything the installer owns: path, owner, mode, size, SHA-256.
listing() {
  find /etc/enclave /usr/local/bin/enclave /usr/local/bin/enclave.prev /usr/local/lib/enclave \
    /usr/local/share/doc/enclave "$DATA" /etc/passwd /etc/group 2>/dev/null | sort | while read -r f; do
    if [ -f "$f" ]; then
      printf '%s %s %s\n' "$f" "$(stat -c '%U:%G %a %s' "$f")" "$(sha256sum "$f" | cut -c1-16)"
    else
      printf '%s %s\n' "$f" "$(stat -c '%U:%G %a %F' "$f")"
    fi
  done
}
# Starts the installed server as the service would run, waits for /readyz, stops it. 0 when ready.
serve_check() {
  setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config "$CONFIG" serve >"$log/serve-$1.log" 2>&1 &
  local pid=$! ok=1
  for _ in $(seq 1 120); do
    if python3 -c 'import sys,urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' \
      "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then ok=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  [ "$ok" -eq 0 ] || { echo "    server log:" >&2; tail -n 10 "$log/serve-$1.log" >&2; }
  return "$ok"
}
# run NAME ARGS...: runs install.sh ARGS, output in $log/NAME.log; sets $rc.
run() {
  local name=$1; shift
  local t0=$SECONDS
  rc=0
  sh "$@" >"$log/$name.log" 2>&1 || rc=$?
  echo "    ($name: exit $rc, $((SECONDS - t0))s)"
}
logged() { grep -q -- "$2" "$log/$1.log" || { echo "    '$2' not in the output of $1:" >&2; tail -n 8 "$log/$1.log" >&2; return 1; }; }

echo "== fresh install from the air-gapped v1 bundle (--no-systemd)"
run fresh "$DIST_V1/install.sh" --no-systemd --listen "127.0.0.1:$PORT" --bundle "$DIST_V1/$(cd "$DIST_V1" && ls enclave-*-airgap.tar.gz)"
check "fresh install exits 0" is "$rc" 0
check "system user enclave with nologin shell" is "$(getent passwd enclave | cut -d: -f7)" /usr/sbin/nologin
check "/etc/enclave is root:enclave 0750" is "$(mode_of /etc/enclave)" "root:enclave 750"
check "enclave.toml is root:enclave 0640" is "$(mode_of $CONFIG)" "root:enclave 640"
check "enclave.toml.dist beside it" test -f $CONFIG.dist
check "backup passphrase root:enclave 0640, not empty" is "$(mode_of /etc/enclave/backup-passphrase)$(test -s /etc/enclave/backup-passphrase && echo +)" "root:enclave 640+"
check "config names the passphrase file" grep -q '^passphrase_file = "/etc/enclave/backup-passphrase"' $CONFIG
check "config has the --listen address" grep -q "^listen = \"127.0.0.1:$PORT\"" $CONFIG
check "/var/lib/enclave is enclave:enclave 0750" is "$(mode_of $DATA)" "enclave:enclave 750"
check "binary installed 0755" is "$(mode_of /usr/local/bin/enclave)" "root:root 755"
check "installed binary is v1" cmp -s /usr/local/bin/enclave "$V1_BIN"
check "verifier kept in /usr/local/lib/enclave/install.sh" cmp -s /usr/local/lib/enclave/install.sh "$DIST_V1/install.sh"
check "licences installed" test -f /usr/local/share/doc/enclave/licenses/THIRD-PARTY-LICENSES.md
check "bundled models installed and verified" sh -c "cd $DATA/models/all-MiniLM-L6-v2 && sha256sum -c --quiet SHA256SUMS && cd ../SmolLM2-135M-Instruct && sha256sum -c --quiet SHA256SUMS"
check "the server reached /readyz during the install (first start made system.db)" test -f $DATA/system.db
check "bootstrap password file written" test -f $DATA/bootstrap-admin.txt
check "bootstrap instructions printed" logged fresh "First sign-in: user 'admin'"
check "passphrase advice printed" logged fresh "Keep a copy of it offline"
check "URL printed" logged fresh "http://127.0.0.1:$PORT/"
check "the installed service starts and is ready" serve_check fresh
check "enclave doctor runs" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config $CONFIG doctor >$log/doctor.log 2>&1 || grep -qi 'model\|ok' $log/doctor.log"
if command -v systemd-analyze >/dev/null; then
  # The unit, verified where its ExecStart binary exists.
  install -m 0644 "$UNIT" /etc/systemd/system/enclave.service
  check "systemd-analyze verify enclave.service is clean" sh -c "systemd-analyze verify --man=no /etc/systemd/system/enclave.service >$log/verify.log 2>&1 && ! grep -q . $log/verify.log || { cat $log/verify.log >&2; false; }"
  rm -f /etc/systemd/system/enclave.service
fi
as_enclave /usr/local/bin/enclave --config "$CONFIG" tenant create "Before Upgrade" --id before-upgrade >"$log/tenant.log" 2>&1
check "a tenant created before the upgrades" grep -q before-upgrade "$log/tenant.log"

echo "== second run: nothing changes"
listing >"$log/before.txt"
run again "$DIST_V1/install.sh" --no-systemd --bundle "$DIST_V1/$(cd "$DIST_V1" && ls enclave-*-airgap.tar.gz)"
listing >"$log/after.txt"
check "second run exits 0" is "$rc" 0
check "second run says nothing to change" logged again "nothing to change"
check "second run changed no file, mode, owner or content" diff "$log/before.txt" "$log/after.txt"
echo "# edited by the administrator" >>$CONFIG
run keep "$DIST_V1/install.sh" --no-systemd --listen 0.0.0.0:1 --bundle "$DIST_V1/$(cd "$DIST_V1" && ls enclave-*-linux-amd64.tar.gz)"
check "an existing config is never overwritten" grep -q "^# edited by the administrator" $CONFIG
check "  (and --listen is ignored with a warning)" logged keep "never overwritten"

echo "== refused while a server runs on the data directory"
setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config "$CONFIG" serve >"$log/busy-serve.log" 2>&1 &
busy=$!
sleep 3
run busy "$DIST_V2/install.sh" --no-systemd --bundle "$DIST_V2/$(cd "$DIST_V2" && ls enclave-*.tar.gz)"
kill -TERM "$busy"; wait "$busy" 2>/dev/null
check "upgrade refused while a server runs (exit 1)" is "$rc" 1
check "  with a reason" logged busy "a server is still using"
check "  and the binary is unchanged" cmp -s /usr/local/bin/enclave "$V1_BIN"

echo "== upgrade v1 -> v2 whose server cannot start: automatic rollback with restore"
v1_sys=$(user_version $DATA/system.db)
had_key=$(test -f $DATA/instance-key.pk8 && echo yes)
run broken "$DIST_V2_BROKEN/install.sh" --no-systemd --ready-timeout 60 --bundle "$DIST_V2_BROKEN/$(cd "$DIST_V2_BROKEN" && ls enclave-*.tar.gz)"
check "failed upgrade exits 1" is "$rc" 1
check "  the pre-upgrade backup was taken" logged broken "pre-upgrade backup: "
check "  the migration ran" logged broken "migrating the databases"
check "  it says it rolled back" logged broken "rolled back to"
check "  binary is v1 again" cmp -s /usr/local/bin/enclave "$V1_BIN"
check "  system.db is back at the v1 schema ($v1_sys)" is "$(user_version $DATA/system.db)" "$v1_sys"
check "  the failed data directory is kept aside" sh -c "ls -d $DATA.failed-* >/dev/null"
check "  the pre-upgrade backup was restored" logged broken "restored the pre-upgrade backup"
check "  models and backups carried over" sh -c "test -d $DATA/models/SmolLM2-135M-Instruct && ls $DATA/backups/*pre-upgrade* >/dev/null"
if [ "$had_key" = yes ]; then check "  the instance key carried over" test -f $DATA/instance-key.pk8; fi
check "  the tenant is still there" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config $CONFIG tenant list | grep before-upgrade >/dev/null"
check "  v1 is ready again" serve_check rollback-restore

echo "== upgrade v1 -> v2 (one system and one tenant migration)"
backups_before=$(find $DATA/backups -name "*pre-upgrade*" 2>/dev/null | wc -l)
run upgrade "$DIST_V2/install.sh" --no-systemd --bundle "$DIST_V2/$(cd "$DIST_V2" && ls enclave-*.tar.gz)"
check "upgrade exits 0" is "$rc" 0
check "  upgraded message" logged upgrade "upgraded Enclave 0"
check "  binary is v2" cmp -s /usr/local/bin/enclave "$V2_BIN"
check "  enclave.prev is v1" cmp -s /usr/local/bin/enclave.prev "$V1_BIN"
check "  a new pre-upgrade backup exists" is "$(find $DATA/backups -name "*pre-upgrade*" | wc -l)" "$((backups_before + 1))"
newest=$(ls -t $DATA/backups/*pre-upgrade* | head -n 1)
check "  the backup verifies" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups env ENCLAVE_BACKUP_PASSPHRASE=\$(cat /etc/enclave/backup-passphrase) /usr/local/bin/enclave --config $CONFIG backup verify $newest >$log/verify-backup.log 2>&1"
check "  system.db at the v2 schema" is "$(user_version $DATA/system.db)" "$(schema "$V2_BIN" system)"
check "  tenant.db at the v2 schema" is "$(user_version "$(tenant_db)")" "$(schema "$V2_BIN" tenant)"
check "  the tenant created before is still listed" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config $CONFIG tenant list | grep before-upgrade >/dev/null"
check "  the config is untouched" grep -q "^# edited by the administrator" $CONFIG
check "  v2 is ready" serve_check v2
run again2 "$DIST_V2/install.sh" --no-systemd --bundle "$DIST_V2/$(cd "$DIST_V2" && ls enclave-*.tar.gz)"
check "  running it again: nothing to change" logged again2 "nothing to change"
run downgrade "$DIST_V1/install.sh" --no-systemd --bundle "$DIST_V1/$(cd "$DIST_V1" && ls enclave-*-linux-amd64.tar.gz)"
check "  a v1 bundle is refused as a downgrade (schema)" sh -c "[ $rc -eq 1 ] && grep -q 'could not open it' $log/downgrade.log"

echo "== upgrade v2 -> v3 with a failing migration: automatic rollback, data untouched"
listing | grep -v '/backups' >"$log/before-v3.txt"
run failing "$DIST_V3/install.sh" --no-systemd --bundle "$DIST_V3/$(cd "$DIST_V3" && ls enclave-*.tar.gz)"
check "failing upgrade exits 1" is "$rc" 1
check "  the migration failure is reported" logged failing "migration to"
check "  it names the backup" logged failing "pre-upgrade backup: "
check "  binary is v2 again" cmp -s /usr/local/bin/enclave "$V2_BIN"
check "  system.db still at the v2 schema" is "$(user_version $DATA/system.db)" "$(schema "$V2_BIN" system)"
check "  tenant.db still at the v2 schema" is "$(user_version "$(tenant_db)")" "$(schema "$V2_BIN" tenant)"
check "  the tenant is still listed" sh -c "setpriv --reuid=enclave --regid=enclave --init-groups /usr/local/bin/enclave --config $CONFIG tenant list | grep before-upgrade >/dev/null"
check "  v2 is ready again" serve_check v3-rollback

echo "== uninstall keeps data; --purge removes it"
run uninstall /usr/local/lib/enclave/install.sh --no-systemd --uninstall
check "uninstall exits 0" is "$rc" 0
check "  binaries removed" sh -c "! test -e /usr/local/bin/enclave && ! test -e /usr/local/bin/enclave.prev && ! test -e /usr/local/lib/enclave"
check "  /etc/enclave kept" test -f $CONFIG
check "  /var/lib/enclave kept" test -f $DATA/system.db
check "  user kept" sh -c "getent passwd enclave >/dev/null"
run purge "$DIST_V2/install.sh" --no-systemd --uninstall --purge
check "purge exits 0" is "$rc" 0
check "  /etc/enclave and /var/lib/enclave removed" sh -c "! test -e /etc/enclave && ! test -e $DATA"
check "  user enclave removed" sh -c "! getent passwd enclave"

echo "lifecycle: $failures failure(s); logs in the overlay at $log"
[ "$failures" -eq 0 ]
