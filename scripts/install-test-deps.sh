#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, skipping what is already there:
# Debian's chromium (the UI tests drive it headless) and the UI test's npm packages (playwright-core,
# pinned in tests/ui/package-lock.json; it never downloads a browser); OpenLDAP's slapd and ldap-utils
# for the directory sign-in tests; Samba as an Active Directory domain controller for the AD tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The directory tests start a real OpenLDAP slapd (and use ldapsearch/openssl in the harness).
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The Active Directory tests provision and run a Samba AD DC (samba-tool domain provision needs the
# schema files of samba-ad-provision).
{ [ -x /usr/sbin/samba ] && [ -d /usr/share/samba/setup/ad-schema ]; } || need_apt+=(samba-ad-dc samba-ad-provision)
# The packaging tests (tests/packaging/run.sh): systemd-analyze for the unit, ip for the overlay's
# network namespace, readelf for the static check (unshare, setpriv and flock come with util-linux).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v readelf >/dev/null 2>&1 || need_apt+=(binutils)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing ${need_apt[*]}; run as root or: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-test-deps: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d tests/ui/node_modules/playwright-core ] || [ tests/ui/package-lock.json -nt tests/ui/node_modules/.package-lock.json ]; then
  echo "install-test-deps: npm ci in tests/ui"
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi

# The compatibility test runs the official `openai` Python client (pinned) from its own venv;
# scripts/test.sh points ENCLAVE_TEST_PYTHON at it.
venv="${ENCLAVE_TEST_VENV:-$HOME/.cache/enclave/test-venv}"
openai_pin="openai==2.8.1"
if ! "$venv/bin/python" -c 'import openai, sys; sys.exit(openai.__version__ != "2.8.1")' >/dev/null 2>&1; then
  echo "install-test-deps: $openai_pin into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$openai_pin"
fi
