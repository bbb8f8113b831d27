import { writeFileSync } from 'node:fs';
import { generateCHeader } from './generate-c-header.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: generate-c-header-cli.js OUTPUT.h');
  process.exit(2);
}
writeFileSync(out, generateCHeader());
console.log(`wrote ${out}`);
