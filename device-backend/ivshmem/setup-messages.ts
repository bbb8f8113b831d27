// The message sequence of QEMU's ivshmem server protocol (docs/specs/ivshmem-spec.txt), as values.
// Pure: the server sends these in order, one 8-byte little-endian int64 each, one fd per message.

export const IVSHMEM_PROTOCOL_VERSION = 0n;
export const CORE_PEER_ID = 0;

export interface IvshmemMessage {
  value: bigint;
  /** -1: no file descriptor with this message. */
  fd: number;
}

export interface SetupInput {
  clientId: number;
  shmFd: number;
  /** Eventfds of already-connected peers (the core, peer 0), one per vector. */
  peers: readonly { id: number; eventFds: readonly number[] }[];
  /** The new client's own eventfds, one per vector: QEMU turns writes to them into guest interrupts. */
  clientEventFds: readonly number[];
}

export function setupMessages(input: SetupInput): IvshmemMessage[] {
  const vectors = input.clientEventFds.length;
  for (const p of input.peers) {
    if (p.eventFds.length !== vectors) throw new Error(`peer ${p.id} has ${p.eventFds.length} eventfds, the client ${vectors}: each peer needs exactly one per vector`);
  }
  return [
    { value: IVSHMEM_PROTOCOL_VERSION, fd: -1 },
    { value: BigInt(input.clientId), fd: -1 },
    { value: -1n, fd: input.shmFd },
    ...input.peers.flatMap((p) => p.eventFds.map((fd) => ({ value: BigInt(p.id), fd }))),
    ...input.clientEventFds.map((fd) => ({ value: BigInt(input.clientId), fd })),
  ];
}
