#!/usr/bin/env bash
# Packaging tests: the static release build, the signed bundles, install.sh's refusals, and install.sh's
# whole lifecycle (fresh install, idempotent re-run, upgrade with migration, failing upgrades that roll
# back, uninstall, purge) run for real as root in a throw-away overlay of / with its own network
# namespace (only loopback: an air-gapped server): with --no-systemd, with a stand-in systemctl, and
# under a real systemd booted in namespaces where it can boot (else that stage says SKIP and why). The
# unit is also checked with systemd-analyze verify and security --offline.
#
#   tests/packaging/run.sh
#
# Environment:
#   PACKAGING_TEST_BIN_DIR       v1/enclave, v2/enclave, v3/enclave already built (default: build them with
#                             cargo in $CARGO_TARGET_DIR: test-license-key, + test-upgrade-migration,
#                             + test-failing-migration)
#   PACKAGING_TEST_RELEASE_BIN   a static release binary already built (default: packaging/build-release.sh)
#   PACKAGING_TEST_SKIP_RELEASE=1  skip the release build and its checks (local runs only; CI runs them)
#   PACKAGING_TEST_SKIP_SYSTEMD=1  skip the stage that boots a real systemd in namespaces (it is also
#                             skipped, with the reason, where systemd cannot boot)
#   ENCLAVE_TEST_MODELS       the default models (scripts/fetch-models.sh), for the air-gapped bundles
# Needs root (unshare, mount, chroot), python3, openssl, systemd-analyze. Prints PASS/FAIL lines; exits 1
# if any check failed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}"
models=${ENCLAVE_TEST_MODELS:-$HOME/.cache/enclave/test-data/models}
test_key="$repo/tests/fixtures/release/enclave-release-test.pem"
test_pub="$repo/tests/fixtures/release/enclave-release-test.pub"

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
started=$SECONDS
stage_t=$SECONDS
stage() { echo "== $* (previous stage: $((SECONDS - stage_t))s)"; stage_t=$SECONDS; }

