#!/usr/bin/env bash
# Builds the vmgmt test guest: a Debian cloud kernel and a busybox-static initramfs.
#
#   bash images/build-image.sh [--out images/build]
#
# Outputs (in --out, default images/build/):
#   vmlinuz               the kernel, from the Debian package linux-image-<release>
#   initramfs.cpio.gz     newc cpio, gzip: busybox, /init, vfio/uio modules, the control service
#   kernel-version.txt    package=, version=, release= lines (what the kernel resolved to)
#   debs/ kernel-root/    download and unpack cache; delete them to pick up a newer kernel
#
# Environment:
#   VMGMT_KERNEL_PKG      kernel package to use instead of what linux-image-cloud-amd64 depends on
#   VMGMT_IMAGE_EXTRA     "src:dst src2:dst2": extra files for the image (src relative to the repo root)
#   VMGMT_IMAGE_MODULES   "mod1 mod2": more modules to include (with their deps; modprobe them in the guest)
#
# The first run downloads one ~27 MB .deb; later runs only rebuild the initramfs (seconds).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT_DIR="$SCRIPT_DIR/build"

# Modules the guest loads at boot; busybox modprobe pulls in their deps from our modules.dep.
REQUIRED_MODULES=(vfio vfio_iommu_type1 vfio-pci)
# Missing ones only produce a warning: uio for the uio_pci_generic path, button+evdev for the ACPI power button.
# virtio_pci + virtio_net: the VM's NIC when its definition has a network (the init brings it up with DHCP).
OPTIONAL_MODULES=(uio uio_pci_generic button evdev virtio_pci virtio_net)

