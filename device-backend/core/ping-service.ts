import { MSG_TYPE, STATUS } from '../layout/wire-layout.js';
import { responseTo } from '../protocol/message-codec.js';
import type { MessageService } from './message-service.js';

/** PING: answers with the request's own payload, in any mode. */
export const pingService: MessageService = {
  name: 'ping',
  modes: 'any',
  types: [MSG_TYPE.PING],
  handle: (request) => responseTo(request, STATUS.OK.code, request.payload),
};
