/**
 * The Grafana dashboard (infra/grafana/fleetmq-dashboard.json), built here so every panel has
 * the same shape; `npm run dashboard` rewrites the JSON, and a test keeps the
 * committed file equal to this.
 */

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;
/** Every query is limited to the nodes picked in the `instance` variable. */
const SEL = 'instance=~"$instance"';

interface Target {
  readonly expr: string;
  readonly legend: string;
}

interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly targets: readonly Target[];
  /** Panel kind; default timeseries. */
  readonly kind?: 'timeseries' | 'stat' | 'state-timeline';
  readonly width?: number;
  readonly stack?: boolean;
}

interface RowSpec {
  readonly title: string;
  readonly panels: readonly PanelSpec[];
}

const rate = (metric: string, by: string, extra = '') => `sum by (${by}) (rate(${metric}{${SEL}${extra}}[$__rate_interval]))`;

const ROWS: readonly RowSpec[] = [
  {
    title: 'Cluster overview',
    panels: [
      { title: 'Nodes ready', description: 'Edge nodes whose /readyz answers 200 (fleetmq_ready).', unit: 'none', kind: 'stat', width: 6, targets: [{ expr: `sum(fleetmq_ready{${SEL}})`, legend: 'ready' }] },
      { title: 'Nodes draining', description: 'Edge nodes handing over their sessions before they stop (fleetmq_draining).', unit: 'none', kind: 'stat', width: 6, targets: [{ expr: `sum(fleetmq_draining{${SEL}})`, legend: 'draining' }] },
      { title: 'Connected clients', description: 'All open MQTT connections across the selected nodes.', unit: 'none', kind: 'stat', width: 6, targets: [{ expr: `sum(fleetmq_connections{${SEL}})`, legend: 'connections' }] },
      { title: 'Sessions', description: 'Sessions held by the selected nodes: connected, and detached (persistent sessions whose client is away).', unit: 'none', kind: 'stat', width: 6, targets: [{ expr: `sum by (state) (fleetmq_sessions{${SEL}})`, legend: '{{state}}' }] },
      {
        title: 'Ready and draining per node',
        description: '1 = ready (or draining). A node that is neither ready nor draining has a backend or a listener down.',
        unit: 'none',
        kind: 'state-timeline',
        width: 24,
        targets: [
          { expr: `max by (instance) (fleetmq_ready{${SEL}})`, legend: 'ready {{instance}}' },
          { expr: `max by (instance) (fleetmq_draining{${SEL}})`, legend: 'draining {{instance}}' },
        ],
      },
    ],
  },
  {
    title: 'Connections',
    panels: [
      { title: 'Connections by listener and protocol', description: 'Open connections per listener and MQTT version (3.1, 3.1.1, 5.0).', unit: 'none', stack: true, targets: [{ expr: `sum by (listener, protocol) (fleetmq_connections{${SEL}})`, legend: '{{listener}} {{protocol}}' }] },
      { title: 'Connections per node', description: 'Open connections per edge node: the load balancer should keep these close.', unit: 'none', targets: [{ expr: `sum by (instance) (fleetmq_connections{${SEL}})`, legend: '{{instance}}' }] },
      {
        title: 'Connection rate',
        description: 'Connections accepted per listener, and refused per reason.',
        unit: 'cps',
        targets: [
          { expr: rate('fleetmq_connections_accepted_total', 'listener'), legend: 'accepted {{listener}}' },
          { expr: rate('fleetmq_connections_refused_total', 'listener, reason'), legend: 'refused {{listener}} {{reason}}' },
        ],
      },
      {
        title: 'Takeovers, expiries and wills',
        description: 'Sessions taken over by a new connection (same client ID, any node), sessions expired, wills published.',
        unit: 'ops',
        targets: [
          { expr: rate('fleetmq_takeovers_total', 'instance'), legend: 'takeovers {{instance}}' },
          { expr: rate('fleetmq_sessions_expired_total', 'instance'), legend: 'expired {{instance}}' },
          { expr: rate('fleetmq_wills_published_total', 'instance'), legend: 'wills {{instance}}' },
        ],
      },
    ],
  },
  {
    title: 'Messages',
    panels: [
      { title: 'Messages in by QoS', description: 'PUBLISH packets received from clients per second.', unit: 'ops', stack: true, targets: [{ expr: rate('fleetmq_messages_received_total', 'qos'), legend: 'QoS {{qos}}' }] },
      { title: 'Messages out by QoS', description: 'PUBLISH packets sent to clients per second.', unit: 'ops', stack: true, targets: [{ expr: rate('fleetmq_messages_sent_total', 'qos'), legend: 'QoS {{qos}}' }] },
      {
        title: 'Bytes in and out',
        description: 'Bytes read from and written to clients.',
        unit: 'Bps',
        targets: [
          { expr: `sum(rate(fleetmq_bytes_received_total{${SEL}}[$__rate_interval]))`, legend: 'in' },
          { expr: `sum(rate(fleetmq_bytes_sent_total{${SEL}}[$__rate_interval]))`, legend: 'out' },
        ],
      },
      { title: 'Dropped messages by reason', description: 'queue_full, expired, too_large, publish_failed, slow_consumer, offline_queue_full: each is a message a client did not get.', unit: 'ops', stack: true, targets: [{ expr: rate('fleetmq_messages_dropped_total', 'reason'), legend: '{{reason}}' }] },
      {
        title: 'Queued and inflight messages',
        description: 'Messages waiting in session queues, and sent but not yet acknowledged (QoS 1/2), per node.',
        unit: 'none',
        targets: [
          { expr: `sum by (instance) (fleetmq_queued_messages{${SEL}})`, legend: 'queued {{instance}}' },
          { expr: `sum by (instance) (fleetmq_inflight_messages{${SEL}})`, legend: 'inflight {{instance}}' },
        ],
      },
      { title: 'Offline queue appends', description: 'Messages stored for disconnected persistent sessions.', unit: 'ops', targets: [{ expr: rate('fleetmq_offline_queued_total', 'instance'), legend: '{{instance}}' }] },
    ],
  },
  {
    title: 'Security and limits',
    panels: [
      { title: 'Authentication attempts by result', description: 'accepted, refused (bad credentials) and throttled (too many failures from one source).', unit: 'ops', targets: [{ expr: rate('fleetmq_auth_attempts_total', 'result'), legend: '{{result}}' }] },
      { title: 'Authorization denials by action', description: 'ACL denials: publish, subscribe, read (delivery) and will.', unit: 'ops', targets: [{ expr: rate('fleetmq_authz_denied_total', 'action'), legend: '{{action}}' }] },
      { title: 'Limit hits', description: 'Per-client and per-node limits that refused or trimmed something.', unit: 'ops', stack: true, targets: [{ expr: rate('fleetmq_limit_hits_total', 'limit'), legend: '{{limit}}' }] },
      {
        title: 'Protocol errors and certificate reloads',
        description: 'Malformed or forbidden packets (the connection is closed), and TLS certificate reloads by result.',
        unit: 'ops',
        targets: [
          { expr: rate('fleetmq_protocol_errors_total', 'instance'), legend: 'protocol errors {{instance}}' },
          { expr: `sum by (listener, result) (increase(fleetmq_tls_certificate_reloads_total{${SEL}}[$__rate_interval]))`, legend: 'reload {{listener}} {{result}}' },
        ],
      },
    ],
  },
  {
    title: 'Cluster bus and backends',
    panels: [
      { title: 'Bus messages received per node', description: 'Messages each node takes from NATS: with interest routing a node receives only what its sessions subscribe to.', unit: 'ops', targets: [{ expr: rate('fleetmq_bus_messages_received_total', 'instance'), legend: '{{instance}}' }] },
      { title: 'Bus messages published per node', description: 'Messages each node hands to NATS.', unit: 'ops', targets: [{ expr: rate('fleetmq_bus_messages_published_total', 'instance'), legend: '{{instance}}' }] },
      {
        title: 'Backend latency p99 by backend',
        description: '99th percentile of NATS, Redis and DynamoDB requests.',
        unit: 's',
        targets: [{ expr: `histogram_quantile(0.99, sum by (le, backend) (rate(fleetmq_backend_request_duration_seconds_bucket{${SEL}}[$__rate_interval])))`, legend: '{{backend}}' }],
      },
      { title: 'Backend errors', description: 'Failed backend requests by backend and operation.', unit: 'ops', targets: [{ expr: rate('fleetmq_backend_errors_total', 'backend, operation'), legend: '{{backend}} {{operation}}' }] },
      { title: 'Backend up', description: '1 when the node reaches the backend. Any 0 makes the node not ready.', unit: 'none', kind: 'state-timeline', width: 24, targets: [{ expr: `min by (instance, backend) (fleetmq_backend_up{${SEL}})`, legend: '{{instance}} {{backend}}' }] },
    ],
  },
  {
    title: 'Runtime',
    panels: [
      { title: 'Event-loop lag', description: 'How late timers run on each node: above 100 ms keep alives and acknowledgements slip.', unit: 's', targets: [{ expr: `max by (instance) (nodejs_eventloop_lag_seconds{${SEL}})`, legend: '{{instance}}' }] },
      { title: 'CPU', description: 'CPU seconds per second used by each node process.', unit: 'percentunit', targets: [{ expr: `sum by (instance) (rate(process_cpu_seconds_total{${SEL}}[$__rate_interval]))`, legend: '{{instance}}' }] },
      {
        title: 'Memory',
        description: 'Resident memory and V8 heap in use per node.',
        unit: 'bytes',
        targets: [
          { expr: `max by (instance) (process_resident_memory_bytes{${SEL}})`, legend: 'rss {{instance}}' },
          { expr: `max by (instance) (nodejs_heap_size_used_bytes{${SEL}})`, legend: 'heap {{instance}}' },
        ],
      },
    ],
  },
];

