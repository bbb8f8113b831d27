// CRC-32C (Castagnoli, the iSCSI/ext4/btrfs checksum): reflected polynomial 0x82F63B78, initial and final
// value 0xFFFFFFFF. Node's zlib has CRC-32 (IEEE) only. Pure; incremental: crc32c(b, crc32c(a)) = crc32c(a+b).
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** The CRC-32C of `data`, continuing from `previous` (the CRC of what came before; 0 to start). */
export function crc32c(data: Uint8Array, previous = 0): number {
  let c = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
