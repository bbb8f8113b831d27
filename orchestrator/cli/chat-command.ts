// `vmgmt chat ...`: the host side of chat through the control API. peers (and --watch: presence from the
// event stream), send, call, listen (messages to `host`, or with --as NAME to a host-side name this
// command holds while it runs; --exec CMD answers its calls), policy check. Errors are thrown and rendered
// by cli-main.ts; refusals exit 8 (EXIT.REFUSED), like the guest driver's.
import { spawn } from 'node:child_process';
import type { ApiEvent, ChatMessageEventData } from '../api/api-contract.js';
import type { ChatMessageBody, EventStream } from './api-client.js';
import type { ChatCommand } from './cli-args.js';
import type { CommandContext } from './cli-commands.js';
import { CliError } from './cli-error.js';
import { formatChatMessage, formatChatPeers, formatPolicyCheck, formatPresence } from './cli-format.js';
import { EXIT, type ExitCode } from './exit-codes.js';

const MAX_MESSAGE_BYTES = 64 * 1024;
/** Calls an --exec listener keeps waiting while it answers one; more are answered status 1 at once. */
const MAX_QUEUED_CALLS = 16;

export async function runChatCommand(command: ChatCommand, ctx: CommandContext): Promise<ExitCode> {
  const { client, json } = ctx;
  const out = (text: string): void => void ctx.stdout.write(text);
  const doc = (value: unknown): void => out(JSON.stringify(value, null, 2) + '\n');
  const line = (value: unknown): void => out(JSON.stringify(value) + '\n');

  switch (command.kind) {
    case 'chat-peers': {
      if (!command.watch) {
        const peers = await client.chatPeers();
        if (json) doc(peers);
        else out(formatChatPeers(peers.peers));
        return EXIT.OK;
      }
      // Follow first, then list: no join or leave falls between the listing and the stream.
      const stream = client.events({ kinds: ['chat.presence'] }, (e) => {
        if (e.kind !== 'chat.presence') return;
        if (json) line(e);
        else out(formatPresence(e.data));
      });
      await stream.opened;
      const peers = await client.chatPeers();
      if (json) line({ kind: 'chat.peers', data: peers });
      else out(formatChatPeers(peers.peers));
      return followUntilDone(stream, ctx);
    }
    case 'chat-send': {
      const r = await client.chatSend({ to: command.target, ...(await payload(command.message, ctx)) });
      if (json) doc(r);
      else out(`delivered to ${r.to}\n`);
      return EXIT.OK;
    }
    case 'chat-call': {
      const r = await client.chatCall({ to: command.target, ...(await payload(command.message, ctx)), ...(command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs }) });
      if (json) doc(r);
      else ctx.stdout.write(Buffer.from(r.dataBase64, 'base64'));
      if (r.status !== 0) {
        if (!json) ctx.stderr.write(`call ${r.to}: the callee answered with its status ${r.status}\n`);
        return EXIT.REFUSED;
      }
      return EXIT.OK;
    }
    case 'chat-listen':
      return listen(command, ctx);
    case 'chat-policy-check': {
      const c = await client.chatPolicyCheck(command.from, command.to);
      if (json) doc(c);
      else out(formatPolicyCheck(c));
      return c.allowed ? EXIT.OK : EXIT.REFUSED;
    }
  }
}

async function listen(command: ChatCommand & { kind: 'chat-listen' }, ctx: CommandContext): Promise<ExitCode> {
  const { client, json } = ctx;
  const { as, exec } = command;
  let queue = Promise.resolve();
  let queued = 0;
  const answer = (callId: number, status: number, data: Uint8Array): void => {
    if (as === undefined) return;
    client.chatReply({ as, callId, status, dataBase64: Buffer.from(data).toString('base64') }).catch((err: Error) => ctx.stderr.write(`chat: cannot answer call ${callId}: ${err.message}\n`));
  };
  const onEvent = (e: ApiEvent): void => {
    if (e.kind !== 'chat.message') return;
    const m = e.data;
    ctx.stdout.write(json ? JSON.stringify(e) + '\n' : formatChatMessage(m));
    if (m.callId === null || as === undefined || m.to !== as) return;
    const callId = m.callId;
    if (exec === undefined) return answer(callId, 1, new TextEncoder().encode('no --exec: this listener shows calls but does not answer them'));
    if (queued >= MAX_QUEUED_CALLS) return answer(callId, 1, new TextEncoder().encode(`the listener has ${MAX_QUEUED_CALLS} calls waiting`));
    queued++;
    queue = queue.then(async () => {
      const r = await runExec(exec, m);
      queued--;
      answer(callId, r.status, r.stdout);
    });
  };
  const stream = client.events({ kinds: ['chat.message'], ...(as === undefined ? {} : { as }) }, onEvent);
  await stream.opened;
  ctx.stderr.write(as === undefined ? 'chat: listening for messages to host (Ctrl-C to stop)\n' : `chat: registered ${as} on the host (Ctrl-C to stop)\n`);
  return followUntilDone(stream, ctx);
}

/** Runs until SIGINT/SIGTERM (exit 0), the daemon stops (3), or the stream was dropped for being slow (1). */
async function followUntilDone(stream: EventStream, ctx: CommandContext): Promise<ExitCode> {
  const stop = (): void => stream.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const r = await stream.done;
    if (r.reason === 'closed') return EXIT.OK;
    ctx.stderr.write(`chat: the event stream stopped: ${r.message}\n`);
    return r.reason === 'dropped' ? EXIT.ERROR : EXIT.DAEMON_NOT_RUNNING;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** A command-line MESSAGE as text; `-` reads stdin's bytes (at most 64 KiB). */
async function payload(message: string, ctx: CommandContext): Promise<Pick<ChatMessageBody, 'text' | 'dataBase64'>> {
  if (message !== '-') return { text: message };
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of ctx.stdin as AsyncIterable<Buffer | string>) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    bytes += b.length;
    if (bytes > MAX_MESSAGE_BYTES) throw new CliError('USAGE', `the message on stdin is larger than ${MAX_MESSAGE_BYTES} bytes (TOO_LARGE)`, { limitBytes: MAX_MESSAGE_BYTES });
    chunks.push(b);
  }
  return { dataBase64: Buffer.concat(chunks).toString('base64') };
}

/** `/bin/sh -c CMD`, the call's data on stdin: its stdout (at most 64 KiB) is the reply, its exit status the status. */
function runExec(cmd: string, m: ChatMessageEventData): Promise<{ status: number; stdout: Uint8Array }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', cmd], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, CHAT_FROM_VM: m.from.vm ?? '', CHAT_FROM_NAME: m.from.name, CHAT_TO: m.to },
    });
    const chunks: Buffer[] = [];
    let bytes = 0;
    child.stdout.on('data', (c: Buffer) => {
      if (bytes + c.length <= MAX_MESSAGE_BYTES) chunks.push(c);
      bytes += c.length;
    });
    child.stdin.on('error', () => {});
    child.stdin.end(Buffer.from(m.dataBase64, 'base64'));
    child.once('error', () => resolve({ status: 127, stdout: new Uint8Array() }));
    child.once('close', (code, signal) => resolve({ status: code ?? (signal ? 128 : 1), stdout: Buffer.concat(chunks) }));
  });
}
