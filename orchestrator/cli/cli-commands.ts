// One handler per `vmgmt vm ...` command: call the API, print the answer (JSON or human). Errors are thrown
// and rendered by cli-main.ts.
import { readFile } from 'node:fs/promises';
import type { ApiClient } from './api-client.js';
import type { ChatCommand, CliCommand } from './cli-args.js';
import { CliError } from './cli-error.js';
import { formatActionResult, formatStatsTable, formatVmDetails, formatVmTable } from './cli-format.js';
import type { ConsoleStdin } from './console-attach.js';
import { EXIT, type ExitCode } from './exit-codes.js';

export interface CommandContext {
  client: ApiClient;
  json: boolean;
  stdin: ConsoleStdin;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  nowMs: () => number;
}

type VmCommand = Exclude<CliCommand, { kind: 'help' } | { kind: 'daemon' } | { kind: 'cp' } | ChatCommand>;

export async function runVmCommand(command: VmCommand, ctx: CommandContext): Promise<ExitCode> {
  const { client, json } = ctx;
  const out = (text: string): void => void ctx.stdout.write(text);
  const doc = (value: unknown): void => out(JSON.stringify(value, null, 2) + '\n');

  switch (command.kind) {
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
      else out(formatVmTable(listing.vms, ctx.nowMs()));
      return EXIT.OK;
    }
    case 'vm-inspect': {
      const vm = await client.inspect(command.name);
      if (json) doc(vm);
      else out(formatVmDetails(vm, ctx.nowMs()));
      return EXIT.OK;
    }
    case 'vm-start': {
      const vm = await client.start(command.name);
      if (json) doc(vm);
      else out(formatActionResult('started', vm));
      return EXIT.OK;
    }
    case 'vm-stop': {
      const vm = await client.stop(command.name, command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs });
      if (json) doc(vm);
      else out(formatActionResult('stopped', vm));
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
      const text = await client.logs(command.name, opts);
      if (json) doc({ name: command.name, source: command.source ?? 'console', text });
      else out(text);
      return EXIT.OK;
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
      await attachConsole({
        socketPath: vm.paths.consoleSocket,
        vmName: vm.name,
        stdin: ctx.stdin,
        stdout: ctx.stdout,
        stderr: ctx.stderr,
      });
      return EXIT.OK;
    }
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
