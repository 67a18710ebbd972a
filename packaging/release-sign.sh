#!/bin/sh
# The project's release signing command: Ed25519 signatures over SHA256SUMS, through OpenSSL 3.
#
#   packaging/release-sign.sh keygen --key-id ID --out-dir DIR   # DIR/ID.pem (private, 0600) + DIR/ID.pub
#   packaging/release-sign.sh pubkey --key PRIVATE.pem            # prints the public key (PEM)
#   packaging/release-sign.sh fingerprint PUBLIC.pub              # SHA-256 of the key, to publish
#   packaging/release-sign.sh sign --key PRIVATE.pem FILE         # writes FILE.sig (64 raw bytes)
#   packaging/release-sign.sh verify --pub PUBLIC.pub FILE [SIG]  # SIG defaults to FILE.sig; exit 1 if bad
#
# The production key is enclave-release-2026: its public half is packaging/release-keys/
# enclave-release-2026.pub (pinned inside install.sh); its private half lives only on the release
# machine, $HOME/.config/enclave-vendor/enclave-release-2026.pem (0600). See packaging/release-keys/README.md.
# shellcheck disable=SC2015 # "[ a ] && [ b ] || fail ...": fail always exits
set -eu

fail() { echo "release-sign: error: $*" >&2; exit 1; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
command -v openssl >/dev/null 2>&1 || fail "openssl is required (apt-get install openssl)"

cmd=${1:-}
[ -n "$cmd" ] || usage 2
shift
key="" pub="" key_id="" out_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --key) [ $# -ge 2 ] || fail "--key needs a file"; key=$2; shift 2 ;;
    --pub) [ $# -ge 2 ] || fail "--pub needs a file"; pub=$2; shift 2 ;;
    --key-id) [ $# -ge 2 ] || fail "--key-id needs a name"; key_id=$2; shift 2 ;;
    --out-dir) [ $# -ge 2 ] || fail "--out-dir needs a directory"; out_dir=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) fail "unknown option $1" ;;
    *) break ;;
  esac
done

case "$cmd" in
  keygen)
    [ -n "$key_id" ] && [ -n "$out_dir" ] || fail "keygen needs --key-id ID --out-dir DIR"
    case "$key_id" in *[!A-Za-z0-9._-]*) fail "key id may only contain letters, digits, '.', '_' and '-'" ;; esac
    priv="$out_dir/$key_id.pem"
    [ ! -e "$priv" ] || fail "$priv exists; refusing to overwrite a signing key"
    mkdir -p "$out_dir"
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$priv")
    chmod 0600 "$priv"
    openssl pkey -in "$priv" -pubout -out "$out_dir/$key_id.pub"
    echo "release-sign: private key $priv (0600: keep it off the repository, back it up offline)"
    echo "release-sign: public key  $out_dir/$key_id.pub"
    ;;
  pubkey)
    [ -n "$key" ] || fail "pubkey needs --key PRIVATE.pem"
    openssl pkey -in "$key" -pubout
    ;;
  fingerprint)
    [ $# -eq 1 ] || fail "fingerprint needs one public key file"
    openssl pkey -pubin -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
    ;;
  sign)
    [ -n "$key" ] && [ $# -eq 1 ] || fail "sign needs --key PRIVATE.pem FILE"
    [ -f "$1" ] || fail "$1 does not exist"
    openssl pkeyutl -sign -inkey "$key" -rawin -in "$1" -out "$1.sig.tmp"
    mv -f "$1.sig.tmp" "$1.sig"
    echo "release-sign: signed $1 -> $1.sig"
    ;;
  verify)
    [ -n "$pub" ] && [ $# -ge 1 ] && [ $# -le 2 ] || fail "verify needs --pub PUBLIC.pub FILE [SIG]"
    sig=${2:-$1.sig}
    [ -f "$1" ] || fail "$1 does not exist"
    [ -f "$sig" ] || fail "$sig does not exist"
    if openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$1" -sigfile "$sig" >/dev/null 2>&1; then
      echo "release-sign: $sig: good signature by $(basename "$pub")"
    else
      echo "release-sign: $sig: BAD signature (not made by $(basename "$pub") over this $(basename "$1"))" >&2
      exit 1
    fi
    ;;
  -h|--help|help) usage 0 ;;
  *) fail "unknown command $cmd (keygen, pubkey, fingerprint, sign, verify)" ;;
esac
