#!/usr/bin/env node
// A three-node FleetMQ cluster on this machine, without Docker: one nats-server, dynalite
// (DynamoDB API, in memory) and three edge nodes on 127.0.0.1. Ctrl-C stops everything.
//
//   npm run cluster:local            # nodes on 1883, 1884, 1885 (WebSocket 8083-8085, ops 8181-8183)
//   FLEETMQ_CLUSTER_NODES=5 npm run cluster:local
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const nodes = Number(process.env.FLEETMQ_CLUSTER_NODES ?? 3);
const natsPort = Number(process.env.FLEETMQ_NATS_PORT ?? 4222);
const dynamoPort = Number(process.env.FLEETMQ_DYNAMO_PORT ?? 8000);
const opsPort = Number(process.env.FLEETMQ_OPS_BASE_PORT ?? 8181); // node i: /healthz, /metrics, admin API on opsPort + i
const children = [];

function start(name, command, args, env = {}) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('error', (err) => {
    console.error(`${name}: ${err.message}${err.code === 'ENOENT' ? ` (install it: apt-get install -y ${command})` : ''}`);
    stop(1);
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping the cluster`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
  setTimeout(() => process.exit(code), 3000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

start('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-m', String(natsPort + 4000)]);
start('dynalite', process.execPath, [fileURLToPath(import.meta.resolve('dynalite/cli.js')), '--host', '127.0.0.1', '--port', String(dynamoPort), '--createTableMs', '0']);
// give both a moment; the nodes retry NATS by themselves, and DynamoDB calls retry too
await new Promise((resolve) => setTimeout(resolve, 1000));

const cli = fileURLToPath(new URL('../services/edge/dist/cli.js', import.meta.url));
for (let i = 0; i < nodes; i++) {
  start(`edge-${i + 1}`, process.execPath, [cli, 'start'], {
    FLEETMQ_NODE_ID: `edge-${i + 1}`,
    FLEETMQ_LISTENERS: `tcp://127.0.0.1:${1883 + i},ws://127.0.0.1:${8083 + i}/mqtt`,
    FLEETMQ_OPS__PORT: String(opsPort + i),
    FLEETMQ_CLUSTER__NATS__SERVERS: `nats://127.0.0.1:${natsPort}`,
    FLEETMQ_DYNAMODB__ENDPOINT: `http://127.0.0.1:${dynamoPort}`,
    FLEETMQ_DYNAMODB__CREATE_TABLES: i === 0 ? 'true' : 'false',
    FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true', // a local playground: anonymous on purpose (a cluster refuses it by default)
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'local',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
  });
  if (i === 0) await new Promise((resolve) => setTimeout(resolve, 1500)); // the first node creates the tables
}
console.error(
  `cluster up: MQTT on 127.0.0.1:${[...Array(nodes).keys()].map((i) => 1883 + i).join(', ')}; ops (/metrics, /readyz) on ${[...Array(nodes).keys()].map((i) => opsPort + i).join(', ')}; NATS ${natsPort}, DynamoDB ${dynamoPort}`,
);
