// The daemon's one error type: a closed set of codes, the offending values, and the cause. The codes are the
// control API's (ERROR_CODES in orchestrator/api/api-contract.ts, with their HTTP_STATUS), plus those that
// never reach the API: INVALID_CONFIG (the daemon's config file, at start or on SIGHUP).
import { CodedError } from '../../device-backend/errors/coded-error.js';
import type { ErrorCode } from '../api/api-contract.js';

export type VmgmtErrorCode = ErrorCode | 'INVALID_CONFIG';

export class VmgmtError extends CodedError<VmgmtErrorCode> {
  override readonly name = 'VmgmtError';
}
