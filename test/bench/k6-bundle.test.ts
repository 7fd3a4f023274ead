/**
 * The k6 scripts bundle with esbuild (k6/build.mjs) into plain ES modules whose only imports
 * are k6's own modules (k6/x/mqtt included), and that parse as JavaScript. Their types are
 * checked by `npm run typecheck` (tsc -p k6/tsconfig.json), against k6/types/xk6-mqtt.d.ts.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'fleetmq-k6-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('k6 scripts', () => {
  it('bundle into ES modules that import only k6 modules', () => {
    execFileSync(process.execPath, [join(ROOT, 'k6/build.mjs'), '--outdir', out], { stdio: 'pipe' });
    const bundles = readdirSync(out).filter((f) => f.endsWith('.js')).sort();
    expect(bundles).toEqual(['connect-ramp.js', 'reconnect-storm.js', 'telemetry.js']);
    for (const file of bundles) {
      const code = readFileSync(join(out, file), 'utf8');
      const imports = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
      expect(imports.length, file).toBeGreaterThan(0);
      for (const spec of imports) expect(spec, `${file} imports ${spec}`).toMatch(/^k6(\/|$)/);
      expect(imports, file).toContain('k6/x/mqtt');
      expect(code, file).toMatch(/export (const options|\{)/);
      // parses as an ES module (node --check does not resolve the k6 imports)
      const mjs = join(out, file.replace(/\.js$/, '.mjs'));
      copyFileSync(join(out, file), mjs);
      execFileSync(process.execPath, ['--check', mjs], { stdio: 'pipe' });
    }
  });
});
