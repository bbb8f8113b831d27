#!/usr/bin/env node
// The `vmgmt` command: see README.md next to this file, or `vmgmt --help`.
import { runCli } from './cli-main.js';

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // `vmgmt vm logs a | head`: the reader went away, which is not a failure.
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

runCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vmgmt: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
