import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Testing, YamlOutputType } from 'cdk8s';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '@fleetmq/edge';
import { FleetmqChart, type FleetmqChartProps } from '../k8s/chart.js';
import { OPS_PORT } from '../src/edge-config.js';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- manifests are checked field by field below
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

const base: FleetmqChartProps = {
  image: 'registry.example/fleetmq/edge:1.2.3',
  dynamodb: { region: 'eu-west-1' },
  adminToken: { value: 'admin-token-for-tests' },
  passwordFile: { existingSecret: 'mqtt-users', key: 'users.passwd' },
};

function synth(props: Partial<FleetmqChartProps> = {}): { chart: FleetmqChart; objects: Obj[] } {
  const chart = new FleetmqChart(Testing.app(), 'test', { ...base, ...props });
  return { chart, objects: Testing.synth(chart) as Obj[] };
}

const find = (objects: Obj[], kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new Error(`no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
};

// each synth takes a moment: the default chart once, the variants once each
const inCluster = synth();
const external = synth({
  nats: { mode: 'external', servers: ['nats://nats-a.example:4222', 'nats://nats-b.example:4222'] },
  redis: { mode: 'external', url: 'rediss://redis.example:6379' },
  tls: { existingSecret: 'mqtt-example-tls' },
  proxyProtocol: true,
  replicas: { min: 2, max: 20 },
  connectionsPerPod: 20_000,
  drainGracePeriodMs: 40_000,
  preStopSeconds: 8,
  adminToken: { existingSecret: 'ops-admin', key: 'token' },
  passwordFile: { value: 'demo:$7$101$c2FsdA==$aGFzaA==\n' },
  serviceAnnotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'external' },
});

const edgeContainer = (objects: Obj[]) => find(objects, 'Deployment', 'fleetmq-edge').spec.template.spec.containers[0];

describe('Kubernetes chart: edge Deployment', () => {
  it('probes readiness on /readyz and liveness on /healthz at the ops port', () => {
    const c = edgeContainer(inCluster.objects);
    expect(c.ports).toContainEqual({ name: 'ops', containerPort: OPS_PORT, protocol: 'TCP' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'ops' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'ops' });
    // liveness gives up later than readiness: a draining or backend-less node leaves the LB, it is not killed
    expect(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold).toBeGreaterThan(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold);
  });

  it('sleeps in preStop, then has more grace than preStop plus the drain', () => {
    for (const [{ chart, objects }, preStop, drainMs] of [
      [inCluster, 5, 25_000],
      [external, 8, 40_000],
    ] as const) {
      const pod = find(objects, 'Deployment', 'fleetmq-edge').spec.template.spec;
      expect(pod.containers[0].lifecycle.preStop.exec.command).toEqual(['sleep', String(preStop)]);
      expect(chart.edgeConfig.drain.gracePeriod).toBe(drainMs);
      expect(pod.terminationGracePeriodSeconds).toBe(chart.terminationGracePeriodSeconds);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + drainMs / 1000);
    }
  });

  it('rolls one extra pod at a time and never goes below the desired count', () => {
    const spec = find(inCluster.objects, 'Deployment', 'fleetmq-edge').spec;
    expect(spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(spec.selector.matchLabels).toEqual(spec.template.metadata.labels);
  });

  it('reads its config from the ConfigMap, which the edge parser accepts, and its admin token from a Secret', () => {
    const c = edgeContainer(inCluster.objects);
    const configMap = find(inCluster.objects, 'ConfigMap', 'fleetmq-config');
    const config = parseConfig(parse(configMap.data!['fleetmq.yaml']!));
    expect(config.listeners.map((l) => [l.type, l.port, l.host])).toEqual([
      ['tcp', 1883, '0.0.0.0'],
      ['ws', 8083, '0.0.0.0'],
    ]);
    expect(c.env).toContainEqual({ name: 'FLEETMQ_CONFIG', value: '/etc/fleetmq/config/fleetmq.yaml' });
    expect(c.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/fleetmq/config', readOnly: true });
    expect(c.env).toContainEqual({ name: 'FLEETMQ_OPS__ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'fleetmq-secrets', key: 'admin-token' } } });
    expect(c.env).toContainEqual({ name: 'FLEETMQ_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'fleetmq-secrets', key: 'admin-token' } } });
    expect(find(inCluster.objects, 'Secret', 'fleetmq-secrets').stringData).toEqual({ 'admin-token': 'admin-token-for-tests' });
    expect(find(inCluster.objects, 'Deployment', 'fleetmq-edge').spec.template.spec.volumes).toContainEqual({ name: 'secrets', secret: { secretName: 'mqtt-users', items: [{ key: 'users.passwd', path: 'passwd' }] } });
    expect(c.env).toContainEqual({ name: 'FLEETMQ_NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    // the pod template changes with the config, so a config change rolls the pods
    expect(find(inCluster.objects, 'Deployment', 'fleetmq-edge').spec.template.metadata.annotations['fleetmq.io/config-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a config the edge would refuse, at synth time', () => {
    expect(() => synth({ edgeConfig: { mqtt: { maximumQoS: 3 } } })).toThrow(/mqtt\.maximumQoS/);
    expect(() => synth({ replicas: { min: 4, max: 2 } })).toThrow(/replicas/);
    // a cluster with no way to log in: the edge refuses it, so the chart does
    const { passwordFile: _none, ...anonymous } = base;
    expect(() => new FleetmqChart(Testing.app(), 'open', anonymous)).toThrow(/auth\.allowAnonymous/);
    expect(new FleetmqChart(Testing.app(), 'open-on-purpose', { ...anonymous, edgeConfig: { auth: { allowAnonymous: true } } }).edgeConfig.auth.allowAnonymous).toBe(true);
  });
});

describe('Kubernetes chart: Service, HPA, PDB', () => {
  it('exposes the MQTT ports through a LoadBalancer Service, and ops only inside the cluster', () => {
    const svc = find(inCluster.objects, 'Service', 'fleetmq');
    expect(svc.spec.type).toBe('LoadBalancer');
    expect(svc.spec.ports.map((p: { port: number }) => p.port)).toEqual([1883, 8083]);
    const tls = find(external.objects, 'Service', 'fleetmq');
    expect(tls.spec.ports.map((p: { name: string; port: number; targetPort: string }) => [p.name, p.port, p.targetPort])).toEqual([
      ['mqtt', 1883, 'mqtt'],
      ['mqtt-ws', 8083, 'mqtt-ws'],
      ['mqtts', 8883, 'mqtts'],
      ['mqtt-wss', 8084, 'mqtt-wss'],
    ]);
    expect(tls.metadata.annotations).toEqual({ 'service.beta.kubernetes.io/aws-load-balancer-type': 'external' });
    const containerPorts = edgeContainer(external.objects).ports.map((p: { name: string }) => p.name);
    for (const p of tls.spec.ports) expect(containerPorts).toContain(p.targetPort);
    const ops = find(inCluster.objects, 'Service', 'fleetmq-ops');
    expect(ops.spec).toMatchObject({ type: 'ClusterIP', ports: [{ port: OPS_PORT, targetPort: 'ops' }] });
  });

  it('scales on CPU between the bounds, on connections when asked, and scales in one pod at a time', () => {
    const hpa = find(inCluster.objects, 'HorizontalPodAutoscaler', 'fleetmq-edge');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec).toMatchObject({ minReplicas: 3, maxReplicas: 12, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'fleetmq-edge' } });
    expect(hpa.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }]);
    expect(hpa.spec.behavior.scaleDown.policies).toEqual([{ type: 'Pods', value: 1, periodSeconds: expect.any(Number) }]);
    const ext = find(external.objects, 'HorizontalPodAutoscaler', 'fleetmq-edge');
    expect(ext.spec).toMatchObject({ minReplicas: 2, maxReplicas: 20 });
    expect(ext.spec.metrics).toContainEqual({ type: 'Pods', pods: { metric: { name: 'fleetmq_connections' }, target: { type: 'AverageValue', averageValue: 20000 } } });
    // the HPA owns the replica count: the Deployment leaves it out, so that an apply does not reset it
    expect(find(external.objects, 'Deployment', 'fleetmq-edge').spec).not.toHaveProperty('replicas');
  });

  it('lets one edge pod at a time be evicted', () => {
    const pdb = find(inCluster.objects, 'PodDisruptionBudget', 'fleetmq-edge');
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(find(inCluster.objects, 'Deployment', 'fleetmq-edge').spec.template.metadata.labels);
  });
});

describe('Kubernetes chart: NATS and Redis', () => {
  it('runs a NATS cluster and a Redis in the cluster by default, and points the edge at them', () => {
    const nats = find(inCluster.objects, 'StatefulSet', 'fleetmq-nats');
    expect(nats.spec.replicas).toBe(3);
    const args: string[] = nats.spec.template.spec.containers[0].args;
    expect(args[args.indexOf('--routes') + 1]).toBe('nats://fleetmq-nats-0.fleetmq-nats:6222,nats://fleetmq-nats-1.fleetmq-nats:6222,nats://fleetmq-nats-2.fleetmq-nats:6222');
    expect(find(inCluster.objects, 'Service', 'fleetmq-nats').spec.clusterIP).toBe('None');
    const redis = find(inCluster.objects, 'StatefulSet', 'fleetmq-redis');
    expect(redis.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    expect(find(inCluster.objects, 'Service', 'fleetmq-redis').spec.ports[0].port).toBe(6379);
    const { cluster } = inCluster.chart.edgeConfig;
    expect(cluster.nats!.servers).toEqual(['nats://fleetmq-nats-0.fleetmq-nats:4222', 'nats://fleetmq-nats-1.fleetmq-nats:4222', 'nats://fleetmq-nats-2.fleetmq-nats:4222']);
    expect(cluster.redis!.url).toBe('redis://fleetmq-redis:6379');
  });

  it('uses external NATS and Redis when given, with no NATS or Redis objects', () => {
    const names = external.objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names.filter((n) => /nats|redis/.test(n))).toEqual([]);
    const { cluster } = external.chart.edgeConfig;
    expect(cluster.nats!.servers).toEqual(['nats://nats-a.example:4222', 'nats://nats-b.example:4222']);
    expect(cluster.redis!.url).toBe('rediss://redis.example:6379');
  });

  it('mounts TLS and the password file from Secrets, with PROXY protocol on the tcp and tls listeners', () => {
    const { chart, objects } = external;
    expect(chart.edgeConfig.listeners.map((l) => [l.type, l.port, l.proxyProtocol, l.tls?.certFile])).toEqual([
      ['tcp', 1883, true, undefined],
      ['ws', 8083, false, undefined],
      ['tls', 8883, true, '/etc/fleetmq/tls/tls.crt'],
      ['wss', 8084, false, '/etc/fleetmq/tls/tls.crt'],
    ]);
    expect(chart.edgeConfig.auth).toMatchObject({ passwordFile: '/etc/fleetmq/secrets/passwd', allowAnonymous: false });
    const pod = find(objects, 'Deployment', 'fleetmq-edge').spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'mqtt-example-tls' } });
    expect(pod.volumes).toContainEqual({ name: 'secrets', secret: { secretName: 'fleetmq-secrets', items: [{ key: 'passwd', path: 'passwd' }] } });
    expect(find(objects, 'Secret', 'fleetmq-secrets').stringData).toEqual({ passwd: 'demo:$7$101$c2FsdA==$aGFzaA==\n' });
    expect(pod.containers[0].env).toContainEqual({ name: 'FLEETMQ_OPS__ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'ops-admin', key: 'token' } } });
  });
});

describe('Kubernetes chart: synth to files', () => {
  it('writes one plain YAML file that kubectl can apply', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetmq-k8s-'));
    try {
      const app = new App({ outdir: dir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
      new FleetmqChart(app, 'fleetmq', base);
      app.synth();
      const docs = parseAllDocuments(readFileSync(join(dir, 'fleetmq.k8s.yaml'), 'utf8')).map((d) => d.toJS() as Obj);
      expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(inCluster.objects.map((d) => `${d.kind}/${d.metadata.name}`).sort());
      for (const d of docs) expect(d.apiVersion).toMatch(/^(v1|apps\/v1|policy\/v1|autoscaling\/v2)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
