// `GET /v1/events`: the event stream as server-sent events on an HTTP response. Registers the stream's
// host-side chat name (`?as=`) before anything is sent, so a name already held is an ordinary JSON error
// answer; then holds the response open until the client goes away, the daemon stops, or the client falls
// behind and is dropped (event-hub.ts). The name is released when the stream stops.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChatApi } from '../daemon/vm-manager-api.js';
import { SSE_CONTENT_TYPE } from './api-contract.js';
import type { StreamAction } from './api-requests.js';
import { errorResponse, errorToResponse } from './api-responses.js';
import type { StreamOutcome } from './api-transfers.js';
import type { ApiEventHub, EventSubscriber } from './event-hub.js';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';

export interface EventStreamContext {
  events: ApiEventHub;
  chat?: ChatApi;
  log: CoreLogger;
}

export function handleEventStream(action: StreamAction & { kind: 'events' }, req: IncomingMessage, res: ServerResponse, ctx: EventStreamContext): StreamOutcome {
  let sub: EventSubscriber | undefined;
  let held: { close(): void } | undefined;
  if (action.as !== undefined) {
    if (!ctx.chat) return { kind: 'answer', response: errorResponse(404, 'NOT_FOUND', 'this daemon has no chat hub', {}) };
    try {
      // What is sent to the name before the stream is subscribed cannot happen: both run in this turn.
      held = ctx.chat.listen(action.as, (message) => sub?.offer('chat.message', message) ?? false);
    } catch (err) {
      return { kind: 'answer', response: errorToResponse(err).response };
    }
  }
  res.writeHead(200, { 'Content-Type': SSE_CONTENT_TYPE, 'Cache-Control': 'no-cache', Connection: 'close', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  const stream = ctx.events.subscribe(
    action.kinds,
    { write: (f) => void res.write(f), bufferedBytes: () => res.writableLength, end: () => res.end() },
    {
      ...(action.as === undefined ? {} : { as: action.as }),
      ...(action.vms === undefined ? {} : { vms: action.vms }),
      ...(action.afterId === undefined ? {} : { afterId: action.afterId }),
    },
  );
  sub = stream;
  stream.onClose((reason) => {
    held?.close();
    if (reason === 'dropped') ctx.log.warn('event stream dropped: the client fell behind', { as: action.as ?? null, limitBytes: ctx.events.maxBufferedBytes });
  });
  // A dropped stream ended its response; if the client does not close it, cut it after a moment.
  res.once('finish', () => setTimeout(() => res.destroy(), 1000).unref());
  req.once('close', () => stream.close());
  res.once('close', () => stream.close());
  return { kind: 'streamed', status: 200 };
}
