import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeBase64 } from './base64-codec.js';
import type { ControlTransport, ControlTransportHandlers } from './control-transport.js';
import { GuestControlClient, GuestControlError } from './guest-control-client.js';

interface FakeCommand {
  id: string;
  command: string;
}

/**
 * An in-memory guest speaking the images/vmgmt-control.sh protocol. `respond` decides what each
 * command line gets back; returning undefined leaves it unanswered (a guest still booting).
 */
class FakeGuest implements ControlTransport {
  readonly label = '/fake/control.sock';
  readonly received: FakeCommand[] = [];
  handlers: ControlTransportHandlers | undefined;
  closedByClient = false;
  #lineBuffer = '';

  constructor(readonly respond: (cmd: FakeCommand, guest: FakeGuest) => string | undefined) {}

  start(handlers: ControlTransportHandlers): void {
    this.handlers = handlers;
  }

  write(bytes: Uint8Array): void {
    this.#lineBuffer += new TextDecoder().decode(bytes);
    let newline: number;
    while ((newline = this.#lineBuffer.indexOf('\n')) !== -1) {
      const line = this.#lineBuffer.slice(0, newline);
      this.#lineBuffer = this.#lineBuffer.slice(newline + 1);
      const [id = '', , b64 = ''] = line.split(' ');
      const cmd = { id, command: Buffer.from(b64, 'base64').toString('utf8') };
      this.received.push(cmd);
      const reply = this.respond(cmd, this);
      // Answer asynchronously, in small pieces, like a serial port would.
      if (reply !== undefined) setTimeout(() => this.send(reply), 1);
    }
  }

  send(text: string | Uint8Array): void {
    const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    for (let i = 0; i < bytes.length; i += 100) this.handlers?.data(bytes.subarray(i, i + 100));
  }

  close(): void {
    this.closedByClient = true;
    this.handlers?.closed(undefined);
  }
}

function frame(id: string, output: string | Uint8Array, exitCode = 0, gzip = false): string {
  const raw = typeof output === 'string' ? new TextEncoder().encode(output) : output;
  const body = encodeBase64(gzip ? gzipSync(raw) : raw).replace(/(.{76})/g, '$1\n');
  const lines = body.length > 0 && !body.endsWith('\n') ? `${body}\n` : body;
  return `@@VMGMT BEGIN ${id} ${raw.length} ${gzip ? 'gzip+base64' : 'base64'}@@\n${lines}@@VMGMT END ${id} ${exitCode}@@\n`;
}

/** A guest that runs a few known commands. */
const shellLike = (cmd: FakeCommand): string | undefined => {
  if (cmd.command === 'true') return frame(cmd.id, '');
  const exit = /^exit (\d+)$/.exec(cmd.command);
  if (exit) return frame(cmd.id, '', Number(exit[1]));
  const echo = /^echo (.*)$/.exec(cmd.command);
  if (echo) return frame(cmd.id, `${echo[1]}\n`);
  return frame(cmd.id, `sh: ${cmd.command}: not found\n`, 127);
};

async function rejection(promise: Promise<unknown>): Promise<GuestControlError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(GuestControlError);
    return err as GuestControlError;
  }
  throw new Error('expected a rejection');
}

