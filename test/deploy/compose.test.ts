import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parsePasswordFile, verifyPassword } from '@fleetmq/auth';
import { loadConfig, type EdgeConfig } from '@fleetmq/edge';

// No Docker engine here: the compose file is checked by reading it, with the edge's own config
// loader judging each node's environment as the container would see it (image ENV, then the
// service's environment, with the config file resolved through the service's volumes).
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const exists = (path: string) => existsSync(new URL(path, root));

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
  stop_grace_period?: string;
}
const composeText = read('docker-compose.yml');
const compose = parse(composeText, { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  if (s === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
const edges = Object.entries(services).filter(([name]) => /^edge-\d+$/.test(name));

/** Compose's `${VAR:-default}`, as `docker compose up` resolves it with nothing set: every variable needs a default. */
function interpolate(value: string): string {
  return String(value).replace(/\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => {
    if (fallback === undefined) throw new Error(`\${${name}} has no default in docker-compose.yml`);
    return fallback;
  });
}

/** The runtime stage's ENV of the Dockerfile. */
function imageEnv(): Record<string, string> {
  const text = read('Dockerfile').replace(/\\\n\s*/g, ' ');
  const stage = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const [, pairs] of stage.matchAll(/^ENV\s+(.+)$/gm)) {
    for (const [, key, value] of pairs!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) env[key!] = value!;
  }
  return env;
}

/** Container path → repository path, from the service's bind mounts and the Dockerfile's COPY of infra/docker. */
function hostPath(s: Service, containerPath: string): string {
  for (const volume of s.volumes ?? []) {
    const [host, container] = volume.split(':');
    if (container === containerPath) return host!.replace(/^\.\//, '');
  }
  if (containerPath.startsWith('/app/')) return containerPath.slice('/app/'.length);
  throw new Error(`${containerPath} is neither mounted nor in the image`);
}

function containerEnv(s: Service): Record<string, string> {
  return { ...imageEnv(), ...Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(v)])) };
}

function edgeConfig(s: Service): EdgeConfig {
  const env = containerEnv(s);
  return loadConfig({ env: { ...env, FLEETMQ_CONFIG: new URL(hostPath(s, env.FLEETMQ_CONFIG!), root).pathname } });
}

const configs = new Map(edges.map(([name, s]) => [name, edgeConfig(s)]));
const config = (name: string) => configs.get(name)!;
const hostOf = (url: string) => new URL(url).hostname;

/** haproxy.cfg as sections: header line → indented lines. */
const haproxy = new Map<string, string[]>();
{
  let current: string[] = [];
  for (const line of read('infra/haproxy/haproxy.cfg').split('\n')) {
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    if (/^\S/.test(line)) haproxy.set(line.trim(), (current = []));
    else current.push(line.trim());
  }
}
const section = (header: string) => {
  const lines = haproxy.get(header);
  if (lines === undefined) throw new Error(`haproxy.cfg has no "${header}"`);
  return lines;
};
/** The backend a frontend bound to `port` sends to. */
function backendFor(port: number): string[] {
  for (const [header, lines] of haproxy) {
    if (header.startsWith('frontend') && lines.includes(`bind :${port}`)) {
      const name = lines.find((l) => l.startsWith('default_backend'))!.split(/\s+/)[1]!;
      return section(`backend ${name}`);
    }
  }
  throw new Error(`no HAProxy frontend binds :${port}`);
}

