// One request in, one answer out: parse and validate, hand the typed action to the VM manager, map what it
// throws, and check the answer against the API contract before it goes out. No sockets here, so the whole
// request path is testable with a fake manager.
import type { ChatApi, VmManagerApi } from '../daemon/vm-manager-api.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';
import { ANSWERS, LOG_END_HEADER, LOG_RESTART_AT_HEADER, LOG_VM_STATE_HEADER, chatData, checkContract, describeProblems, errorBodySchema, type BufferedRouteId, type DashboardInfo, type FieldProblem, type VmFiguresList } from './api-contract.js';
import { parseApiRequest, type ApiAction, type RawApiRequest } from './api-requests.js';
import type { ExecTerminals } from './exec-terminals.js';
import { errorResponse, errorToResponse, jsonResponse, type ApiResponse } from './api-responses.js';

export interface DispatchResult {
  response: ApiResponse;
  action?: ApiAction;
  /** Set when the answer is a 500 the server should log with its stack. */
  unexpectedError?: unknown;
}

export interface DispatchOptions {
  version: string;
  /** The daemon's chat hub, host side; without it the chat routes answer NOT_FOUND. */
  chat?: ChatApi;
  /** What the daemon sees of each VM now (`GET /v1/figures`); without it the route answers NOT_FOUND. */
  figures?: () => VmFiguresList;
  /** The dashboard's address and token (`GET /v1/dashboard`); without it (metrics.enabled false) NOT_FOUND. */
  dashboard?: () => DashboardInfo;
  /** The open --tty exec sessions (`POST /v1/vms/:name/exec/:id/resize`); without it NOT_FOUND. */
  execTerminals?: ExecTerminals;
}

export async function dispatchApiRequest(
  manager: VmManagerApi,
  req: RawApiRequest,
  opts: DispatchOptions,
): Promise<DispatchResult> {
  const parsed = parseApiRequest(req);
  if (!parsed.ok) return { response: parsed.response };
  const action = parsed.action;
  let result: DispatchResult;
  try {
    result = { response: await executeAction(manager, action, opts), action };
  } catch (err) {
    const mapped = errorToResponse(err);
    result = mapped.unexpected
      ? { response: mapped.response, action, unexpectedError: err }
      : { response: mapped.response, action };
  }
  const problems = answerProblems(action.kind, result.response);
  if (problems.length === 0) return result;
  // A bug in the daemon: the answer is not what the contract promises. The client gets an honest 500.
  const message = `the daemon's answer to ${req.method} ${req.url} breaks the API contract: ${describeProblems(problems)}`;
  return {
    response: errorResponse(500, 'INTERNAL', `internal error in the daemon: ${message}`, { problems }),
    action,
    unexpectedError: new Error(message),
  };
}

/** What is wrong with an answer of this route by the contract (api-contract.ts); empty when nothing is. */
export function answerProblems(route: BufferedRouteId, response: ApiResponse): FieldProblem[] {
  const expected = ANSWERS[route];
  if (response.status >= 400) {
    if (response.kind !== 'json') return [{ path: '(answer)', message: `an error answer must be JSON, not ${response.kind}` }];
    const checked = checkContract(errorBodySchema, response.body);
    return checked.ok ? [] : checked.problems;
  }
  if (response.kind !== expected.kind) return [{ path: '(answer)', message: `must be ${expected.kind}, not ${response.kind}` }];
  if (expected.kind !== 'json') return [];
  const checked = checkContract(expected.schema, (response as ApiResponse & { kind: 'json' }).body);
  return checked.ok ? [] : checked.problems;
}

function chatOf(opts: DispatchOptions): ChatApi {
  if (!opts.chat) throw new VmgmtError('NOT_FOUND', 'this daemon has no chat hub', {});
  return opts.chat;
}

async function executeAction(manager: VmManagerApi, action: ApiAction, opts: DispatchOptions): Promise<ApiResponse> {
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
    case 'pause':
      return jsonResponse(200, await manager.pause(action.name));
    case 'resume':
      return jsonResponse(200, await manager.resume(action.name));
    case 'remove':
      await manager.remove(action.name, { force: action.force });
      return { status: 204, kind: 'empty' };
    case 'logs': {
      const { kind: _kind, name, ...opts } = action;
      const chunk = await manager.logs(name, opts);
      return {
        status: 200,
        kind: 'text',
        body: chunk.text,
        headers: { [LOG_END_HEADER]: String(chunk.endByte), [LOG_VM_STATE_HEADER]: chunk.vmState, ...(chunk.restartAt ? { [LOG_RESTART_AT_HEADER]: chunk.restartAt } : {}) },
      };
    }
    case 'update':
      return jsonResponse(200, await manager.update(action.name, action.definition));
    case 'execResize': {
      if (!opts.execTerminals) throw new VmgmtError('NOT_FOUND', 'this API server has no exec sessions', {});
      opts.execTerminals.resize(action.name, action.id, action.rows, action.cols);
      return { status: 204, kind: 'empty' };
    }
    case 'host':
      return jsonResponse(200, await manager.host());
    case 'chatPeers':
      return jsonResponse(200, { peers: chatOf(opts).peers() });
    case 'chatSend': {
      const { to, data, as } = action;
      return jsonResponse(200, await chatOf(opts).send(as === undefined ? { to, data } : { to, data, as }));
    }
    case 'chatCall': {
      const { to, data, as, timeoutMs } = action;
      const r = await chatOf(opts).call(as === undefined ? { to, data, timeoutMs } : { to, data, timeoutMs, as });
      return jsonResponse(200, { to: r.to, status: r.status, ...chatData(r.data) });
    }
    case 'chatReply': {
      const { kind: _kind, ...reply } = action;
      chatOf(opts).reply(reply);
      return jsonResponse(200, { callId: action.callId, replied: true });
    }
    case 'chatPolicyCheck':
      return jsonResponse(200, chatOf(opts).policyCheck(action.from, action.to));
    case 'vm-stats':
      return jsonResponse(200, manager.stats(action.name, action.limit === undefined ? {} : { limit: action.limit }));
    case 'stats':
      return jsonResponse(200, manager.statsAll());
    case 'figures':
      if (!opts.figures) throw new VmgmtError('NOT_FOUND', 'this daemon serves no figures', {});
      return jsonResponse(200, opts.figures());
    case 'dashboard':
      if (!opts.dashboard) throw new VmgmtError('NOT_FOUND', 'the dashboard is off (metrics.enabled is false in the daemon config): turn it on and restart the daemon', {});
      return jsonResponse(200, opts.dashboard());
    case 'tree':
      return jsonResponse(200, { guestPath: action.guestPath, ...(await manager.listGuestTree(action.name, action.guestPath)) });
    case 'mkdir':
      await manager.makeGuestDir(action.name, action.guestPath, action.mode);
      return jsonResponse(200, { guestPath: action.guestPath });
    case 'agentUpdate': {
      const { kind: _kind, name, ...opts } = action;
      return jsonResponse(200, await manager.agentUpdate(name, opts));
    }
  }
}
