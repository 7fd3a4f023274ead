/**
 * The metric names the edge's ops server exports (the operations contract): the dashboard,
 * the alert rules and the operator's guide are written against this list, and tests hold them to it.
 */
export const EDGE_METRICS = {
  fleetmq_connections: 'gauge',
  fleetmq_connections_accepted_total: 'counter',
  fleetmq_connections_refused_total: 'counter',
  fleetmq_sessions: 'gauge',
  fleetmq_messages_received_total: 'counter',
  fleetmq_messages_sent_total: 'counter',
  fleetmq_bytes_received_total: 'counter',
  fleetmq_bytes_sent_total: 'counter',
  fleetmq_messages_dropped_total: 'counter',
  fleetmq_queued_messages: 'gauge',
  fleetmq_inflight_messages: 'gauge',
  fleetmq_offline_queued_total: 'counter',
  fleetmq_takeovers_total: 'counter',
  fleetmq_sessions_expired_total: 'counter',
  fleetmq_wills_published_total: 'counter',
  fleetmq_sessions_adopted_total: 'counter',
  fleetmq_auth_expired_total: 'counter',
  fleetmq_auth_reloads_total: 'counter',
  fleetmq_auth_attempts_total: 'counter',
  fleetmq_authz_denied_total: 'counter',
  fleetmq_limit_hits_total: 'counter',
  fleetmq_protocol_errors_total: 'counter',
  fleetmq_bus_messages_received_total: 'counter',
  fleetmq_bus_messages_published_total: 'counter',
  fleetmq_backend_request_duration_seconds: 'histogram',
  fleetmq_backend_errors_total: 'counter',
  fleetmq_backend_up: 'gauge',
  fleetmq_ready: 'gauge',
  fleetmq_draining: 'gauge',
  fleetmq_tls_certificate_reloads_total: 'counter',
} as const;

export type EdgeMetric = keyof typeof EDGE_METRICS;

/** prom-client default metrics the dashboard and alerts use. */
export const PROCESS_METRICS = ['nodejs_eventloop_lag_seconds', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes'] as const;

/** Series names a query may use: histogram metrics also have _bucket, _sum and _count series. */
export function knownSeries(): Set<string> {
  const names = new Set<string>(PROCESS_METRICS);
  for (const [name, type] of Object.entries(EDGE_METRICS)) {
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** The metric names a PromQL expression mentions (fleetmq_*, nodejs_*, process_*). */
export function seriesIn(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:fleetmq|nodejs|process)_[a-z0-9_]+/g) ?? [])];
}
