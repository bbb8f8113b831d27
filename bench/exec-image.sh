#!/usr/bin/env bash
# The test image plus Debian's qemu-ga and virtio_console, for bench/exec.ts only (qemu-ga's guest-exec is
# the peer vmgmt vm exec is measured against). Writes images/build/bench-exec/initramfs.cpio.gz.
# qemu-ga is dynamically linked: its libraries are copied from this host (Debian 12, the same release as
# the guest's packages). Not part of `make image`: the test image stays without qemu-ga.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO_ROOT/images/build/initramfs-root"
OUT="$REPO_ROOT/images/build/bench-exec"
DEBS="$REPO_ROOT/images/build/debs"
die() { echo "exec-image: error: $*" >&2; exit 1; }
[[ -d "$SRC" ]] || die "$SRC is missing: run make image first"
mkdir -p "$OUT" "$DEBS"
deb=$(ls "$DEBS"/qemu-guest-agent_*.deb 2>/dev/null | head -1 || true)
if [[ -z "$deb" ]]; then
  (cd "$DEBS" && apt-get download qemu-guest-agent >/dev/null 2>&1) || die "apt-get download qemu-guest-agent failed (is Debian's apt reachable?)"
  deb=$(ls "$DEBS"/qemu-guest-agent_*.deb | head -1)
fi
rm -rf "$OUT/qga" "$OUT/root"
dpkg -x "$deb" "$OUT/qga"
cp -a "$SRC" "$OUT/root"
install -m 0755 "$OUT/qga/usr/sbin/qemu-ga" "$OUT/root/usr/sbin/qemu-ga"
# The loader and every library qemu-ga needs, from this host.
for lib in $(ldd "$OUT/qga/usr/sbin/qemu-ga" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  [[ -f "$lib" ]] || die "qemu-ga needs $lib, which this host does not have (apt-get install qemu-guest-agent's dependencies)"
  mkdir -p "$OUT/root$(dirname "$lib")"
  cp -L "$lib" "$OUT/root$lib"
done
mkdir -p "$OUT/root/lib64" "$OUT/root/var/run" "$OUT/root/usr/local/var/run"
[[ -e "$OUT/root/lib64/ld-linux-x86-64.so.2" ]] || cp -L /lib64/ld-linux-x86-64.so.2 "$OUT/root/lib64/"
# virtio_console (its deps virtio and virtio_ring are in the test image for virtio_net).
KREL=$(ls "$SRC/lib/modules" | head -1)
mod=$(find "$REPO_ROOT/images/build/kernel-root" -name 'virtio_console.ko*' | head -1)
[[ -n "$mod" ]] || die "no virtio_console module in the extracted kernel"
dst="$OUT/root/lib/modules/$KREL/kernel/drivers/char/virtio_console.ko"
mkdir -p "$(dirname "$dst")"
case "$mod" in *.xz) xz -dc "$mod" >"$dst" ;; *.zst) zstd -qdc "$mod" >"$dst" ;; *) cp "$mod" "$dst" ;; esac
echo "kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko" >>"$OUT/root/lib/modules/$KREL/modules.dep"
(cd "$OUT/root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -1 >"$OUT/initramfs.cpio.gz.tmp"
mv -f "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
echo "exec-image: $(du -k "$OUT/initramfs.cpio.gz" | cut -f1) KiB with qemu-ga $(dpkg-deb -f "$deb" Version) -> $OUT/initramfs.cpio.gz"
