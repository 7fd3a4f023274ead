import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IPublishPacket, type ISubscriptionMap, type MqttClient } from 'mqtt';

/**
 * Helpers to drive real MQTT clients nobody here wrote: mqtt.js in-process, Debian's
 * mosquitto_pub / mosquitto_sub and Python paho-mqtt as child processes. Every child is
 * bounded by a timeout and killed by its PID (`killSpawned()` in afterEach); none is
 * ever looked up by name.
 */

const spawned = new Set<LineProcess>();

/** Kills (SIGKILL, by PID) every child process still running; for afterEach. */
export function killSpawned(): void {
  for (const p of spawned) p.kill();
  spawned.clear();
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process whose stdout is read as lines; killed when its time limit passes. */
export class LineProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly waiters = new Set<() => void>();
  private partial = '';
  private done = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly command: string,
    readonly args: readonly string[],
    timeoutMs: number,
  ) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    spawned.add(this);
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      this.notify();
    });
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.child.stdin.on('error', () => undefined); // writing to a process that died
    this.exited = new Promise<Exit>((resolve) => {
      this.child.on('close', (code, signal) => {
        if (this.partial !== '') this.lines.push(this.partial);
        this.partial = '';
        this.done = true;
        clearTimeout(this.timer);
        spawned.delete(this);
        this.notify();
        resolve({ code, signal });
      });
    });
    this.timer = setTimeout(() => this.kill(), timeoutMs);
    this.timer.unref();
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return !this.done;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.done && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves with the first `count` lines matching `pred` once there are that many;
   * rejects after `timeoutMs` or when the process ends first.
   */
  waitForLines(pred: (line: string) => boolean, count = 1, timeoutMs = 5000): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.filter(pred);
        if (found.length >= count) {
          resolve(found.slice(0, count));
          return true;
        }
        if (this.done) {
          reject(new Error(`${this.command} ended before ${count} matching lines; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`));
          return true;
        }
        return false;
      };
      if (check()) return;
      const waiter = (): void => {
        if (check()) finish();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${count} lines from ${this.command}; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /** Resolves with the exit status; kills the process and rejects after `timeoutMs`. */
  async waitExit(timeoutMs = 5000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`${this.command} ${this.args.join(' ')} did not exit in ${timeoutMs} ms; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// ------------------------------------------------------------------ mosquitto

/**
 * mosquitto_sub writes to a pipe through stdio's full buffering; stdbuf makes its stdout line
 * buffered so each debug line and message is seen when it happens. stdbuf execs the client,
 * so the PID is the client's own.
 */
const STDBUF = '/usr/bin/stdbuf';

export type MosquittoVersion = 'mqttv31' | 'mqttv311' | 'mqttv5';

export interface MosquittoCommon {
  port: number;
  version?: MosquittoVersion;
  id?: string;
  /** -c: persistent session (clean session 0 / clean start 0 with expiry). */
  persistent?: boolean;
  /** -x: session expiry interval (v5). */
  sessionExpiry?: number;
  qos?: 0 | 1 | 2;
  will?: { topic: string; payload?: string; qos?: 0 | 1 | 2; retain?: boolean };
  /** -D arguments, each [command, identifier, value...], e.g. ['publish', 'user-property', 'k', 'v']. */
  properties?: string[][];
  keepAlive?: number;
}

function commonArgs(o: MosquittoCommon): string[] {
  const args = ['-h', '127.0.0.1', '-p', String(o.port), '-V', o.version ?? 'mqttv311', '-d'];
  if (o.id !== undefined) args.push('-i', o.id);
  if (o.persistent === true) args.push('-c');
  if (o.sessionExpiry !== undefined) args.push('-x', String(o.sessionExpiry));
  if (o.qos !== undefined) args.push('-q', String(o.qos));
  if (o.keepAlive !== undefined) args.push('-k', String(o.keepAlive));
  if (o.will !== undefined) {
    args.push('--will-topic', o.will.topic);
    if (o.will.payload !== undefined) args.push('--will-payload', o.will.payload);
    if (o.will.qos !== undefined) args.push('--will-qos', String(o.will.qos));
    if (o.will.retain === true) args.push('--will-retain');
  }
  for (const p of o.properties ?? []) args.push('-D', ...p);
  return args;
}

/** One message as mosquitto_sub prints it with `-F %j`. */
export interface MosquittoMessage {
  topic: string;
  qos: number;
  retain: number;
  payload: string;
  properties?: Record<string, unknown>;
}

export interface MosquittoSubOptions extends MosquittoCommon {
  topics: string[];
  /** -C: exit after this many messages. */
  count?: number;
  /** -W: exit after this many seconds (always set: 10 unless given). */
  timeoutSec?: number;
  extra?: string[];
}

/** mosquitto_sub printing each message as one JSON line (`-F %j`) and its debug lines. */
export class MosquittoSub extends LineProcess {
  constructor(o: MosquittoSubOptions) {
    const args = [...commonArgs(o), '-F', '%j', '-W', String(o.timeoutSec ?? 10)];
    for (const t of o.topics) args.push('-t', t);
    if (o.count !== undefined) args.push('-C', String(o.count));
    args.push(...(o.extra ?? []));
    super(STDBUF, ['-oL', '/usr/bin/mosquitto_sub', ...args], ((o.timeoutSec ?? 10) + 3) * 1000);
  }

  /** Resolves once the broker acknowledged the subscriptions (SUBACK). */
  async subscribed(timeoutMs = 5000): Promise<void> {
    await this.waitForLines((l) => l.includes('received SUBACK'), 1, timeoutMs);
  }

  /** Resolves once CONNACK was received; returns its debug line. */
  async connack(timeoutMs = 5000): Promise<string> {
    return (await this.waitForLines((l) => l.includes('received CONNACK'), 1, timeoutMs))[0]!;
  }

  get messages(): MosquittoMessage[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as MosquittoMessage);
  }

  async waitMessages(count: number, timeoutMs = 5000): Promise<MosquittoMessage[]> {
    const lines = await this.waitForLines((l) => l.startsWith('{'), count, timeoutMs);
    return lines.map((l) => JSON.parse(l) as MosquittoMessage);
  }
}

export interface MosquittoPubOptions extends MosquittoCommon {
  topic: string;
  /** -m; omit with `nullMessage` for an empty payload (-n). */
  message?: string;
  nullMessage?: boolean;
  retain?: boolean;
  extra?: string[];
}

/** Runs mosquitto_pub to completion (at most `timeoutMs`); resolves with its output. */
export async function mosquittoPub(o: MosquittoPubOptions, timeoutMs = 5000): Promise<{ exit: Exit; stdout: string; stderr: string }> {
  const args = [...commonArgs(o), '-t', o.topic];
  if (o.nullMessage === true) args.push('-n');
  else args.push('-m', o.message ?? '');
  if (o.retain === true) args.push('-r');
  args.push(...(o.extra ?? []));
  const p = new LineProcess(STDBUF, ['-oL', '/usr/bin/mosquitto_pub', ...args], timeoutMs + 1000);
  const exit = await p.waitExit(timeoutMs);
  return { exit, stdout: p.lines.join('\n'), stderr: p.stderr };
}

// ---------------------------------------------------------------------- paho

const PAHO_DRIVER = fileURLToPath(new URL('../interop/scripts/paho_driver.py', import.meta.url));

export type PahoEvent = { ev: string } & Record<string, unknown>;

export interface PahoConnect {
  client_id: string;
  protocol: '3.1' | '3.1.1' | '5';
  clean_session?: boolean;
  clean_start?: boolean;
  session_expiry?: number;
  keepalive?: number;
  will?: { topic: string; payload?: string; qos?: 0 | 1 | 2; retain?: boolean; delay?: number; props?: Record<string, unknown> };
  /** "websockets": MQTT over WebSocket (then `port` is the WebSocket port). */
  transport?: 'tcp' | 'websockets';
  ws_path?: string;
  /** Makes paho send what it would refuse to build (set after the client is made). */
  unsafe_overrides?: { client_id?: string; clean_session?: boolean };
}

export interface PahoMessage {
  ev: 'message';
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  props: Record<string, unknown>;
}

/**
 * One paho-mqtt client in a Python process (test/interop/scripts/paho_driver.py), driven
 * with JSON commands on stdin; its events are JSON lines on stdout. Always the Debian
 * interpreter /usr/bin/python3, which has paho-mqtt 1.6.1.
 */
export class PahoClient extends LineProcess {
  constructor(
    readonly port: number,
    timeoutSec = 20,
  ) {
    super('/usr/bin/python3', [PAHO_DRIVER, '--timeout', String(timeoutSec)], (timeoutSec + 2) * 1000);
  }

  get events(): PahoEvent[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as PahoEvent);
  }

  send(cmd: Record<string, unknown>): void {
    this.child.stdin.write(JSON.stringify(cmd) + '\n');
  }

  /** Waits for `count` events matching `pred` (counted from the start of the process). */
  async waitEvents<T extends PahoEvent = PahoEvent>(pred: (e: PahoEvent) => boolean, count = 1, timeoutMs = 5000): Promise<T[]> {
    const lines = await this.waitForLines((l) => l.startsWith('{') && pred(JSON.parse(l) as PahoEvent), count, timeoutMs);
    return lines.map((l) => JSON.parse(l) as T);
  }

  /**
   * Connects and resolves with the CONNACK this connect got, as it came off the wire (paho
   * does not call on_connect for every refusal): its return / reason code and session present.
   */
  async connect(c: PahoConnect, timeoutMs = 5000, port = this.port): Promise<{ rc: number; sessionPresent: boolean }> {
    const before = this.events.filter((e) => e.ev === 'connack_raw').length;
    this.send({ op: 'connect', host: '127.0.0.1', port, ...c });
    const acks = await this.waitEvents((e) => e.ev === 'connack_raw', before + 1, timeoutMs);
    const ack = acks[before]!;
    return { rc: ack.rc as number, sessionPresent: ((ack.flags as number) & 1) === 1 };
  }

  /** Subscribes and resolves with the granted codes of its SUBACK. */
  async subscribe(topic: string, qos: 0 | 1 | 2, extra: Record<string, unknown> = {}): Promise<number[]> {
    const before = this.events.filter((e) => e.ev === 'subscribing').length;
    this.send({ op: 'subscribe', topic, qos, ...extra });
    const [sub] = (await this.waitEvents((e) => e.ev === 'subscribing', before + 1)).slice(before);
    const [ack] = await this.waitEvents((e) => e.ev === 'suback' && e.mid === sub!.mid);
    return ack!.granted as number[];
  }

  /** Publishes and resolves once the exchange finished (QoS 1 PUBACK, QoS 2 PUBCOMP). */
  async publish(topic: string, payload: string, qos: 0 | 1 | 2, extra: Record<string, unknown> = {}): Promise<void> {
    const before = this.events.filter((e) => e.ev === 'queued').length;
    this.send({ op: 'publish', topic, payload, qos, ...extra });
    const [queued] = (await this.waitEvents((e) => e.ev === 'queued', before + 1)).slice(before);
    if (queued!.rc !== 0) throw new Error(`paho publish failed: rc ${String(queued!.rc)}`);
    await this.waitEvents((e) => e.ev === 'published' && e.mid === queued!.mid);
  }

  messages(): PahoMessage[] {
    return this.events.filter((e): e is PahoEvent & PahoMessage => e.ev === 'message');
  }

  async waitMessages(count: number, timeoutMs = 5000): Promise<PahoMessage[]> {
    return (await this.waitEvents((e) => e.ev === 'message', count, timeoutMs)) as unknown as PahoMessage[];
  }

  /** Sends DISCONNECT and ends the process. */
  async close(): Promise<void> {
    if (!this.running) return;
    this.send({ op: 'disconnect' });
    this.send({ op: 'exit' });
    await this.waitExit(3000).catch(() => undefined);
  }
}

// -------------------------------------------------------------------- mqtt.js

const mqttClients = new Set<MqttClient>();

/**
 * Connects an mqtt.js client that never reconnects by itself (a reconnecting client would
 * take its session back in a takeover test) and is ended by `endMqttClients()`.
 */
export async function connectMqtt(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  mqttClients.add(client);
  await new Promise<void>((resolve, reject) => {
    const onConnect = (): void => {
      client.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      client.off('connect', onConnect);
      reject(err);
    };
    client.once('connect', onConnect);
    client.once('error', onError);
  });
  return client;
}

/** The SUBACK codes, in order (mqtt.js rejects a SUBACK with any failure; its packet tells them). */
export async function subackCodes(c: MqttClient, topics: string | string[] | ISubscriptionMap, qos: 0 | 1 | 2 = 1): Promise<number[]> {
  try {
    return (await c.subscribeAsync(topics, { qos })).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted: (number | { qos: number })[] } }).packet;
    if (packet === undefined) throw err;
    return packet.granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }
}

/** Writes a Mosquitto password file with Debian's mosquitto_passwd ($7$, 101 rounds); returns its path. */
export function mosquittoPasswdFile(file: string, users: readonly (readonly [user: string, password: string])[]): string {
  users.forEach(([user, password], i) => execFileSync('/usr/bin/mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), file, user, password]));
  return file;
}

/** Creates an mqtt.js client without waiting for it (for refusals and errors). */
export function createMqtt(url: string, opts: IClientOptions = {}): MqttClient {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  mqttClients.add(client);
  return client;
}

/** Force-ends every mqtt.js client made here; for afterEach. */
export async function endMqttClients(): Promise<void> {
  const all = [...mqttClients];
  mqttClients.clear();
  await Promise.all(all.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
}

export interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

/** Records the messages an mqtt.js client receives, and waits for them. */
export class Inbox {
  readonly messages: Received[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), packet });
      for (const w of [...this.waiters]) w();
    });
  }

  /** Resolves with the first `count` messages matching `pred`; rejects after `timeoutMs`. */
  wait(count = 1, timeoutMs = 5000, pred: (m: Received) => boolean = () => true): Promise<Received[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.messages.filter(pred);
        if (found.length < count) return false;
        resolve(found.slice(0, count));
        return true;
      };
      if (check()) return;
      const waiter = (): void => {
        if (check()) finish();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${count} messages; got ${JSON.stringify(this.messages.map((m) => [m.topic, m.payload]))}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }
}

/** Sleeps; only for proving that something does NOT happen (keep it at 500 ms or less). */
export function quietPeriod(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `emitter` emits `event`, with its arguments; rejects after `timeoutMs`. */
export function once<T extends unknown[]>(client: MqttClient, event: string, timeoutMs = 5000): Promise<T> {
  // any event name: mqtt.js types only its own list, and waiting needs no typed arguments
  const emitter = client as unknown as NodeJS.EventEmitter;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out waiting for '${event}'`));
    }, timeoutMs);
    const handler = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, handler);
  });
}

/** Resolves once `condition()` holds (checked every 10 ms); rejects after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves as `promise` does; rejects if it has not settled within `timeoutMs`. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
