#!/bin/sh
# Installs, upgrades or removes Enclave from a signed release bundle. Run as root; POSIX sh.
#
#   sh install.sh --bundle enclave-VERSION-linux-amd64[-airgap].tar.gz   install or upgrade, offline
#   sh install.sh --url https://host/path/enclave-VERSION-linux-amd64.tar.gz
#   sh install.sh                       the one bundle lying next to install.sh
#   sh install.sh --uninstall [--purge] remove the program; --purge also deletes config, data, user
#
# Options: --listen ADDR (first install only, e.g. 0.0.0.0:8080), --no-systemd (no unit; the server
# is started only for the health check), --no-start, --sums FILE / --sig FILE (default: SHA256SUMS and
# SHA256SUMS.sig next to the bundle), --ready-timeout SECONDS (default 180), --allow-downgrade.
#
# Nothing is installed before SHA256SUMS.sig verifies with the release key pinned below and the bundle's
# SHA-256 matches SHA256SUMS. Layout: /usr/local/bin/enclave (previous one kept as enclave.prev),
# /etc/enclave (root:enclave 0750; enclave.toml 0640, never overwritten, packaged defaults in
# enclave.toml.dist), /var/lib/enclave (enclave:enclave 0750), /etc/systemd/system/enclave.service,
# this script in /usr/local/lib/enclave/install.sh (the trusted verifier of the next bundle).
# An upgrade takes a pre-upgrade backup, migrates, restarts, checks /readyz, and rolls back on failure.
# Running it twice changes nothing. docs/install.md has the details.
set -eu
umask 022

# --- release public key (BEGIN: packaging/make-bundle.sh replaces this block when it signs with another key)
RELEASE_KEY_ID="enclave-release-2026"
RELEASE_KEY_NOTE=""
RELEASE_PUBKEY='-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAb6A3LlI7kCSEXIpM66AaR+Fg4f0XA+Rpj40thjYHxS0=
-----END PUBLIC KEY-----'
# --- release public key (END)

SVC=enclave
BIN_DIR=/usr/local/bin
BIN="$BIN_DIR/enclave"
LIB_DIR=/usr/local/lib/enclave
DOC_DIR=/usr/local/share/doc/enclave
ETC=/etc/enclave
CONFIG="$ETC/enclave.toml"
PASSFILE="$ETC/backup-passphrase"
DATA=/var/lib/enclave
UNIT=/etc/systemd/system/enclave.service

bundle="" url="" sums="" sig="" listen="" use_systemd=1 start=1 ready_timeout=180
action=install purge=0 allow_downgrade=0

say() { echo "install.sh: $*"; }
warn() { echo "install.sh: warning: $*" >&2; }
fail() { echo "install.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) [ $# -ge 2 ] || fail "--bundle needs a file"; bundle=$2; shift 2 ;;
    --url) [ $# -ge 2 ] || fail "--url needs an address"; url=$2; shift 2 ;;
    --sums) [ $# -ge 2 ] || fail "--sums needs a file"; sums=$2; shift 2 ;;
    --sig) [ $# -ge 2 ] || fail "--sig needs a file"; sig=$2; shift 2 ;;
    --listen) [ $# -ge 2 ] || fail "--listen needs an address"; listen=$2; shift 2 ;;
    --ready-timeout) [ $# -ge 2 ] || fail "--ready-timeout needs seconds"; ready_timeout=$2; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    --no-start) start=0; shift ;;
    --allow-downgrade) allow_downgrade=1; shift ;;
    --uninstall) action=uninstall; shift ;;
    --purge) purge=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
  esac
done
case "$ready_timeout" in ''|*[!0-9]*) fail "--ready-timeout needs a number of seconds" ;; esac
case "$listen" in *[!0-9A-Za-z.:\[\]-]*) fail "--listen: '$listen' is not an address like 0.0.0.0:8080" ;; esac
[ "$purge" -eq 0 ] || [ "$action" = uninstall ] || fail "--purge goes with --uninstall"
[ -z "$bundle" ] || [ -z "$url" ] || fail "give either --bundle or --url, not both"

