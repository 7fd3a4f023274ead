/**
 * `npm run synth:k8s`: writes infra/k8s/dist/fleetmq.k8s.yaml. Settings come from the environment:
 * FLEETMQ_IMAGE, FLEETMQ_NAMESPACE, FLEETMQ_DYNAMODB_REGION, FLEETMQ_NATS_SERVERS (comma-separated;
 * absent: NATS in the cluster), FLEETMQ_REDIS_URL (absent: Redis in the cluster),
 * FLEETMQ_TLS_SECRET (a kubernetes.io/tls secret: adds 8883 and 8084). Secrets are made outside
 * the YAML: `fleetmq-admin` (key admin-token) and `fleetmq-passwd` (key passwd, a password file
 * written with `fleetmq passwd`); docs/operations.md shows the kubectl commands.
 */
import { fileURLToPath } from 'node:url';
import { App, YamlOutputType } from 'cdk8s';
import { FleetmqChart } from './chart.js';

const env = process.env;
// compiled to infra/dist/k8s/main.js; the YAML goes to infra/k8s/dist
const app = new App({ outdir: fileURLToPath(new URL('../../k8s/dist', import.meta.url)), yamlOutputType: YamlOutputType.FILE_PER_CHART });
const natsServers = env.FLEETMQ_NATS_SERVERS?.split(',').map((s) => s.trim()).filter((s) => s !== '');
new FleetmqChart(app, 'fleetmq', {
  ...(env.FLEETMQ_NAMESPACE ? { namespace: env.FLEETMQ_NAMESPACE } : {}),
  image: env.FLEETMQ_IMAGE ?? 'fleetmq/edge:latest',
  dynamodb: { region: env.FLEETMQ_DYNAMODB_REGION ?? 'us-east-1' },
  nats: natsServers !== undefined && natsServers.length > 0 ? { mode: 'external', servers: natsServers } : { mode: 'in-cluster' },
  redis: env.FLEETMQ_REDIS_URL ? { mode: 'external', url: env.FLEETMQ_REDIS_URL } : { mode: 'in-cluster' },
  ...(env.FLEETMQ_TLS_SECRET ? { tls: { existingSecret: env.FLEETMQ_TLS_SECRET } } : {}),
  adminToken: { existingSecret: 'fleetmq-admin', key: 'admin-token' },
  passwordFile: { existingSecret: 'fleetmq-passwd', key: 'passwd' },
});
app.synth();
process.stdout.write(`wrote ${app.outdir}/fleetmq.k8s.yaml\n`);
