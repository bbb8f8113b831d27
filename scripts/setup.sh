#!/usr/bin/env bash
# Installs what vmgmt needs on a Debian 12 host, skipping what is already there. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd gcc g++ make libc6-dev python3 iproute2)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || die "node is not installed: vmgmt needs Node.js 20 or newer"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js $(node --version) is too old: vmgmt needs 20 or newer"

# node-gyp builds the addon against the running Node's own headers (they include uv.h).
nodedir=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [[ ! -f $nodedir/include/node/node_api.h || ! -f $nodedir/include/node/uv.h ]]; then
  if [[ $nodedir == /usr ]] && dpkg-query -W nodejs >/dev/null 2>&1; then
    say "installing libnode-dev (Node headers for the native addon)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnode-dev >/dev/null
  else
    die "Node headers not found under $nodedir/include/node: install your Node distribution's headers"
  fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
say "ok"
