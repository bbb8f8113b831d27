// `vmgmt vm exec NAME [--tty] [--timeout MS] [--env K=V] [--cwd DIR] -- CMD [ARGS]`: one streaming request
// (api-exec.ts): the request line, then our stdin as the body; the answer's frames go to stdout and stderr
// as they come, read only as fast as our stdout takes them (the daemon's back-pressure reaches the guest).
// The CLI exits with the command's exit code (128 + N for a signal N, 124 when --timeout killed it).
import { request } from 'node:http';
import { EXEC_FRAMES_CONTENT_TYPE, EXEC_ID_HEADER, execExitSchema, type ExecExit, type ExecRequestInput } from '../api/api-contract.js';
import { EXEC_FRAME, ExecFrameParser } from '../api/exec-frames.js';
import { ApiError, toApiError, unavailable } from './api-client.js';
import { resizeForwarder, type ResizeForwarder } from './exec-resize.js';
import type { CliCommand } from './cli-args.js';
import type { CommandContext } from './cli-commands.js';
import { CliError } from './cli-error.js';
import type { ExitCode } from './exit-codes.js';

/** coreutils timeout(1)'s exit code for a command it killed. */
export const EXEC_TIMEOUT_EXIT = 124;

export type ExecCommand = CliCommand & { kind: 'vm-exec' };

/** The CLI's exit code for how the command ended. */
export function execExitCode(exit: ExecExit): number {
  if (exit.timedOut) return EXEC_TIMEOUT_EXIT;
  if (exit.exitCode !== null) return exit.exitCode;
  return 128 + (exit.signal ?? 0);
}

const dataFields = (b: Buffer): { text: string | null; dataBase64: string } => {
  let text: string | null;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    text = null;
  }
  return { text, dataBase64: b.toString('base64') };
};

