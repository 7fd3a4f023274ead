/**
 * `npm run synth:aws`: synthesizes the stack into infra/aws/cdk.out, offline (no credentials, no
 * lookups: the stack is environment-agnostic). Settings from the environment: FLEETMQ_IMAGE,
 * FLEETMQ_CERTIFICATE_ARN (else a certificate is requested for FLEETMQ_DOMAIN), FLEETMQ_TABLE_PREFIX.
 * Deploy the result with `npx cdk deploy --app infra/aws/cdk.out`.
 */
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { FleetmqAwsStack } from './stack.js';

const env = process.env;
// compiled to infra/dist/aws/main.js; the cloud assembly goes to infra/aws/cdk.out
const app = new App({ outdir: fileURLToPath(new URL('../../aws/cdk.out', import.meta.url)) });
new FleetmqAwsStack(app, 'FleetMQ', {
  image: env.FLEETMQ_IMAGE ?? 'fleetmq/edge:latest',
  certificate: env.FLEETMQ_CERTIFICATE_ARN ? { arn: env.FLEETMQ_CERTIFICATE_ARN } : { domainName: env.FLEETMQ_DOMAIN ?? 'mqtt.example.com' },
  ...(env.FLEETMQ_TABLE_PREFIX ? { tablePrefix: env.FLEETMQ_TABLE_PREFIX } : {}),
  description: 'FleetMQ MQTT broker cluster: edge nodes on Fargate behind an NLB, NATS, ElastiCache Redis, DynamoDB',
});
const assembly = app.synth();
process.stdout.write(`wrote ${assembly.directory} (${assembly.stacks.map((s) => s.templateFile).join(', ')})\n`);