describe('docker-compose.yml: edge nodes', () => {
  it('runs three edge nodes with distinct node IDs', () => {
    expect(edges).toHaveLength(3);
    for (const [name] of edges) expect(config(name).nodeId).toBe(name);
  });

  it('gives every node a cluster config the edge accepts: NATS, Redis and DynamoDB, each a service of this file', () => {
    for (const [name] of edges) {
      const c = config(name);
      expect(c.cluster.nats!.servers.map(hostOf)).toEqual(['nats']);
      expect(hostOf(c.cluster.redis!.url)).toBe('redis');
      expect(hostOf(c.dynamodb!.endpoint!)).toBe('dynamodb');
      for (const backend of ['nats', 'redis', 'dynamodb']) expect(services[backend], backend).toBeDefined();
    }
  });

  it('listens on all interfaces: MQTT with PROXY protocol, WebSocket without, ops on 8081 with an admin token', () => {
    for (const [name] of edges) {
      const c = config(name);
      expect(c.listeners.map((l) => [l.type, l.host, l.port, l.proxyProtocol])).toEqual([
        ['tcp', '0.0.0.0', 1883, true],
        ['ws', '0.0.0.0', 8083, false],
      ]);
      expect(c.ops).toMatchObject({ enabled: true, host: '0.0.0.0', port: 8081 });
      expect(c.ops.adminToken!.length).toBeGreaterThanOrEqual(16);
      // the admin CLI inside the container finds the same token
      expect(containerEnv(service(name)).FLEETMQ_ADMIN_TOKEN).toBe(c.ops.adminToken);
    }
  });

  it('makes clients log in with the mounted password file, whose documented demo user works', async () => {
    const [name, s] = edges[0]!;
    const c = config(name);
    expect(c.auth.allowAnonymous).toBe(false);
    const file = hostPath(s, c.auth.passwordFile!);
    expect(file).toBe('infra/compose/passwd');
    const users = parsePasswordFile(read(file));
    expect(users.problems).toEqual([]);
    const demo = users.users.get('demo');
    expect(demo).toBeDefined();
    expect(await verifyPassword('fleetmq-demo', demo!.hash)).toBe(true);
    expect(await verifyPassword('not-the-password', demo!.hash)).toBe(false);
    expect(composeText).toContain('-u demo -P fleetmq-demo');
    for (const [, other] of edges) expect(other.volumes).toEqual(s.volumes);
  });

  it('builds an image whose own default config listens on all interfaces, and sets no FLEETMQ_LISTENERS to override a deployment', () => {
    const env = imageEnv();
    expect(env.FLEETMQ_LISTENERS).toBeUndefined();
    const c = loadConfig({ env: { FLEETMQ_CONFIG: new URL(hostPath({}, env.FLEETMQ_CONFIG!), root).pathname } });
    expect(c.listeners.map((l) => l.host)).toEqual(['0.0.0.0', '0.0.0.0']);
    expect(c.ops.host).toBe('0.0.0.0');
    expect(read('Dockerfile')).toContain('COPY infra/docker/fleetmq.yaml infra/docker/fleetmq.yaml');
  });
});

describe('docker-compose.yml: start order and health', () => {
  it('creates the tables, and waits for healthy NATS and Redis, before the nodes start', () => {
    const create = service('create-tables');
    expect(create.command).toEqual(['dynamo', 'create-tables']);
    const createConfig = loadConfig({ env: { ...containerEnv(create), FLEETMQ_CONFIG: new URL(hostPath(create, imageEnv().FLEETMQ_CONFIG!), root).pathname } });
    expect(hostOf(createConfig.dynamodb!.endpoint!)).toBe('dynamodb');
    expect(createConfig.dynamodb!.tablePrefix).toBe(config('edge-1').dynamodb!.tablePrefix);
    for (const [, s] of edges) {
      expect(s.depends_on).toEqual({
        nats: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        'create-tables': { condition: 'service_completed_successfully' },
      });
    }
    for (const name of ['nats', 'redis']) expect(service(name).healthcheck?.test.length).toBeGreaterThan(0);
  });

  it('checks each node on /readyz of its ops port, and stops it with more time than its drain', () => {
    for (const [name, s] of edges) {
      const c = config(name);
      expect(s.healthcheck!.test.join(' ')).toContain(`http://127.0.0.1:${c.ops.port}/readyz`);
      expect(Number(s.stop_grace_period!.replace(/s$/, '')) * 1000).toBeGreaterThan(c.drain.gracePeriod);
    }
    expect(service('lb').depends_on).toEqual(Object.fromEntries(edges.map(([name]) => [name, { condition: 'service_healthy' }])));
  });
});