die() {
  echo "build-image: error: $*" >&2
  exit 1
}
log() { echo "build-image: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out)
      [[ $# -ge 2 ]] || die "--out needs a directory argument"
      OUT_DIR="$2"
      shift 2
      ;;
    --out=*)
      OUT_DIR="${1#--out=}"
      shift
      ;;
    -h | --help)
      sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (usage: bash images/build-image.sh [--out DIR])" ;;
  esac
done
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# --- tools ------------------------------------------------------------------------------------
need_tool() { # need_tool <command> <debian package>
  command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found; install it with: apt-get install -y --no-install-recommends $2"
}
need_tool apt-get apt
need_tool apt-cache apt
need_tool dpkg dpkg
need_tool dpkg-deb dpkg
need_tool depmod kmod
need_tool cpio cpio
need_tool gzip gzip
BUSYBOX=/bin/busybox
[[ -x "$BUSYBOX" ]] ||
  die "$BUSYBOX not found; install it with: apt-get install -y --no-install-recommends busybox-static"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; the initramfs has no libc. Install the static one with: apt-get install -y --no-install-recommends busybox-static"
fi

# --- kernel package ---------------------------------------------------------------------------
DEBS_DIR="$OUT_DIR/debs"
KROOT="$OUT_DIR/kernel-root"
mkdir -p "$DEBS_DIR"

if [[ -n "${VMGMT_KERNEL_PKG:-}" ]]; then
  KPKG="$VMGMT_KERNEL_PKG"
  [[ "$KPKG" =~ ^linux-image-[0-9][A-Za-z0-9.+~-]*$ ]] ||
    die "VMGMT_KERNEL_PKG='$KPKG' is not a versioned kernel package name (expected linux-image-<release>, e.g. linux-image-6.1.0-56-cloud-amd64)"
else
  # Resolved on every run: Debian's security archive drops old ABI versions, so never hard-code one.
  KPKG="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')" || true
  if [[ -z "$KPKG" ]]; then
    # Offline rebuild: fall back to the one package already downloaded.
    cached=("$DEBS_DIR"/linux-image-*.deb)
    [[ ${#cached[@]} -eq 1 && -f "${cached[0]}" ]] ||
      die "cannot resolve linux-image-cloud-amd64 with apt-cache (run apt-get update, or set VMGMT_KERNEL_PKG=linux-image-<release>)"
    KPKG="$(dpkg-deb -f "${cached[0]}" Package)"
    log "apt-cache could not resolve linux-image-cloud-amd64; using cached $KPKG"
  fi
fi

shopt -s nullglob
debs=("$DEBS_DIR/${KPKG}"_*.deb)
shopt -u nullglob
if [[ ${#debs[@]} -eq 0 ]]; then
  log "downloading $KPKG into $DEBS_DIR"
  # apt-get download writes into the current directory; the _apt sandbox warning as root is harmless.
  if ! apt_out="$(cd "$DEBS_DIR" && apt-get download "$KPKG" 2>&1)"; then
    echo "$apt_out" >&2
    die "apt-get download $KPKG failed (is the Debian archive reachable, and is the name right? try: apt-cache policy $KPKG)"
  fi
  shopt -s nullglob
  debs=("$DEBS_DIR/${KPKG}"_*.deb)
  shopt -u nullglob
  [[ ${#debs[@]} -gt 0 ]] || die "apt-get download $KPKG produced no .deb in $DEBS_DIR"
fi
# Several versions of the same ABI package: take the highest.
KDEB="${debs[0]}"
for d in "${debs[@]}"; do
  if dpkg --compare-versions "$(dpkg-deb -f "$d" Version)" gt "$(dpkg-deb -f "$KDEB" Version)"; then KDEB="$d"; fi
done
KVERSION="$(dpkg-deb -f "$KDEB" Version)"

UNPACK_STAMP="$KROOT/.vmgmt-unpacked"
if [[ ! -f "$UNPACK_STAMP" || "$(cat "$UNPACK_STAMP")" != "$(basename "$KDEB")" ]]; then
  log "unpacking $(basename "$KDEB") into $KROOT"
  rm -rf "$KROOT"
  mkdir -p "$KROOT"
  dpkg -x "$KDEB" "$KROOT" || die "dpkg -x $KDEB failed (corrupt download? delete $DEBS_DIR and retry)"
  basename "$KDEB" >"$UNPACK_STAMP"
fi

# Bookworm packages ship /lib/modules, merged-/usr ones /usr/lib/modules.
if [[ -d "$KROOT/lib/modules" ]]; then
  KMODROOT="$KROOT/lib/modules"
elif [[ -d "$KROOT/usr/lib/modules" ]]; then
  KMODROOT="$KROOT/usr/lib/modules"
else
  die "$KPKG has no lib/modules directory; is it a kernel image package?"
fi
releases=("$KMODROOT"/*/)
[[ ${#releases[@]} -eq 1 ]] || die "expected one kernel release in $KMODROOT, found ${#releases[@]}"
KREL="$(basename "${releases[0]}")"
KMODDIR="$KMODROOT/$KREL"
[[ -f "$KROOT/boot/vmlinuz-$KREL" ]] || die "$KPKG has no boot/vmlinuz-$KREL"

if [[ ! -s "$KMODDIR/modules.dep" || "$UNPACK_STAMP" -nt "$KMODDIR/modules.dep" ]]; then
  log "depmod $KREL"
  # depmod -b wants <base>/lib/modules/<release>; for merged-/usr packages the base is kernel-root/usr.
  depmod -b "$(dirname "$(dirname "$KMODROOT")")" "$KREL" || die "depmod -b $KROOT $KREL failed"
fi

cmp -s "$KROOT/boot/vmlinuz-$KREL" "$OUT_DIR/vmlinuz" 2>/dev/null || cp -p "$KROOT/boot/vmlinuz-$KREL" "$OUT_DIR/vmlinuz"
printf 'package=%s\nversion=%s\nrelease=%s\n' "$KPKG" "$KVERSION" "$KREL" >"$OUT_DIR/kernel-version.txt"

# --- initramfs tree ---------------------------------------------------------------------------
STAGE="$OUT_DIR/initramfs-root"
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/log,lib/modules/"$KREL"}
chmod 1777 "$STAGE/tmp"

cp "$BUSYBOX" "$STAGE/bin/busybox"
while read -r applet; do
  case "$applet" in busybox | linuxrc | init) continue ;; esac
  ln -s busybox "$STAGE/bin/$applet"
done < <("$BUSYBOX" --list)

install -m 0755 "$SCRIPT_DIR/init" "$STAGE/init"
install -m 0755 "$SCRIPT_DIR/vmgmt-control.sh" "$STAGE/usr/sbin/vmgmt-control"
install -D -m 0755 "$SCRIPT_DIR/udhcpc.script" "$STAGE/usr/share/udhcpc/default.script"
echo "root:x:0:0:root:/root:/bin/sh" >"$STAGE/etc/passwd"
echo "root:x:0:" >"$STAGE/etc/group"
echo "vmgmt-guest" >"$STAGE/etc/hostname"
ln -s /proc/mounts "$STAGE/etc/mtab"
printf 'package=%s\nversion=%s\nrelease=%s\n' "$KPKG" "$KVERSION" "$KREL" >"$STAGE/etc/vmgmt-kernel"
# Without /dev/console in the archive the kernel starts /init with no stdio; /init also re-opens it.
if [[ $EUID -eq 0 ]]; then
  mknod -m 0600 "$STAGE/dev/console" c 5 1
  mknod -m 0666 "$STAGE/dev/null" c 1 3
fi

# modules: the wanted ones and their deps, paths as in modules.dep, decompressed to plain .ko
# (busybox insmod cannot read .ko.zst, and the kernel may lack in-kernel decompression).
declare -A MOD_LINE=()   # normalized name -> "path: dep dep"
while IFS= read -r line; do
  path="${line%%:*}"
  name="${path##*/}"
  name="${name%%.ko*}"
  MOD_LINE["${name//-/_}"]="$line"
done <"$KMODDIR/modules.dep"

declare -A BUILTIN=()
if [[ -f "$KMODDIR/modules.builtin" ]]; then
  while IFS= read -r path; do
    name="${path##*/}"
    name="${name%%.ko*}"
    BUILTIN["${name//-/_}"]=1
  done <"$KMODDIR/modules.builtin"
fi

declare -A PICKED=() # stripped module path -> 1
stripped_path() { # path with any compression suffix removed
  local p="$1"
  p="${p%.xz}"
  p="${p%.zst}"
  p="${p%.gz}"
  echo "$p"
}
copy_module() { # copy_module <path relative to the module dir>
  local src="$KMODDIR/$1" dst
  dst="$STAGE/lib/modules/$KREL/$(stripped_path "$1")"
  mkdir -p "$(dirname "$dst")"
  case "$1" in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz)
      need_tool xz xz-utils
      xz -dc "$src" >"$dst"
      ;;
    *.ko.zst)
      need_tool zstd zstd
      zstd -qdc "$src" >"$dst"
      ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module file type: $1" ;;
  esac
}
pick_module() { # pick_module <name> <required|optional>; returns 1 if absent
  local key="${1//-/_}" line path deps dep
  if [[ -z "${MOD_LINE[$key]+x}" ]]; then
    if [[ -n "${BUILTIN[$key]+x}" ]]; then
      log "module $1 is built into $KREL"
      return 0
    fi
    return 1
  fi
  line="${MOD_LINE[$key]}"
  path="${line%%:*}"
  deps="${line#*:}"
  [[ -n "${PICKED[$(stripped_path "$path")]+x}" ]] && return 0
  PICKED["$(stripped_path "$path")"]=1
  copy_module "$path"
  for dep in $deps; do
    copy_module_dep "$dep"
  done
}
copy_module_dep() {
  local name
  name="$(basename "$1")"
  name="${name%%.ko*}"
  pick_module "$name" required || die "modules.dep lists dependency $1, which has no modules.dep entry"
}

# shellcheck disable=SC2206 # a space-separated list of module names
REQUIRED_MODULES+=(${VMGMT_IMAGE_MODULES:-})
for m in "${REQUIRED_MODULES[@]}"; do
  pick_module "$m" required ||
    die "kernel $KREL has no module '$m' (neither in modules.dep nor modules.builtin); pick another kernel with VMGMT_KERNEL_PKG"
done
for m in "${OPTIONAL_MODULES[@]}"; do
  pick_module "$m" optional || log "warning: optional module '$m' not in $KREL, skipped"
done

# modules.dep for exactly the copied modules, in the original file's order, with plain .ko names.
while IFS= read -r line; do
  path="$(stripped_path "${line%%:*}")"
  [[ -n "${PICKED[$path]+x}" ]] || continue
  out="$path:"
  for dep in ${line#*:}; do out+=" $(stripped_path "$dep")"; done
  echo "$out"
done <"$KMODDIR/modules.dep" >"$STAGE/lib/modules/$KREL/modules.dep"
for f in modules.builtin modules.order; do
  [[ -f "$KMODDIR/$f" ]] && cp "$KMODDIR/$f" "$STAGE/lib/modules/$KREL/$f"
done

# Extra files: the guest driver when it has been built, plus VMGMT_IMAGE_EXTRA.
add_extra() { # add_extra <src> <dst>
  local src="$1" dst="$2"
  [[ "$src" = /* ]] || src="$REPO_ROOT/$src"
  [[ -f "$src" ]] || die "extra file '$1' not found (VMGMT_IMAGE_EXTRA entries are src:dst, src relative to $REPO_ROOT)"
  [[ "$dst" = /* ]] || die "extra destination '$dst' must be an absolute path inside the image"
  mkdir -p "$STAGE$(dirname "$dst")"
  cp -L "$src" "$STAGE$dst"
  log "added $1 as $dst"
}
if [[ -f "$REPO_ROOT/guest-driver/build/vmgmt-guest" ]]; then
  add_extra "guest-driver/build/vmgmt-guest" /usr/bin/vmgmt-guest
  chmod 0755 "$STAGE/usr/bin/vmgmt-guest"
fi
for entry in ${VMGMT_IMAGE_EXTRA:-}; do
  [[ "$entry" == *:* ]] || die "VMGMT_IMAGE_EXTRA entry '$entry' is not src:dst"
  add_extra "${entry%%:*}" "${entry#*:}"
done

# --- archive ----------------------------------------------------------------------------------
INITRAMFS="$OUT_DIR/initramfs.cpio.gz"
(cd "$STAGE" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | gzip -n -6 >"$INITRAMFS.tmp"
mv -f "$INITRAMFS.tmp" "$INITRAMFS"

size_bytes="$(stat -c %s "$INITRAMFS")"
echo "vmgmt image: kernel $KREL ($KPKG $KVERSION), initramfs $((size_bytes / 1024)) KiB, $(find "$STAGE/lib/modules" -name '*.ko' | wc -l) modules -> $OUT_DIR"
