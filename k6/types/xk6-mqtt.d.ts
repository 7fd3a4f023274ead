/**
 * Declarations for the k6 MQTT extension `k6/x/mqtt` (github.com/grafana/xk6-mqtt, the
 * official extension k6 resolves automatically; it wraps the Eclipse Paho Go client and speaks
 * MQTT 3.1.1).
 *
 * Written from the extension's Go sources and its own `index.d.ts` at commit 3ebba5c
 * (2026-07-22), keeping only what the Go side does:
 * - the module exports `Client` and nothing else at run time: the upstream `QoS` enum is
 *   declared here as a type only (`import { QoS }` would be `undefined` in k6);
 * - option objects are read with k6's field-name mapping, so keys are snake_case
 *   (`client_id`, `connect_timeout`, `clean_session`, `credentials_provider`);
 * - `connectAsync` and `reconnectAsync` exist in the Go code although the upstream `index.d.ts`
 *   omits them;
 * - `connect` takes the URL first: upstream also allows an options object alone, but the Go side
 *   then resolves an empty address, so a URL is required here;
 * - `subscribe`/`unsubscribe` take one topic string here: upstream also documents arrays (and an
 *   object form for subscribe), but the Go side matches exact Go types (`[]string`,
 *   `map[string]subscribeOptions`) that a JavaScript array or object is not exported as, so
 *   those forms are left out until they are shown to work;
 * - `clean_session: false` has no effect: the extension only ever sets it to true, and Paho's
 *   default is already true. Sessions are always clean;
 * - Paho reconnects by itself after a lost connection (AutoReconnect: a first attempt at once,
 *   then backing off from 1 s), trying `url` and `servers`; `reconnect` fires before each
 *   attempt, `connect` again when it is back. Subscriptions are not restored (clean sessions):
 *   subscribe in the `connect` handler;
 * - `on` keeps one handler per event (a second registration replaces the first); `end` fires
 *   when the script calls `end()`, not when the broker closes the connection.
 *
 * Metrics the extension emits: counters `mqtt_calls`, `mqtt_messages_sent`,
 * `mqtt_messages_received`, `mqtt_errors` (tags `method`, `topic`, `url`, `client_id`,
 * `proto`, plus the `tags` given to a call), and k6's built-in `data_sent`/`data_received`.
 */
declare module 'k6/x/mqtt' {
  /** 0 at most once, 1 at least once, 2 exactly once (a type only: nothing is exported at run time). */
  export type QoS = 0 | 1 | 2;

  /** Extra metric tags for one call (added to the call's samples). */
  export interface HasTags {
    tags?: Record<string, string>;
  }

  /** The Last Will and Testament the broker publishes when the client is lost. */
  export interface Will {
    topic: string;
    payload: string;
    qos?: QoS;
    retain?: boolean;
  }

  export interface Credentials {
    username: string;
    password: string;
  }

  /** Called by Paho for every (re)connect, so rotating tokens can be used. */
  export type CredentialsProvider = () => Credentials;

  export interface ClientOptions extends HasTags {
    /** The client identifier; empty lets the broker assign one (3.1.1 clean session). */
    client_id?: string;
    username?: string;
    password?: string;
    credentials_provider?: CredentialsProvider;
    will?: Will;
  }

  export interface ConnectOptions extends HasTags {
    /** Keep alive in seconds. */
    keepalive?: number;
    /** Milliseconds to wait for the connection (and CONNACK). */
    connect_timeout?: number;
    /** Only `true` is passed on; `false` leaves Paho's default, which is also a clean session. */
    clean_session?: boolean;
    /** More broker URLs (failover; Paho tries them in order, after `url`). */
    servers?: string[];
  }

  export interface SubscribeOptions extends HasTags {
    qos?: QoS;
  }

  export interface PublishOptions extends HasTags {
    /** Default 0. A QoS 1/2 `publish` returns once the broker acknowledged it. */
    qos?: QoS;
    /** Default false. */
    retain?: boolean;
  }

  export type EndOptions = HasTags;
  export type UnsubscribeOptions = HasTags;

  /** What the `error` handler receives (and what a failed call throws without one). */
  export interface MQTTError {
    name: 'MQTTError';
    message: string;
    /** The method that failed: connect, publish, subscribe, unsubscribe… */
    method: string;
  }

  /**
   * One MQTT connection of a VU. Synchronous methods block the VU until the broker answered;
   * the `…Async` ones return a promise. Handlers run on the VU's event loop, which keeps the
   * iteration alive until `end()`.
   */
  export class Client {
    constructor(options?: ClientOptions);

    /** Whether Paho holds a live connection now. */
    readonly connected: boolean;

    /**
     * Connects (schemes mqtt, tcp, mqtts, ssl, tls, ws, wss; mqtt:// when none) and fires
     * `connect`. A failure goes to the `error` handler, or is thrown when there is none.
     */
    connect(url: string, options?: ConnectOptions): void;
    connectAsync(url: string, options?: ConnectOptions): Promise<void>;

    /** Drops the connection and connects again with the same settings. */
    reconnect(): void;
    reconnectAsync(): Promise<void>;

    /** Fires `end`, disconnects and stops the client's event loop. */
    end(options?: EndOptions): void;
    endAsync(options?: EndOptions): Promise<void>;

    subscribe(topic: string, options?: SubscribeOptions): void;
    subscribeAsync(topic: string, options?: SubscribeOptions): Promise<void>;

    unsubscribe(topic: string, options?: UnsubscribeOptions): void;
    unsubscribeAsync(topic: string, options?: UnsubscribeOptions): Promise<void>;

    /**
     * Payload as a string (UTF-8) or bytes. While disconnected it fails with `not connected`
     * (to the `error` handler, or thrown when there is none).
     */
    publish(topic: string, payload: string | ArrayBuffer, options?: PublishOptions): void;
    publishAsync(topic: string, payload: string | ArrayBuffer, options?: PublishOptions): Promise<void>;

    /** After every successful connect, automatic reconnects included. */
    on(event: 'connect', listener: () => void): void;
    /** When Paho starts reconnecting after a lost connection. */
    on(event: 'reconnect', listener: () => void): void;
    /** When the script ends the client (`end`/`endAsync`). */
    on(event: 'end', listener: () => void): void;
    /** A message on a subscribed topic; the payload is bytes. */
    on(event: 'message', listener: (topic: string, payload: ArrayBuffer) => void): void;
    on(event: 'error', listener: (error: MQTTError) => void): void;
  }
}
