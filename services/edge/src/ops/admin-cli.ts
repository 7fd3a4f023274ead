import { parseArgs } from 'node:util';

/** The verbs that talk to a running node's admin API. */
export const ADMIN_COMMANDS: ReadonlySet<string> = new Set(['clients', 'sessions', 'kick', 'retained', 'drain']);

export const ADMIN_USAGE = `Usage: fleetmq <verb> [options]   (the admin API of a running node)

  clients list [--prefix P] [--limit N] [--cursor C]
                        clients connected to the node
  clients show ID       one connected client and its session
  sessions list [--prefix P] [--limit N] [--cursor C]
                        sessions the node holds (connected and detached)
  sessions show ID      one session (held by the node, or as stored)
  sessions discard ID   disconnect the client and delete its session and offline queue
  kick ID               disconnect the client (MQTT 5: DISCONNECT 0x98 Administrative action)
  retained list [--filter F] [--limit N]
                        retained messages matching a topic filter (default #)
  drain                 drain the node as SIGTERM does; it exits once done

  --url URL             the node's ops server (default $FLEETMQ_ADMIN_URL, else http://127.0.0.1:8081)
  --token TOKEN         the admin token (default $FLEETMQ_ADMIN_TOKEN)
  --json                print the API's JSON answer
`;

interface Out {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOut: Out = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface Call {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  /** Prints a successful answer in a human form. */
  readonly print: (body: Record<string, unknown>, out: Out) => void;
  /** The part of the answer that matters (`--json` prints it); default all of it. */
  readonly select?: (body: Record<string, unknown>) => Record<string, unknown>;
}

/** A usage error: exit 2. */
class UsageError extends Error {}

/**
 * `fleetmq clients|sessions|kick|retained|drain …`: one admin API request, its answer printed.
 * Exit 0 on success, 1 when the node refused or could not be reached, 2 on a usage error.
 */
export async function adminCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, out: Out = processOut): Promise<number> {
  let values: { url?: string | undefined; token?: string | undefined; json?: boolean | undefined; help?: boolean | undefined; prefix?: string | undefined; limit?: string | undefined; cursor?: string | undefined; filter?: string | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        prefix: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        filter: { type: 'string' },
      },
    }));
  } catch (err) {
    out.stderr(`fleetmq: ${(err as Error).message}\n\n${ADMIN_USAGE}`);
    return 2;
  }
  if (values.help) {
    out.stdout(ADMIN_USAGE);
    return 0;
  }
  let call: Call;
  try {
    call = callFor(positionals, values);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    out.stderr(`fleetmq: ${err.message}\n\n${ADMIN_USAGE}`);
    return 2;
  }
  const base = values.url ?? env.FLEETMQ_ADMIN_URL ?? 'http://127.0.0.1:8081';
  let url: URL;
  try {
    url = new URL(call.path, base.endsWith('/') ? base : `${base}/`);
  } catch {
    out.stderr(`fleetmq: --url ${JSON.stringify(base)} is not a URL; give the ops server, e.g. http://127.0.0.1:8081\n`);
    return 2;
  }
  const token = values.token ?? env.FLEETMQ_ADMIN_TOKEN;
  let response: Response;
  try {
    response = await fetch(url, {
      method: call.method,
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    out.stderr(`fleetmq: cannot reach the admin API at ${url.origin} (${cause}); is the node running with its ops server there (--url, FLEETMQ_ADMIN_URL)?\n`);
    return 1;
  }
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    out.stderr(`fleetmq: ${url.origin} answered ${response.status} with something other than JSON; is it a FleetMQ ops server?\n`);
    return 1;
  }
  if (!response.ok) {
    const hint = response.status === 401 && token === undefined ? ' (give --token or FLEETMQ_ADMIN_TOKEN)' : '';
    out.stderr(`fleetmq: ${String(body.message ?? body.error ?? response.statusText)}${hint}\n`);
    return 1;
  }
  try {
    const selected = call.select?.(body) ?? body;
    if (values.json) out.stdout(`${JSON.stringify(selected, null, 2)}\n`);
    else call.print(selected, out);
  } catch (err) {
    if (!(err instanceof NotConnected)) throw err;
    out.stderr(`fleetmq: ${err.message}\n`);
    return 1;
  }
  return 0;
}

