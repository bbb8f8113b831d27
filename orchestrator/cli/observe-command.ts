// `vmgmt events`, `vmgmt dashboard` and `vmgmt top`: what the daemon sees, through the control API.
// `events` follows the event stream and, when the connection breaks or the daemon restarts, connects again
// with the id of the last event it printed (Last-Event-ID), so nothing still buffered is missed; it says on
// stderr when the daemon could not give back everything. `top` redraws once a second until q or Ctrl-C.
import type { ApiEvent } from '../api/api-contract.js';
import type { ObserveCommand } from './cli-args.js';
import type { CommandContext } from './cli-commands.js';
import { formatEventLine } from './event-format.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { formatTopTable, topRows } from './top-format.js';
import { DaemonUnavailableError } from './api-client.js';

const RECONNECT_MS = 1000;

export async function runObserveCommand(command: ObserveCommand, ctx: CommandContext): Promise<ExitCode> {
  switch (command.kind) {
    case 'dashboard': {
      const info = await ctx.client.dashboard();
      if (ctx.json) ctx.stdout.write(JSON.stringify(info, null, 2) + '\n');
      else
        ctx.stdout.write(
          `${info.url}\n` +
            `  open it in a browser on this host; the token is in the #fragment (the browser never sends it)\n` +
            `  metrics: ${info.metricsUrl} (${info.metricsAuth === 'token' ? `Authorization: Bearer <token>; Prometheus: authorization.credentials_file: ${info.tokenFile}` : 'open: metrics.auth is "none"'})\n` +
            `  token file: ${info.tokenFile}\n`,
        );
      return EXIT.OK;
    }
    case 'events':
      return followEvents(command, ctx);
    case 'top':
      return top(command, ctx);
  }
}

async function followEvents(command: ObserveCommand & { kind: 'events' }, ctx: CommandContext): Promise<ExitCode> {
  let lastId: number | undefined;
  let stopped = false;
  let current: { close(): void } | undefined;
  const stop = (): void => {
    stopped = true;
    current?.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const onEvent = (e: ApiEvent): void => {
    if (e.kind === 'stream.open') {
      if (e.data.resume && !e.data.resume.complete) ctx.stderr.write(`events: the daemon no longer holds every event since ${e.data.resume.afterId}: some were missed\n`);
      // Its id counts with the events: a stream that saw none yet resumes from its own start.
      if (lastId === undefined || e.id > lastId) lastId = e.id;
      return;
    }
    if (e.kind.startsWith('stream.')) return;
    lastId = e.id;
    if (ctx.json) ctx.stdout.write(JSON.stringify(e) + '\n');
    else {
      const line = formatEventLine(e);
      if (line) ctx.stdout.write(line);
    }
  };
  try {
    for (let first = true; !stopped; first = false) {
      const stream = ctx.client.events({ ...(command.vm === undefined ? {} : { vms: [command.vm] }), ...(lastId === undefined ? {} : { afterId: lastId }) }, onEvent);
      current = stream;
      try {
        await stream.opened;
      } catch (err) {
        // The first connection's failure is the command's; later ones wait for the daemon to come back.
        if (first || !(err instanceof DaemonUnavailableError)) throw err;
        await new Promise((r) => setTimeout(r, RECONNECT_MS));
        continue;
      }
      const done = await stream.done;
      if (stopped || done.reason === 'closed') break;
      ctx.stderr.write(`events: ${done.message}; reconnecting\n`);
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
    return EXIT.OK;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function top(command: ObserveCommand & { kind: 'top' }, ctx: CommandContext): Promise<ExitCode> {
  let prev = await ctx.client.figures();
  if (command.once) {
    // Rates need two answers: the second a second after the first.
    await new Promise((r) => setTimeout(r, 1000));
    const cur = await ctx.client.figures();
    const rows = topRows(prev, cur);
    ctx.stdout.write(ctx.json ? JSON.stringify({ atMs: cur.atMs, vms: rows }, null, 2) + '\n' : formatTopTable(rows));
    return EXIT.OK;
  }
  const tty = (ctx.stdout as NodeJS.WriteStream).isTTY === true;
  const stdin = process.stdin;
  let quit!: () => void;
  const quitting = new Promise<void>((r) => (quit = r));
  const onKey = (b: Buffer): void => {
    if (b.includes(0x71) || b.includes(0x51) || b.includes(0x03)) quit(); // q, Q, Ctrl-C
  };
  const raw = stdin.isTTY === true;
  if (raw) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKey);
  }
  process.once('SIGINT', quit);
  ctx.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + formatTopTable(topRows(undefined, prev)));
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((r) => (timer = setTimeout(() => r('tick'), 1000)));
      const why = await Promise.race([tick, quitting.then(() => 'quit' as const)]);
      clearTimeout(timer);
      if (why === 'quit') return EXIT.OK;
      const cur = await ctx.client.figures();
      ctx.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + formatTopTable(topRows(prev, cur)) + (tty ? '\nq quits\n' : ''));
      prev = cur;
    }
  } finally {
    process.off('SIGINT', quit);
    if (raw) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
  }
}