describe('docker-compose.yml: HAProxy', () => {
  it('sends a PROXY v2 header to every node on MQTT, where the node expects one, and none on WebSocket', () => {
    const mqtt = backendFor(1883);
    const ws = backendFor(8083);
    for (const [name] of edges) {
      const listeners = config(name).listeners;
      const tcp = listeners.find((l) => l.port === 1883)!;
      const wsl = listeners.find((l) => l.port === 8083)!;
      const mqttServer = mqtt.find((l) => l.startsWith(`server ${name} ${name}:1883`));
      expect(mqttServer, `MQTT backend server ${name}`).toBeDefined();
      expect(mqttServer!.split(/\s+/).includes('send-proxy-v2')).toBe(tcp.proxyProtocol);
      const wsServer = ws.find((l) => l.startsWith(`server ${name} ${name}:8083`));
      expect(wsServer, `WebSocket backend server ${name}`).toBeDefined();
      expect(wsServer!.split(/\s+/).some((w) => w.startsWith('send-proxy'))).toBe(wsl.proxyProtocol);
    }
    expect(mqtt.filter((l) => l.startsWith('server '))).toHaveLength(edges.length);
    expect(ws.filter((l) => l.startsWith('server '))).toHaveLength(edges.length);
  });

  it('takes a node out of rotation when its /readyz fails', () => {
    for (const backend of [backendFor(1883), backendFor(8083)]) {
      expect(backend).toContain('option httpchk GET /readyz');
      expect(backend).toContain('http-check expect status 200');
      const defaults = backend.find((l) => l.startsWith('default-server'))!.split(/\s+/);
      expect(defaults).toContain('check');
      expect(defaults[defaults.indexOf('port') + 1]).toBe(String(config('edge-1').ops.port));
    }
  });

  it('is the only way in: the nodes publish no ports', () => {
    for (const [name, s] of edges) expect(s.ports, name).toBeUndefined();
    expect(service('lb').ports).toEqual(['1883:1883', '8083:8083', '8404:8404']);
  });
});

describe('docker-compose.yml: Prometheus and Grafana', () => {
  const mounted = (s: Service, containerPath: string) => {
    const path = hostPath(s, containerPath);
    expect(exists(path), `${path} (mounted at ${containerPath})`).toBe(true);
    return read(path);
  };

  it('scrapes every node on its ops port and loads the alert rules', () => {
    const prometheus = service('prometheus');
    const config = parse(mounted(prometheus, '/etc/prometheus/prometheus.yml')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const job = config.scrape_configs.find((j) => j.job_name === 'fleetmq')!;
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.static_configs.flatMap((c) => c.targets).sort()).toEqual(edges.map(([name]) => `${name}:${configs.get(name)!.ops.port}`).sort());
    expect(config.rule_files).toHaveLength(1);
    const rules = parse(mounted(prometheus, config.rule_files[0]!)) as { groups: { rules: { alert: string }[] }[] };
    expect(rules.groups.flatMap((g) => g.rules).length).toBeGreaterThan(0);
  });

  it('provisions the Prometheus data source and the dashboard file that is in the repository', () => {
    const grafana = service('grafana');
    const dashboardsDir = '/etc/grafana/provisioning/dashboards';
    const datasourcesDir = '/etc/grafana/provisioning/datasources';
    const datasources = parse(read(`${hostPath(grafana, datasourcesDir)}/prometheus.yml`)) as { datasources: { type: string; url: string; uid: string }[] };
    const ds = datasources.datasources[0]!;
    expect(ds.type).toBe('prometheus');
    expect(hostOf(ds.url)).toBe('prometheus');
    expect(new URL(ds.url).port).toBe(service('prometheus').ports![0]!.split(':')[1]);
    const providers = parse(read(`${hostPath(grafana, dashboardsDir)}/fleetmq.yml`)) as { providers: { options: { path: string } }[] };
    const dir = providers.providers[0]!.options.path;
    const dashboardMount = (grafana.volumes ?? []).map((v) => v.split(':')).find(([, container]) => container!.startsWith(`${dir}/`));
    expect(dashboardMount, `a dashboard mounted under ${dir}`).toBeDefined();
    const dashboard = JSON.parse(mounted(grafana, dashboardMount![1]!)) as { uid: string; templating: { list: { type: string; query: unknown }[] } };
    expect(dashboard.uid).toBe('fleetmq-cluster');
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ type: 'datasource', query: ds.type }));
    expect(grafana.environment!.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
  });
});