[ "$(id -u)" -eq 0 ] || { echo "tests/packaging/run.sh: needs root (overlay roots, chroot)" >&2; exit 1; }
[ -d "$models" ] || { echo "tests/packaging/run.sh: no models in $models (scripts/fetch-models.sh)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/enclave-pkg-test.XXXXXX)
# The service user inside the overlays runs test binaries from here (the v2-broken wrapper execs v2).
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT

# Runs a command as root in a fresh overlay of / (writes land in a tmpfs and vanish), with its own
# mount, network (loopback only) and PID namespaces (whatever it leaves running dies with it).
in_overlay() {
  local t
  t=$(mktemp -d "$work/ovl.XXXXXX")
  REPO_DIR="$repo" WORK_DIR="$work" unshare --mount --net --pid --fork sh -c '
    set -e
    t=$1; shift
    mount -t tmpfs -o size=8g tmpfs "$t"
    mkdir -p "$t/u" "$t/w" "$t/m"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$t/u,workdir=$t/w" "$t/m"
    mount -t proc proc "$t/m/proc"
    mount --rbind /dev "$t/m/dev"
    mount --rbind /sys "$t/m/sys" 2>/dev/null || true
    # An overlay of / shows only the root file system: the checkout (debug builds read their assets
    # and migrations from it) and the work directory may be other mounts.
    for d in "$REPO_DIR" "$WORK_DIR"; do mkdir -p "$t/m$d"; mount --bind "$d" "$t/m$d"; done
    ip link set lo up
    touch "$t/m/.enclave-packaging-overlay"
    exec chroot "$t/m" "$@"' sh "$t" "$@"
  local rc=$?
  rmdir "$t" 2>/dev/null
  return $rc
}

# --- test binaries -----------------------------------------------------------------------------------
stage "test builds (v1, v2 with an extra migration, v3 with a failing one)"
bins="$work/bin"
if [ -n "${PACKAGING_TEST_BIN_DIR:-}" ]; then
  bins=$PACKAGING_TEST_BIN_DIR
else
  for spec in "v2 test-license-key,test-upgrade-migration" "v3 test-license-key,test-failing-migration" "v1 test-license-key"; do
    set -- $spec
    cargo build --locked --quiet --bin enclave --features "$2" || { fail "cargo build --features $2"; exit 1; }
    mkdir -p "$bins/$1"
    cp "$CARGO_TARGET_DIR/debug/enclave" "$bins/$1/enclave"
  done
  # The last build (v1) leaves target/debug/enclave as the ordinary test build.
fi
for v in v1 v2 v3; do
  [ -x "$bins/$v/enclave" ] || { fail "no test binary $bins/$v/enclave"; exit 1; }
  echo "  $v: $("$bins/$v/enclave" version | tr '\n' ' ')"
done

# --- static release build ----------------------------------------------------------------------------
stage "release build"
release_dist=""
if [ "${PACKAGING_TEST_SKIP_RELEASE:-}" = 1 ]; then
  echo "SKIP: release build and its checks (PACKAGING_TEST_SKIP_RELEASE=1)"
else
  release_dist="$work/dist-release"
  if [ -n "${PACKAGING_TEST_RELEASE_BIN:-}" ]; then
    rel=$PACKAGING_TEST_RELEASE_BIN
    packaging/make-bundle.sh --binary "$rel" --key "$test_key" --out "$release_dist" --models "$models" \
      >"$work/release-bundle.log" 2>&1 || { cat "$work/release-bundle.log"; fail "make-bundle of the release binary"; }
  else
    if packaging/build-release.sh --key "$test_key" --out "$release_dist" --models "$models" >"$work/release-build.log" 2>&1; then
      pass "packaging/build-release.sh"
    else
      tail -n 30 "$work/release-build.log"; fail "packaging/build-release.sh"
    fi
    rel="$release_dist/enclave"
    tar -xzOf "$release_dist"/enclave-*-linux-amd64.tar.gz --wildcards '*/enclave' >"$rel" 2>/dev/null && chmod +x "$rel"
  fi
  if [ -x "$rel" ]; then
    echo "  release binary: $(du -h "$rel" | cut -f1), $(file -b "$rel" 2>/dev/null | cut -d, -f1-4)"
    check "release binary: ldd says it is not dynamic" sh -c "ldd '$rel' 2>&1 | grep -q 'not a dynamic executable\|statically linked'"
    check "release binary: no ELF interpreter (static)" sh -c "! readelf -l '$rel' 2>/dev/null | grep -q 'INTERP'"
    check "release binary: 'enclave version' in an empty environment" sh -c "env -i '$rel' version | grep '^enclave ' >/dev/null"
    check "release binary: --help with no HOME or PATH" sh -c "env -i '$rel' --help >/dev/null"
    check "release tarball holds binary, config, unit, install.sh, licences" sh -c "tar -tzf $release_dist/enclave-*-linux-amd64.tar.gz | grep -c '/enclave$\|/enclave.toml$\|/enclave.service$\|/install.sh$\|THIRD-PARTY-LICENSES.md$\|MODELS.md$' | grep -qx 6"
    check "air-gapped release tarball holds the models" sh -c "tar -tzf $release_dist/enclave-*-airgap.tar.gz | grep -q 'models/SmolLM2-135M-Instruct/SHA256SUMS'"
    check "release SHA256SUMS signature verifies (release-sign.sh verify)" packaging/release-sign.sh verify --pub "$test_pub" "$release_dist/SHA256SUMS"
    # Name resolution from a statically linked glibc binary (getaddrinfo: files + dns built into libc.a).
    probe="$work/resolve-probe"
    if rustc --edition 2021 -O -C target-feature=+crt-static --target x86_64-unknown-linux-gnu \
        -o "$probe" tests/packaging/resolve-probe.rs 2>"$work/probe-build.log"; then
      check "static glibc: getaddrinfo resolves localhost (/etc/hosts)" env -i "$probe" localhost
      if getent hosts deb.debian.org >/dev/null 2>&1; then
        check "static glibc: getaddrinfo resolves a DNS name (deb.debian.org)" env -i "$probe" deb.debian.org
      else
        echo "SKIP: DNS name resolution (no DNS on this machine)"
      fi
    else
      cat "$work/probe-build.log"; fail "could not build the resolve probe"
    fi
    check "release bundle: fresh install offline in an empty root, server ready" \
      in_overlay sh -c "cd $release_dist && sh install.sh --no-systemd --bundle \$(ls enclave-*-airgap.tar.gz) >/tmp/i.log 2>&1 || { tail -n 20 /tmp/i.log; exit 1; }"
  else
    fail "no release binary"
  fi
fi

# --- bundles of the test builds ----------------------------------------------------------------------
stage "bundles of the test builds, signed with the test key"
python3 packaging/third-party-licenses.py "$work/licenses" 2>/dev/null || fail "third-party-licenses.py"
bundle() { # bundle NAME BINARY [--models DIR]
  local name=$1 bin=$2; shift 2
  packaging/make-bundle.sh --binary "$bin" --key "$test_key" --out "$work/$name" --licenses "$work/licenses" --fast "$@" \
    >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; fail "make-bundle $name"; return 1; }
}
bundle dist-v1 "$bins/v1/enclave" --models "$models"
bundle dist-v2 "$bins/v2/enclave"
# v3 also ships a changed unit: the rollback must put the previous one back.
{ cat systemd/enclave.service; echo "# changed by the v3 test bundle"; } >"$work/v3.service"
bundle dist-v3 "$bins/v3/enclave" --unit "$work/v3.service"
# v2 whose server cannot start (the upgrade has migrated the data by then): exercises the restore.
mkdir -p "$work/broken"
cat >"$work/broken/enclave" <<EOF
#!/bin/sh
for a in "\$@"; do
  if [ "\$a" = serve ]; then echo "enclave: error: simulated start-up failure (packaging test)" >&2; exit 1; fi
