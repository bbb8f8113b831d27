// `vmgmt cp` for the daemon: asks the VM's agent service for the copy and turns its errors into the
// daemon's. The service does the protocol (device-backend/services/agent/).
import { AgentError, type AgentErrorCode } from '../../device-backend/services/agent/agent-error.js';
import type { AgentCopyOptions, AgentService } from '../../device-backend/services/agent/agent-service.js';
import { type VmgmtErrorCode, VmgmtError } from './vmgmt-error.js';

const CODES: Readonly<Record<AgentErrorCode, VmgmtErrorCode>> = {
  AGENT_UNAVAILABLE: 'AGENT_UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  CANCELLED: 'INVALID_STATE',
  GUEST_REFUSED: 'GUEST_REFUSED',
  INVALID_REQUEST: 'INVALID_REQUEST',
};

export async function agentCopy(agent: AgentService, opts: AgentCopyOptions): Promise<{ bytes: number }> {
  try {
    return await agent.copy(opts);
  } catch (err) {
    if (err instanceof AgentError) throw new VmgmtError(CODES[err.code], err.message, err.details, { cause: err });
    throw err;
  }
}
