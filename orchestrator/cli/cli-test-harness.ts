// For the CLI's unit tests: runCli against the real API server on a UNIX socket in a temp directory, backed
// by FakeVmManager (in-memory guests), with one running VM `vm1`. Not used by the CLI itself.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { startApiServer, type ApiServer } from '../api/api-server.js';
import { FakeVmManager } from '../api/fake-vm-manager.js';
import { vmDefinitionSchema } from '../api/api-contract.js';
import { runCli } from './cli-main.js';

/** A writable that keeps what it was given; a terminal of `columns` when isTTY. */
export class Sink extends Writable {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 80,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const quiet = { info() {}, warn() {}, error() {} };

export class CliHarness {
  private constructor(
    readonly dir: string,
    readonly work: string,
    readonly transferDir: string,
    readonly sock: string,
    readonly manager: FakeVmManager,
    private readonly server: ApiServer,
  ) {}

  static async start(): Promise<CliHarness> {
    const dir = await mkdtemp(join(tmpdir(), 'vmgmt-cp-'));
    const work = join(dir, 'work');
    const transferDir = join(dir, 'transfers');
    await mkdir(work);
    const sock = join(dir, 'vmgmt.sock');
    const manager = new FakeVmManager(join(dir, 'vms'));
    manager.copyChunkBytes = 256 * 1024;
    const server = await startApiServer({ socketPath: sock, manager, log: quiet, transferDir });
    await manager.create(vmDefinitionSchema.parse({ name: 'vm1' }));
    await manager.start('vm1');
    return new CliHarness(dir, work, transferDir, sock, manager, server);
  }

  /** One CLI run with empty stdin; `tty` makes stderr a 100-column terminal. */
  async vmgmt(args: string[], opts: { tty?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new Sink();
    const stderr = new Sink(opts.tty === true, 100);
    const stdin = new PassThrough();
    stdin.end();
    const code = await runCli(args, { stdin, stdout, stderr, env: { VMGMT_SOCKET: this.sock } });
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  async close(): Promise<void> {
    await this.server.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
