#!/bin/sh
# vmgmt control channel, guest side: runs host commands received on a serial port, one at a time.
# Installed as /usr/sbin/vmgmt-control; /init runs it on /dev/ttyS1 and restarts it if it exits.
#
# Host -> guest, one line:   <id> <sizeBytes> <base64(command)>\n
# Guest -> host, per line:   @@VMGMT BEGIN <id> <outputSizeBytes> <encoding>@@\n
#                            base64(stdout+stderr, gzipped if encoding is gzip+base64), 76 columns
#                            @@VMGMT END <id> <exitCode>@@\n
#                   or:      @@VMGMT REJECT <id> <reason>@@\n   (line had a valid id but a bad size/body)
# Lines that do not parse are ignored: the host retries, so noise and half lines are harmless.
# Full description: images/README.md.
port="${1:-/dev/ttyS1}"
work=/run/vmgmt-control
mkdir -p "$work"
set -f

exec 3<>"$port" || exit 1
stty raw -echo -ixon -ixoff clocal <&3 || echo "vmgmt-control: stty on $port failed" >&2

cr="$(printf '\r')"
gzip_min_bytes=4096
reject() { # reject <id> <reason>
  printf '@@VMGMT REJECT %s %s@@\n' "$1" "$2" >&3
}

while IFS= read -r line <&3; do
  line="${line%"$cr"}"
  # shellcheck disable=SC2086 # word splitting is the parser here
  set -- $line
  [ $# -eq 3 ] || continue
  id="$1" size="$2" body="$3"
  case "$id" in '' | *[!A-Za-z0-9._-]*) continue ;; esac
  [ "${#id}" -le 64 ] || continue
  case "$size" in '' | *[!0-9]*)
    reject "$id" bad-size
    continue
    ;;
  esac
  case "$body" in *[!A-Za-z0-9+/=]*)
    reject "$id" bad-base64
    continue
    ;;
  esac
  if ! printf '%s' "$body" | base64 -d >"$work/cmd" 2>/dev/null; then
    reject "$id" bad-base64
    continue
  fi
  # Catches bytes lost or garbled in transit that still decode.
  if [ "$(wc -c <"$work/cmd")" -ne "$size" ]; then
    reject "$id" size-mismatch
    continue
  fi

  sh "$work/cmd" </dev/null >"$work/out" 2>&1 3>&-
  code=$?
  out_size="$(wc -c <"$work/out")"
  # The UART moves ~100 KB/s under TCG: compress large output when that makes it smaller.
  payload="$work/out" encoding=base64
  if [ "$out_size" -gt "$gzip_min_bytes" ] && gzip -1 -c "$work/out" >"$work/out.gz" &&
    [ "$(wc -c <"$work/out.gz")" -lt "$out_size" ]; then
    payload="$work/out.gz" encoding=gzip+base64
  fi
  {
    printf '@@VMGMT BEGIN %s %s %s@@\n' "$id" "$out_size" "$encoding"
    base64 "$payload"
    printf '@@VMGMT END %s %s@@\n' "$id" "$code"
  } >&3
  rm -f "$work/out" "$work/out.gz" "$work/cmd"
done
echo "vmgmt-control: read from $port failed" >&2
exit 1
