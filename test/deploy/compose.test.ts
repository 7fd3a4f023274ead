import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '@fleetmq/edge';

// No Docker engine here: the compose file is checked by reading it, with the edge's own
// config loader judging each node's environment.
const root = new URL('../../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8'), { merge: true }) as {
  services: Record<string, { environment?: Record<string, string>; command?: string[]; depends_on?: unknown; ports?: string[] }>;
};
const haproxy = readFileSync(new URL('infra/haproxy/haproxy.cfg', root), 'utf8');
const edges = Object.entries(compose.services).filter(([name]) => /^edge-\d+$/.test(name));

describe('docker-compose.yml', () => {
  it('runs three edge nodes with distinct node IDs', () => {
    expect(edges).toHaveLength(3);
    expect(new Set(edges.map(([, s]) => s.environment?.FLEETMQ_NODE_ID)).size).toBe(3);
    for (const [name, s] of edges) expect(s.environment?.FLEETMQ_NODE_ID).toBe(name);
  });

  it('gives every node a config the edge accepts, pointing at the NATS and DynamoDB services', () => {
    for (const [, s] of edges) {
      const config = loadConfig({ env: s.environment! });
      const nats = new URL(config.cluster.nats!.servers[0]!);
      expect(compose.services[nats.hostname]).toBeDefined();
      const dynamo = new URL(config.dynamodb!.endpoint!);
      expect(compose.services[dynamo.hostname]).toBeDefined();
      expect(config.listeners.map((l) => [l.type, l.host, l.port])).toEqual([
        ['tcp', '0.0.0.0', 1883],
        ['ws', '0.0.0.0', 8083],
      ]);
    }
  });

  it('creates the tables before the nodes start', () => {
    expect(compose.services['create-tables']!.command).toEqual(['dynamo', 'create-tables']);
    for (const [, s] of edges) expect(s.depends_on).toMatchObject({ 'create-tables': { condition: 'service_completed_successfully' } });
  });

  it('balances MQTT and WebSocket over every edge node, and only through the load balancer', () => {
    for (const [name] of edges) {
      expect(haproxy).toContain(`server ${name} ${name}:1883`);
      expect(haproxy).toContain(`server ${name} ${name}:8083`);
      expect(compose.services[name]!.ports).toBeUndefined();
    }
    expect(compose.services.lb!.ports).toEqual(['1883:1883', '8083:8083']);
  });
});