export function runExecCommand(command: ExecCommand, ctx: CommandContext & { socketPath: string }): Promise<ExitCode> {
  const stdin = ctx.stdin;
  const stdoutTty = (ctx.stdout as NodeJS.WriteStream).isTTY === true;
  const body: ExecRequestInput = {
    argv: command.argv,
    env: [...command.env, ...(command.tty && process.env.TERM ? [`TERM=${process.env.TERM}`] : [])],
    tty: command.tty,
    ...(command.cwd !== undefined ? { cwd: command.cwd } : {}),
    ...(command.timeoutMs !== undefined ? { timeoutMs: command.timeoutMs } : {}),
    ...(command.tty && stdoutTty ? { rows: (ctx.stdout as NodeJS.WriteStream).rows ?? 0, cols: (ctx.stdout as NodeJS.WriteStream).columns ?? 0 } : {}),
  };
  const path = `/v1/vms/${encodeURIComponent(command.name)}/exec`;
  return new Promise<ExitCode>((resolve, reject) => {
    let connected = false;
    let settled = false;
    const raw = command.tty && stdin.isTTY === true && typeof stdin.setRawMode === 'function';
    let resizes: ResizeForwarder | undefined;
    const onWinch = (): void => resizes?.changed();
    // A terminal's size changes (SIGWINCH) go to the session in the guest, by the id its answer gave.
    const forwardResizes = (execId: string): void => {
      const term = [ctx.stdout, ctx.stderr].find((s) => (s as NodeJS.WriteStream).isTTY === true && typeof (s as NodeJS.WriteStream).getWindowSize === 'function') as NodeJS.WriteStream | undefined;
      if (!term) return;
      resizes = resizeForwarder({
        read: () => {
          const [cols, rows] = term.getWindowSize();
          return { rows, cols };
        },
        send: (size) => ctx.client.execResize(command.name, execId, size),
        ...(body.rows ? { initial: { rows: body.rows, cols: body.cols ?? 0 } } : {}),
        onError: (err) => {
          // NOT_FOUND: the command ended while the size was on its way.
          if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) ctx.stderr.write(`vmgmt: could not pass the terminal's new size on: ${(err as Error).message}\r\n`);
        },
      });
      process.on('SIGWINCH', onWinch);
      // It may have changed between the request and its answer.
      resizes.changed();
    };
    const cleanup = (): void => {
      process.off('SIGWINCH', onWinch);
      resizes?.stop();
      if (raw) stdin.setRawMode!(false);
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      stdin.pause();
      (stdin as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
    };
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      fn();
    };
    const req = request({ socketPath: ctx.socketPath, method: 'POST', path, headers: { 'Content-Type': 'application/octet-stream', Accept: EXEC_FRAMES_CONTENT_TYPE } }, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          finish(() => reject(toApiError('POST', path, { status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }))),
        );
        return;
      }
      const execId = res.headers[EXEC_ID_HEADER];
      if (raw && typeof execId === 'string') forwardResizes(execId);
      const parser = new ExecFrameParser();
      let exit: ExecExit | undefined;
      const emit = (stream: 'stdout' | 'stderr', payload: Buffer): boolean => {
        if (ctx.json) return ctx.stdout.write(`${JSON.stringify({ event: 'output', stream, ...dataFields(payload) })}\n`);
        return (stream === 'stdout' ? ctx.stdout : ctx.stderr).write(payload);
      };
      res.on('data', (chunk: Buffer) => {
        const parsed = parser.push(chunk);
        if (!parsed.ok) {
          finish(() => reject(new CliError('BAD_RESPONSE', `the daemon's exec answer is garbled: ${parsed.reason}`, {})));
          return;
        }
        let full = false;
        for (const f of parsed.frames) {
          if (f.kind === EXEC_FRAME.STDOUT) full = !emit('stdout', f.payload) || full;
          else if (f.kind === EXEC_FRAME.STDERR) full = !emit('stderr', f.payload) || full;
          else if (f.kind === EXEC_FRAME.EXIT) {
            const checked = execExitSchema.safeParse(JSON.parse(f.payload.toString('utf8')));
            if (!checked.success) {
              finish(() => reject(new CliError('BAD_RESPONSE', 'the daemon\'s exec exit frame breaks the API contract', {})));
              return;
            }
            exit = checked.data;
          } else {
            finish(() => reject(toApiError('POST', path, { status: 500, contentType: 'application/json', text: f.payload.toString('utf8') })));
            return;
          }
        }
        if (full) {
          // Our stdout is slower than the guest: stop reading until it drains (the daemon then holds the guest).
          res.pause();
          (ctx.stdout as NodeJS.WritableStream).once('drain', () => res.resume());
        }
      });
      res.on('end', () => {
        if (!exit) {
          finish(() => reject(new CliError('BAD_RESPONSE', 'the daemon ended the exec answer without the command\'s exit (did the daemon stop?)', {})));
          return;
        }
        const e = exit;
        const code = execExitCode(e);
        if (ctx.json) ctx.stdout.write(`${JSON.stringify({ event: 'exit', ...e })}\n`);
        else if (e.timedOut) ctx.stderr.write(`vmgmt: ${command.argv[0]} did not finish within ${command.timeoutMs} ms and was killed (exit ${EXEC_TIMEOUT_EXIT})\n`);
        // The command's own exit code is the CLI's (0..255, beyond the CLI's own EXIT table).
        finish(() => resolve(code as ExitCode));
      });
      res.on('error', (err) => finish(() => reject(unavailable(ctx.socketPath, err, true))));
    });
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (err) => finish(() => reject(unavailable(ctx.socketPath, err as NodeJS.ErrnoException, connected))));
    req.write(`${JSON.stringify(body)}\n`);
    const onData = (chunk: Buffer | string): void => {
      if (!req.write(chunk)) {
        stdin.pause();
        req.once('drain', () => stdin.resume());
      }
    };
    const onEnd = (): void => {
      req.end();
    };
    if (raw) stdin.setRawMode!(true);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
