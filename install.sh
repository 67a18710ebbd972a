#!/bin/sh
# Installs Enclave on this machine as a systemd service, from a binary built or copied here.
#
#   sudo ./install.sh [--binary FILE] [--listen ADDR] [--no-systemd] [--no-start]
#
# Layout: binary /usr/local/bin/enclave, config /etc/enclave/enclave.toml (root:enclave 0640, never
# overwritten: a fresh copy goes to enclave.toml.dist beside it), data /var/lib/enclave (enclave:enclave
# 0750), unit /etc/systemd/system/enclave.service. Re-running it upgrades the binary in place, keeping the
# previous one as enclave.prev.
#
# Not yet: installing from a signed release bundle, pre-upgrade backups and automatic rollback; those
# come with release packaging.
set -eu

PREFIX_BIN=/usr/local/bin
ETC=/etc/enclave
DATA=/var/lib/enclave
UNIT_DIR=/etc/systemd/system
here=$(cd "$(dirname "$0")" && pwd)
binary=""
listen="127.0.0.1:8080"
use_systemd=1
start=1

fail() { echo "install.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || fail "--binary needs a file"; binary=$2; shift 2 ;;
    --listen) [ $# -ge 2 ] || fail "--listen needs an address"; listen=$2; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

# --- preflight
[ "$(id -u)" -eq 0 ] || fail "run as root (sudo ./install.sh)"
case "$(uname -m)" in
  x86_64|amd64) ;;
  *) fail "unsupported architecture $(uname -m): Enclave is built for x86_64 (x86-64-v3)" ;;
esac
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  fail "this CPU lacks AVX2/FMA; Enclave needs an x86-64-v3 CPU (Intel Haswell / AMD Excavator or newer)"
fi
if [ "$use_systemd" -eq 1 ]; then
  [ -d /run/systemd/system ] || fail "systemd is not running on this machine; use --no-systemd and start 'enclave serve' yourself"
fi
if [ -z "$binary" ]; then
  for candidate in "$here/enclave" "${CARGO_TARGET_DIR:-$HOME/.cache/enclave-target}/release/enclave" "$here/target/release/enclave"; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  fail "no enclave binary found; build it (cargo build --release) or pass --binary FILE"
fi
"$binary" version >/dev/null 2>&1 || fail "$binary does not run on this machine"
unit_src="$here/systemd/enclave.service"
[ -f "$unit_src" ] || unit_src="$here/enclave.service"
if [ "$use_systemd" -eq 1 ]; then
  [ -f "$unit_src" ] || fail "systemd unit not found next to install.sh (systemd/enclave.service)"
fi

# --- user and directories
if ! getent passwd enclave >/dev/null; then
  useradd --system --user-group --home-dir "$DATA" --shell /usr/sbin/nologin enclave
  echo "created system user enclave"
fi
install -d -m 0750 -o root -g enclave "$ETC"
install -d -m 0750 -o enclave -g enclave "$DATA"

# --- binary (atomic replace, previous kept)
if [ -x "$PREFIX_BIN/enclave" ]; then
  cp -p "$PREFIX_BIN/enclave" "$PREFIX_BIN/enclave.prev"
fi
install -m 0755 "$binary" "$PREFIX_BIN/enclave.new"
mv -f "$PREFIX_BIN/enclave.new" "$PREFIX_BIN/enclave"
echo "installed $("$PREFIX_BIN/enclave" version | head -n 1) to $PREFIX_BIN/enclave"

# --- config: written only if absent; never overwritten
dist="$ETC/enclave.toml.dist"
rm -f "$dist"
ENCLAVE_LISTEN="$listen" "$PREFIX_BIN/enclave" --data-dir "$DATA" init --config-only --config-out "$dist" >/dev/null
sed -i "s|^# listen = \"127.0.0.1:8080\"|listen = \"$listen\"|" "$dist"
chown root:enclave "$dist"; chmod 0640 "$dist"
if [ -f "$ETC/enclave.toml" ]; then
  echo "kept existing $ETC/enclave.toml (the current defaults are in $dist)"
else
  cp -p "$dist" "$ETC/enclave.toml"
  echo "wrote $ETC/enclave.toml"
fi

# --- service
if [ "$use_systemd" -eq 1 ]; then
  if ! cmp -s "$unit_src" "$UNIT_DIR/enclave.service"; then
    install -m 0644 "$unit_src" "$UNIT_DIR/enclave.service"
    systemctl daemon-reload
  fi
  systemctl enable enclave.service >/dev/null 2>&1
  if [ "$start" -eq 1 ]; then
    # Type=notify: restart returns once the server has migrated its databases and is listening.
    systemctl restart enclave.service || fail "the service did not start; see: journalctl -u enclave -n 50"
    systemctl is-active --quiet enclave.service || fail "the service stopped; see: journalctl -u enclave -n 50"
    port=${listen##*:}
    echo "Enclave is running: http://$(echo "$listen" | sed 's/^0\.0\.0\.0/<this-host>/')/  (port $port)"
  fi
else
  echo "Installed without systemd. Start it with:"
  echo "  runuser -u enclave -- $PREFIX_BIN/enclave --config $ETC/enclave.toml serve"
fi
echo "Check the installation any time with: enclave --config $ETC/enclave.toml doctor"