done
exec $bins/v2/enclave "\$@"
EOF
chmod +x "$work/broken/enclave"
bundle dist-v2-broken "$work/broken/enclave"
check "make-bundle warns loudly about a non-production key" grep -q "NOT the production release key" "$work/dist-v1.log"
check "the bundled install.sh pins the test key" grep -q '^RELEASE_KEY_ID="enclave-release-test"' "$work/dist-v1/install.sh"
check "the repository's install.sh pins the production key" sh -c "grep -q '^RELEASE_KEY_ID=\"enclave-release-2026\"' install.sh && grep -q \"\$(sed -n 2p packaging/release-keys/enclave-release-2026.pub)\" install.sh"
check "SHA256SUMS signature verifies" packaging/release-sign.sh verify --pub "$test_pub" "$work/dist-v1/SHA256SUMS"
check "SHA256SUMS lists both tarballs and install.sh" sh -c "wc -l <$work/dist-v1/SHA256SUMS | grep -qx 3"
check "the checksums match" sh -c "cd $work/dist-v1 && sha256sum -c --quiet SHA256SUMS"
check "the signature does not verify with the production key" sh -c "! packaging/release-sign.sh verify --pub packaging/release-keys/enclave-release-2026.pub $work/dist-v1/SHA256SUMS 2>/dev/null"

# --- refusals: nothing may be installed --------------------------------------------------------------
stage "install.sh refuses altered bundles before installing anything"
nothing_installed='! getent passwd enclave >/dev/null && ! test -e /etc/enclave && ! test -e /usr/local/bin/enclave && ! test -e /var/lib/enclave'
refused() { # refused DESCRIPTION DIR EXPECTED-MESSAGE [install.sh args]
  local d=$1 dir=$2 msg=$3; shift 3
  local out
  out=$(in_overlay sh -c "cd $dir && sh ./install.sh --no-systemd $* >/tmp/o.log 2>&1; rc=\$?; cat /tmp/o.log; [ \$rc -ne 0 ] && $nothing_installed && echo NOTHING-INSTALLED" 2>&1)
  if grep -q NOTHING-INSTALLED <<<"$out" && grep -q -- "$msg" <<<"$out"; then pass "$d"; else fail "$d"; sed 's/^/    /' <<<"$out" | tail -n 5; fi
}
t="$work/tampered-tarball"; cp -r "$work/dist-v2" "$t"
tb=$(cd "$t" && ls enclave-*.tar.gz)
printf 'X' | dd of="$t/$tb" bs=1 seek=100000 conv=notrunc status=none
refused "a tampered tarball is refused (checksum), nothing installed" "$t" "does not match" --bundle "$tb"
t="$work/tampered-sums"; cp -r "$work/tampered-tarball" "$t"
(cd "$t" && sha256sum "$tb" >SHA256SUMS.new && grep -v " $tb\$" SHA256SUMS >>SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS)
refused "a SHA256SUMS altered to match a tampered tarball is refused (signature), nothing installed" "$t" "not a valid signature" --bundle "$tb"
t="$work/no-sig"; cp -r "$work/dist-v2" "$t"; rm "$t/SHA256SUMS.sig"
refused "a bundle without SHA256SUMS.sig is refused" "$t" "SHA256SUMS.sig is missing" --bundle "$tb"
t="$work/prod-installer"; cp -r "$work/dist-v2" "$t"; cp install.sh "$t/install.sh"
refused "the production install.sh refuses a bundle signed with the test key" "$t" "not a valid signature" --bundle "$tb"
t="$work/renamed"; cp -r "$work/dist-v2" "$t"; mv "$t/$tb" "$t/enclave-9.9.9-linux-amd64.tar.gz"
refused "a renamed bundle is refused (not in SHA256SUMS)" "$t" "is not listed" --bundle enclave-9.9.9-linux-amd64.tar.gz

