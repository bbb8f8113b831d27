// Where vmgmt-calc-exec is: built by `make build` (Makefile target calc-exec) in this checkout.
import path from 'node:path';
import { findRepoRoot } from '../../../orchestrator/vm/repo-root.js';

export const calcLauncherPath = (): string => path.join(findRepoRoot(), 'device-backend/calc-exec/build/vmgmt-calc-exec');
