import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { secretsEqual } from '@fleetmq/auth';
import { ConfigError } from '@fleetmq/protocol';
import type { Logger } from '../logger.js';
import { AdminApi, badRequest, limitParam, pageQuery, type AdminReply } from './admin.js';

export interface OpsServerOptions {
  readonly host: string;
  readonly port: number;
  /** Bearer token of the admin API; undefined: the admin API answers 404. */
  readonly adminToken: string | undefined;
  readonly registry: Registry;
  readonly admin: AdminApi;
  /** Listeners open, backends reachable, not draining. */
  readonly ready: () => boolean;
  readonly log: Logger;
}

/** Ops clients (Prometheus, probes, operators) are few: more connections than this are refused. */
const MAX_CONNECTIONS = 64;
/** Admin requests carry no body; a larger one is refused unread. */
const MAX_BODY = 64 * 1024;
const CLIENT_ID = /^\/api\/v1\/(clients|sessions)\/([^/]+)(\/kick)?$/;

/**
 * The ops HTTP server (node:http) on its own port: /healthz, /readyz, /metrics and the admin
 * API under /api/v1 (Bearer token). Bad requests get a JSON error, never a crash.
 */
export class OpsServer {
  private constructor(
    private readonly server: Server,
    private readonly options: OpsServerOptions,
  ) {}

  static async start(options: OpsServerOptions): Promise<OpsServer> {
    const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 });
    server.maxConnections = MAX_CONNECTIONS;
    const ops = new OpsServer(server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      ops.handle(req, res).catch((err: unknown) => {
        options.log.error({ err, method: req.method, url: req.url }, 'ops_request_failed');
        if (!res.headersSent) send(res, { status: 500, body: { error: 'internal_error', message: 'the request failed; see the node log' } });
        else res.destroy();
      });
    });
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void => {
        const where = `${options.host}:${options.port}`;
        reject(new ConfigError('ops.port', `the ops server cannot listen on ${where} (${err.code ?? err.message})`, 'give a free port in ops.port (FLEETMQ_OPS__PORT; 0: any free port), or set ops.enabled: false', { cause: err }));
      };
      server.once('error', fail);
      server.listen(options.port, options.host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    const address = ops.address();
    options.log.info({ host: address.host, port: address.port, admin: options.adminToken !== undefined }, 'ops_server_started');
    return ops;
  }

  address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops accepting and ends open connections (idle keep-alive ones included). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > MAX_BODY) {
      res.setHeader('Connection', 'close');
      return send(res, { status: 413, body: { error: 'payload_too_large', message: 'admin requests carry no body' } });
    }
    req.resume(); // a body, if any, is not used
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://ops.invalid');
    } catch {
      return send(res, badRequest('the request URL cannot be parsed'));
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === '/healthz') return this.only(res, method, ['GET', 'HEAD'], () => ({ status: 200, body: { status: 'ok' } }));
    if (path === '/readyz') {
      return this.only(res, method, ['GET', 'HEAD'], () => (this.options.ready() ? { status: 200, body: { status: 'ready' } } : { status: 503, body: { status: 'not_ready' } }));
    }
    if (path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, ['GET', 'HEAD']);
      const { registry } = this.options;
      const text = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : text);
      return;
    }
    if (path === '/api' || path.startsWith('/api/')) {
      const token = this.options.adminToken;
      if (token === undefined) {
        return send(res, { status: 404, body: { error: 'admin_api_disabled', message: 'no admin token is configured (ops.adminToken, ops.adminTokenFile or FLEETMQ_OPS__ADMIN_TOKEN)' } });
      }
      const given = bearer(req.headers.authorization);
      if (given === undefined || !secretsEqual(given, token)) {
        this.options.log.info({ remoteAddress: req.socket.remoteAddress, path }, 'admin_auth_failed');
        res.setHeader('WWW-Authenticate', 'Bearer realm="fleetmq-admin"');
        return send(res, { status: 401, body: { error: 'unauthorized', message: given === undefined ? 'send Authorization: Bearer <admin token>' : 'admin token refused' } });
      }
      return send(res, await this.admin(method, path, url.searchParams, res));
    }
    return send(res, { status: 404, body: { error: 'not_found', message: `no route ${path}` } });
  }

  private async admin(method: string, path: string, params: URLSearchParams, res: ServerResponse): Promise<AdminReply> {
    const { admin } = this.options;
    const listing = (list: 'clients' | 'sessions'): AdminReply => {
      if (method !== 'GET') return allow(res, ['GET']);
      const q = pageQuery(params);
      return typeof q === 'string' ? badRequest(q) : list === 'clients' ? admin.clients(q) : admin.sessions(q);
    };
    switch (path) {
      case '/api/v1/clients':
        return listing('clients');
      case '/api/v1/sessions':
        return listing('sessions');
      case '/api/v1/retained': {
        if (method !== 'GET') return allow(res, ['GET']);
        const limit = limitParam(params);
        if (typeof limit === 'string') return badRequest(limit);
        return admin.retained(params.get('filter') ?? '#', limit);
      }
      case '/api/v1/node/drain':
        if (method !== 'POST') return allow(res, ['POST']);
        return admin.drain();
      case '/api/v1/bridges':
        if (method !== 'GET') return allow(res, ['GET']);
        return admin.bridges();
    }
    const m = CLIENT_ID.exec(path);
    if (m === null) return { status: 404, body: { error: 'not_found', message: `no admin route ${path}` } };
    let clientId: string;
    try {
      clientId = decodeURIComponent(m[2]!);
    } catch {
      return badRequest('the client ID in the path is not valid percent-encoding');
    }
    if (m[1] === 'clients') {
      if (m[3] === undefined) return { status: 404, body: { error: 'not_found', message: `no admin route ${path}; see GET /api/v1/sessions/{clientId}` } };
      if (method !== 'POST') return allow(res, ['POST']);
      return admin.kick(clientId);
    }
    if (m[3] !== undefined) return { status: 404, body: { error: 'not_found', message: `no admin route ${path}` } };
    if (method === 'GET') return admin.session(clientId);
    if (method === 'DELETE') return admin.discard(clientId);
    return allow(res, ['GET', 'DELETE']);
  }

  private only(res: ServerResponse, method: string, methods: readonly string[], reply: () => AdminReply): void {
    if (!methods.includes(method)) return methodNotAllowed(res, methods);
    const r = reply();
    if (method === 'HEAD') {
      res.writeHead(r.status).end();
      return;
    }
    send(res, r);
  }
}

function bearer(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? undefined : m[1];
}

/** 405 with the Allow header set. */
function allow(res: ServerResponse, methods: readonly string[]): AdminReply {
  res.setHeader('Allow', methods.join(', '));
  return { status: 405, body: { error: 'method_not_allowed', message: `use ${methods.join(' or ')}` } };
}

function methodNotAllowed(res: ServerResponse, methods: readonly string[]): void {
  send(res, allow(res, methods));
}

function send(res: ServerResponse, reply: AdminReply): void {
  const text = `${JSON.stringify(reply.body)}\n`;
  res.writeHead(reply.status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text);
}
