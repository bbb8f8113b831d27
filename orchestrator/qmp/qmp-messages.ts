// Schemas of the four kinds of message a QMP server sends (docs/interop/qmp-spec in QEMU):
// greeting, success reply, error reply and asynchronous event. Unknown extra fields are allowed
// because newer QEMU versions add them.
import { z } from 'zod';

const qmpIdSchema = z.union([z.string(), z.number()]);

export const qmpVersionSchema = z.object({
  qemu: z.object({ major: z.number().int(), minor: z.number().int(), micro: z.number().int() }),
  package: z.string(),
});

export const qmpGreetingSchema = z.object({
  QMP: z.object({
    version: qmpVersionSchema,
    capabilities: z.array(z.string()),
  }),
});

export const qmpReturnSchema = z.object({
  return: z.unknown(),
  id: qmpIdSchema.optional(),
});

export const qmpErrorReplySchema = z.object({
  error: z.object({ class: z.string(), desc: z.string() }),
  id: qmpIdSchema.optional(),
});

export const qmpEventSchema = z.object({
  event: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.object({ seconds: z.number().int(), microseconds: z.number().int() }),
});

export type QmpId = z.infer<typeof qmpIdSchema>;
export type QmpVersion = z.infer<typeof qmpVersionSchema>;
export type QmpGreeting = z.infer<typeof qmpGreetingSchema>;
export type QmpReturn = z.infer<typeof qmpReturnSchema>;
export type QmpErrorReply = z.infer<typeof qmpErrorReplySchema>;
export type QmpEvent = z.infer<typeof qmpEventSchema>;

export type QmpMessage =
  | { kind: 'greeting'; greeting: QmpGreeting }
  | { kind: 'return'; reply: QmpReturn }
  | { kind: 'error'; reply: QmpErrorReply }
  | { kind: 'event'; event: QmpEvent };

export type QmpMessageResult = { ok: true; message: QmpMessage } | { ok: false; reason: string };

/** Classifies and validates one decoded JSON value from the QMP server. */
export function parseQmpMessage(value: unknown): QmpMessageResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: `expected a JSON object, got ${describe(value)}` };
  }
  if ('QMP' in value) return wrap(qmpGreetingSchema.safeParse(value), 'greeting', (greeting) => ({ kind: 'greeting', greeting }));
  if ('return' in value) return wrap(qmpReturnSchema.safeParse(value), 'return reply', (reply) => ({ kind: 'return', reply }));
  if ('error' in value) return wrap(qmpErrorReplySchema.safeParse(value), 'error reply', (reply) => ({ kind: 'error', reply }));
  if ('event' in value) return wrap(qmpEventSchema.safeParse(value), 'event', (event) => ({ kind: 'event', event }));
  return { ok: false, reason: `object has none of the keys QMP/return/error/event: ${describe(value)}` };
}

function wrap<T>(
  parsed: { success: true; data: T } | { success: false; error: z.ZodError },
  what: string,
  build: (data: T) => QmpMessage,
): QmpMessageResult {
  if (parsed.success) return { ok: true, message: build(parsed.data) };
  return { ok: false, reason: `malformed ${what}: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}` };
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

export function formatQmpVersion(version: QmpVersion): string {
  const { major, minor, micro } = version.qemu;
  return `${major}.${minor}.${micro}`;
}
