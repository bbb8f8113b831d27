// The services a VM's management device offers, in one list: the daemon, the demo/test runner and
// serve-vm all build it here, so a new mode's service is added in one place.
import type { CoreLogger } from '../core/core-logger.js';
import type { MessageService } from '../core/message-service.js';
import { pingService } from '../core/ping-service.js';
import type { VmgmtNative } from '../native/index.js';
import { AgentService } from './agent/agent-service.js';
import type { CalcCatalog } from './calc/calc-programs.js';
import { AgentUpdateService } from './agent/agent-update.js';
import { CalcService } from './calc/calc-service.js';
import { ExecService } from './exec/exec-service.js';
import type { ChatHub } from './chat/chat-hub.js';
import { ChatService } from './chat/chat-service.js';
import type { StatsHub } from './stats/stats-hub.js';
import { StatsService } from './stats/stats-service.js';
import type { FileRootConfig } from './file/file-root-config.js';
import { FileService } from './file/file-service.js';

export interface DeviceServicesOptions {
  native: VmgmtNative;
  /** The VM's host file root; without one the file mode answers NO_FILE_ROOT. */
  files?: FileRootConfig;
  log: CoreLogger;
  /** The daemon's one chat hub and this VM's chat group; without a hub the chat mode is unavailable. */
  chat?: ChatAttachment;
  /** The daemon's statistics hub; without one the stats mode is unavailable. */
  stats?: StatsHub;
  /** What this VM may calculate (the daemon's declared programs for it); default the built-ins. */
  calc?: CalcCatalog;
}

export interface ChatAttachment {
  hub: ChatHub;
  group?: string;
}

export interface DeviceServices {
  services: MessageService[];
  files: FileService;
  /** Host-started copies through the guest agent (`vmgmt cp`). */
  agent: AgentService;
  /** The agent's version (AGENT_HELLO) and the driver update in place. */
  agentUpdate: AgentUpdateService;
  calc: CalcService;
  /** `vmgmt vm exec` through the guest agent. */
  exec: ExecService;
  chat?: ChatService;
  stats?: StatsService;
}

export function deviceServices(opts: DeviceServicesOptions): DeviceServices {
  const files = new FileService({ native: opts.native, ...(opts.files ? { config: opts.files } : {}), log: opts.log });
  const agent = new AgentService({ native: opts.native, log: opts.log });
  const calc = new CalcService({ native: opts.native, log: opts.log, ...(opts.calc ? { catalog: opts.calc } : {}) });
  const exec = new ExecService({ agent, log: opts.log });
  const agentUpdate = new AgentUpdateService({ agent, log: opts.log });
  const built: DeviceServices = { services: [pingService, files, agent, calc, exec, agentUpdate], files, agent, agentUpdate, calc, exec };
  if (opts.chat) {
    built.chat = new ChatService({ hub: opts.chat.hub, ...(opts.chat.group !== undefined ? { group: opts.chat.group } : {}) });
    built.services.push(built.chat);
  }
  if (opts.stats) {
    built.stats = new StatsService({ hub: opts.stats });
    built.services.push(built.stats);
  }
  return built;
}
