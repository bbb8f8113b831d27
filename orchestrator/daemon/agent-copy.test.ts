import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../device-backend/core/core-logger.js';
import { AgentService } from '../../device-backend/services/agent/agent-service.js';
import { loadNative } from '../../device-backend/native/index.js';
import { agentCopy } from './agent-copy.js';
import { VmgmtError } from './vmgmt-error.js';

describe('agentCopy', () => {
  it("turns the agent service's errors into the daemon's, keeping message and details", async () => {
    const agent = new AgentService({ native: loadNative(), log: silentLogger });
    const err = await agentCopy(agent, { direction: 'to-guest', hostFd: 0, sizeBytes: 0, guestPath: 'relative', timeoutMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmgmtError);
    expect(err).toMatchObject({ code: 'INVALID_REQUEST', message: 'guest path relative must be absolute', details: { guestPath: 'relative' } });
  });
});
