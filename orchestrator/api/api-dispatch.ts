// One request in, one answer out: parse and validate, hand the typed action to the VM manager, map what it
// throws. No sockets here, so the whole request path is testable with a fake manager.
import type { VmManagerApi } from '../daemon/vm-manager-api.js';
import { parseApiRequest, type ApiAction, type RawApiRequest } from './api-requests.js';
import { errorToResponse, jsonResponse, type ApiResponse } from './api-responses.js';

export interface DispatchResult {
  response: ApiResponse;
  action?: ApiAction;
  /** Set when the answer is a 500 the server should log with its stack. */
  unexpectedError?: unknown;
}

export async function dispatchApiRequest(
  manager: VmManagerApi,
  req: RawApiRequest,
  opts: { version: string },
): Promise<DispatchResult> {
  const parsed = parseApiRequest(req);
  if (!parsed.ok) return { response: parsed.response };
  const action = parsed.action;
  try {
    return { response: await executeAction(manager, action, opts), action };
  } catch (err) {
    const mapped = errorToResponse(err);
    return mapped.unexpected
      ? { response: mapped.response, action, unexpectedError: err }
      : { response: mapped.response, action };
  }
}

async function executeAction(manager: VmManagerApi, action: ApiAction, opts: { version: string }): Promise<ApiResponse> {
  switch (action.kind) {
    case 'health':
      return jsonResponse(200, { ok: true, version: opts.version });
    case 'list':
      return jsonResponse(200, { vms: manager.list() });
    case 'create':
      return jsonResponse(201, await manager.create(action.definition));
    case 'inspect':
      return jsonResponse(200, manager.inspect(action.name));
    case 'start':
      return jsonResponse(200, await manager.start(action.name));
    case 'stop':
      return jsonResponse(
        200,
        await manager.stop(action.name, action.timeoutMs === undefined ? {} : { timeoutMs: action.timeoutMs }),
      );
    case 'kill':
      return jsonResponse(200, await manager.kill(action.name));
    case 'remove':
      await manager.remove(action.name, { force: action.force });
      return { status: 204, kind: 'empty' };
    case 'logs': {
      const text = await manager.logs(
        action.name,
        action.tailBytes === undefined ? { source: action.source } : { source: action.source, tailBytes: action.tailBytes },
      );
      return { status: 200, kind: 'text', body: text };
    }
  }
}
