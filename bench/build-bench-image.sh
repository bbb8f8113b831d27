#!/usr/bin/env bash
# Builds the image of the file-transfer benchmark's peer guest (`make bench` runs it; `make test` does not):
# the test image's /init, busybox and vmgmt-guest on Debian's *full* kernel (linux-image-amd64, as a
# stock distribution guest has), with the virtio-9p and virtio_console modules and qemu-ga from Debian's
# qemu-guest-agent package with every library it links (glibc, glib, ...), so the same guest can be
# measured through vmgmt, virtio-9p and qemu-ga.
#
#   bash bench/build-bench-image.sh [--out images/build-bench]
#
# Outputs in --out: vmlinuz, initramfs.cpio.gz, kernel-version.txt (see images/build-image.sh), and
# ga-root/ (the unpacked qemu-ga packages). The first run downloads about 90 MB of .debs; later runs
# only rebuild the initramfs.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT_DIR="$REPO_ROOT/images/build-bench"
[[ "${1:-}" == "--out" && -n "${2:-}" ]] && OUT_DIR="$2"
die() {
  echo "build-bench-image: error: $*" >&2
  exit 1
}
log() { echo "build-bench-image: $*" >&2; }
mkdir -p "$OUT_DIR/debs"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')" ||
  true
[[ -n "$KPKG" ]] || die "cannot resolve linux-image-amd64 with apt-cache (run apt-get update)"

# qemu-ga and what it links, down to glibc (the initramfs has no libc of its own: busybox is static).
GA_PACKAGES=(qemu-guest-agent libc6 libglib2.0-0 libnuma1 libudev1 liburing2 libffi8 libmount1 libblkid1 libpcre2-8-0 libselinux1 zlib1g libcap2 libgcc-s1)
GA_ROOT="$OUT_DIR/ga-root"
(
  cd "$OUT_DIR/debs"
  missing=()
  for p in "${GA_PACKAGES[@]}"; do
    compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "downloading ${missing[*]}"
    apt-get download "${missing[@]}" >/dev/null 2>&1 || die "apt-get download ${missing[*]} failed (is the Debian archive reachable? apt-get update)"
  fi
)
if [[ ! -x "$GA_ROOT/usr/sbin/qemu-ga" ]]; then
  rm -rf "$GA_ROOT"
  mkdir -p "$GA_ROOT"
  for p in "${GA_PACKAGES[@]}"; do
    dpkg -x "$(compgen -G "$OUT_DIR/debs/${p}_*.deb" | head -1)" "$GA_ROOT"
  done
fi
[[ -x "$GA_ROOT/usr/sbin/qemu-ga" ]] || die "qemu-guest-agent has no usr/sbin/qemu-ga"

extra="$GA_ROOT/usr/sbin/qemu-ga:/usr/sbin/qemu-ga"
while IFS= read -r lib; do
  rel="${lib#"$GA_ROOT"}"
  # merged /usr or not, the image keeps them under /lib/x86_64-linux-gnu (plus the loader in /lib64)
  extra+=" $lib:/lib/x86_64-linux-gnu/$(basename "$rel")"
done < <(find "$GA_ROOT/lib/x86_64-linux-gnu" "$GA_ROOT/usr/lib/x86_64-linux-gnu" -maxdepth 1 -name '*.so*' \( -type f -o -type l \) 2>/dev/null | sort)
extra+=" $GA_ROOT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2:/lib64/ld-linux-x86-64.so.2"

VMGMT_KERNEL_PKG="$KPKG" VMGMT_IMAGE_MODULES="virtio_pci 9p 9pnet_virtio virtio_console" VMGMT_IMAGE_EXTRA="$extra" \
  bash "$REPO_ROOT/images/build-image.sh" --out "$OUT_DIR" 2> >(grep -v '^build-image: added ' >&2)
