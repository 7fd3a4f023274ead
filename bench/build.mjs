#!/usr/bin/env node
// Bundles the load runner (bench/src/main.ts) into bench/dist/bench.mjs with esbuild, and its
// storm worker thread into bench/dist/storm-worker.mjs: plain ESM files that `node` runs with no
// TypeScript loader in the measured process.
// npm packages (mqtt-packet, hdr-histogram-js) stay external and load from node_modules.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

await build({
  // the runner, and the worker thread that opens a storm's connections
  entryPoints: { bench: here('./src/main.ts'), 'storm-worker': here('./src/storm-worker.ts') },
  outdir: here('./dist'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
});