# Absolute paths before we change directory.
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$(pwd)" "$1" ;; esac; }
here=$(cd "$(dirname "$0")" && pwd)
[ -z "$bundle" ] || bundle=$(abspath "$bundle")
[ -z "$sums" ] || sums=$(abspath "$sums")
[ -z "$sig" ] || sig=$(abspath "$sig")
cd /
# The service sees none of the caller's ENCLAVE_* settings; neither do the checks made here (the backup
# passphrase excepted: it may be given that way for the pre-upgrade backup).
for v in $(env | sed -n 's/^\(ENCLAVE_[A-Z0-9_]*\)=.*/\1/p'); do
  [ "$v" = ENCLAVE_BACKUP_PASSPHRASE ] || unset "$v"
done

# ---------------------------------------------------------------------------------------------------
# Helpers

have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as the service user (setpriv execs in place, so a background PID is the server's).
as_enclave() {
  if have setpriv; then
    setpriv --reuid="$SVC" --regid="$SVC" --init-groups env HOME="$DATA" USER="$SVC" LOGNAME="$SVC" "$@"
  else
    runuser -u "$SVC" -- env HOME="$DATA" USER="$SVC" LOGNAME="$SVC" "$@"
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Prints the value of KEY in [SECTION] of a TOML file (quoted strings unquoted), or nothing.
toml_value() {
  [ -f "$3" ] || return 0
  awk -v sec="$1" -v key="$2" '
    /^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*(#.*)?$/, "", s); cur = s; next }
    cur == sec && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v)
      if (v ~ /^"/) { sub(/^"/, "", v); sub(/".*$/, "", v) } else { sub(/[[:space:]]*(#.*)?$/, "", v) }
      print v; exit
    }' "$3"
}

# HTTP status code of a GET (000 when nothing answers). curl, else wget, else perl (always on Debian).
http_status() {
  if have curl; then
    curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true
  elif have wget; then
    wget -q -S -O /dev/null -T 5 -t 1 "$1" 2>&1 | awk '/^ *HTTP\// { c = $2 } END { print (c ? c : "000") }'
  else
    perl -MIO::Socket::INET -e '
      my ($h, $p, $path) = $ARGV[0] =~ m{^http://\[?([^\]/]+?)\]?:(\d+)(/.*)$} or do { print "000"; exit };
      my $s = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p, Timeout => 5) or do { print "000"; exit };
      print $s "GET $path HTTP/1.0\r\nHost: $h\r\n\r\n"; my $l = <$s>;
      print(($l // "") =~ m{^HTTP/\S+ (\d+)} ? $1 : "000");' "$1" 2>/dev/null || echo 000
  fi
}

# The local URL of the configured listen address (0.0.0.0 and [::] are reached through loopback).
listen_addr() {
  l=$(toml_value server listen "$CONFIG")
  echo "${l:-127.0.0.1:8080}"
}
local_url() {
  l=$(listen_addr)
  port=${l##*:}; host=${l%:*}
  case "$host" in 0.0.0.0|'') host=127.0.0.1 ;; '[::]'|'::') host='[::1]' ;; esac
  echo "http://$host:$port"
}
browse_url() {
  l=$(listen_addr)
  port=${l##*:}; host=${l%:*}
  case "$host" in
    0.0.0.0|'[::]'|'::'|'') h=$(hostname -f 2>/dev/null || hostname); echo "http://${h:-<this-host>}:$port/" ;;
    *) echo "http://$host:$port/" ;;
  esac
}

# The unit fixes the data directory (Environment=ENCLAVE_DATA_DIR); without systemd the config decides.
data_dir() {
  if [ "$use_systemd" -eq 1 ]; then echo "$DATA"; return; fi
  d=$(toml_value storage data_dir "$CONFIG")
  echo "${d:-$DATA}"
}

# Polls /readyz until it answers 200 (0), the server process PID (if given) dies, or the timeout (1).
wait_ready() {
  u="$(local_url)/readyz"; pid=${1:-}; waited=0
  while [ "$waited" -lt "$ready_timeout" ]; do
    [ "$(http_status "$u")" = 200 ] && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if [ "$use_systemd" -eq 1 ] && ! systemctl is-active --quiet enclave.service; then
      # Restart=on-failure may bring it back; give up only when it has stayed down.
      systemctl is-failed --quiet enclave.service && return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  return 1
}

# Is a server using the data directory? (its lock is held, or something answers on the listen port)
server_running() {
  dd=$(data_dir)
  if [ -f "$dd/enclave.lock" ] && have flock; then
    rc=0; flock -n -E 75 "$dd/enclave.lock" true || rc=$?
    [ "$rc" -eq 75 ] && return 0
  fi
  s=$(http_status "$(local_url)/healthz")
  [ "$s" != 000 ]
}

# --no-systemd: the server runs only for the health check, in the background, and is stopped again.
temp_pid=""
temp_start() {
  temp_log="$tmp/serve.log"
  # Not through as_enclave: a backgrounded function is a subshell, and $! must be the server itself.
  if have setpriv; then
    setpriv --reuid="$SVC" --regid="$SVC" --init-groups env HOME="$DATA" USER="$SVC" LOGNAME="$SVC" \
      "$BIN" --config "$CONFIG" --data-dir "$dd" serve >"$temp_log" 2>&1 9>&- &
  else
    runuser -u "$SVC" -- "$BIN" --config "$CONFIG" --data-dir "$dd" serve >"$temp_log" 2>&1 9>&- &
  fi
  temp_pid=$!
}
temp_stop() {
  [ -n "$temp_pid" ] || return 0
  kill -TERM "$temp_pid" 2>/dev/null || true
  n=0
  while kill -0 "$temp_pid" 2>/dev/null && [ "$n" -lt 90 ]; do sleep 1; n=$((n + 1)); done
  kill -KILL "$temp_pid" 2>/dev/null || true
  wait "$temp_pid" 2>/dev/null || true
  temp_pid=""
}

# Starts the installed binary and waits for /readyz. 0 when ready.
start_and_check() {
  if [ "$use_systemd" -eq 1 ]; then
    # Type=notify: start returns once the server has migrated its databases and listens.
    systemctl reset-failed enclave.service 2>/dev/null || true
    if ! systemctl start enclave.service; then return 1; fi
    wait_ready
  else
    temp_start
    if wait_ready "$temp_pid"; then temp_stop; return 0; fi
    temp_stop
    echo "--- last lines of the server's output:" >&2
    tail -n 15 "$temp_log" >&2 || true
    return 1
  fi
}

stop_server() {
  if [ "$use_systemd" -eq 1 ]; then
    systemctl stop enclave.service 2>/dev/null || true
  else
    temp_stop
  fi
}

# Atomically puts FILE at DEST with MODE (write beside it, then rename).
install_atomic() {
  install -m "$3" "$1" "$2.new"
  mv -f "$2.new" "$2"
}

tmp=""
cleanup() {
  rc=$?
  temp_stop
  [ -z "$tmp" ] || rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------
# Preflight

[ "$(id -u)" -eq 0 ] || fail "run as root (sudo sh install.sh ...)"
if [ "$action" = install ]; then
  case "$(uname -m)" in
    x86_64|amd64) ;;
    *) fail "unsupported architecture $(uname -m): Enclave is built for x86_64 (x86-64-v3)" ;;
  esac
  if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
    fail "this CPU lacks AVX2/FMA; Enclave needs an x86-64-v3 CPU (Intel Haswell / AMD Excavator or newer)"
  fi
fi
if [ "$use_systemd" -eq 1 ]; then
  [ -d /run/systemd/system ] || fail "systemd is not running on this machine; use --no-systemd and run 'enclave serve' under your own supervisor"
  have systemctl || fail "systemctl not found"
fi
for tool in sha256sum tar gzip install awk; do
  have "$tool" || fail "$tool is required"
done
have setpriv || have runuser || fail "setpriv or runuser (util-linux) is required"
# One install.sh at a time.
if have flock; then
  lockdir=/run/lock; [ -d "$lockdir" ] || lockdir=/tmp
  exec 9>"$lockdir/enclave-install.lock"
  flock -n 9 || fail "another install.sh is running (lock $lockdir/enclave-install.lock)"
fi

# ---------------------------------------------------------------------------------------------------
# Uninstall

if [ "$action" = uninstall ]; then
  backup_dir_cfg=$(toml_value backup dir "$CONFIG")
  dd=$(data_dir)
  if [ "$use_systemd" -eq 1 ]; then
    if [ -f "$UNIT" ]; then
      systemctl disable --now enclave.service >/dev/null 2>&1 || true
      rm -f "$UNIT"
      systemctl daemon-reload
      say "stopped and removed the enclave service"
    fi
  elif server_running; then
    fail "a server is using $dd (its lock is held or $(local_url) answers); stop it first"
  fi
  rm -f "$BIN" "$BIN.prev" "$BIN.new"
  rm -rf "$LIB_DIR" "$DOC_DIR"
  say "removed $BIN, $BIN.prev, $LIB_DIR, $DOC_DIR"
  if [ "$purge" -eq 1 ]; then
    rm -rf "$ETC" "$dd"
    say "purged $ETC and $dd (configuration, every tenant's data, models, and backups kept there)"
    if [ -n "$backup_dir_cfg" ] && [ -d "$backup_dir_cfg" ]; then
      case "$backup_dir_cfg" in
        "$dd"/*) ;;
        *) say "kept the backups in $backup_dir_cfg (outside the data directory); delete them yourself if you mean to" ;;
      esac
    fi
    if getent passwd "$SVC" >/dev/null; then userdel "$SVC" 2>/dev/null || true; fi
    if getent group "$SVC" >/dev/null; then groupdel "$SVC" 2>/dev/null || true; fi
    say "removed the system user $SVC"
  else
    say "kept $ETC (configuration, backup passphrase) and $dd (data, models, backups) and the user $SVC;"
    say "  reinstalling picks them up again; 'sh install.sh --uninstall --purge' deletes them"
  fi
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# The bundle: find it, verify it (signature, then checksum), and only then extract it

have openssl || fail "openssl is required to verify the release signature (Debian: apt-get install openssl; it comes with ca-certificates)"
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/enclave-install.XXXXXX")
chmod 0700 "$tmp"

if [ -n "$url" ]; then
  name=${url##*/}; base=${url%/*}
  mkdir "$tmp/download"
  for f in "$name" SHA256SUMS SHA256SUMS.sig; do
    say "downloading $base/$f"
    if have curl; then
      curl -fsSL --proto '=https,http' -o "$tmp/download/$f" "$base/$f" || fail "could not download $base/$f"
    elif have wget; then
      wget -q -O "$tmp/download/$f" "$base/$f" || fail "could not download $base/$f"
    else
      fail "--url needs curl or wget; or copy the bundle here and use --bundle"
    fi
  done
  bundle="$tmp/download/$name"
fi
if [ -z "$bundle" ]; then
  found=""; count=0
  for f in "$here"/enclave-*-linux-amd64*.tar.gz; do
    [ -f "$f" ] || continue
    found=$f; count=$((count + 1))
  done
  [ "$count" -gt 0 ] || fail "no bundle given: use --bundle FILE (enclave-VERSION-linux-amd64.tar.gz) or --url URL"
  [ "$count" -eq 1 ] || fail "several bundles lie next to install.sh; choose one with --bundle FILE"
  bundle=$found
fi
[ -f "$bundle" ] || fail "$bundle does not exist"
[ -n "$sums" ] || sums="$(dirname "$bundle")/SHA256SUMS"
[ -n "$sig" ] || sig="$sums.sig"
[ -f "$sums" ] || fail "$sums is missing: copy SHA256SUMS and SHA256SUMS.sig from the release together with the bundle"
[ -f "$sig" ] || fail "$sig is missing: copy SHA256SUMS.sig from the release together with the bundle"

if [ -n "$RELEASE_KEY_NOTE" ]; then
  warn "this install.sh trusts the key $RELEASE_KEY_ID: $RELEASE_KEY_NOTE"
fi
printf '%s\n' "$RELEASE_PUBKEY" >"$tmp/release.pub"
if ! openssl pkeyutl -verify -pubin -inkey "$tmp/release.pub" -rawin -in "$sums" -sigfile "$sig" >"$tmp/verify.out" 2>&1; then
  fail "$sig is not a valid signature of $sums by the Enclave release key $RELEASE_KEY_ID: the files were altered or do not come from an Enclave release. Nothing was installed."
fi
name=$(basename "$bundle")
expected=$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f) } f == n { print $1 }' "$sums")
[ -n "$expected" ] || fail "$name is not listed in the signed $sums (was it renamed?). Nothing was installed."
[ "$(printf '%s\n' "$expected" | wc -l)" -eq 1 ] || fail "$name is listed twice in $sums. Nothing was installed."
actual=$(sha256_of "$bundle")
[ "$actual" = "$expected" ] || fail "$name: SHA-256 $actual does not match $expected in the signed $sums: the download is damaged or altered. Nothing was installed."
say "verified $name (signature by $RELEASE_KEY_ID, SHA-256 $actual)"

mkdir "$tmp/bundle"
tar -xzf "$bundle" -C "$tmp/bundle" --no-same-owner || fail "cannot extract $name"
src=""
for d in "$tmp/bundle"/enclave-*; do [ -d "$d" ] && src=$d; done
[ -n "$src" ] || fail "$name does not contain an enclave-VERSION directory"
for f in enclave enclave.service enclave.toml install.sh; do
  [ -f "$src/$f" ] || fail "$name lacks $f"
done
chmod 0755 "$src/enclave"
new_info=$("$src/enclave" version 2>&1) || fail "the bundled binary does not run on this machine: $new_info"
new_version=$(printf '%s\n' "$new_info" | sed -n '1s/^enclave //p')
new_schema=$(printf '%s\n' "$new_info" | sed -n 's/^schema: //p')
[ -n "$new_version" ] || fail "the bundled binary did not report its version"

old_version="" old_schema=""
if [ -x "$BIN" ]; then
  old_info=$("$BIN" version 2>/dev/null || true)
  old_version=$(printf '%s\n' "$old_info" | sed -n '1s/^enclave //p')
  old_schema=$(printf '%s\n' "$old_info" | sed -n 's/^schema: //p')
fi
# A downgrade is refused: by version (semver precedence, build metadata after '+' ignored) and by
# schema (an older binary cannot open databases a newer one migrated).
old_prec=${old_version%%+*} new_prec=${new_version%%+*}
if [ -n "$old_version" ] && [ "$allow_downgrade" -eq 0 ] && [ "$old_prec" != "$new_prec" ] \
   && [ "$(printf '%s\n%s\n' "$old_prec" "$new_prec" | sort -V | head -n 1)" = "$new_prec" ]; then
  fail "$BIN is $old_version, newer than this bundle's $new_version. Nothing was changed. To go back, see 'Rollback' in docs/install.md (--allow-downgrade only for builds without schema changes)"
fi
schema_num() { printf '%s\n' "$1" | sed -n "s/.*$2 \([0-9][0-9]*\).*/\1/p"; }
for db in system tenant; do
  o=$(schema_num "$old_schema" "$db"); n=$(schema_num "$new_schema" "$db")
  if [ -n "$o" ] && [ -n "$n" ] && [ "$n" -lt "$o" ]; then
    fail "this bundle's $new_version knows $db schema $n, but the installed $old_version has migrated the data to $o: it could not open it. Nothing was changed. See 'Rollback' in docs/install.md"
  fi
done

# ---------------------------------------------------------------------------------------------------
# User, directories, configuration (each step only changes what is missing or different)

if ! getent group "$SVC" >/dev/null; then groupadd --system "$SVC"; fi
if ! getent passwd "$SVC" >/dev/null; then
  useradd --system --gid "$SVC" --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
    --comment "Enclave private AI platform" "$SVC"
  say "created the system user $SVC"
fi
install -d -m 0750 -o root -g "$SVC" "$ETC"
install -d -m 0750 -o "$SVC" -g "$SVC" "$DATA"

fresh_config=0
if [ ! -f "$CONFIG" ]; then
  fresh_config=1
  if [ ! -f "$PASSFILE" ]; then
    (umask 077 && openssl rand -base64 33 >"$PASSFILE.new")
    chown root:"$SVC" "$PASSFILE.new"; chmod 0640 "$PASSFILE.new"
    mv -f "$PASSFILE.new" "$PASSFILE"
    say "wrote a random backup passphrase to $PASSFILE"
  fi
  cfg="$tmp/enclave.toml"
  # The packaged defaults, plus the listen address and the backup passphrase file.
  awk -v listen="$listen" -v pass="$PASSFILE" '
    listen != "" && /^# listen = / && !l { print "listen = \"" listen "\""; l = 1; next }
    /^[[:space:]]*\[backup\][[:space:]]*$/ { print; print "# Written by install.sh: the backup passphrase (keep a copy of it offline)."; print "passphrase_file = \"" pass "\""; next }
    { print }' "$src/enclave.toml" >"$cfg"
  if [ -n "$listen" ] && ! grep -q "^listen = \"$listen\"" "$cfg"; then
    fail "could not set listen = \"$listen\" in the packaged configuration"
  fi
  chown root:"$SVC" "$cfg"; chmod 0640 "$cfg"
  mv -f "$cfg" "$CONFIG"
  say "wrote $CONFIG"
elif [ -n "$listen" ]; then
  warn "$CONFIG exists and is never overwritten: --listen is ignored; edit [server] listen there"
fi
# The packaged defaults of this version, for comparison with the (kept) configuration.
if ! cmp -s "$src/enclave.toml" "$CONFIG.dist"; then
  install -m 0640 -o root -g "$SVC" "$src/enclave.toml" "$CONFIG.dist.new"
  mv -f "$CONFIG.dist.new" "$CONFIG.dist"
fi

dd=$(data_dir)
# Bundled models (the air-gapped bundle): installed only where that model is not present yet.
if [ -d "$src/models" ]; then
  install -d -m 0750 -o "$SVC" -g "$SVC" "$dd/models"
  for m in "$src/models"/*/; do
    [ -d "$m" ] || continue
    mname=$(basename "$m")
    [ -e "$dd/models/$mname" ] && continue
    (cd "$m" && sha256sum -c --quiet SHA256SUMS) || fail "the bundled model $mname does not match its SHA256SUMS"
    rm -rf "$dd/models/.install-$mname"
    cp -R "$m" "$dd/models/.install-$mname"
    chown -R "$SVC:$SVC" "$dd/models/.install-$mname"
    chmod -R u=rwX,g=rX,o= "$dd/models/.install-$mname"
    mv "$dd/models/.install-$mname" "$dd/models/$mname"
    say "installed the model $mname into $dd/models"
  done
fi

# This script (the verifier of the next bundle), the licences.
# The previous verifier and unit are kept in $tmp until the end: a rolled-back upgrade puts them back.
install -d -m 0755 "$LIB_DIR"
if ! cmp -s "$src/install.sh" "$LIB_DIR/install.sh"; then
  [ ! -f "$LIB_DIR/install.sh" ] || cp -p "$LIB_DIR/install.sh" "$tmp/prev-install.sh"
  install_atomic "$src/install.sh" "$LIB_DIR/install.sh" 0755
fi
if [ -d "$src/licenses" ] && ! diff -r "$src/licenses" "$DOC_DIR/licenses" >/dev/null 2>&1; then
  rm -rf "$DOC_DIR.new"
  install -d -m 0755 "$DOC_DIR.new"
  cp -R "$src/licenses" "$DOC_DIR.new/licenses"
  [ ! -f "$src/README.txt" ] || cp "$src/README.txt" "$DOC_DIR.new/"
  chmod -R a+rX,go-w "$DOC_DIR.new"
  rm -rf "$DOC_DIR"; mv "$DOC_DIR.new" "$DOC_DIR"
fi

unit_changed=0
if [ "$use_systemd" -eq 1 ] && ! cmp -s "$src/enclave.service" "$UNIT"; then
  [ ! -f "$UNIT" ] || cp -p "$UNIT" "$tmp/prev-unit"
  install_atomic "$src/enclave.service" "$UNIT" 0644
  systemctl daemon-reload
  unit_changed=1
  say "installed $UNIT"
fi
if [ "$use_systemd" -eq 1 ] && ! systemctl is-enabled --quiet enclave.service 2>/dev/null; then
  systemctl enable enclave.service >/dev/null 2>&1
  say "enabled enclave.service (starts at boot)"
fi

# ---------------------------------------------------------------------------------------------------
# The binary: first install, nothing to do, or an upgrade with backup, migration and rollback

print_done() {
  url_shown=$(browse_url)
  echo
  if [ "$use_systemd" -eq 1 ]; then
    echo "Enclave $new_version is running: $url_shown"
  else
    echo "Enclave $new_version is installed: $url_shown once started"
  fi
  case "$(listen_addr)" in
    127.*|localhost:*|'[::1]':*)
      echo "  It listens on loopback only. From another machine: a TLS reverse proxy (docs/install.md), an SSH"
      echo "  tunnel (ssh -L 8080:127.0.0.1:8080 this-host), or set [server] listen = \"0.0.0.0:8080\" in $CONFIG." ;;
  esac
  if [ -f "$dd/bootstrap-admin.txt" ]; then
    echo "  First sign-in: user 'admin' with the one-time password in $dd/bootstrap-admin.txt"
    echo "  (sudo cat $dd/bootstrap-admin.txt); you must choose a new password at the first sign-in."
  fi
  if [ "$fresh_config" -eq 1 ]; then
    echo "  Backups are encrypted with the passphrase in $PASSFILE. Keep a copy of it offline:"
    echo "  without it no backup can be restored."
  fi
  if [ "$use_systemd" -eq 1 ]; then
    echo "  Logs: journalctl -u enclave    Status: systemctl status enclave"
  else
    echo "  Installed without systemd; the server was started for the health check and stopped again."
    echo "  Run it under your supervisor as: setpriv --reuid=$SVC --regid=$SVC --init-groups $BIN --config $CONFIG serve"
  fi
  echo "  Check the installation: enclave --config $CONFIG doctor"
}


if [ -x "$BIN" ] && cmp -s "$src/enclave" "$BIN"; then
  # Same binary: make sure it runs, change nothing else.
  if [ "$start" -eq 1 ] && [ "$use_systemd" -eq 1 ]; then
    if [ "$unit_changed" -eq 1 ] && systemctl is-active --quiet enclave.service; then
      say "the unit changed: restarting enclave.service"
      systemctl restart enclave.service || fail "enclave.service did not restart; see journalctl -u enclave -n 50"
    elif ! systemctl is-active --quiet enclave.service; then
      start_and_check || fail "enclave.service did not become ready; see journalctl -u enclave -n 50"
    fi
    wait_ready || fail "enclave.service is not ready at $(local_url)/readyz; see journalctl -u enclave -n 50"
  elif [ "$start" -eq 1 ] && [ ! -f "$dd/system.db" ] && ! server_running; then
    start_and_check || fail "the server did not become ready at $(local_url)/readyz"
  fi
  say "Enclave $new_version is installed and up to date; nothing to change"
  [ "$start" -eq 0 ] || print_done
  exit 0
fi

if [ -z "$old_version" ]; then
  # First installation of the binary.
  install_atomic "$src/enclave" "$BIN" 0755
  say "installed Enclave $new_version to $BIN"
  if [ "$start" -eq 1 ]; then
    if [ "$use_systemd" -eq 0 ] && server_running; then
      fail "something already answers on $(local_url) or holds $dd/enclave.lock; stop it, then run install.sh again"
    fi
    start_and_check || fail "Enclave did not become ready at $(local_url)/readyz$( [ "$use_systemd" -eq 1 ] && echo '; see journalctl -u enclave -n 50')"
    print_done
  else
    say "not started (--no-start)"
  fi
  exit 0
fi

# --- upgrade (or reinstall of a different build)
say "upgrading Enclave $old_version -> $new_version"

was_active=0
if [ "$use_systemd" -eq 1 ] && systemctl is-active --quiet enclave.service; then
  was_active=1
  say "stopping enclave.service"
  systemctl stop enclave.service
fi
restart_old() {
  if [ "$use_systemd" -eq 1 ] && [ "$was_active" -eq 1 ]; then
    systemctl start enclave.service || warn "enclave.service did not start again; see journalctl -u enclave -n 50"
  fi
}
if server_running; then
  restart_old
  fail "a server is still using $dd (its lock is held or $(local_url) answers); stop it, then run install.sh again. Nothing was changed."
fi

# 1. pre-upgrade backup, with the binary that wrote the data
backup_path=""
if [ -f "$dd/system.db" ]; then
  say "taking the pre-upgrade backup with Enclave $old_version"
  rc=0
  out=$(as_enclave "$BIN" --config "$CONFIG" --data-dir "$dd" backup now --pre-upgrade 2>&1) || rc=$?
  if [ "$rc" -eq 2 ]; then
    # A binary older than --pre-upgrade: a manual backup (never pruned either).
    rc=0
    out=$(as_enclave "$BIN" --config "$CONFIG" --data-dir "$dd" backup now 2>&1) || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    restart_old
    printf '%s\n' "$out" >&2
    fail "the pre-upgrade backup failed, so nothing was changed (an upgrade never runs without one). Set [backup] passphrase_file in $CONFIG (e.g. $PASSFILE, root:$SVC 0640) or ENCLAVE_BACKUP_PASSPHRASE, then run install.sh again"
  fi
  backup_path=$(printf '%s\n' "$out" | sed -n 's/^backup written: \(.*\) (.*$/\1/p' | head -n 1)
  [ -n "$backup_path" ] || backup_path=$(printf '%s\n' "$out" | sed -n 's/^backup written: \([^ ]*\).*$/\1/p' | head -n 1)
  # shellcheck disable=SC2015 # fail exits
  [ -n "$backup_path" ] && [ -f "$backup_path" ] || { restart_old; fail "the pre-upgrade backup did not say where it wrote its file: $out"; }
  say "pre-upgrade backup: $backup_path"
fi

# 2. the new binary in place, the previous one kept as enclave.prev
rm -f "$BIN.prev.new"
ln "$BIN" "$BIN.prev.new" 2>/dev/null || cp -p "$BIN" "$BIN.prev.new"
mv -f "$BIN.prev.new" "$BIN.prev"
install_atomic "$src/enclave" "$BIN" 0755
say "installed Enclave $new_version to $BIN (the previous binary is $BIN.prev)"

passphrase_opt() {
  pf=$(toml_value backup passphrase_file "$CONFIG")
  if [ -n "$pf" ]; then echo "--passphrase-file=$pf"; fi
}

# Puts the previous binary back, restores the pre-upgrade backup when the data may be at the new
# schema, starts the old version again, and exits 1.
rollback() {
  reason=$1 restore=$2
  warn "$reason"
  warn "rolling back to Enclave $old_version"
  stop_server
  install_atomic "$BIN.prev" "$BIN" 0755
  # The previous version's unit and installer, if this bundle replaced them.
  [ ! -f "$tmp/prev-install.sh" ] || install_atomic "$tmp/prev-install.sh" "$LIB_DIR/install.sh" 0755
  if [ -f "$tmp/prev-unit" ]; then
    install_atomic "$tmp/prev-unit" "$UNIT" 0644
    systemctl daemon-reload
  fi
  kept=""
  if [ "$restore" -eq 1 ] && [ -n "$backup_path" ]; then
    ts=$(date -u +%Y%m%dT%H%M%SZ)
    restored="$dd.rollback-$ts"; kept="$dd.failed-$ts"
    install -d -m 0750 -o "$SVC" -g "$SVC" "$restored"
    po=$(passphrase_opt)
    # shellcheck disable=SC2086 # po is one option or nothing
    if ! as_enclave "$BIN" --config "$CONFIG" --data-dir "$dd" backup restore "$backup_path" --into "$restored" $po; then
      rm -rf "$restored"
      fail "the rollback could not restore $backup_path; $BIN is $old_version again but the data in $dd may be at the new schema: restore the backup by hand (docs/install.md, Rollback)"
    fi
    mv "$dd" "$kept"
    mv "$restored" "$dd"
    # What a backup does not carry: the models, the instance key, the backups themselves.
    for keep in models backups; do
      if [ -e "$kept/$keep" ] && [ ! -e "$dd/$keep" ]; then mv "$kept/$keep" "$dd/$keep"; fi
    done
    for keep in instance-key.pk8 bootstrap-admin.txt; do
      if [ -e "$kept/$keep" ] && [ ! -e "$dd/$keep" ]; then cp -p "$kept/$keep" "$dd/$keep"; fi
    done
    say "restored the pre-upgrade backup into $dd; the data the failed upgrade left is kept in $kept"
  fi
  if [ "$start" -eq 1 ] || [ "$was_active" -eq 1 ]; then
    if start_and_check; then
      say "Enclave $old_version is running again at $(local_url)/"
    else
      warn "Enclave $old_version did not become ready after the rollback either; see journalctl -u enclave -n 50"
    fi
  fi
  fail "the upgrade to $new_version failed and was rolled back to $old_version${backup_path:+ (pre-upgrade backup: $backup_path)}${kept:+; failed data kept in $kept}"
}

# 3. migrations, run by the new binary while nothing else has the data directory
if [ -f "$dd/system.db" ]; then
  say "migrating the databases"
  if [ -n "$backup_path" ]; then
    set -- --backup-taken "$backup_path"
  else
    set -- --no-backup
  fi
  rc=0
  as_enclave "$BIN" --config "$CONFIG" --data-dir "$dd" migrate "$@" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # A failed migration leaves every database as it was (trial run first): no restore needed.
    rollback "the migration to $new_version failed (exit $rc); the databases were left unchanged" 0
  fi
fi

# 4. start and check
schema_changed=1
[ "$old_schema" != "$new_schema" ] || schema_changed=0
if [ "$start" -eq 1 ] || [ "$was_active" -eq 1 ]; then
  say "starting Enclave $new_version and waiting for $(local_url)/readyz (up to ${ready_timeout}s)"
  if ! start_and_check; then
    rollback "Enclave $new_version did not become ready" "$schema_changed"
  fi
  say "upgraded Enclave $old_version -> $new_version${backup_path:+ (pre-upgrade backup: $backup_path)}"
  print_done
else
  say "upgraded Enclave $old_version -> $new_version, not started (--no-start)"
fi
