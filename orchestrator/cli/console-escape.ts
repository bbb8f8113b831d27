// The detach key of `vmgmt vm console`: Ctrl-] (0x1d), as in telnet. Pure.

export const DETACH_BYTE = 0x1d;
export const DETACH_KEY_NAME = 'Ctrl-]';

/** Bytes to pass to the VM before the detach key, and whether the key was pressed in this chunk. */
export function splitAtDetach(chunk: Uint8Array): { forward: Uint8Array; detach: boolean } {
  const at = chunk.indexOf(DETACH_BYTE);
  return at === -1 ? { forward: chunk, detach: false } : { forward: chunk.subarray(0, at), detach: true };
}
