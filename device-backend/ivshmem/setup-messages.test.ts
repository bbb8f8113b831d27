import { describe, expect, it } from 'vitest';
import { setupMessages } from './setup-messages.js';

describe('ivshmem setup messages', () => {
  it('sends version, id, shm fd, the core peer per vector, then the client per vector', () => {
    const m = setupMessages({ clientId: 1, shmFd: 10, peers: [{ id: 0, eventFds: [20, 21] }], clientEventFds: [30, 31] });
    expect(m).toEqual([
      { value: 0n, fd: -1 },
      { value: 1n, fd: -1 },
      { value: -1n, fd: 10 },
      { value: 0n, fd: 20 },
      { value: 0n, fd: 21 },
      { value: 1n, fd: 30 },
      { value: 1n, fd: 31 },
    ]);
  });

  it('refuses peers with a different number of vectors', () => {
    expect(() => setupMessages({ clientId: 1, shmFd: 3, peers: [{ id: 0, eventFds: [4] }], clientEventFds: [5, 6] })).toThrow(/one per vector/);
  });
});
