// The dashboard's token: 32 random bytes in hex, kept in a file of mode 0600 (default
// <stateDir>/dashboard.token) so it stays the same across daemon restarts and Prometheus can read it
// (`authorization.credentials_file`). A file that others may read is made 0600 again, and said so.
import { randomBytes } from 'node:crypto';
import { chmodSync, openSync, readFileSync, statSync, writeSync, closeSync } from 'node:fs';
import type { CoreLogger } from '../../device-backend/core/core-logger.js';
import { VmgmtError } from '../daemon/vmgmt-error.js';

const TOKEN_PATTERN = /^[0-9a-f]{64}$/;

export function loadOrCreateToken(file: string, log: CoreLogger): string {
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new VmgmtError('INVALID_CONFIG', `cannot read the dashboard token file ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  if (text !== undefined) {
    if (!TOKEN_PATTERN.test(text)) throw new VmgmtError('INVALID_CONFIG', `the dashboard token file ${file} does not hold a token (64 hex digits): remove it and the daemon writes a new one`, { file });
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      chmodSync(file, 0o600);
      log.warn('the dashboard token file could be read by others: made it 0600', { file, mode: mode.toString(8) });
    }
    return text;
  }
  const token = randomBytes(32).toString('hex');
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  log.info('wrote a new dashboard token', { file });
  return token;
}
