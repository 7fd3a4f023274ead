/** Writes infra/grafana/fleetmq-dashboard.json from dashboard.ts. */
import { writeFileSync } from 'node:fs';
import { dashboardText } from './dashboard.js';

const target = new URL('../../grafana/fleetmq-dashboard.json', import.meta.url);
writeFileSync(target, dashboardText());
process.stdout.write(`wrote ${target.pathname}\n`);