check "--url: downloads bundle, SHA256SUMS and .sig over HTTP, verifies and installs" in_overlay sh -c "
  (cd $work/dist-v2 && exec python3 -m http.server 18089 --bind 127.0.0.1 >/dev/null 2>&1) & web=\$!; sleep 1
  cd / && sh $work/dist-v2/install.sh --no-systemd --no-start --url http://127.0.0.1:18089/$tb >/tmp/u.log 2>&1; rc=\$?
  kill \$web
  [ \$rc -eq 0 ] && cmp -s /usr/local/bin/enclave $bins/v2/enclave || { tail -n 5 /tmp/u.log; exit 1; }"

# --- the lifecycle -----------------------------------------------------------------------------------
# The bundles and binaries every lifecycle script works with.
lifecycle_env=(DIST_V1="$work/dist-v1" DIST_V2="$work/dist-v2" DIST_V3="$work/dist-v3"
  DIST_V2_BROKEN="$work/dist-v2-broken" V1_BIN="$bins/v1/enclave" V2_BIN="$bins/v2/enclave"
  V3_BIN="$bins/v3/enclave" REPO="$repo" UNIT="$repo/systemd/enclave.service")
# run_lifecycle LABEL OUT COMMAND...: runs a lifecycle script, adds its FAIL lines to ours, and fails if
# it stopped early without saying why.
run_lifecycle() {
  local label=$1 out=$2 lc n
  shift 2
  "$@" | tee "$out"
  lc=$?
  n=$(grep -c '^FAIL' "$out")
  failures=$((failures + n))
  [ "$lc" -eq 0 ] || [ "$n" -gt 0 ] || fail "$label exited $lc"
  grep -q '^PASS: uninstall exits 0' "$out" || [ "$n" -gt 0 ] || fail "$label did not run to the end"
}

stage "install.sh lifecycle in an overlay root (--no-systemd, no network)"
run_lifecycle lifecycle.sh "$work/lifecycle.out" \
  in_overlay env "${lifecycle_env[@]}" PORT=18080 bash "$repo/tests/packaging/lifecycle.sh"

stage "install.sh lifecycle with systemd (fake systemctl) in an overlay root"
run_lifecycle lifecycle-systemd.sh "$work/lifecycle-systemd.out" \
  in_overlay env "${lifecycle_env[@]}" PORT=18081 bash "$repo/tests/packaging/lifecycle-systemd.sh"

