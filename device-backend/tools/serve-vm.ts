// Serves one management device on a socket until interrupted: for driving a hand-started QEMU.
import { parseArgs } from 'node:util';
import { ManagementDevice } from '../management-device.js';
import { loadNative } from '../native/index.js';
import { DEFAULT_FILE_LIMITS } from '../services/file/file-root-config.js';
import { deviceServices } from '../services/device-services.js';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    'region-size': { type: 'string' },
    vectors: { type: 'string' },
    'files-root': { type: 'string' },
    'read-only': { type: 'boolean' },
    quota: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help || !values.socket) {
  console.log('usage: serve-vm --socket PATH [--region-size BYTES] [--vectors N] [--files-root DIR [--read-only] [--quota BYTES]]\n' +
    'Serves a vmgmt management device; start QEMU with\n' +
    '  -chardev socket,id=ivsh,path=PATH -device ivshmem-doorbell,chardev=ivsh,vectors=N');
  process.exit(values.help ? 0 : 2);
}
const log = {
  info: (m: string, f?: object) => console.log(`info: ${m}`, f ?? ''),
  warn: (m: string, f?: object) => console.log(`warn: ${m}`, f ?? ''),
  error: (m: string, f?: object) => console.error(`error: ${m}`, f ?? ''),
};
const native = loadNative();
const { services } = deviceServices({
  native,
  ...(values['files-root']
    ? { files: { ...DEFAULT_FILE_LIMITS, root: values['files-root'], readOnly: values['read-only'] ?? false, ...(values.quota ? { quotaBytes: Number(values.quota) } : {}) } }
    : {}),
  log,
});
const device = ManagementDevice.start({
  native,
  services,
  name: 'serve-vm',
  socketPath: values.socket,
  geometry: {
    ...(values['region-size'] ? { regionSizeBytes: Number(values['region-size']) } : {}),
    ...(values.vectors ? { vectors: Number(values.vectors) } : {}),
  },
  log,
});
console.log(`serving on ${values.socket}: region ${device.geometry.regionSizeBytes} bytes, ${device.geometry.vectors} vectors`);
const stop = (): void => {
  console.log('counters', device.core.counters);
  device.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
