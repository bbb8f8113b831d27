// `vmgmt vm exec` for the daemon: asks the VM's exec service to run the command and turns its errors into
// the daemon's. The service does the protocol (device-backend/services/exec/).
import { ExecError, type ExecErrorCode } from '../../device-backend/services/exec/exec-error.js';
import type { ExecOptions, ExecResult, ExecService } from '../../device-backend/services/exec/exec-service.js';
import { type VmgmtErrorCode, VmgmtError } from './vmgmt-error.js';

const CODES: Readonly<Record<ExecErrorCode, VmgmtErrorCode>> = {
  AGENT_UNAVAILABLE: 'AGENT_UNAVAILABLE',
  GUEST_REFUSED: 'GUEST_REFUSED',
  GUEST_GONE: 'GUEST_REFUSED',
  INVALID_REQUEST: 'INVALID_REQUEST',
  CLOSED: 'INVALID_STATE',
};

export async function vmExec(exec: ExecService, opts: ExecOptions): Promise<ExecResult> {
  try {
    return await exec.run(opts);
  } catch (err) {
    if (err instanceof ExecError) throw new VmgmtError(CODES[err.code], err.message, err.details, { cause: err });
    throw err;
  }
}
