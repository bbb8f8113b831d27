// One handler per `vmgmt vm ...` command: call the API, print the answer (JSON or human). Errors are thrown
// and rendered by cli-main.ts.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApiError } from './api-client.js';
import type { ApiClient } from './api-client.js';
import type { ChatCommand, CliCommand, ObserveCommand } from './cli-args.js';
import { CliError } from './cli-error.js';
import { formatActionResult, formatAgentUpdates, formatErrorLines, formatHostInfo, formatStatsTable, formatVmDetails, formatVmTable } from './cli-format.js';
import type { AgentUpdateResult } from '../api/api-contract.js';
import type { ConsoleStdin } from './console-attach.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { ACTIVE_VM_STATES, type VmStateName } from '../api/api-contract.js';

export interface CommandContext {
  client: ApiClient;
  json: boolean;
  stdin: ConsoleStdin;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  nowMs: () => number;
  /** The environment ($VISUAL, $EDITOR for `vm edit`). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** How often `vm logs -f` asks for what was added. */
const FOLLOW_POLL_MS = 500;

/**
 * Why `vm logs -f` ends, with the daemon's reason when it can say: `vm web stopped (exit code 0)`,
 * `vm web crashed: QEMU ended unexpectedly (killed by SIGKILL)`.
 */
export async function followEnd(client: Pick<ApiClient, 'inspect'>, name: string, state: VmStateName): Promise<string> {
  const why = await client.inspect(name).then((vm) => vm.stateReason, () => '');
  if (why.startsWith(`${state} `)) return `vm ${name} ${why}`;
  const what = state === 'defined' ? 'has never been started' : state;
  return `vm ${name} ${what}${why ? `: ${why}` : ''}`;
}

type VmCommand = Exclude<CliCommand, { kind: 'help' } | { kind: 'completion' } | { kind: 'daemon' } | { kind: 'cp' } | { kind: 'vm-exec' } | { kind: 'cluster-keygen' } | ChatCommand | ObserveCommand>;

export async function runVmCommand(command: VmCommand, ctx: CommandContext): Promise<ExitCode> {
  const { client, json } = ctx;
  const out = (text: string): void => void ctx.stdout.write(text);
  const doc = (value: unknown): void => out(JSON.stringify(value, null, 2) + '\n');

  switch (command.kind) {
    case 'agent-update': {
      // The daemon reads the binary: a relative path is the caller's, made absolute here.
      const binary = {
        ...(command.binary === undefined ? {} : { binary: path.resolve(command.binary) }),
        ...(command.sha256 === undefined ? {} : { sha256: command.sha256 }),
      };
      const names = command.all ? (await client.list()).vms.filter((v) => v.state === 'running').map((v) => v.name) : command.names;
      const rows: { name: string; result?: AgentUpdateResult; error?: string }[] = [];
      for (const name of names) {
        try {
          rows.push({ name, result: await client.agentUpdate(name, binary) });
        } catch (err) {
          if (!command.all && names.length === 1) throw err;
          rows.push({ name, error: (err as Error).message });
        }
      }
      if (json) doc({ updates: rows });
      else out(rows.length ? formatAgentUpdates(rows) : 'no running VMs\n');
      return rows.every((r) => r.result) ? EXIT.OK : EXIT.ERROR;
    }
    case 'vm-create': {
      const definition = await readDefinition(command.file, ctx.stdin);
      const vm = await client.create(definition);
      if (json) doc(vm);
      else out(formatActionResult('created', vm));
      return EXIT.OK;
    }
    case 'vm-ls': {
      const listing = await client.list();
      if (json) doc(listing);
      else if (command.quiet) out(listing.vms.map((vm) => `${vm.name}\n`).join(''));
      else out(formatVmTable(listing.vms, ctx.nowMs()));
      return EXIT.OK;
    }
    case 'vm-update': {
      const definition = await readDefinition(command.file, ctx.stdin);
      const vm = await client.update(command.name, definition);
      if (json) doc(vm);
      else out(`updated vm ${vm.name}: the new definition applies from its next start\n`);
      return EXIT.OK;
    }
    case 'vm-edit':
      return editDefinition(command.name, ctx);
    case 'host': {
      const info = await client.host();
      if (json) doc(info);
      else out(formatHostInfo(info));
      return EXIT.OK;
    }
    case 'vm-inspect': {
      const vm = await client.inspect(command.name);
      if (json) doc(vm);
      else out(formatVmDetails(vm, ctx.nowMs()));
      return EXIT.OK;
    }
    case 'vm-start': {
      const probing = await announceProbe(command.name, ctx);
      const vm = await client.start(command.name);
      if (probing && vm.accel) ctx.stderr.write(`vmgmt: accelerator ${vm.accel}: ${vm.accelReason ?? 'no reason given'}\n`);
      if (json) doc(vm);
      else out(formatActionResult('started', vm));
      return EXIT.OK;
    }
    case 'vm-stop': {
      // On a terminal, say what the wait is before it starts (the power button may be ignored for the whole timeout).
      if ((ctx.stderr as NodeJS.WriteStream).isTTY && !json) {
        const before = await client.inspect(command.name).catch(() => undefined);
        const ms = command.timeoutMs ?? before?.definition.powerdownTimeoutMs;
        if (ms !== undefined) ctx.stderr.write(`vmgmt: pressing the power button of vm ${command.name}; QEMU is told to quit if the guest has not powered off within ${ms} ms\n`);
      }
      const vm = await client.stop(command.name, command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs });
      if (json) doc(vm);
      else out(formatActionResult('stopped', vm));
      return EXIT.OK;
    }
    case 'vm-pause':
    case 'vm-resume': {
      const vm = command.kind === 'vm-pause' ? await client.pause(command.name) : await client.resume(command.name);
      if (json) doc(vm);
      else out(formatActionResult(command.kind === 'vm-pause' ? 'paused' : 'resumed', vm));
      return EXIT.OK;
    }
    case 'vm-kill': {
      const vm = await client.kill(command.name);
      if (json) doc(vm);
      else out(formatActionResult('killed', vm));
      return EXIT.OK;
    }
    case 'vm-rm': {
      await client.remove(command.name, { force: command.force });
      if (json) doc({ name: command.name, removed: true });
      else out(`removed vm ${command.name}\n`);
      return EXIT.OK;
    }
    case 'vm-logs': {
      const opts = {
        ...(command.source === undefined ? {} : { source: command.source }),
        ...(command.tailBytes === undefined ? {} : { tailBytes: command.tailBytes }),
      };
      const source = command.source ?? 'console';
      if (!command.follow) {
        const text = await client.logs(command.name, opts);
        if (json) doc({ name: command.name, source, text });
        else out(text);
        return EXIT.OK;
      }
      // -f: the tail, then what is added, until the VM stops or crashes (as `docker logs -f` ends with its
      // container), or Ctrl-C (the CLI's default SIGINT ends the process). A crashed VM that its on-failure
      // policy restarts is followed on: the log goes on in the same file. --json: one
      // {"name","source","text"} line per piece.
      const print = (text: string): void => {
        if (text === '') return;
        if (json) out(JSON.stringify({ name: command.name, source, text }) + '\n');
        else out(text);
      };
      let chunk = await client.logChunk(command.name, opts);
      print(chunk.text);
      let restartSaid: string | null = null;
      for (;;) {
        // The state is read before the log: once the VM is down, the log is whole, so read to its end.
        const over = !ACTIVE_VM_STATES.includes(chunk.vmState) && chunk.restartAt === null;
        if (over && chunk.text === '') {
          ctx.stderr.write(`vmgmt: ${await followEnd(client, command.name, chunk.vmState)}; the log ends here\n`);
          return EXIT.OK;
        }
        if (chunk.restartAt !== null && chunk.restartAt !== restartSaid) {
          restartSaid = chunk.restartAt;
          ctx.stderr.write(`vmgmt: vm ${command.name} ${chunk.vmState}; its on-failure policy restarts it at ${chunk.restartAt}: following on\n`);
        }
        if (!over) await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        chunk = await client.logChunk(command.name, { source, fromByte: chunk.endByte });
        print(chunk.text);
      }
    }
    case 'stats': {
      const once = async (): Promise<void> => {
        const vms = command.name === undefined ? (await client.stats()).vms : [await client.vmStats(command.name, { limit: command.watch ? 1 : 60 })];
        if (json) out(command.watch ? JSON.stringify({ atMs: ctx.nowMs(), vms }) + '\n' : JSON.stringify(command.name === undefined ? { vms } : vms[0], null, 2) + '\n');
        else out((command.watch && (ctx.stdout as NodeJS.WriteStream).isTTY ? '\x1b[H\x1b[2J' : '') + formatStatsTable(vms));
      };
      await once();
      if (!command.watch) return EXIT.OK;
      // Until Ctrl-C (the CLI's default SIGINT ends the process): one table per second.
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        await once();
      }
    }
    case 'vm-console': {
      const vm = await client.inspect(command.name);
      const { attachConsole } = await import('./console-attach.js');
      const end = await attachConsole({
        socketPath: vm.paths.consoleSocket,
        vmName: vm.name,
        stdin: ctx.stdin,
        stdout: ctx.stdout,
        stderr: ctx.stderr,
        vmState: async () => (await client.inspect(command.name)).state,
        ...(command.lingerMs === undefined ? {} : { lingerMs: command.lingerMs }),
      });
      // A console QEMU dropped while the VM runs is a failure; a VM that stopped (e.g. `poweroff` sent) is not.
      return end === 'closed' ? EXIT.ERROR : EXIT.OK;
    }
  }
}