# --- real systemd, when it can boot here ----------------------------------------------------------------
# systemd as PID 1 of new pid/mount/cgroup/net namespaces over an overlay root: the unit's sandboxing,
# Type=notify and the watchdog for real. Where systemd cannot boot (no cgroup2, a restricted
# container), this stage is skipped with the reason.
stage "install.sh with a real systemd (booted in namespaces over an overlay root)"
boot_systemd() { # boot_systemd DIR: prints the PID of the booted systemd (host PID namespace) or fails
  local t=$1 upid p=""
  REPO_DIR="$repo" WORK_DIR="$work" unshare --pid --mount --cgroup --net --uts --ipc --fork sh -c '
    set -e
    t=$1
    mount -t tmpfs -o size=8g tmpfs "$t"
    mkdir -p "$t/u" "$t/w" "$t/m"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$t/u,workdir=$t/w" "$t/m"
    mount -t proc proc "$t/m/proc"
    mount --rbind /dev "$t/m/dev"
    mount -t sysfs sysfs "$t/m/sys"
    mount -t cgroup2 cgroup2 "$t/m/sys/fs/cgroup"
    mount -t tmpfs tmpfs "$t/m/run"
    for d in "$REPO_DIR" "$WORK_DIR"; do mkdir -p "$t/m$d"; mount --bind "$d" "$t/m$d"; done
    touch "$t/m/.enclave-packaging-overlay"
    # tmp.mount would hide a checkout under /tmp behind a fresh tmpfs.
    for u in tmp.mount getty@tty1.service console-getty.service serial-getty@ttyS0.service systemd-networkd.service \
        systemd-resolved.service systemd-timesyncd.service cron.service ssh.service postgresql.service \
        slapd.service samba-ad-dc.service smbd.service nmbd.service winbind.service apt-daily.timer \
        apt-daily-upgrade.timer e2scrub_reap.service systemd-logind.service; do
      ln -sf /dev/null "$t/m/etc/systemd/system/$u"
    done
    export container=other
    exec chroot "$t/m" /lib/systemd/systemd --system --unit=multi-user.target --show-status=no' sh "$t" \
    >"$work/systemd-boot.log" 2>&1 &
  upid=$!
  echo "$upid" >"$work/systemd-unshare.pid"
  for _ in $(seq 1 60); do
    p=$(pgrep -P "$upid" | head -n 1)
    case "$(readlink "/proc/${p:-0}/exe" 2>/dev/null)" in
      */systemd/systemd)
        case "$(nsenter -t "$p" -a -r -w systemctl is-system-running 2>/dev/null)" in
          running|degraded) echo "$p"; return 0 ;;
        esac ;;
    esac
    kill -0 "$upid" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}
sd_dir=$(mktemp -d "$work/sd.XXXXXX")
if [ "${PACKAGING_TEST_SKIP_SYSTEMD:-}" = 1 ]; then
  echo "SKIP: real systemd (PACKAGING_TEST_SKIP_SYSTEMD=1)"
elif case "$repo/" in /tmp/*|/var/tmp/*|/home/*|/root/*) true ;; *) false ;; esac; then
  # Debug test builds read their migrations and assets from the checkout at run time, and the unit's
  # sandbox (PrivateTmp, ProtectHome) hides these places from the service.
  echo "SKIP: real systemd: the checkout $repo is under /tmp, /var/tmp, /home or /root, hidden from the sandboxed service"
elif ! sd_pid=$(boot_systemd "$sd_dir"); then
  echo "SKIP: systemd does not boot in a namespace here: $(tail -n 3 "$work/systemd-boot.log" | tr '\n' ' ')"
  kill -9 "$(cat "$work/systemd-unshare.pid")" 2>/dev/null
else
  echo "  systemd booted as PID 1 of a namespace (host PID $sd_pid): $(nsenter -t "$sd_pid" -a -r -w systemctl is-system-running)"
  run_lifecycle "lifecycle-systemd.sh (real systemd)" "$work/lifecycle-realsystemd.out" \
    nsenter -t "$sd_pid" -a -r -w env REAL_SYSTEMD=1 RELEASE_DIST="$release_dist" "${lifecycle_env[@]}" \
    PORT=18082 bash "$repo/tests/packaging/lifecycle-systemd.sh"
  kill -9 "$sd_pid" 2>/dev/null
fi
wait 2>/dev/null

# --- the unit ----------------------------------------------------------------------------------------
stage "systemd unit"
if command -v systemd-analyze >/dev/null; then
  score=$(systemd-analyze security --offline=true --no-pager systemd/enclave.service 2>/dev/null | sed -n 's/.*Overall exposure level for enclave.service: //p')
  echo "  systemd-analyze security --offline=true: $score"
  check "systemd-analyze security exposure at most 2.0 (got ${score%% *})" \
    awk -v s="${score%% *}" 'BEGIN { exit !(s != "" && s + 0 <= 2.0) }'
  for key in Type=notify WatchdogSec= User=enclave StateDirectory=enclave ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
      PrivateDevices=yes NoNewPrivileges=yes 'CapabilityBoundingSet=$' RestrictAddressFamilies= SystemCallFilter=@system-service \
      MemoryDenyWriteExecute=yes LimitNOFILE= TimeoutStopSec=; do
    grep -q "^$key" systemd/enclave.service || fail "unit lacks $key"
  done
  pass "unit has the required hardening keys"
else
  fail "systemd-analyze is not installed (apt-get install systemd)"
fi

stage "done"
echo "packaging tests: $failures failure(s) in $((SECONDS - started))s"
[ "$failures" -eq 0 ]