type Json = Record<string, unknown>;

function panelJson(spec: PanelSpec, id: number, x: number, y: number, w: number, h: number): Json {
  const kind = spec.kind ?? 'timeseries';
  const targets = spec.targets.map((t, i) => ({ datasource: DATASOURCE, refId: String.fromCharCode(65 + i), expr: t.expr, legendFormat: t.legend, range: true }));
  const defaults: Json = { unit: spec.unit, color: { mode: kind === 'stat' ? 'thresholds' : 'palette-classic' } };
  if (kind === 'timeseries') {
    defaults.custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: spec.stack ? 30 : 10, showPoints: 'never', stacking: { mode: spec.stack ? 'normal' : 'none', group: 'A' } };
  }
  if (kind === 'state-timeline') {
    defaults.mappings = [{ type: 'value', options: { '0': { text: 'no', color: 'red' }, '1': { text: 'yes', color: 'green' } } }];
  }
  defaults.thresholds = { mode: 'absolute', steps: [{ color: 'green', value: null }] };
  const options: Json =
    kind === 'stat'
      ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' }
      : kind === 'state-timeline'
        ? { showValue: 'never', mergeValues: true, legend: { showLegend: false, displayMode: 'list', placement: 'bottom' } }
        : { legend: { showLegend: true, displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi', sort: 'desc' } };
  return {
    id,
    type: kind,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos: { x, y, w, h },
    fieldConfig: { defaults, overrides: [] },
    options,
    targets,
  };
}

/** The dashboard as Grafana's JSON model (import it, or let provisioning load it). */
export function buildDashboard(): Json {
  const panels: Json[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const spec of row.panels) {
      const w = spec.width ?? 12;
      const h = spec.kind === 'stat' ? 4 : spec.kind === 'state-timeline' ? 6 : 8;
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(panelJson(spec, id++, x, y, w, h));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid: 'fleetmq-cluster',
    title: 'FleetMQ cluster',
    description: 'FleetMQ edge nodes: connections, messages, drops, sessions, security, the NATS bus and backends, runtime.',
    tags: ['fleetmq', 'mqtt'],
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    time: { from: 'now-1h', to: 'now' },
    timezone: 'browser',
    annotations: { list: [] },
    links: [],
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, options: [] },
        {
          name: 'instance',
          label: 'Node',
          type: 'query',
          datasource: DATASOURCE,
          query: { query: 'label_values(fleetmq_ready, instance)', refId: 'instance' },
          definition: 'label_values(fleetmq_ready, instance)',
          includeAll: true,
          multi: true,
          allValue: '.+',
          current: { selected: true, text: ['All'], value: ['$__all'] },
          refresh: 2,
          sort: 1,
          hide: 0,
          options: [],
        },
      ],
    },
    panels,
    version: 1,
  };
}

/** The file's text: what `npm run dashboard` writes and the test compares. */
export function dashboardText(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}