/**
 * `vm start` of a VM with accel auto on a host whose KVM self-probe has no answer cached yet: say that the
 * start will probe first (up to 20 s), so the wait is not silent. A daemon that cannot say is not asked twice.
 */
async function announceProbe(name: string, ctx: CommandContext): Promise<boolean> {
  try {
    const vm = await ctx.client.inspect(name);
    if (vm.definition.accel !== 'auto') return false;
    const { kvmProbe } = await ctx.client.host();
    if (kvmProbe.cached || kvmProbe.problem) return false;
    ctx.stderr.write(
      `vmgmt: first start with accel auto on this host (${kvmProbe.stale ?? 'nothing cached'}): probing whether KVM runs guests, up to 20 s; ` +
        `the answer is kept in ${kvmProbe.cachePath} for later starts (see \`vmgmt host\`)\n`,
    );
    return true;
  } catch {
    // The start itself reports what is wrong (no such VM, no daemon).
    return false;
  }
}

/**
 * `vm edit NAME`: the definition in $VISUAL / $EDITOR (default vi), then `vm update`. A definition the daemon
 * refuses is kept, with its problems printed, for another try with `vm update NAME -f FILE`.
 */
async function editDefinition(name: string, ctx: CommandContext): Promise<ExitCode> {
  const vm = await ctx.client.inspect(name);
  if (vm.state !== 'defined' && vm.state !== 'stopped' && vm.state !== 'crashed') {
    throw new ApiError(409, 'INVALID_STATE', `VM ${name} is ${vm.state}: stop it first (\`vmgmt vm stop ${name}\`), then edit its definition`, { name, state: vm.state });
  }
  const dir = await mkdtemp(path.join(tmpdir(), `vmgmt-edit-${name}-`));
  const file = path.join(dir, `${name}.json`);
  const before = JSON.stringify(vm.definition, null, 2) + '\n';
  await writeFile(file, before, { mode: 0o600 });
  const env = ctx.env ?? process.env;
  const editor = env['VISUAL'] || env['EDITOR'] || 'vi';
  const status = await new Promise<number | null>((resolve, reject) => {
    // Through the shell: EDITOR may hold arguments ("code --wait").
    const child = spawn(`${editor} "$VMGMT_EDIT_FILE"`, { shell: true, stdio: 'inherit', env: { ...env, VMGMT_EDIT_FILE: file } });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  if (status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new CliError('USAGE', `the editor (${editor}) exited with ${status ?? 'a signal'}: vm ${name} is unchanged`, { editor });
  }
  const after = await readFile(file, 'utf8');
  if (after === before) {
    await rm(dir, { recursive: true, force: true });
    ctx.stdout.write(`vm ${name}: no change\n`);
    return EXIT.OK;
  }
  try {
    const updated = await ctx.client.update(name, await readDefinition(file, ctx.stdin));
    await rm(dir, { recursive: true, force: true });
    if (ctx.json) ctx.stdout.write(JSON.stringify(updated, null, 2) + '\n');
    else ctx.stdout.write(`updated vm ${name}: the new definition applies from its next start\n`);
    return EXIT.OK;
  } catch (err) {
    const code = err instanceof ApiError || err instanceof CliError ? err.code : '';
    if (code === 'INVALID_DEFINITION') {
      const e = err as ApiError;
      ctx.stderr.write(formatErrorLines(e.message, e.details));
      ctx.stderr.write(`vmgmt: your edit is kept in ${file}: fix it and run \`vmgmt vm update ${name} -f ${file}\`\n`);
      return EXIT.INVALID_DEFINITION;
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The definition file as JSON (not validated here: the daemon answers with every problem). */
async function readDefinition(file: string, stdin: NodeJS.ReadableStream): Promise<unknown> {
  const where = file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = file === '-' ? await readAll(stdin) : await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError('FILE_UNREADABLE', `cannot read the VM definition from ${where}: ${(err as Error).message}`, { file }, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const problem = { path: '(file)', message: `not valid JSON: ${(err as Error).message}` };
    throw new CliError('INVALID_DEFINITION', `invalid VM definition in ${where}: ${problem.path}: ${problem.message}`, {
      file,
      problems: [problem],
    });
  }
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('error', reject);
  });
}
