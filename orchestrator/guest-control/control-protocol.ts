// Wire format of the guest control channel (second serial port, /dev/ttyS1 in the guest).
// The guest side is images/vmgmt-control.sh; the full description is images/README.md.
//
//   host -> guest   <id> <commandSizeBytes> <base64(command)>\n
//   guest -> host   @@VMGMT BEGIN <id> <outputSizeBytes> <encoding>@@\n
//                   base64(output) in lines (gzip-compressed first when encoding is gzip+base64)
//                   @@VMGMT END <id> <exitCode>@@\n
//              or   @@VMGMT REJECT <id> <reason>@@\n   (the command line arrived garbled; it did not run)
import { encodeBase64 } from './base64-codec.js';

export const CONTROL_MARKER_PREFIX = '@@VMGMT ';
export const CONTROL_MARKER_SUFFIX = '@@';

export const CONTROL_FRAME_KIND = {
  BEGIN: 'BEGIN',
  END: 'END',
  REJECT: 'REJECT',
} as const;
export type ControlFrameKind = (typeof CONTROL_FRAME_KIND)[keyof typeof CONTROL_FRAME_KIND];

export const OUTPUT_ENCODING = {
  BASE64: 'base64',
  GZIP_BASE64: 'gzip+base64',
} as const;
export type OutputEncoding = (typeof OUTPUT_ENCODING)[keyof typeof OUTPUT_ENCODING];

/** Ids are host-chosen; the guest answers only ids of this shape (it ignores other lines). */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Printed by /init on the console (ttyS0) when booted with vmgmt.probe=1, just before it powers off. */
export const PROBE_OK_MARKER = '@@VMGMT PROBE OK@@';
/** Kernel command-line flag that makes /init print PROBE_OK_MARKER and power off. */
export const PROBE_CMDLINE_FLAG = 'vmgmt.probe=1';

export function isValidCommandId(id: string): boolean {
  return COMMAND_ID_PATTERN.test(id);
}

/** The line the host writes to run `command` under `id`. Throws on an id the guest would ignore. */
export function encodeCommandLine(id: string, command: string): Uint8Array {
  if (!isValidCommandId(id)) {
    throw new RangeError(`control command id '${id}' must match ${COMMAND_ID_PATTERN.source}`);
  }
  const commandBytes = new TextEncoder().encode(command);
  return new TextEncoder().encode(`${id} ${commandBytes.length} ${encodeBase64(commandBytes)}\n`);
}
