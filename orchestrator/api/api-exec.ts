// `POST /v1/vms/:name/exec`: the body is one JSON line (execRequestSchema) and then the command's stdin;
// the answer streams exec frames (exec-frames.ts) until the exit frame. Back-pressure end to end: an output
// chunk counts as taken (and the guest gets its answer, and reads its pipes again) only once the response
// socket took it, and stdin is read from the request only when the guest asks for more.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import type { VmManagerApi } from '../daemon/vm-manager-api.js';
import { EXEC_FRAMES_CONTENT_TYPE, EXEC_ID_HEADER, execRequestSchema, type ExecExit } from './api-contract.js';
import type { ExecTerminals } from './exec-terminals.js';
import type { StreamOutcome } from './api-transfers.js';
import { EXEC_FRAME, execFrameHeader } from './exec-frames.js';
import { zodProblems } from './field-problems.js';
import { errorResponse, errorToResponse } from './api-responses.js';

/** The first line (the request) may be at most this long. */
export const MAX_EXEC_REQUEST_LINE_BYTES = 1024 * 1024;

export interface ExecContext {
  manager: VmManagerApi;
  log: CoreLogger;
  /** Where a --tty session is registered for its resizes (exec-terminals.ts); without it none are taken. */
  terminals?: ExecTerminals;
}

type Line = { ok: true; line: string; rest: Buffer | undefined } | { ok: false; reason: string };

async function readFirstLine(it: AsyncIterator<Buffer>): Promise<Line> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return { ok: false, reason: 'the body ended before the request line\'s newline' };
    const chunk = r.value;
    const nl = chunk.indexOf(0x0a);
    if (nl >= 0) {
      parts.push(chunk.subarray(0, nl));
      const rest = chunk.subarray(nl + 1);
      return { ok: true, line: Buffer.concat(parts).toString('utf8'), rest: rest.byteLength ? rest : undefined };
    }
    parts.push(chunk);
    bytes += chunk.byteLength;
    if (bytes > MAX_EXEC_REQUEST_LINE_BYTES) return { ok: false, reason: `the request line is longer than ${MAX_EXEC_REQUEST_LINE_BYTES} bytes` };
  }
}

export async function handleExec(name: string, req: IncomingMessage, res: ServerResponse, ctx: ExecContext): Promise<StreamOutcome> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const line = await readFirstLine(it).catch((err: unknown) => ({ ok: false as const, reason: (err as Error).message }));
  if (!line.ok) return { kind: 'answer', response: errorResponse(400, 'INVALID_REQUEST', `exec: ${line.reason}: send one JSON line, a newline, then stdin`, {}) };
  let json: unknown;
  try {
    json = JSON.parse(line.line);
  } catch (err) {
    return { kind: 'answer', response: errorResponse(400, 'INVALID_REQUEST', `exec: the request line is not JSON: ${(err as Error).message}`, {}) };
  }
  const parsed = execRequestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = zodProblems(parsed.error);
    return { kind: 'answer', response: errorResponse(400, 'INVALID_REQUEST', `exec: invalid request: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { problems }) };
  }
  const r = parsed.data;
  const aborter = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) aborter.abort(new Error('the client went away'));
  });
  // A --tty session takes resizes: its id goes in the answer's header, sent as soon as the command runs.
  const terminal = r.tty ? ctx.terminals?.open(name) : undefined;
  const startStream = (): void => {
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': EXEC_FRAMES_CONTENT_TYPE, 'Cache-Control': 'no-store', ...(terminal ? { [EXEC_ID_HEADER]: terminal.id } : {}) });
  };
  const write = (kind: (typeof EXEC_FRAME)[keyof typeof EXEC_FRAME], payload: Uint8Array): Promise<void> => {
    startStream();
    if (res.destroyed) return Promise.reject(new Error('the client went away'));
    res.write(execFrameHeader(kind, payload.byteLength));
    if (res.write(payload)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', gone);
        resolve();
      };
      const gone = (): void => {
        res.off('drain', done);
        reject(new Error('the client went away'));
      };
      res.once('drain', done);
      res.once('close', gone);
    });
  };
  let rest = line.rest;
  let inputDone = false;
  try {
    const result = await ctx.manager.exec(name, {
      spec: { argv: r.argv, env: r.env, cwd: r.cwd ?? '', tty: r.tty, rows: r.rows, cols: r.cols },
      ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
      signal: aborter.signal,
      ...(terminal
        ? {
            onAttached: (session: { resize(rows: number, cols: number): void }) => {
              terminal.attach((rows, cols) => session.resize(rows, cols));
              startStream();
              res.flushHeaders();
            },
          }
        : {}),
      io: {
        output: (stream, bytes) => write(stream === 'stdout' ? EXEC_FRAME.STDOUT : EXEC_FRAME.STDERR, bytes),
        input: async () => {
          if (rest) {
            const chunk = rest;
            rest = undefined;
            return chunk;
          }
          if (inputDone) return null;
          const next = await it.next().catch(() => ({ done: true as const, value: undefined }));
          if (next.done) {
            inputDone = true;
            return null;
          }
          return next.value as Buffer;
        },
      },
    });
    const exit: ExecExit = {
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      stdoutBytes: result.stdoutBytes,
      stderrBytes: result.stderrBytes,
      durationMs: Math.round(result.durationMs * 1000) / 1000,
    };
    await write(EXEC_FRAME.EXIT, Buffer.from(JSON.stringify(exit))).catch(() => {});
    res.end();
    return { kind: 'streamed', status: 200 };
  } catch (err) {
    const mapped = errorToResponse(err);
    if (mapped.unexpected) ctx.log.warn('exec failed', { error: (err as Error).message });
    if (!res.headersSent) return { kind: 'answer', response: mapped.response };
    const body = mapped.response.kind === 'json' ? mapped.response.body : { code: 'INTERNAL', message: String(err), details: {} };
    await write(EXEC_FRAME.ERROR, Buffer.from(JSON.stringify(body))).catch(() => {});
    res.end();
    return { kind: 'streamed', status: 200 };
  } finally {
    terminal?.close();
  }
}
