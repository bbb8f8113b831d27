#!/usr/bin/env bash
# Installs what vmgmt needs on a Debian 12 host, skipping what is already there. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(qemu-system-x86 busybox-static cpio kmod xz-utils zstd gcc g++ make libc6-dev python3)
# Cluster mode: the NATS broker (its tests run it in network namespaces made with iproute2's ip).
APT_PACKAGES+=(nats-server iproute2)

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

# The dashboard's browser tests drive Debian's chromium headless (playwright-core downloads no browser).
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  [[ $(id -u) -eq 0 ]] || die "missing Debian package: chromium (the dashboard's browser tests); run as root or: sudo apt-get install chromium"
  say "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
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

# Declared calculation programs run as an unprivileged account, by default nobody/nogroup (config calc.user,
# calc.group). Debian has both; create them where a host lacks them.
if ! getent group nogroup >/dev/null; then
  [[ $(id -u) -eq 0 ]] || die "group nogroup is missing (calc programs run as nobody/nogroup); run as root or: sudo groupadd -r nogroup"
  say "creating group nogroup (calc programs run as it)"
  groupadd -r nogroup
fi
if ! getent passwd nobody >/dev/null; then
  [[ $(id -u) -eq 0 ]] || die "user nobody is missing (calc programs run as nobody/nogroup); run as root or: sudo useradd -r -g nogroup -d /nonexistent -s /usr/sbin/nologin nobody"
  say "creating user nobody (calc programs run as it)"
  useradd -r -g nogroup -d /nonexistent -s /usr/sbin/nologin nobody
fi
say "ok"
