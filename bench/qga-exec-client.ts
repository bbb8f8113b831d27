// A minimal qemu-guest-agent client for bench/exec.ts: JSON lines over the virtio-serial chardev's UNIX
// socket, guest-sync to get in step, guest-exec and guest-exec-status polled until the command exited
// (qemu-ga has no push: a client polls, and its captured output is capped at 16 MB).
import net from 'node:net';

export class QgaClient {
  private buf = '';
  private waiters: Array<(v: unknown) => void> = [];

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).replace(/^\xff/, '').trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.waiters.shift()?.(JSON.parse(line));
      }
    });
  }

  static connect(path: string): Promise<QgaClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => resolve(new QgaClient(s)));
      s.once('error', reject);
    });
  }

  /** One command and its answer; throws qemu-ga's error. */
  async call<T>(execute: string, args?: unknown, timeoutMs = 30_000): Promise<T> {
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`qemu-ga did not answer ${execute} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
    this.sock.write(`${JSON.stringify(args === undefined ? { execute } : { execute, arguments: args })}\n`);
    const r = (await answer) as { return?: T; error?: { desc: string } };
    if (r.error) throw new Error(`qemu-ga ${execute}: ${r.error.desc}`);
    return r.return as T;
  }

  /** Waits until qemu-ga answers (it starts after the guest boots); guest-sync gets the stream in step. */
  async sync(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let id = 1; ; id++) {
      try {
        if ((await this.call<number>('guest-sync', { id }, 2_000)) === id) return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        this.waiters = [];
      }
    }
  }

  /** guest-exec with captured output, polled with guest-exec-status as fast as qemu-ga answers. */
  async exec(path: string, args: string[]): Promise<{ exitcode: number; outBytes: number; truncated: boolean }> {
    const { pid } = await this.call<{ pid: number }>('guest-exec', { path, arg: args, 'capture-output': true });
    for (;;) {
      const st = await this.call<{ exited: boolean; exitcode?: number; 'out-data'?: string; 'out-truncated'?: boolean }>('guest-exec-status', { pid }, 120_000);
      if (st.exited) return { exitcode: st.exitcode ?? -1, outBytes: st['out-data'] ? Buffer.from(st['out-data'], 'base64').byteLength : 0, truncated: st['out-truncated'] === true };
    }
  }

  close(): void {
    this.sock.destroy();
  }
}
