// The services a VM's management device offers, in one list: the daemon, the demo/test runner and
// serve-vm all build it here, so a new mode's service is added in one place.
import type { CoreLogger } from '../core/core-logger.js';
import type { MessageService } from '../core/message-service.js';
import { pingService } from '../core/ping-service.js';
import type { VmgmtNative } from '../native/index.js';
import type { FileRootConfig } from './file/file-root-config.js';
import { FileService } from './file/file-service.js';
import type { HostTransfers } from './file/host-transfers.js';

export interface DeviceServicesOptions {
  native: VmgmtNative;
  /** The VM's host file root; without one the file mode serves only host transfers (AGENT_COPY). */
  files?: FileRootConfig;
  transfers: HostTransfers;
  log: CoreLogger;
}

export interface DeviceServices {
  services: MessageService[];
  files: FileService;
}

export function deviceServices(opts: DeviceServicesOptions): DeviceServices {
  const files = new FileService({ native: opts.native, ...(opts.files ? { config: opts.files } : {}), transfers: opts.transfers, log: opts.log });
  return { services: [pingService, files], files };
}
