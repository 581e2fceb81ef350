#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built from src/cli by `npm run build`, also run by `npm ci` via prepare).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('attnpatch: dist/ is missing; run `npm run build` first');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);
