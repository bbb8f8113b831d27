// The one door to a VM's shared region. Every read of guest-writable memory goes through here: scalar
// loads are atomic, byte reads are copies (so the guest cannot change them between check and use), and
// bulk views are bounds-checked. No other code indexes the region.

export type GuestMemoryErrorCode = 'OUT_OF_BOUNDS' | 'MISALIGNED';

export class GuestMemoryError extends Error {
  override readonly name = 'GuestMemoryError';
  constructor(
    readonly code: GuestMemoryErrorCode,
    readonly offset: number,
    readonly lengthBytes: number,
    readonly regionSizeBytes: number,
  ) {
    super(
      code === 'OUT_OF_BOUNDS'
        ? `access of ${lengthBytes} bytes at offset ${offset} is outside the ${regionSizeBytes}-byte region`
        : `access of ${lengthBytes} bytes at offset ${offset} is not aligned to ${lengthBytes}`,
    );
  }
}

export class GuestMemory {
  readonly sizeBytes: number;
  private readonly bytes: Uint8Array;
  private readonly words: Uint32Array;
  private readonly signedWords: Int32Array;

  constructor(buffer: ArrayBuffer) {
    this.sizeBytes = buffer.byteLength;
    this.bytes = new Uint8Array(buffer);
    this.words = new Uint32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
    this.signedWords = new Int32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
  }

  private check(offset: number, lengthBytes: number, align: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(lengthBytes) || offset < 0 || lengthBytes < 0 || offset + lengthBytes > this.sizeBytes) {
      throw new GuestMemoryError('OUT_OF_BOUNDS', offset, lengthBytes, this.sizeBytes);
    }
    if (offset % align !== 0) throw new GuestMemoryError('MISALIGNED', offset, lengthBytes, this.sizeBytes);
  }

  /** Atomic (sequentially consistent) 32-bit load: acquire semantics for indices the other side publishes. */
  loadU32(offset: number): number {
    this.check(offset, 4, 4);
    return Atomics.load(this.words, offset >>> 2);
  }

  loadI32(offset: number): number {
    this.check(offset, 4, 4);
    return Atomics.load(this.signedWords, offset >>> 2);
  }

  /** Atomic (sequentially consistent) 32-bit store: release semantics, and a full fence on x86. */
  storeU32(offset: number, value: number): void {
    this.check(offset, 4, 4);
    Atomics.store(this.words, offset >>> 2, value >>> 0);
  }

  storeI32(offset: number, value: number): void {
    this.check(offset, 4, 4);
    Atomics.store(this.signedWords, offset >>> 2, value | 0);
  }

  /** 64-bit value as two atomic 32-bit halves (low word first); for fields that are not raced on. */
  loadU64(offset: number): bigint {
    this.check(offset, 8, 8);
    return (BigInt(this.loadU32(offset + 4)) << 32n) | BigInt(this.loadU32(offset));
  }

  storeU64(offset: number, value: bigint): void {
    this.check(offset, 8, 8);
    this.storeU32(offset, Number(value & 0xffffffffn));
    this.storeU32(offset + 4, Number((value >> 32n) & 0xffffffffn));
  }

  /** A private copy of guest bytes: validate the copy, never the live memory. */
  copyOut(offset: number, lengthBytes: number): Uint8Array {
    this.check(offset, lengthBytes, 1);
    return this.bytes.slice(offset, offset + lengthBytes);
  }

  write(offset: number, data: Uint8Array): void {
    this.check(offset, data.byteLength, 1);
    this.bytes.set(data, offset);
  }

  fill(offset: number, lengthBytes: number, value = 0): void {
    this.check(offset, lengthBytes, 1);
    this.bytes.fill(value, offset, offset + lengthBytes);
  }

  /**
   * A live, bounds-checked view for bulk file I/O straight into or out of the region (one copy). The
   * guest can change it at any time: use it only as a data source or sink, never for decisions.
   */
  view(offset: number, lengthBytes: number): Uint8Array {
    this.check(offset, lengthBytes, 1);
    return this.bytes.subarray(offset, offset + lengthBytes);
  }
}