function callFor(positionals: readonly string[], values: { prefix?: string | undefined; limit?: string | undefined; cursor?: string | undefined; filter?: string | undefined }): Call {
  const [verb, sub, id, ...extra] = positionals;
  const one = (what: string): string => {
    if (id === undefined || extra.length > 0) throw new UsageError(`${what} takes one client ID`);
    return encodeURIComponent(id);
  };
  const paging = (): string => {
    const q = new URLSearchParams();
    if (values.prefix !== undefined) q.set('prefix', values.prefix);
    if (values.limit !== undefined) q.set('limit', values.limit);
    if (values.cursor !== undefined) q.set('cursor', values.cursor);
    const s = q.toString();
    return s === '' ? '' : `?${s}`;
  };
  switch (verb) {
    case 'clients':
      if (sub === 'list' && id === undefined) return { method: 'GET', path: `api/v1/clients${paging()}`, print: printList('clients', ['clientId', 'username', 'protocol', 'listener', 'remoteAddress', 'subscriptions', 'inflight', 'queued']) };
      if (sub === 'show') {
        // no route for one client: the listing from its ID, whose first entry is the client itself
        const clientId = decodeURIComponent(one('clients show'));
        return {
          method: 'GET',
          path: `api/v1/clients?${new URLSearchParams({ prefix: clientId, limit: '1' }).toString()}`,
          select: (body) => {
            const item = (body.items as Record<string, unknown>[])[0];
            if (item === undefined || item.clientId !== clientId) throw new NotConnected(clientId);
            return item;
          },
          print: printJson,
        };
      }
      throw new UsageError('use: clients list, or clients show ID');
    case 'sessions':
      if (sub === 'list' && id === undefined) return { method: 'GET', path: `api/v1/sessions${paging()}`, print: printList('sessions', ['clientId', 'state', 'protocol', 'subscriptions', 'inflight', 'queued', 'expiresAt']) };
      if (sub === 'show') return { method: 'GET', path: `api/v1/sessions/${one('sessions show')}`, print: printJson };
      if (sub === 'discard') {
        return { method: 'DELETE', path: `api/v1/sessions/${one('sessions discard')}`, print: (body, out) => out.stdout(`session ${String(body.clientId)} discarded${body.kicked ? ' (client disconnected)' : ''}\n`) };
      }
      throw new UsageError('use: sessions list, sessions show ID, or sessions discard ID');
    case 'kick': {
      if (sub === undefined || id !== undefined) throw new UsageError('kick takes one client ID');
      return { method: 'POST', path: `api/v1/clients/${encodeURIComponent(sub)}/kick`, print: (body, out) => out.stdout(`client ${String(body.clientId)} disconnected\n`) };
    }
    case 'retained': {
      if (sub !== 'list' || id !== undefined) throw new UsageError('use: retained list [--filter F] [--limit N]');
      const q = new URLSearchParams({ filter: values.filter ?? '#' });
      if (values.limit !== undefined) q.set('limit', values.limit);
      return {
        method: 'GET',
        path: `api/v1/retained?${q.toString()}`,
        print: (body, out) => {
          printRows(out, body.items as Record<string, unknown>[], ['topic', 'qos', 'payloadBytes', 'payload', 'createdAt']);
          if (body.truncated) out.stdout('(more match: raise --limit or narrow --filter)\n');
        },
      };
    }
    case 'drain':
      if (sub !== undefined) throw new UsageError('drain takes no arguments');
      return { method: 'POST', path: 'api/v1/node/drain', print: (body, out) => out.stdout(`node ${String(body.nodeId)} is draining; it exits once done\n`) };
    default:
      throw new UsageError(`unknown admin verb ${JSON.stringify(verb ?? '')}`);
  }
}

function printJson(body: Record<string, unknown>, out: Out): void {
  out.stdout(`${JSON.stringify(body, null, 2)}\n`);
}

class NotConnected extends Error {
  constructor(readonly clientId: string) {
    super(`client ${JSON.stringify(clientId)} is not connected to this node`);
  }
}

function printList(what: string, columns: readonly string[]): (body: Record<string, unknown>, out: Out) => void {
  return (body, out) => {
    printRows(out, body.items as Record<string, unknown>[], columns);
    if (typeof body.nextCursor === 'string') out.stdout(`(more: fleetmq ${what} list --cursor ${body.nextCursor})\n`);
  };
}

/** A table: a header, then one line per row, columns padded to their widest cell. */
function printRows(out: Out, rows: readonly Record<string, unknown>[], columns: readonly string[]): void {
  if (rows.length === 0) {
    out.stdout('(none)\n');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '-' : String(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: readonly string[]): string => `${row.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()}\n`;
  out.stdout(line(columns));
  for (const row of cells) out.stdout(line(row));
}
