// A minimal qemu-ga client for the benchmarks that compare with it: JSON commands over the VM's
// virtio-serial port (a UNIX socket QEMU serves), one answer line per command, guest-sync first to skip
// stale output. Only what the benchmarks measure: guest-file-open/read/write/close as a host-started copy
// (bench/file-transfer), guest-exec polled with guest-exec-status (bench/exec).
import net from 'node:net';

export class QgaClient {
  private buffered = '';
  private waiting: ((line: string) => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      this.deliver();
    });
  }

  /** Connects and syncs (qemu-ga may need a while after boot to open its port: retried until timeoutMs). */
  static async connect(socketPath: string, timeoutMs: number): Promise<QgaClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath, () => resolve(s));
      s.once('error', reject);
    });
    const c = new QgaClient(socket);
    const deadline = Date.now() + timeoutMs;
    for (let id = 1; ; id++) {
      const answer = await c.exec('guest-sync', { id }, Math.min(2_000, Math.max(deadline - Date.now(), 1))).catch(() => undefined);
      if (answer === id) return c;
      if (Date.now() > deadline) {
        socket.destroy();
        throw new Error(`qemu-ga on ${socketPath} did not answer guest-sync within ${timeoutMs} ms`);
      }
    }
  }

  private deliver(): void {
    const nl = this.buffered.indexOf('\n');
    if (nl < 0 || !this.waiting) return;
    const line = this.buffered.slice(0, nl);
    this.buffered = this.buffered.slice(nl + 1);
    const w = this.waiting;
    this.waiting = undefined;
    w(line);
  }

  async exec(command: string, args: object | undefined, timeoutMs = 600_000): Promise<unknown> {
    const line = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`qemu-ga: no answer to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    this.deliver();
    for (;;) {
      const text = (await line).replace(/^\xff/, '').trim();
      if (!text) continue;
      const msg = JSON.parse(text) as { return?: unknown; error?: { desc: string } };
      if (msg.error) throw new Error(`qemu-ga ${command}: ${msg.error.desc}`);
      return msg.return;
    }
  }

  /** Writes data to guestPath with guest-file-write in chunkBytes pieces. */
  async writeFile(guestPath: string, data: Buffer, chunkBytes: number): Promise<void> {
    const handle = (await this.exec('guest-file-open', { path: guestPath, mode: 'w' })) as number;
    try {
      for (let at = 0; at < data.length; at += chunkBytes) {
        await this.exec('guest-file-write', { handle, 'buf-b64': data.subarray(at, at + chunkBytes).toString('base64') });
      }
      await this.exec('guest-file-flush', { handle });
    } finally {
      await this.exec('guest-file-close', { handle });
    }
  }

  /** Reads guestPath whole with guest-file-read in chunkBytes pieces. */
  async readFile(guestPath: string, chunkBytes: number): Promise<Buffer> {
    const handle = (await this.exec('guest-file-open', { path: guestPath, mode: 'r' })) as number;
    const parts: Buffer[] = [];
    try {
      for (;;) {
        const r = (await this.exec('guest-file-read', { handle, count: chunkBytes })) as { count: number; 'buf-b64': string; eof: boolean };
        if (r.count > 0) parts.push(Buffer.from(r['buf-b64'], 'base64'));
        if (r.eof || r.count === 0) break;
      }
    } finally {
      await this.exec('guest-file-close', { handle });
    }
    return Buffer.concat(parts);
  }

  /** guest-exec with captured output, polled with guest-exec-status as fast as qemu-ga answers (it has no push; output is capped at 16 MB). */
  async guestExec(path: string, args: string[]): Promise<{ exitcode: number; outBytes: number; truncated: boolean }> {
    const { pid } = (await this.exec('guest-exec', { path, arg: args, 'capture-output': true })) as { pid: number };
    for (;;) {
      const st = (await this.exec('guest-exec-status', { pid }, 120_000)) as { exited: boolean; exitcode?: number; 'out-data'?: string; 'out-truncated'?: boolean };
      if (st.exited) return { exitcode: st.exitcode ?? -1, outBytes: st['out-data'] ? Buffer.from(st['out-data'], 'base64').byteLength : 0, truncated: st['out-truncated'] === true };
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
