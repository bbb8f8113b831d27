// What one daemon sends another over NATS for chat: a request (a send or a call to a name the receiving host
// holds) and its answer. Each is a u32 (little-endian) length, that many bytes of JSON metadata, then the
// data. The sender's host is never in the envelope: the receiver takes it from the subject the broker let the
// sender publish on (vmgmt.<host>.to.<receiver>), so a daemon cannot speak for another host. Pure: decoders
// return results and check everything (a peer daemon's bytes are input like a guest's).
import { z } from 'zod';
import { CHAT_LIMITS, CHAT_NAME_PATTERN } from '../../../layout/wire-layout.js';
import type { ChatRefusalCode } from '../chat-error.js';

export const ENVELOPE_VERSION = 1;
const MAX_META_BYTES = 4096;

const REFUSAL_CODES = ['BAD_NAME', 'NAME_TAKEN', 'TOO_MANY_NAMES', 'NO_PEER', 'NOT_ALLOWED', 'QUEUE_FULL', 'TOO_LARGE', 'TIMED_OUT', 'NO_CALL', 'PEER_GONE', 'UNREACHABLE'] as const satisfies readonly ChatRefusalCode[];

const shortText = z.string().max(256);
export const clusterRequestSchema = z
  .object({
    v: z.literal(ENVELOPE_VERSION),
    kind: z.enum(['send', 'call', 'broadcast']),
    /** The sender as its daemon knows it (its host comes from the subject). */
    from: z.object({ vm: z.string().min(1).max(64).nullable(), name: z.union([z.literal(''), z.string().regex(CHAT_NAME_PATTERN)]), group: z.string().min(1).max(64).optional() }).strict(),
    to: z.string().regex(CHAT_NAME_PATTERN),
    /** A call: how long the callee has to answer. */
    timeoutMs: z.number().int().min(1).max(CHAT_LIMITS.MAX_CALL_TIMEOUT_MS).optional(),
  })
  .strict();
export type ClusterRequest = z.infer<typeof clusterRequestSchema>;

export const clusterAnswerSchema = z.discriminatedUnion('ok', [
  z.object({ v: z.literal(ENVELOPE_VERSION), ok: z.literal(true), status: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1).optional() }).strict(),
  z.object({ v: z.literal(ENVELOPE_VERSION), ok: z.literal(false), code: z.enum(REFUSAL_CODES), reason: shortText }).strict(),
]);
export type ClusterAnswer = z.infer<typeof clusterAnswerSchema>;

export type Decoded<T> = { ok: true; meta: T; data: Uint8Array } | { ok: false; reason: string };

function encode(meta: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const out = new Uint8Array(4 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setUint32(0, json.byteLength, true);
  out.set(json, 4);
  out.set(data, 4 + json.byteLength);
  return out;
}

function decode<T>(bytes: Uint8Array, schema: z.ZodType<T>, what: string): Decoded<T> {
  if (bytes.byteLength < 4) return { ok: false, reason: `${what}: ${bytes.byteLength} bytes, shorter than its 4-byte length` };
  const metaLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (metaLen > MAX_META_BYTES || 4 + metaLen > bytes.byteLength) return { ok: false, reason: `${what}: metadata length ${metaLen} past the ${bytes.byteLength}-byte message (at most ${MAX_META_BYTES})` };
  const data = bytes.slice(4 + metaLen);
  if (data.byteLength > CHAT_LIMITS.MAX_MESSAGE_BYTES) return { ok: false, reason: `${what}: ${data.byteLength} bytes of data, at most ${CHAT_LIMITS.MAX_MESSAGE_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + metaLen)));
  } catch (err) {
    return { ok: false, reason: `${what}: metadata is not UTF-8 JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { ok: false, reason: `${what}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(meta)'}: ${i.message}`).join('; ')}` };
  return { ok: true, meta: parsed.data, data };
}

export const encodeRequest = (meta: Omit<ClusterRequest, 'v'>, data: Uint8Array): Uint8Array => encode({ v: ENVELOPE_VERSION, ...meta }, data);
export const decodeRequest = (bytes: Uint8Array): Decoded<ClusterRequest> => decode(bytes, clusterRequestSchema, 'cluster chat request');

/** A refusal's reason is cut to what the schema carries. */
export function encodeAnswer(answer: { ok: true; status?: number } | { ok: false; code: ChatRefusalCode; reason: string }, data: Uint8Array = new Uint8Array()): Uint8Array {
  const meta = answer.ok ? { v: ENVELOPE_VERSION, ok: true, ...(answer.status === undefined ? {} : { status: answer.status }) } : { v: ENVELOPE_VERSION, ok: false, code: answer.code, reason: answer.reason.slice(0, 256) };
  return encode(meta, data);
}
export const decodeAnswer = (bytes: Uint8Array): Decoded<ClusterAnswer> => decode(bytes, clusterAnswerSchema, 'cluster chat answer');

/** Subjects: each host publishes only under vmgmt.<host>. and takes requests on vmgmt.*.to.<host>. */
export const SUBJECTS = {
  to: (from: string, to: string) => `vmgmt.${from}.to.${to}`,
  /** What a host subscribes to: requests from any host to it. */
  requestsFor: (host: string) => `vmgmt.*.to.${host}`,
  inboxPrefix: (host: string) => `_INBOX_${host}`,
} as const;

/** The sending host of a request, from the subject it came on (vmgmt.<from>.to.<me>); undefined if malformed. */
export function senderOf(subject: string, me: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'vmgmt' || parts[2] !== 'to' || parts[3] !== me || !parts[1]) return undefined;
  return parts[1];
}
