// The services a VM's management device offers, in one list: the daemon, the demo/test runner and
// serve-vm all build it here, so a new mode's service is added in one place.
import type { CoreLogger } from '../core/core-logger.js';
import type { MessageService } from '../core/message-service.js';
import { pingService } from '../core/ping-service.js';
import type { VmgmtNative } from '../native/index.js';
import { AgentService } from './agent/agent-service.js';
import type { FileRootConfig } from './file/file-root-config.js';
import { FileService } from './file/file-service.js';

export interface DeviceServicesOptions {
  native: VmgmtNative;
  /** The VM's host file root; without one the file mode answers NO_FILE_ROOT. */
  files?: FileRootConfig;
  log: CoreLogger;
}

export interface DeviceServices {
  services: MessageService[];
  files: FileService;
  /** Host-started copies through the guest agent (`vmgmt cp`). */
  agent: AgentService;
}

export function deviceServices(opts: DeviceServicesOptions): DeviceServices {
  const files = new FileService({ native: opts.native, ...(opts.files ? { config: opts.files } : {}), log: opts.log });
  const agent = new AgentService({ native: opts.native, log: opts.log });
  return { services: [pingService, files, agent], files, agent };
}