describe('GuestControlClient', () => {
  it('runs commands and returns output and exit code', async () => {
    const client = new GuestControlClient(new FakeGuest(shellLike));
    await expect(client.run('echo hi')).resolves.toMatchObject({ stdout: 'hi\n', exitCode: 0 });
    const failed = await client.run('exit 3');
    expect(failed.exitCode).toBe(3);
    expect(failed.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('sends one command at a time, in call order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const guest = new FakeGuest((cmd, g) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        g.send(frame(cmd.id, `${cmd.command}\n`));
      }, 5);
      return undefined;
    });
    const client = new GuestControlClient(guest);
    const results = await Promise.all(['a', 'b', 'c'].map((c) => client.run(c)));
    expect(results.map((r) => r.stdout)).toEqual(['a\n', 'b\n', 'c\n']);
    expect(maxInFlight).toBe(1);
  });

  it('decompresses gzip+base64 output and keeps large output exact', async () => {
    const big = 'a'.repeat(1024 * 1024);
    const guest = new FakeGuest((cmd) => frame(cmd.id, big, 0, true));
    const result = await new GuestControlClient(guest).run('big');
    expect(result.stdout.length).toBe(big.length);
    expect(result.stdout === big).toBe(true);
  });

  it('waitReady probes until the guest answers, and ignores answers for stale ids', async () => {
    let probes = 0;
    const guest = new FakeGuest((cmd) => {
      probes++;
      if (probes < 4) return undefined; // still booting
      return frame('deadbeef-1', 'stale') + shellLike(cmd);
    });
    const client = new GuestControlClient(guest);
    const waitedMs = await client.waitReady({ timeoutMs: 2000, probeIntervalMs: 10 });
    expect(probes).toBeGreaterThanOrEqual(4);
    expect(waitedMs).toBeGreaterThanOrEqual(20);
    expect(guest.received.every((c) => c.command === 'true')).toBe(true);
    await expect(client.run('echo after')).resolves.toMatchObject({ stdout: 'after\n' });
  });

  it('waitReady accepts a late answer to an earlier probe', async () => {
    const guest = new FakeGuest((cmd, g) => {
      if (g.received.length === 1) setTimeout(() => g.send(frame(cmd.id, '')), 40);
      return undefined;
    });
    const waitedMs = await new GuestControlClient(guest).waitReady({ timeoutMs: 2000, probeIntervalMs: 10 });
    expect(waitedMs).toBeGreaterThanOrEqual(30);
    expect(guest.received.length).toBeGreaterThan(1);
  });

  it('waitReady times out with CONNECT_TIMEOUT when the guest never answers', async () => {
    const client = new GuestControlClient(new FakeGuest(() => undefined));
    const error = await rejection(client.waitReady({ timeoutMs: 60, probeIntervalMs: 10 }));
    expect(error.code).toBe('CONNECT_TIMEOUT');
    expect(error.details.timeoutMs).toBe(60);
  });

  it('times out a command with COMMAND_TIMEOUT and ignores its late answer', async () => {
    const guest = new FakeGuest((cmd, g) => {
      if (cmd.command === 'sleep') {
        setTimeout(() => g.send(frame(cmd.id, 'late\n')), 80);
        return undefined;
      }
      return shellLike(cmd);
    });
    const client = new GuestControlClient(guest);
    const error = await rejection(client.run('sleep', { timeoutMs: 30 }));
    expect(error.code).toBe('COMMAND_TIMEOUT');
    expect(error.details).toMatchObject({ command: 'sleep', timeoutMs: 30 });
    const next = await client.run('echo next');
    expect(next.stdout).toBe('next\n');
  });

  it('resends after a REJECT (garbled line) and gives up with PROTOCOL after three', async () => {
    let rejects = 0;
    const guest = new FakeGuest((cmd) => {
      if (cmd.command === 'flaky' && rejects++ < 1) return `@@VMGMT REJECT ${cmd.id} size-mismatch@@\n`;
      if (cmd.command === 'hopeless') return `@@VMGMT REJECT ${cmd.id} bad-base64@@\n`;
      return frame(cmd.id, 'ran\n');
    });
    const client = new GuestControlClient(guest);
    await expect(client.run('flaky')).resolves.toMatchObject({ stdout: 'ran\n' });
    const error = await rejection(client.run('hopeless'));
    expect(error.code).toBe('PROTOCOL');
    expect(error.details.reason).toBe('bad-base64');
    expect(guest.received.filter((c) => c.command === 'hopeless')).toHaveLength(3);
  });

  it('fails with PROTOCOL on a damaged frame', async () => {
    const guest = new FakeGuest((cmd) => `@@VMGMT BEGIN ${cmd.id} 10 base64@@\nYWJj\n@@VMGMT END ${cmd.id} 0@@\n`);
    const error = await rejection(new GuestControlClient(guest).run('x'));
    expect(error.code).toBe('PROTOCOL');
    expect(error.details.reason).toContain('announced 10');
  });

  it('fails with PROTOCOL when a gzip body does not decompress', async () => {
    const guest = new FakeGuest((cmd) => `@@VMGMT BEGIN ${cmd.id} 3 gzip+base64@@\nYWJj\n@@VMGMT END ${cmd.id} 0@@\n`);
    const error = await rejection(new GuestControlClient(guest).run('x'));
    expect(error.code).toBe('PROTOCOL');
  });

  it('rejects the running and the queued commands with DISCONNECTED when the socket closes', async () => {
    const guest = new FakeGuest(() => undefined);
    const client = new GuestControlClient(guest);
    const running = rejection(client.run('one'));
    const queued = rejection(client.run('two'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    guest.handlers?.closed(new Error('EPIPE'));
    expect((await running).code).toBe('DISCONNECTED');
    expect((await queued).code).toBe('DISCONNECTED');
    expect(client.isOpen).toBe(false);
    expect((await rejection(client.run('three'))).code).toBe('DISCONNECTED');
  });

  it('close() closes the transport and rejects pending calls', async () => {
    const guest = new FakeGuest(() => undefined);
    const client = new GuestControlClient(guest);
    const pending = rejection(client.waitReady({ timeoutMs: 5000 }));
    client.close();
    expect(guest.closedByClient).toBe(true);
    expect((await pending).code).toBe('DISCONNECTED');
  });
});

describe('GuestControlClient.connect', () => {
  it('times out with CONNECT_TIMEOUT when the socket never appears', async () => {
    const socketPath = `/tmp/vmgmt-guest-control-test-${process.pid}-missing.sock`;
    const error = await rejection(GuestControlClient.connect(socketPath, { timeoutMs: 100 }));
    expect(error.code).toBe('CONNECT_TIMEOUT');
    expect(error.details.socketPath).toBe(socketPath);
  });
});
