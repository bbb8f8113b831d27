#!/usr/bin/env node
// Builds device-backend/native/build/Release/vmgmt_native.node with node-gyp against the headers of the
// Node binary running this script (never the per-machine npm `nodedir` setting).
// Usage: node scripts/build-native.mjs [--force]
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(repoRoot, 'device-backend', 'native');
const sources = [path.join(nativeDir, 'vmgmt_native.c'), path.join(nativeDir, 'binding.gyp')];
const output = path.join(nativeDir, 'build', 'Release', 'vmgmt_native.node');
const force = process.argv.includes('--force');

function fail(message) {
  console.error(`build-native: ${message}`);
  process.exit(1);
}

const nodedir = path.resolve(process.execPath, '../..');
const requiredHeaders = ['node_api.h', 'uv.h'].map((name) => path.join(nodedir, 'include', 'node', name));
const missingHeaders = requiredHeaders.filter((file) => !existsSync(file));
if (missingHeaders.length > 0) {
  fail(
    `the headers of the running Node (${process.execPath}, ${process.version}) are missing: ${missingHeaders.join(', ')}.\n` +
      `  Debian/Ubuntu nodejs package: apt-get install libnode-dev\n` +
      `  nodesource or official nodejs.org builds ship them in <prefix>/include/node; reinstall that build if they are gone.`,
  );
}

const nodeGyp = path.join(repoRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(nodeGyp)) fail(`node-gyp not found at ${nodeGyp}; run \`npm ci\` first (it is a devDependency).`);

if (!force && existsSync(output)) {
  const builtMs = statSync(output).mtimeMs;
  const newestSourceMs = Math.max(...sources.map((file) => statSync(file).mtimeMs));
  if (builtMs > newestSourceMs) {
    console.log(`build-native: ${path.relative(repoRoot, output)} is up to date (use --force to rebuild)`);
    process.exit(0);
  }
}

const env = { ...process.env };
for (const key of Object.keys(env)) {
  if (key.toLowerCase() === 'npm_config_nodedir') delete env[key];
}

const startedMs = performance.now();
const args = [nodeGyp, 'rebuild', '--loglevel=warn', `--nodedir=${nodedir}`, '--directory', nativeDir];
console.log(`build-native: node-gyp rebuild --nodedir=${nodedir} --directory ${path.relative(repoRoot, nativeDir)}`);
const run = spawnSync(process.execPath, args, { cwd: repoRoot, env, stdio: 'inherit' });
const tookS = ((performance.now() - startedMs) / 1000).toFixed(1);
if (run.error) fail(`could not run node-gyp: ${run.error.message}`);
if (run.status !== 0) fail(`node-gyp rebuild failed (exit ${run.status ?? run.signal}) after ${tookS} s; see the compiler output above.`);
if (!existsSync(output)) fail(`node-gyp reported success but ${output} does not exist.`);
console.log(`build-native: built ${path.relative(repoRoot, output)} in ${tookS} s (headers from ${nodedir})`);
