/**
 * FleetMQ on Kubernetes (cdk8s): the edge Deployment behind a LoadBalancer Service, its
 * autoscaler and disruption budget, config and secrets, and NATS and Redis in the cluster or
 * outside it. `npm run synth:k8s` writes the YAML (main.ts).
 */
import { createHash } from 'node:crypto';
import { Chart, type ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-32';
import type { Construct } from 'constructs';
import { LIVE_PATH, METRICS_PATH, MQTT_PORTS, OPS_PORT, READY_PATH, drainSeconds, renderEdgeConfig } from '../src/edge-config.js';

export const K8S_CONFIG_DIR = '/etc/fleetmq/config';
export const K8S_SECRET_DIR = '/etc/fleetmq/secrets';
export const K8S_TLS_DIR = '/etc/fleetmq/tls';
/** The container image's user (node, uid 1000). */
const RUN_AS_USER = 1000;

export type ExternalOrInCluster<External> = ({ readonly mode: 'external' } & External) | { readonly mode: 'in-cluster'; readonly replicas?: number; readonly image?: string };

export interface FleetmqChartProps extends ChartProps {
  /** Prefix of every object's name; default `fleetmq`. */
  readonly name?: string;
  /** The edge image (the repository's Dockerfile). */
  readonly image: string;
  readonly replicas?: { readonly min: number; readonly max: number };
  /** HPA target: average CPU utilization of the requests, percent. Default 70. */
  readonly cpuTargetPercent?: number;
  /**
   * HPA target: average `fleetmq_connections` per pod. Needs a custom metrics adapter
   * (prometheus-adapter) serving the metric; absent: CPU only.
   */
  readonly connectionsPerPod?: number;
  /** drain.gracePeriod of the edge, ms; default the edge's default (25 s). */
  readonly drainGracePeriodMs?: number;
  /** Seconds the preStop hook waits so the load balancer stops sending new connections before SIGTERM. Default 5. */
  readonly preStopSeconds?: number;
  /** MQTT over WebSocket (8083, and 8084 with TLS). Default true. */
  readonly websocket?: boolean;
  /** MQTT over TLS (8883, wss 8084): an existing kubernetes.io/tls secret (cert-manager), or PEM text to store. */
  readonly tls?: { readonly existingSecret: string } | { readonly certificate: string; readonly privateKey: string };
  /** The load balancer sends a PROXY protocol header (v1 or v2) on the MQTT TCP/TLS ports. */
  readonly proxyProtocol?: boolean;
  /** Annotations for the LoadBalancer Service (cloud-specific load balancer settings). */
  readonly serviceAnnotations?: Readonly<Record<string, string>>;
  readonly nats?: ExternalOrInCluster<{ readonly servers: readonly string[] }>;
  readonly redis?: ExternalOrInCluster<{ readonly url: string }>;
  readonly dynamodb: { readonly region: string; readonly tablePrefix?: string; readonly endpoint?: string };
  /** The ops admin API token (16 characters or more): a value to store in the chart's Secret, or an existing Secret's key. */
  readonly adminToken: SecretSource;
  /**
   * A Mosquitto password file (`fleetmq passwd`): clients must log in. Without it, `edgeConfig.auth`
   * must say how clients authenticate (or allowAnonymous: true): the edge refuses an open cluster.
   */
  readonly passwordFile?: SecretSource;
  /** Annotations of the edge's ServiceAccount (e.g. eks.amazonaws.com/role-arn for DynamoDB access). */
  readonly serviceAccountAnnotations?: Readonly<Record<string, string>>;
  readonly resources?: { readonly cpu: string; readonly memory: string };
  /** More edge config (mqtt, limits, auth, log): merged over what the chart writes. */
  readonly edgeConfig?: Readonly<Record<string, unknown>>;
}

/** A secret value: given here (stored in the chart's Secret), or a key of a Secret made elsewhere. */
export type SecretSource = { readonly value: string } | { readonly existingSecret: string; readonly key: string };

interface Port {
  readonly name: string;
  readonly port: number;
}

export class FleetmqChart extends Chart {
  /** The edge config the ConfigMap holds, as the node parses it. */
  readonly edgeConfig: ReturnType<typeof renderEdgeConfig>['config'];
  /** Seconds Kubernetes waits between the preStop hook's start and SIGKILL. */
  readonly terminationGracePeriodSeconds: number;

  constructor(scope: Construct, id: string, props: FleetmqChartProps) {
    super(scope, id, props);
    const name = props.name ?? 'fleetmq';
    const websocket = props.websocket ?? true;
    const preStopSeconds = props.preStopSeconds ?? 5;
    const replicas = props.replicas ?? { min: 3, max: 12 };
    if (!(replicas.min >= 1 && replicas.max >= replicas.min)) {
      throw new Error(`replicas: min ${replicas.min} and max ${replicas.max} need 1 <= min <= max`);
    }
    const edgeLabels = { 'app.kubernetes.io/name': 'fleetmq', 'app.kubernetes.io/instance': name, 'app.kubernetes.io/component': 'edge' };

    const natsServers = this.nats(name, props.nats ?? { mode: 'in-cluster' });
    const redisUrl = this.redis(name, props.redis ?? { mode: 'in-cluster' });

    // --- config -------------------------------------------------------------------------------
    const tls = props.tls;
    const tlsFiles = { certFile: `${K8S_TLS_DIR}/tls.crt`, keyFile: `${K8S_TLS_DIR}/tls.key` };
    const listeners: Record<string, unknown>[] = [{ type: 'tcp', name: 'mqtt', host: '0.0.0.0', port: MQTT_PORTS.tcp, proxyProtocol: props.proxyProtocol ?? false }];
    const ports: Port[] = [{ name: 'mqtt', port: MQTT_PORTS.tcp }];
    if (websocket) {
      listeners.push({ type: 'ws', name: 'mqtt-ws', host: '0.0.0.0', port: MQTT_PORTS.ws, path: '/mqtt' });
      ports.push({ name: 'mqtt-ws', port: MQTT_PORTS.ws });
    }
    if (tls !== undefined) {
      listeners.push({ type: 'tls', name: 'mqtts', host: '0.0.0.0', port: MQTT_PORTS.tls, proxyProtocol: props.proxyProtocol ?? false, tls: tlsFiles });
      ports.push({ name: 'mqtts', port: MQTT_PORTS.tls });
      if (websocket) {
        listeners.push({ type: 'wss', name: 'mqtt-wss', host: '0.0.0.0', port: MQTT_PORTS.wss, path: '/mqtt', tls: tlsFiles });
        ports.push({ name: 'mqtt-wss', port: MQTT_PORTS.wss });
      }
    }
    const extra = props.edgeConfig ?? {};
    const raw: Record<string, unknown> = {
      ...extra,
      listeners,
      cluster: { nats: { servers: natsServers }, redis: { url: redisUrl } },
      dynamodb: { region: props.dynamodb.region, tablePrefix: props.dynamodb.tablePrefix ?? 'fleetmq-', ...(props.dynamodb.endpoint !== undefined ? { endpoint: props.dynamodb.endpoint } : {}) },
      drain: { gracePeriod: props.drainGracePeriodMs ?? 25_000 },
      ops: { enabled: true, host: '0.0.0.0', port: OPS_PORT },
    };
    if (props.passwordFile !== undefined) {
      raw.auth = { ...(extra.auth as Record<string, unknown> | undefined), passwordFile: `${K8S_SECRET_DIR}/passwd`, allowAnonymous: false };
    }
    const rendered = renderEdgeConfig(raw);
    this.edgeConfig = rendered.config;
    const drain = drainSeconds(rendered.config);
    // preStop runs first, then SIGTERM starts the drain; a few seconds more for the process to exit
    this.terminationGracePeriodSeconds = preStopSeconds + drain + 10;

    const configMap = new k8s.KubeConfigMap(this, 'config', {
      metadata: { name: `${name}-config`, labels: edgeLabels },
      data: { 'fleetmq.yaml': rendered.yaml },
    });

    // --- secrets ------------------------------------------------------------------------------
    const secretName = `${name}-secrets`;
    const secretData: Record<string, string> = {};
    const secretRef = (source: SecretSource, key: string): { name: string; key: string } => {
      if (!('value' in source)) return { name: source.existingSecret, key: source.key };
      secretData[key] = source.value;
      return { name: secretName, key };
    };
    const adminTokenRef = secretRef(props.adminToken, 'admin-token');
    const passwdRef = props.passwordFile === undefined ? undefined : secretRef(props.passwordFile, 'passwd');
    if (Object.keys(secretData).length > 0) {
      new k8s.KubeSecret(this, 'secrets', { metadata: { name: secretName, labels: edgeLabels }, type: 'Opaque', stringData: secretData });
    }
    let tlsSecretName: string | undefined;
    if (tls !== undefined) {
      if ('existingSecret' in tls) tlsSecretName = tls.existingSecret;
      else {
        tlsSecretName = `${name}-tls`;
        new k8s.KubeSecret(this, 'tls', { metadata: { name: tlsSecretName, labels: edgeLabels }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': tls.certificate, 'tls.key': tls.privateKey } });
      }
    }

    // --- the edge Deployment ------------------------------------------------------------------
    const serviceAccount = new k8s.KubeServiceAccount(this, 'service-account', {
      metadata: { name: `${name}-edge`, labels: edgeLabels, ...(props.serviceAccountAnnotations ? { annotations: { ...props.serviceAccountAnnotations } } : {}) },
    });
    const volumes: k8s.Volume[] = [
      { name: 'config', configMap: { name: configMap.name } },
      { name: 'tmp', emptyDir: {} },
    ];
    const mounts: k8s.VolumeMount[] = [
      { name: 'config', mountPath: K8S_CONFIG_DIR, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ];
    if (passwdRef !== undefined) {
      volumes.push({ name: 'secrets', secret: { secretName: passwdRef.name, items: [{ key: passwdRef.key, path: 'passwd' }] } });
      mounts.push({ name: 'secrets', mountPath: K8S_SECRET_DIR, readOnly: true });
    }
    if (tlsSecretName !== undefined) {
      volumes.push({ name: 'tls', secret: { secretName: tlsSecretName } });
      mounts.push({ name: 'tls', mountPath: K8S_TLS_DIR, readOnly: true });
    }
    const opsPort = k8s.IntOrString.fromString('ops');
    const deployment = new k8s.KubeDeployment(this, 'edge', {
      metadata: { name: `${name}-edge`, labels: edgeLabels },
      spec: {
        selector: { matchLabels: edgeLabels },
        // no replicas: the HPA owns the count (a value here would reset it on every apply)
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(1), maxUnavailable: k8s.IntOrString.fromNumber(0) } },
        template: {
          metadata: {
            labels: edgeLabels,
            annotations: {
              'prometheus.io/scrape': 'true',
              'prometheus.io/port': String(OPS_PORT),
              'prometheus.io/path': METRICS_PATH,
              // a config change rolls the pods
              'fleetmq.io/config-sha256': createHash('sha256').update(rendered.yaml).digest('hex'),
            },
          },
          spec: {
            serviceAccountName: serviceAccount.name,
            terminationGracePeriodSeconds: this.terminationGracePeriodSeconds,
            securityContext: { runAsNonRoot: true, runAsUser: RUN_AS_USER, runAsGroup: RUN_AS_USER, fsGroup: RUN_AS_USER },
            topologySpreadConstraints: [
              { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: edgeLabels } },
              { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: edgeLabels } },
            ],
            volumes,
            containers: [
              {
                name: 'edge',
                image: props.image,
                args: ['start'],
                ports: [...ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })), { name: 'ops', containerPort: OPS_PORT, protocol: 'TCP' }],
                env: [
                  { name: 'FLEETMQ_CONFIG', value: `${K8S_CONFIG_DIR}/fleetmq.yaml` },
                  { name: 'FLEETMQ_NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'FLEETMQ_OPS__ADMIN_TOKEN', valueFrom: { secretKeyRef: adminTokenRef } },
                  // the admin CLI run with kubectl exec finds the token too
                  { name: 'FLEETMQ_ADMIN_TOKEN', valueFrom: { secretKeyRef: adminTokenRef } },
                  { name: 'AWS_REGION', value: props.dynamodb.region },
                ],
                volumeMounts: mounts,
                readinessProbe: { httpGet: { path: READY_PATH, port: opsPort }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2, successThreshold: 1 },
                livenessProbe: { httpGet: { path: LIVE_PATH, port: opsPort }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
                startupProbe: { httpGet: { path: LIVE_PATH, port: opsPort }, periodSeconds: 2, failureThreshold: 30 },
                lifecycle: { preStop: { exec: { command: ['sleep', String(preStopSeconds)] } } },
                resources: {
                  requests: { cpu: k8s.Quantity.fromString(props.resources?.cpu ?? '500m'), memory: k8s.Quantity.fromString(props.resources?.memory ?? '512Mi') },
                  limits: { memory: k8s.Quantity.fromString(props.resources?.memory ?? '512Mi') },
                },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              },
            ],
          },
        },
      },
    });

    new k8s.KubeService(this, 'mqtt', {
      metadata: { name, labels: edgeLabels, ...(props.serviceAnnotations ? { annotations: { ...props.serviceAnnotations } } : {}) },
      spec: {
        type: 'LoadBalancer',
        selector: edgeLabels,
        ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: k8s.IntOrString.fromString(p.name), protocol: 'TCP' })),
      },
    });
    new k8s.KubeService(this, 'ops', {
      metadata: { name: `${name}-ops`, labels: edgeLabels },
      spec: { type: 'ClusterIP', selector: edgeLabels, ports: [{ name: 'ops', port: OPS_PORT, targetPort: opsPort, protocol: 'TCP' }] },
    });

    const metrics: k8s.MetricSpecV2[] = [
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: props.cpuTargetPercent ?? 70 } } },
    ];
    if (props.connectionsPerPod !== undefined) {
      metrics.push({ type: 'Pods', pods: { metric: { name: 'fleetmq_connections' }, target: { type: 'AverageValue', averageValue: k8s.Quantity.fromNumber(props.connectionsPerPod) } } });
    }
    new k8s.KubeHorizontalPodAutoscalerV2(this, 'hpa', {
      metadata: { name: `${name}-edge`, labels: edgeLabels },
      spec: {
        scaleTargetRef: { apiVersion: deployment.apiVersion, kind: deployment.kind, name: deployment.name },
        minReplicas: replicas.min,
        maxReplicas: replicas.max,
        metrics,
        behavior: {
          scaleUp: { stabilizationWindowSeconds: 60, policies: [{ type: 'Percent', value: 100, periodSeconds: 60 }] },
          // scale in one node at a time, slower than a drain takes, so its clients settle elsewhere first
          scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: Math.max(60, this.terminationGracePeriodSeconds * 2) }] },
        },
      },
    });
    new k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: { name: `${name}-edge`, labels: edgeLabels },
      spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: edgeLabels } },
    });
  }

  /** NATS servers for the edge config: the given ones, or a NATS cluster in a StatefulSet. */
  private nats(name: string, option: NonNullable<FleetmqChartProps['nats']>): string[] {
    if (option.mode === 'external') {
      if (option.servers.length === 0) throw new Error('nats: give at least one server URL');
      return [...option.servers];
    }
    const svc = `${name}-nats`;
    const replicas = option.replicas ?? 3;
    const labels = { 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/instance': name, 'app.kubernetes.io/component': 'bus' };
    const pods = Array.from({ length: replicas }, (_, i) => `${svc}-${i}.${svc}`);
    new k8s.KubeService(this, 'nats-service', {
      metadata: { name: svc, labels },
      spec: {
        clusterIp: 'None',
        publishNotReadyAddresses: true,
        selector: labels,
        ports: [
          { name: 'client', port: 4222 },
          { name: 'cluster', port: 6222 },
          { name: 'monitor', port: 8222 },
        ],
      },
    });
    new k8s.KubeStatefulSet(this, 'nats', {
      metadata: { name: svc, labels },
      spec: {
        serviceName: svc,
        replicas,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              {
                name: 'nats',
                image: option.image ?? 'nats:2.10-alpine',
                args: ['--name', '$(POD_NAME)', '--cluster_name', name, '--cluster', 'nats://0.0.0.0:6222', '--routes', pods.map((p) => `nats://${p}:6222`).join(','), '-m', '8222'],
                env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                ports: [
                  { name: 'client', containerPort: 4222 },
                  { name: 'cluster', containerPort: 6222 },
                  { name: 'monitor', containerPort: 8222 },
                ],
                readinessProbe: { httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('monitor') }, periodSeconds: 5 },
                livenessProbe: { httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('monitor') }, periodSeconds: 10, failureThreshold: 3 },
                resources: { requests: { cpu: k8s.Quantity.fromString('100m'), memory: k8s.Quantity.fromString('128Mi') } },
              },
            ],
          },
        },
      },
    });
    new k8s.KubePodDisruptionBudget(this, 'nats-pdb', { metadata: { name: svc, labels }, spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: labels } } });
    return pods.map((p) => `nats://${p}:4222`);
  }

  /** The Redis URL for the edge config: the given one, or one Redis with an append-only file in a StatefulSet. */
  private redis(name: string, option: NonNullable<FleetmqChartProps['redis']>): string {
    if (option.mode === 'external') return option.url;
    if ((option.replicas ?? 1) !== 1) throw new Error('redis: the in-cluster Redis is one instance; use mode external for a replicated Redis');
    const svc = `${name}-redis`;
    const labels = { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/instance': name, 'app.kubernetes.io/component': 'ownership' };
    new k8s.KubeService(this, 'redis-service', { metadata: { name: svc, labels }, spec: { selector: labels, ports: [{ name: 'redis', port: 6379 }] } });
    new k8s.KubeStatefulSet(this, 'redis', {
      metadata: { name: svc, labels },
      spec: {
        serviceName: svc,
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              {
                name: 'redis',
                image: option.image ?? 'redis:7-alpine',
                args: ['--appendonly', 'yes', '--dir', '/data'],
                ports: [{ name: 'redis', containerPort: 6379 }],
                volumeMounts: [{ name: 'data', mountPath: '/data' }],
                readinessProbe: { exec: { command: ['redis-cli', 'ping'] }, periodSeconds: 5 },
                livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('redis') }, periodSeconds: 10 },
                resources: { requests: { cpu: k8s.Quantity.fromString('100m'), memory: k8s.Quantity.fromString('256Mi') } },
              },
            ],
          },
        },
        volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: k8s.Quantity.fromString('1Gi') } } } }],
      },
    });
    return `redis://${svc}:6379`;
  }
}
