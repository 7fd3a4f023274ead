#!/usr/bin/env node
// Bundles the k6 scripts (k6/*.ts) into k6/dist/*.js with esbuild: one plain ES module per
// script, `k6` and `k6/…` imports (k6/x/mqtt included) left for k6 to resolve.
//
//   node k6/build.mjs [--outdir DIR]
import { build } from 'esbuild';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values } = parseArgs({ options: { outdir: { type: 'string', default: join(here, 'dist') } } });

export const scripts = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => join(here, f));

await build({
  entryPoints: scripts,
  outdir: values.outdir,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2020',
  external: ['k6', 'k6/*'],
  logLevel: 'warning',
});
process.stdout.write(`k6: bundled ${scripts.length} script(s) into ${values.outdir}\n`);
