import {
  BackendUnavailableError,
  ConnackReturnCode,
  MqttError,
  SessionTakenOverError,
  ProtocolLimits,
  ReasonCode,
  hasWildcard,
  isValidTopicFilter,
  isValidTopicName,
  isWellFormedString,
  parseSharedFilter,
  reasonName,
  toV3ConnackCode,
  type ProtocolVersion,
  type QoS,
} from '@fleetmq/protocol';
import type {
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  IUnsubscribePacket,
  Packet,
} from 'mqtt-packet';
import {
  cachedAuthorization,
  isServerReservedTopic,
  type Authenticator,
  type Authorizer,
  type ClientAuthorization,
  type ClientIdentity,
  type ClientInfo,
} from './auth.js';
import type { ClientLimits } from './client-limits.js';
import type { ConnectionRefusal } from './listener-gate.js';
import { seenKey, type Delivery } from './delivery.js';
import type { BrokerLog } from './log.js';
import { isExpired, remainingExpirySeconds, type Message, type MessageProperties } from './message.js';
import type { BrokerOptions } from './options.js';
import type { RetainedStore } from './ports/retained-store.js';
import { FencedError } from './ports/session-store.js';
import type { LiveChannel, OpenResult, SessionRegistry } from './session-registry.js';
import type { LocalRouter } from './local-router.js';
import type { Session } from './session.js';
import type { WillMessage } from './session-snapshot.js';
import type { SubscriptionOptions } from './subscription.js';
import { TokenBucket } from './token-bucket.js';

/** What a channel asks of its connection. The channel never sees a socket. */
export interface ChannelSink {
  /** Encodes and writes a packet; false if it was not sent (larger than the client's maximum). */
  send(packet: Packet): boolean;
  /** Closes the transport once what was sent is flushed. */
  close(reason: string): void;
  /** Keep alive in seconds (0: none); the connection enforces 1.5 times it. */
  setKeepAlive(seconds: number): void;
  /** Protocol version for encoding and parsing, once CONNECT told it. */
  setProtocolVersion(version: ProtocolVersion): void;
  /** Largest packet the client accepts (MQTT 5 Maximum Packet Size). */
  setMaxOutgoingPacketSize(bytes: number): void;
  /** Largest packet the client may send from now on (its policy's maxPacketSize, below the node's). */
  setMaxIncomingPacketSize?(bytes: number): void;
  /** True while the client has more unread output than it may (a slow consumer). */
  readonly congested: boolean;
}

/** The node services a channel uses (the Broker implements it). */
export interface ChannelContext {
  readonly options: BrokerOptions;
  readonly registry: SessionRegistry;
  readonly router: LocalRouter;
  readonly retained: RetainedStore;
  readonly authenticator: Authenticator;
  /** Topic permissions per client, built once after CONNECT. */
  readonly authorizer: Authorizer;
  /** Policy limits of clients no policy matches (the node-wide `limits`). */
  readonly limits: ClientLimits;
  /** The limits of one client, picked once at CONNECT. */
  limitsFor(identity: ClientIdentity | undefined, clientId: string, info: ConnectionInfo): ClientLimits;
  /**
   * The subject attribute (`CN`, …) of a verified client certificate that replaces the CONNECT
   * username before authentication; undefined: the CONNECT username is used.
   */
  readonly usernameFromCertificate: string | undefined;
  readonly log: BrokerLog;
  readonly stats: ChannelStats;
  /** Accepts a message into the cluster; resolves when it is durable enough to acknowledge. */
  publish(message: Message): Promise<void>;
  newMessageId(): string;
  /** A client identifier for a client that sent none. */
  assignClientId(): string;
}

export interface ChannelStats {
  /** PUBLISH packets from clients, by QoS (`fleetmq_messages_received_total{qos}`). */
  messagesIn: [number, number, number];
  /** PUBLISH packets to clients, by QoS (`fleetmq_messages_sent_total{qos}`). */
  messagesOut: [number, number, number];
  /** Bytes read from and written to client connections (the transport counts them). */
  bytesIn: number;
  bytesOut: number;
  /**
   * CONNECTs refused with a CONNACK, by listener, then by reason code (an array of 256):
   * `fleetmq_connections_refused_total{listener, reason}`.
   */
  connectsRefused: Map<string, number[]>;
  /** Deliveries dropped: queue full, expired, too large for the client, or refused by the bus. */
  dropped: { queueFull: number; expired: number; tooLarge: number; publishFailed: number; slowConsumer: number };
  protocolErrors: number;
  /**
   * CONNECTs the authenticator let in or refused (`fleetmq_auth_attempts_total{result}`);
   * `expired`: clients disconnected when their token expired (5.0 DISCONNECT 0xA0).
   */
  auth: { accepted: number; refused: number; expired: number };
  /**
   * Authorization refusals: PUBLISH (reserved topics included), SUBSCRIBE filters, deliveries
   * (retained and queued messages included), and wills dropped at CONNECT.
   */
  authz: { publishDenied: number; subscribeDenied: number; readDenied: number; willDenied: number };
  /**
   * Policy limits hit, as `fleetmq_limit_hits_total{limit=…}`: publishRate "publish_rate",
   * maxQoS "max_qos" (refused or downgraded), retain "retain" (stripped), payloadSize
   * "payload_size", packetSize "packet_size" (0x95), inflight "inflight" (a delivery waits for
   * a slot, or a QoS 2 PUBLISH over the Receive Maximum: 0x93), queueLength "queue_length"
   * (dropped by the queue's policy), connections "connections" and connectionRate
   * "connection_rate" (a listener refused a connection).
   */
  limits: {
    publishRate: number;
    maxQoS: number;
    retain: number;
    payloadSize: number;
    packetSize: number;
    inflight: number;
    queueLength: number;
    connections: number;
    connectionRate: number;
  };
  /**
   * Connections a listener refused, by listener name, as
   * `fleetmq_connections_refused_total{listener, reason="connections"|"connection_rate"}`.
   * One entry per listener that has connection limits.
   */
  connectionsRefused: Record<string, { connections: number; connectionRate: number }>;
}

/** The verified TLS client certificate of a connection (mutual TLS). */
export interface ClientCertificate {
  /** Attributes that repeat (two OU) are joined with ','. */
  readonly subject: Readonly<Record<string, string>>;
  readonly issuer: Readonly<Record<string, string>>;
  readonly serialNumber: string;
  /** SHA-256 of the DER certificate, colon-separated hex as Node prints it. */
  readonly fingerprint256: string;
  /** As Node prints it: `DNS:a, URI:spiffe://…`. */
  readonly subjectAltName?: string;
}

export type ChannelState = 'connecting' | 'connected' | 'disconnected';

export interface ConnectionInfo {
  readonly transport: string;
  readonly listener: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * The verified TLS client certificate (mutual TLS); absent when none was presented.
   * Attributes that repeat in the subject or issuer (two OU) are joined with ','.
   */
  readonly clientCertificate?: ClientCertificate;
  /**
   * remoteAddress/remotePort came from a PROXY protocol header; false when a listener that
   * expects one got LOCAL or UNKNOWN (the proxy's own connection, e.g. a health check).
   */
  readonly proxied?: boolean;
  /** AWS PrivateLink: the VPC endpoint ID from the PROXY v2 header (TLV 0xEA). */
  readonly vpcEndpointId?: string;
}

const NEVER = ProtocolLimits.sessionExpiryNever;
/** Longest timer Node.js accepts; a later credential expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Until authentication built the real one: nothing is allowed. */
const denyAll: ClientAuthorization = { check: () => false };

/** Refusals of one message that PUBACK/PUBREC can carry (MQTT 5 section 3.4.2.1). */
const PUBACK_REFUSALS: ReadonlySet<number> = new Set([
  ReasonCode.ImplementationSpecificError,
  ReasonCode.NotAuthorized,
  ReasonCode.TopicNameInvalid,
  ReasonCode.QuotaExceeded,
  ReasonCode.PayloadFormatInvalid,
]);

/**
 * The per-connection MQTT state machine (after emqx_channel): it takes packets in,
 * drives the session, and writes through its sink. Protocol failures close the
 * connection with a reason code; they never throw.
 */
export class Channel implements LiveChannel {
  state: ChannelState = 'connecting';
  clientId = '';
  protocolVersion: ProtocolVersion = 4;
  session: Session | undefined;
  readonly online = true;

  /** The client's child logger, made on first use (one per idle connection costs memory). */
  private logger: BrokerLog | undefined;
  /** Client's Receive Maximum: most outgoing QoS 1/2 messages unacknowledged at once. */
  private sendQuota = 65535;
  private clientTopicAliasMax = 0;
  private aliasesIn: Map<number, string> | undefined;
  private aliasesOut: Map<string, number> | undefined;
  private requestProblemInfo = true;
  /** Cleared by a normal DISCONNECT (0x00): the will is not published then. */
  private publishWillOnClose = true;
  private takenOver = false;
  /** QoS 1 PUBLISH packets handed to the bus and not yet acknowledged, oldest first. */
  private pendingAcks: PendingAck[] | undefined;
  /** Session Expiry Interval the CONNECT asked for, before the server maximum. */
  private connectExpiry = 0;
  private username: string | undefined;
  /** Who authentication said the client is (undefined: the authenticator gave no identity). */
  identity: ClientIdentity | undefined;
  /** This client's topic permissions, built once after authentication. */
  private authz: ClientAuthorization = denyAll;
  /** The client's publish rate (`limits.publishRate`), one bucket per connection. */
  private publishBucket: TokenBucket | undefined;
  /**
   * A Mosquitto bridge (CONNECT protocol level 0x83/0x84, try_private): as Mosquitto does, its
   * 3.x subscriptions are No Local and Retain As Published, so what it publishes never loops back.
   */
  private bridgePeer = false;
  /** This client's policy limits, picked once authentication said who it is. */
  private limits: ClientLimits;
  /** The lower of the node's and the client's maximum QoS (advertised in CONNACK). */
  private maxQoS: QoS;
  /** Incoming QoS 2 messages awaiting PUBREL at most (advertised Receive Maximum). */
  private receiveMaximum: number;
  /** Disconnects the client when the token it logged in with expires. */
  private credentialTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: ChannelContext,
    private readonly sink: ChannelSink,
    readonly info: ConnectionInfo,
    /** Set when the listener refused this connection: its CONNECT is answered with the refusal. */
    private readonly refusal?: ConnectionRefusal,
  ) {
    this.limits = ctx.limits;
    this.maxQoS = ctx.options.maximumQoS;
    this.receiveMaximum = ctx.options.receiveMaximum;
  }

  // ------------------------------------------------------------------ intake

  /** Handles one packet from the client; a promise means: wait before the next one. */
  handleIn(packet: Packet): void | Promise<void> {
    if (this.state === 'disconnected') return;
    if (this.state === 'connecting') {
      if (packet.cmd !== 'connect') {
        // [MQTT-3.1.0-1] the first packet must be CONNECT
        return this.closeWith(ReasonCode.ProtocolError, `first packet was ${packet.cmd}, not connect`, false);
      }
      return this.handleConnect(packet);
    }
    switch (packet.cmd) {
      case 'publish':
        return this.handlePublish(packet);
      case 'puback':
        return this.handlePuback(packet.messageId ?? -1);
      case 'pubrec':
        return this.handlePubrec(packet.messageId ?? -1, packet.reasonCode ?? 0);
      case 'pubrel':
        return this.handlePubrel(packet.messageId ?? -1);
      case 'pubcomp':
        return this.handlePubcomp(packet.messageId ?? -1);
      case 'subscribe':
        return this.handleSubscribe(packet);
      case 'unsubscribe':
        return this.handleUnsubscribe(packet);
      case 'pingreq':
        this.sink.send({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        return this.handleDisconnect(packet);
      case 'connect':
        // [MQTT-3.1.0-2] a second CONNECT is a protocol error
        return this.closeWith(ReasonCode.ProtocolError, 'second connect', true);
      case 'auth':
        // enhanced authentication is not offered, so AUTH is never expected [MQTT-4.12.0-1]
        return this.closeWith(ReasonCode.ProtocolError, 'unexpected auth', true);
      default:
        return this.closeWith(ReasonCode.ProtocolError, `unexpected ${packet.cmd} from a client`, true);
    }
  }

  /** The transport closed (by the client, an error, keep alive, or us). */
  handleClosed(reason: string): void {
    this.clearCredentialTimer();
    if (this.state === 'disconnected') return;
    const wasConnected = this.state === 'connected';
    this.state = 'disconnected';
    if (!wasConnected || this.takenOver || this.session === undefined) return;
    if (this.ctx.log.isLevelEnabled('debug')) this.log.debug({ reason }, 'client_disconnected');
    void this.ctx.registry
      .close(this, this.session, { publishWill: this.publishWillOnClose })
      .catch((err: unknown) => this.log.error({ err }, 'session_close_failed'));
  }

  // ---------------------------------------------------------------- connect

  private async handleConnect(packet: IConnectPacket): Promise<void> {
    const { options, stats } = this.ctx;
    const version = (packet.protocolVersion ?? 4) as ProtocolVersion;
    this.protocolVersion = version;
    this.bridgePeer = (packet as { bridgeMode?: boolean }).bridgeMode === true; // mqtt-packet reads level | 0x80 into it
    this.sink.setProtocolVersion(version);
    const v5 = version === 5;

    if (this.refusal !== undefined) {
      // the listener is full or connections come too fast: answered, never just dropped
      return this.refuseConnect(
        this.refusal === 'connections' ? ReasonCode.QuotaExceeded : ReasonCode.ConnectionRateExceeded,
        this.refusal === 'connections' ? 'listener connection limit reached' : 'connection rate exceeded',
        ConnackReturnCode.ServerUnavailable,
      );
    }

    // [MQTT-3.1.2-1, MQTT-3.1.2-2] protocol name and level go together
    if ((packet.protocolId === 'MQIsdp') !== (version === 3)) {
      return this.refuseConnect(ReasonCode.UnsupportedProtocolVersion, 'protocol name does not match level');
    }
    const props = packet.properties ?? {};
    if (props.authenticationMethod !== undefined) {
      return this.refuseConnect(ReasonCode.BadAuthenticationMethod, 'enhanced authentication is not supported');
    }
    if (props.receiveMaximum === 0 || props.maximumPacketSize === 0) {
      return this.refuseConnect(ReasonCode.ProtocolError, 'receive maximum and maximum packet size must not be 0');
    }

    let clientId = packet.clientId ?? '';
    let assigned = false;
    if (!isWellFormedString(clientId) || Buffer.byteLength(clientId) > options.maxClientIdLength) {
      return this.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'client identifier not valid');
    }
    if (clientId === '') {
      // [MQTT-3.1.3-7, MQTT-3.1.3-8] v3.1.1 needs clean session for an empty ID; 3.1 needs an ID
      if (version === 3 || (version === 4 && packet.clean === false)) {
        return this.refuseConnect(ReasonCode.ClientIdentifierNotValid, 'empty client identifier needs clean session');
      }
      clientId = this.ctx.assignClientId();
      assigned = true;
    }
    this.clientId = clientId;
    this.logger = undefined; // the next line logged names the client

    if (packet.will !== undefined) {
      if (!isValidTopicName(packet.will.topic)) return this.refuseConnect(ReasonCode.TopicNameInvalid, 'will topic invalid');
      if (packet.will.retain === true && !options.retainAvailable) {
        return this.refuseConnect(ReasonCode.RetainNotSupported, 'retain not supported');
      }
    }

    const client = this.clientInfo(packet);
    if (client === undefined) {
      stats.auth.refused++;
      return this.refuseConnect(ReasonCode.NotAuthorized, 'client certificate has no username');
    }
    const auth = await this.ctx.authenticator.authenticate(client);
    if (this.state !== 'connecting') return; // the transport closed meanwhile
    if (!auth.ok) {
      stats.auth.refused++;
      this.ctx.log.info({ clientId, remoteAddress: this.info.remoteAddress, reason: auth.reason }, 'client_auth_failed');
      // the reason word stays in the log: it could tell a guesser which usernames exist
      return this.refuseConnect(auth.reasonCode ?? ReasonCode.NotAuthorized, 'not authorized');
    }
    stats.auth.accepted++;
    this.username = client.username;
    this.identity = auth.identity;
    // the client's limits, once: nothing is looked up per message
    const limits = (this.limits = this.ctx.limitsFor(auth.identity, clientId, this.info));
    this.maxQoS = Math.min(options.maximumQoS, limits.maximumQoS) as QoS;
    if (limits.maxInflight !== undefined) this.receiveMaximum = Math.min(options.receiveMaximum, limits.maxInflight);
    const maxPacketSize = limits.maxPacketSize !== undefined && limits.maxPacketSize < options.maxPacketSize ? limits.maxPacketSize : options.maxPacketSize;
    if (maxPacketSize < options.maxPacketSize) this.sink.setMaxIncomingPacketSize?.(maxPacketSize);

    let will: WillMessage | undefined;
    if (packet.will !== undefined) {
      const w = packet.will;
      const willQos = (w.qos ?? 0) as QoS;
      if (willQos > this.maxQoS) {
        stats.limits.maxQoS++;
        return this.refuseConnect(ReasonCode.QoSNotSupported, 'will QoS not supported');
      }
      const payload = toBuffer(w.payload);
      if (limits.maxPayloadSize !== undefined && payload.length > limits.maxPayloadSize) {
        // as Mosquitto's message_size_limit: 5.0 CONNACK 0x95, 3.x return code 5
        stats.limits.payloadSize++;
        return this.refuseConnect(ReasonCode.PacketTooLarge, 'will payload too large', ConnackReturnCode.NotAuthorized);
      }
      let retain = w.retain === true;
      if (retain && limits.retain === 'stripped') {
        stats.limits.retain++;
        retain = false;
      }
      const wp = w.properties ?? {};
      will = {
        topic: w.topic,
        payload,
        qos: willQos,
        retain,
        properties: v5 ? applicationProperties(wp) : undefined,
        messageExpiryInterval: wp.messageExpiryInterval,
        delayInterval: wp.willDelayInterval ?? 0,
      };
    }

    this.authz = cachedAuthorization(this.ctx.authorizer.forClient(auth.identity, clientId, this.info));
    if (limits.publishRate !== undefined) {
      this.publishBucket = new TokenBucket({ ratePerSecond: limits.publishRate.perSecond, burst: limits.publishRate.burst });
    }
    let willRefused = false;
    if (will !== undefined && !this.mayPublish(will.topic)) {
      // as Mosquitto 2.0: the client is let in and its will is never published; MQTT 5
      // clients are told in the CONNACK's reason string
      stats.authz.willDenied++;
      this.log.info({ topic: will.topic }, 'will_not_authorized');
      will = undefined;
      willRefused = true;
    }

    // session expiry: v5 from the property, v3 from clean session [MQTT-3.1.2-4..6]
    const requestedExpiry = v5 ? (props.sessionExpiryInterval ?? 0) : packet.clean === false ? NEVER : 0;
    const expiry = Math.min(requestedExpiry, options.maxSessionExpiryInterval);
    this.connectExpiry = requestedExpiry;
    const cleanStart = packet.clean !== false;

    this.sendQuota = Math.min(props.receiveMaximum ?? 65535, limits.maxInflight ?? 65535);
    this.clientTopicAliasMax = v5 ? (props.topicAliasMaximum ?? 0) : 0;
    this.requestProblemInfo = props.requestProblemInformation !== false;
    if (props.maximumPacketSize !== undefined) this.sink.setMaxOutgoingPacketSize(props.maximumPacketSize);

    let keepAlive = packet.keepalive ?? 0;
    const serverKeepAlive = keepAlive > options.maxKeepAlive || (keepAlive === 0 && options.maxKeepAlive < 65535);
    if (serverKeepAlive && v5) keepAlive = options.maxKeepAlive;

    let opened: OpenResult;
    try {
      opened = await this.ctx.registry.open({
        clientId,
        cleanStart,
        protocolVersion: version,
        expiryInterval: expiry,
        will,
        channel: this,
      });
    } catch (err) {
      if (this.state !== 'connecting') return;
      // a backend is down: the client retries later (3.x: 3 server unavailable)
      if (err instanceof BackendUnavailableError) return this.refuseConnect(ReasonCode.ServerUnavailable, 'server unavailable, try again');
      // a newer connection on another node won the client ID meanwhile
      if (err instanceof SessionTakenOverError) return this.refuseConnect(ReasonCode.ServerBusy, 'client identifier taken by a newer connection');
      throw err;
    }
    const session = opened.session;
    this.session = session;
    if (limits.maxQueued !== undefined && limits.maxQueued !== session.queue.limit) {
      const dropped = session.queue.resize(limits.maxQueued);
      stats.dropped.queueFull += dropped;
      stats.limits.queueLength += dropped;
    }
    if (this.state !== 'connecting') {
      // the transport closed while the session was opened: hand it straight back
      this.state = 'connected';
      this.handleClosed('closed_during_connect');
      return;
    }

    const connackProps: NonNullable<Extract<Packet, { cmd: 'connack' }>['properties']> = {};
    if (v5) {
      if (expiry !== requestedExpiry) connackProps.sessionExpiryInterval = expiry;
      if (this.receiveMaximum < 65535) connackProps.receiveMaximum = this.receiveMaximum;
      if (this.maxQoS < 2) connackProps.maximumQoS = this.maxQoS;
      if (!options.retainAvailable) connackProps.retainAvailable = false;
      connackProps.maximumPacketSize = maxPacketSize;
      if (assigned) connackProps.assignedClientIdentifier = clientId;
      if (options.topicAliasMaximum > 0) connackProps.topicAliasMaximum = options.topicAliasMaximum;
      if (!options.wildcardSubscriptionAvailable) connackProps.wildcardSubscriptionAvailable = false;
      if (!options.subscriptionIdentifierAvailable) connackProps.subscriptionIdentifiersAvailable = false;
      if (!options.sharedSubscriptionAvailable) connackProps.sharedSubscriptionAvailable = false;
      if (serverKeepAlive) connackProps.serverKeepAlive = keepAlive;
      if (willRefused) connackProps.reasonString = 'will topic not authorized: the will will not be published';
    }
    this.state = 'connected';
    this.sink.setKeepAlive(keepAlive);
    this.sink.send({
      cmd: 'connack',
      sessionPresent: opened.present && !cleanStart,
      ...(v5 ? { reasonCode: ReasonCode.Success, properties: connackProps } : { returnCode: ConnackReturnCode.Accepted }),
    });
    if (this.ctx.log.isLevelEnabled('debug')) this.log.debug({ version, cleanStart, present: opened.present, keepAlive, expiry }, 'client_connected');
    this.ctx.router.attach(this);
    this.resendInflight();
    this.pump();
    if (auth.identity?.expiresAt !== undefined) this.armCredentialTimer(auth.identity.expiresAt);
  }

  /**
   * What authentication is asked about. With `usernameFromCertificate` set and a verified
   * client certificate present, that subject attribute replaces the CONNECT username (as
   * Mosquitto's use_identity_as_username / use_subject_as_username); undefined when the
   * certificate lacks it (the CONNECT is refused, as Mosquitto refuses it).
   */
  private clientInfo(packet: IConnectPacket): ClientInfo | undefined {
    const base = {
      clientId: this.clientId,
      password: packet.password,
      protocolVersion: this.protocolVersion,
      transport: this.info.transport,
      listener: this.info.listener,
      remoteAddress: this.info.remoteAddress,
      ...(this.info.clientCertificate !== undefined ? { clientCertificate: this.info.clientCertificate } : {}),
    };
    const field = this.ctx.usernameFromCertificate;
    const certificate = this.info.clientCertificate;
    if (field === undefined || certificate === undefined) return { ...base, username: packet.username };
    const name = certificate.subject[field];
    if (name === undefined || name === '') return undefined;
    return { ...base, username: name, usernameFromCertificate: true };
  }

  /** Reserved topics never; otherwise what the client's authorization says. */
  private mayPublish(topic: string): boolean {
    return !isServerReservedTopic(topic) && this.authz.check('publish', topic);
  }

  /** May a message on this topic go to this client? Counts a refusal. */
  private mayRead(topic: string): boolean {
    if (this.authz.check('read', topic)) return true;
    this.ctx.stats.authz.readDenied++;
    return false;
  }

  private refuseConnect(reasonCode: number, reason: string, v3ReturnCode = toV3ConnackCode(reasonCode)): void {
    this.ctx.stats.protocolErrors++;
    const refused = this.ctx.stats.connectsRefused;
    let byCode = refused.get(this.info.listener);
    if (byCode === undefined) refused.set(this.info.listener, (byCode = new Array<number>(256).fill(0)));
    byCode[reasonCode & 0xff]!++;
    this.log.info({ reasonCode, reason, remoteAddress: this.info.remoteAddress }, 'connect_refused');
    if (this.protocolVersion === 5) {
      this.sink.send({
        cmd: 'connack',
        sessionPresent: false,
        reasonCode,
        properties: { reasonString: reason },
      });
    } else {
      this.sink.send({ cmd: 'connack', sessionPresent: false, returnCode: v3ReturnCode });
    }
    this.state = 'disconnected';
    this.sink.close(reason);
  }

  /**
   * Closes the connection for a protocol violation: MQTT 5 gets a DISCONNECT with the
   * reason code (only once connected), 3.x a plain close [MQTT-4.8.0-1].
   */
  private closeWith(reasonCode: number, reason: string, sendDisconnect: boolean, byServer?: { serverReference?: string | undefined }): void {
    if (this.state === 'disconnected') return;
    if (reasonCode >= 0x80 && byServer === undefined) this.ctx.stats.protocolErrors++;
    this.log.info({ reasonCode: reasonName(reasonCode), reason, remoteAddress: this.info.remoteAddress }, 'client_closed');
    if (sendDisconnect && this.protocolVersion === 5 && this.state === 'connected') {
      const serverReference = byServer?.serverReference;
      this.sink.send({ cmd: 'disconnect', reasonCode, properties: serverReference === undefined ? { reasonString: reason } : { reasonString: reason, serverReference } });
    }
    this.sink.close(reason);
    this.handleClosed(reason);
  }

  /**
   * Closes the connection from the server side (node shutdown, admin); not a protocol error.
   * MQTT 5 clients get the reason code, and the server reference when there is one (0x9C
   * Use another server, 0x9D Server moved).
   */
  disconnect(reasonCode: number, reason: string, serverReference?: string): void {
    this.closeWith(reasonCode, reason, true, { serverReference });
  }

  /**
   * One timer per client whose token has an expiry (JWT `exp`, SAS `se`): when it passes the
   * client goes (5.0 DISCONNECT 0xA0 Maximum connect time; 3.x close). Long expiries re-arm.
   */
  private armCredentialTimer(expiresAt: number): void {
    const ms = expiresAt - Date.now();
    if (ms <= 0) {
      this.ctx.stats.auth.expired++;
      this.closeWith(ReasonCode.MaximumConnectTime, 'credentials expired', true);
      return;
    }
    this.credentialTimer = setTimeout(() => {
      this.credentialTimer = undefined;
      this.armCredentialTimer(expiresAt);
    }, Math.min(ms, MAX_TIMER_MS));
    this.credentialTimer.unref();
  }

  private clearCredentialTimer(): void {
    if (this.credentialTimer === undefined) return;
    clearTimeout(this.credentialTimer);
    this.credentialTimer = undefined;
  }

  // ---------------------------------------------------------------- publish in

  private handlePublish(packet: IPublishPacket): void | Promise<void> {
    const { options, stats } = this.ctx;
    const limits = this.limits;
    const session = this.session!;
    const v5 = this.protocolVersion === 5;
    let topic = packet.topic;
    const props = packet.properties;

    if (this.publishBucket !== undefined && !this.publishBucket.tryTake(1)) {
      // MQTT 5 has a code for this only in DISCONNECT (0x96); 3.x clients are closed
      stats.limits.publishRate++;
      return this.closeWith(ReasonCode.MessageRateTooHigh, 'message rate too high', true);
    }

    if (v5 && props?.topicAlias !== undefined) {
      const alias = props.topicAlias;
      if (alias === 0 || alias > options.topicAliasMaximum) {
        return this.closeWith(ReasonCode.TopicAliasInvalid, 'topic alias out of range', true);
      }
      this.aliasesIn ??= new Map();
      if (topic === '') {
        const known = this.aliasesIn.get(alias);
        if (known === undefined) return this.closeWith(ReasonCode.ProtocolError, 'unknown topic alias', true);
        topic = known;
      } else if (isValidTopicName(topic)) {
        this.aliasesIn.set(alias, topic);
      }
    }
    if (topic === '') {
      // 3.3.2.1: an empty Topic Name needs a Topic Alias; 3.1.1 has none [MQTT-4.7.3-1]
      return this.closeWith(ReasonCode.ProtocolError, 'empty topic name without topic alias', true);
    }
    if (!isValidTopicName(topic)) {
      // [MQTT-3.3.2-2] no wildcards in a topic name; an invalid name is malformed
      return this.closeWith(ReasonCode.TopicNameInvalid, 'topic name invalid', true);
    }
    const qos = packet.qos;
    if (qos > this.maxQoS) {
      // above the Maximum QoS the CONNACK advertised (3.2.2.3.4)
      stats.limits.maxQoS++;
      return this.closeWith(ReasonCode.QoSNotSupported, 'QoS not supported', true);
    }
    if (packet.retain && !options.retainAvailable) {
      return this.closeWith(ReasonCode.RetainNotSupported, 'retain not supported', true);
    }
    if (props?.responseTopic !== undefined && !isValidTopicName(props.responseTopic)) {
      // [MQTT-3.3.2-14] a Response Topic is a topic name: no wildcards
      return this.closeWith(ReasonCode.ProtocolError, 'response topic with wildcards', true);
    }
    if (props?.subscriptionIdentifier !== undefined) {
      // [MQTT-3.3.4-6] a client must not send a subscription identifier
      return this.closeWith(ReasonCode.ProtocolError, 'subscription identifier from a client', true);
    }
    const packetId = packet.messageId ?? 0;
    if (qos === 2) {
      if (session.awaitingRel.has(packetId)) {
        // a resend of a QoS 2 message already accepted: acknowledge, do not publish twice [MQTT-4.3.3-10]
        this.sink.send({ cmd: 'pubrec', messageId: packetId });
        return;
      }
      if (session.awaitingRel.size >= this.receiveMaximum) {
        // [MQTT-3.3.4-9] more unacknowledged QoS 2 publishes than our Receive Maximum
        stats.limits.inflight++;
        return this.closeWith(ReasonCode.ReceiveMaximumExceeded, 'receive maximum exceeded', true);
      }
    }
    if (!this.mayPublish(topic)) {
      stats.authz.publishDenied++;
      return this.refuseMessage(ReasonCode.NotAuthorized, 'not authorized', qos, packetId);
    }
    const payload = toBuffer(packet.payload);
    if (limits.maxPayloadSize !== undefined && payload.length > limits.maxPayloadSize) {
      // 0x97 is the PUBACK code for an administrative limit (Mosquitto sends 0x95, which
      // PUBACK may not carry); the connection stays
      stats.limits.payloadSize++;
      return this.refuseMessage(ReasonCode.QuotaExceeded, 'payload too large', qos, packetId);
    }
    let retain = packet.retain;
    if (retain && limits.retain === 'stripped') {
      stats.limits.retain++;
      retain = false;
    }

    const now = Date.now();
    const expiry = v5 ? props?.messageExpiryInterval : undefined;
    const message: Message = {
      id: this.ctx.newMessageId(),
      topic,
      payload,
      qos,
      retain,
      properties: v5 && props !== undefined ? applicationProperties(props) : undefined,
      expiresAt: expiry !== undefined ? now + expiry * 1000 : undefined,
      publisherId: this.clientId,
      createdAt: now,
    };
    this.ctx.stats.messagesIn[qos]++;

    if (qos === 0) {
      this.ctx.publish(message).catch(() => {
        this.ctx.stats.dropped.publishFailed++;
      });
      return;
    }
    if (qos === 1) return this.pipelinePublish(message, packetId);
    return this.ctx.publish(message).then(
      () => {
        session.awaitingRel.add(packetId);
        this.sink.send({ cmd: 'pubrec', messageId: packetId });
      },
      (err: unknown) => this.refusePublish(err, qos, packetId, topic),
    );
  }

  /**
   * A QoS 1 PUBLISH does not hold up the next packet: the bus confirms the PUBLISH packets of
   * one read together (one NATS flush), and PUBACKs go out in the order the PUBLISH packets
   * came [MQTT-4.6.0-2]. Reading stops while more than the Receive Maximum wait. (QoS 2 stays
   * one at a time: a resend must find the first copy in awaitingRel [MQTT-4.3.3-10].)
   */
  private pipelinePublish(message: Message, packetId: number): void | Promise<void> {
    const acks = (this.pendingAcks ??= []);
    const ack: PendingAck = { packetId, topic: message.topic, settled: false, error: undefined };
    acks.push(ack);
    const done = this.ctx.publish(message).then(
      () => {
        ack.settled = true;
        this.flushAcks();
      },
      (err: unknown) => {
        ack.settled = true;
        ack.error = err ?? new Error('publish refused');
        this.flushAcks();
      },
    );
    return acks.length >= this.ctx.options.receiveMaximum ? done : undefined;
  }

  /** Sends the PUBACKs (or refusals) of the oldest settled QoS 1 publishes, in order. */
  private flushAcks(): void {
    const acks = this.pendingAcks!;
    try {
      while (acks.length > 0 && acks[0]!.settled) {
        const ack = acks.shift()!;
        if (ack.error === undefined) this.sink.send({ cmd: 'puback', messageId: ack.packetId });
        else this.refusePublish(ack.error, 1, ack.packetId, ack.topic);
      }
    } catch (err) {
      // a throw is a bug: this one client goes, the process stays
      this.log.error({ err }, 'channel_error');
      this.disconnect(ReasonCode.UnspecifiedError, 'internal error');
    }
  }

  /**
   * A QoS 1/2 message the node could not make durable: never acknowledged as accepted
   * (DESIGN invariant 8). A backend outage closes the connection (5.0: 0x89 Server busy) so
   * the client keeps the message and resends it once it is back; a refusal of this one
   * message (quota, topic) is a PUBACK/PUBREC with the reason code.
   */
  private refusePublish(err: unknown, qos: 1 | 2, packetId: number, topic: string): void {
    this.ctx.stats.dropped.publishFailed++;
    const code = err instanceof MqttError && PUBACK_REFUSALS.has(err.reasonCode) ? err.reasonCode : undefined;
    if (code === undefined || this.protocolVersion !== 5) {
      this.log.warn({ err, topic }, 'publish_refused');
      this.closeWith(ReasonCode.ServerBusy, 'message could not be accepted, try again', true);
      return;
    }
    // reason strings only when the client asked for problem information [MQTT-3.1.2-29]
    const properties = this.requestProblemInfo ? { reasonString: (err as Error).message } : undefined;
    this.sink.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: packetId, reasonCode: code, ...(properties !== undefined ? { properties } : {}) });
  }

  /**
   * Refuses one message for good (not authorized, too large): MQTT 5 answers QoS 1/2 with
   * PUBACK/PUBREC and the reason code, and drops QoS 0. 3.x cannot say no, so the message is
   * acknowledged and dropped, as Mosquitto does: closing would make the client resend it
   * forever. The caller counts it.
   */
  private refuseMessage(reasonCode: number, reason: string, qos: QoS, packetId: number): void {
    if (qos === 0) return;
    if (this.protocolVersion === 5) {
      const properties = this.requestProblemInfo ? { properties: { reasonString: reason } } : {};
      // a PUBREC with a reason code >= 0x80 ends the QoS 2 exchange (4.3.3): no awaitingRel
      this.sink.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: packetId, reasonCode, ...properties });
      return;
    }
    if (qos === 1) {
      this.sink.send({ cmd: 'puback', messageId: packetId });
    } else {
      this.session!.awaitingRel.add(packetId);
      this.sink.send({ cmd: 'pubrec', messageId: packetId });
    }
  }

  private handlePubrel(packetId: number): void {
    const session = this.session!;
    const known = session.awaitingRel.delete(packetId);
    if (!known && this.protocolVersion === 5) {
      this.sink.send({ cmd: 'pubcomp', messageId: packetId, reasonCode: ReasonCode.PacketIdentifierNotFound });
      return;
    }
    this.sink.send({ cmd: 'pubcomp', messageId: packetId });
  }

  /**
   * Writes a persistent session's subscriptions through to the session store before they are
   * acknowledged, so that another node resumes them even if this one dies. False when the
   * channel is closed (meanwhile, or because a newer owner fenced this one off: 0x8E).
   */
  private async persistSession(): Promise<boolean> {
    if (this.state !== 'connected') return false;
    const session = this.session!;
    if (session.expiryInterval === 0) return true;
    try {
      await this.ctx.registry.persist(session);
    } catch (err) {
      if (this.state !== 'connected') return false;
      if (err instanceof FencedError) {
        this.closeWith(ReasonCode.SessionTakenOver, 'session owned by a newer connection', true);
        return false;
      }
      // the store is down: the subscription works here and is saved when the client leaves
      this.log.warn({ err }, 'session_persist_failed');
    }
    return this.state === 'connected';
  }

  // -------------------------------------------------------------- publish out

  /** A message for this client from the router (or a buffer replay). */
  deliver(message: Message, delivery: Delivery, shared?: string): void {
    const session = this.session;
    if (session === undefined) return;
    if (!this.mayRead(message.topic)) return;
    if (delivery.qos > 0 && !session.markSeen(seenKey(message, shared))) return;
    if (this.state !== 'connected') {
      session.queue.push({ message, ...delivery });
      return;
    }
    if (isExpired(message, Date.now())) {
      this.ctx.stats.dropped.expired++;
      return;
    }
    if (delivery.qos === 0) {
      // a client that does not keep up loses QoS 0 messages, not its connection; QoS 1/2
      // are bounded by its Receive Maximum and queued
      if (this.sink.congested) this.ctx.stats.dropped.slowConsumer++;
      else this.sendPublish(message, 0, delivery.retain, delivery.subscriptionIds, undefined, false);
      return;
    }
    if (session.queue.length > 0 || session.inflight.size >= this.sendQuota) {
      // waits for an inflight slot
      this.ctx.stats.limits.inflight++;
      if (session.queue.push({ message, ...delivery }) !== undefined) this.queueDropped();
      return;
    }
    this.sendInflight(message, delivery.qos, delivery.retain, delivery.subscriptionIds);
  }

  /** The session's queue dropped a message by its policy (`queue_length` limit). */
  private queueDropped(): void {
    this.ctx.stats.dropped.queueFull++;
    this.ctx.stats.limits.queueLength++;
  }

  private sendInflight(message: Message, qos: 1 | 2, retain: boolean, subscriptionIds: readonly number[] | undefined): void {
    const session = this.session!;
    const packetId = session.allocatePacketId();
    if (packetId === undefined) {
      session.queue.push({ message, qos, retain, subscriptionIds });
      return;
    }
    session.inflight.set(packetId, { packetId, message, qos, state: 'publish', retain, subscriptionIds });
    if (!this.sendPublish(message, qos, retain, subscriptionIds, packetId, false)) {
      session.inflight.delete(packetId);
    }
  }

  private sendPublish(
    message: Message,
    qos: QoS,
    retain: boolean,
    subscriptionIds: readonly number[] | undefined,
    packetId: number | undefined,
    dup: boolean,
  ): boolean {
    let topic = message.topic;
    let properties: IPublishPacket['properties'];
    if (this.protocolVersion === 5 && message.expiresAt === undefined && subscriptionIds === undefined && this.clientTopicAliasMax === 0) {
      // nothing differs per subscriber: the message's own properties object, so that the
      // transport encodes the PUBLISH once for every subscriber that gets the same bytes
      properties = message.properties;
    } else if (this.protocolVersion === 5) {
      properties = { ...message.properties };
      const remaining = remainingExpirySeconds(message, Date.now());
      if (remaining !== undefined) properties.messageExpiryInterval = remaining; // [MQTT-3.3.2-6]
      if (subscriptionIds !== undefined) {
        properties.subscriptionIdentifier = subscriptionIds.length === 1 ? subscriptionIds[0]! : [...subscriptionIds];
      }
      if (this.clientTopicAliasMax > 0) {
        this.aliasesOut ??= new Map();
        const alias = this.aliasesOut.get(topic);
        if (alias !== undefined) {
          properties.topicAlias = alias;
          topic = '';
        } else if (this.aliasesOut.size < this.clientTopicAliasMax) {
          const next = this.aliasesOut.size + 1;
          this.aliasesOut.set(topic, next);
          properties.topicAlias = next;
        }
      }
    }
    const packet: IPublishPacket = { cmd: 'publish', topic, payload: message.payload, qos, retain, dup };
    if (packetId !== undefined) packet.messageId = packetId;
    if (properties !== undefined) packet.properties = properties;
    if (!this.sink.send(packet)) {
      // [MQTT-3.1.2-25] larger than the client's Maximum Packet Size: discarded as if sent
      this.ctx.stats.dropped.tooLarge++;
      if (topic === '' || properties?.topicAlias === undefined) return false;
      this.aliasesOut?.delete(message.topic);
      return false;
    }
    this.ctx.stats.messagesOut[qos]++;
    return true;
  }

  private handlePuback(packetId: number): void {
    const session = this.session!;
    const entry = session.inflight.get(packetId);
    if (entry === undefined || entry.qos !== 1) return;
    session.inflight.delete(packetId);
    this.pump();
  }

  private handlePubrec(packetId: number, reasonCode: number): void {
    const session = this.session!;
    const entry = session.inflight.get(packetId);
    if (entry === undefined || entry.qos !== 2) {
      this.sink.send(
        this.protocolVersion === 5
          ? { cmd: 'pubrel', messageId: packetId, reasonCode: ReasonCode.PacketIdentifierNotFound }
          : { cmd: 'pubrel', messageId: packetId },
      );
      return;
    }
    if (reasonCode >= 0x80) {
      // [MQTT-4.3.3] the receiver refused it: the exchange ends here
      session.inflight.delete(packetId);
      this.pump();
      return;
    }
    entry.state = 'pubrel';
    this.sink.send({ cmd: 'pubrel', messageId: packetId });
  }

  private handlePubcomp(packetId: number): void {
    const session = this.session!;
    const entry = session.inflight.get(packetId);
    if (entry === undefined || entry.state !== 'pubrel') return;
    session.inflight.delete(packetId);
    this.pump();
  }

  /**
   * On session resume: resend unacknowledged PUBLISH with DUP, and PUBREL [MQTT-4.4.0-1].
   * Expiry does not apply: onward delivery of these has started [MQTT-3.3.2-5, MQTT-4.3.3-7].
   */
  private resendInflight(): void {
    const session = this.session!;
    if (!session.hasInflight) return;
    for (const entry of session.inflight.values()) {
      if (entry.state === 'pubrel') {
        this.sink.send({ cmd: 'pubrel', messageId: entry.packetId });
      } else if (!this.mayRead(entry.message.topic)) {
        // the session was resumed by a client that may not read it
        session.inflight.delete(entry.packetId);
      } else if (!this.sendPublish(entry.message, entry.qos, entry.retain, entry.subscriptionIds, entry.packetId, true)) {
        session.inflight.delete(entry.packetId);
      }
    }
  }

  /** Moves queued messages into free inflight slots. */
  private pump(): void {
    const session = this.session!;
    const now = Date.now();
    while (session.queue.length > 0 && session.inflight.size < this.sendQuota && this.state === 'connected') {
      const d = session.queue.shift()!;
      if (isExpired(d.message, now)) {
        this.ctx.stats.dropped.expired++;
        continue;
      }
      // queued while the client was away, perhaps for a session another identity held
      if (!this.mayRead(d.message.topic)) continue;
      if (d.qos === 0) this.sendPublish(d.message, 0, d.retain, d.subscriptionIds, undefined, false);
      else this.sendInflight(d.message, d.qos, d.retain, d.subscriptionIds);
    }
  }

  // -------------------------------------------------------------- subscribe

  private async handleSubscribe(packet: ISubscribePacket): Promise<void> {
    const { options } = this.ctx;
    const session = this.session!;
    const v5 = this.protocolVersion === 5;
    const subscriptionId = v5 ? packet.properties?.subscriptionIdentifier : undefined;
    if (subscriptionId !== undefined && !options.subscriptionIdentifierAvailable) {
      return this.closeWith(ReasonCode.SubscriptionIdentifiersNotSupported, 'subscription identifiers not supported', true);
    }
    if (subscriptionId !== undefined && (!Number.isInteger(subscriptionId) || subscriptionId < 1)) {
      // (3.8.2.1.2) 0, or the property more than once (the parser makes an array), is a protocol error
      return this.closeWith(ReasonCode.ProtocolError, 'subscription identifier invalid', true);
    }
    if (packet.subscriptions.length === 0) {
      // [MQTT-3.8.3-3] at least one topic filter
      return this.closeWith(ReasonCode.ProtocolError, 'subscribe without topic filters', true);
    }
    const granted: number[] = [];
    const retainedFor: [filter: string, options: SubscriptionOptions][] = [];
    for (const sub of packet.subscriptions) {
      const filter = sub.topic;
      const shared = parseSharedFilter(filter);
      const inner = shared === null ? filter : shared === 'invalid' ? undefined : shared.filter;
      if (inner === undefined || !isValidTopicFilter(inner)) {
        granted.push(v5 ? ReasonCode.TopicFilterInvalid : 0x80);
        continue;
      }
      if (shared !== null && !options.sharedSubscriptionAvailable) {
        granted.push(v5 ? ReasonCode.SharedSubscriptionsNotSupported : 0x80);
        continue;
      }
      if (shared !== null && sub.nl === true) {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error
        return this.closeWith(ReasonCode.ProtocolError, 'no local on a shared subscription', true);
      }
      if (!options.wildcardSubscriptionAvailable && hasWildcard(inner)) {
        granted.push(v5 ? ReasonCode.WildcardSubscriptionsNotSupported : 0x80);
        continue;
      }
      if (!this.authz.check('subscribe', filter)) {
        this.ctx.stats.authz.subscribeDenied++;
        granted.push(v5 ? ReasonCode.NotAuthorized : 0x80);
        continue;
      }
      if (sub.qos > this.maxQoS) this.ctx.stats.limits.maxQoS++; // granted at the maximum
      const qos = Math.min(sub.qos, this.maxQoS) as QoS;
      const subOptions: SubscriptionOptions = {
        qos,
        noLocal: (v5 && sub.nl === true) || this.bridgePeer,
        retainAsPublished: (v5 && sub.rap === true) || this.bridgePeer,
        retainHandling: v5 ? ((sub.rh ?? 0) as 0 | 1 | 2) : 0,
        subscriptionId,
      };
      const existed = session.subscriptions.has(filter);
      session.subscriptions.set(filter, subOptions);
      try {
        await this.ctx.router.subscribe(this.clientId, filter, subOptions);
      } catch (err) {
        session.subscriptions.delete(filter);
        this.log.warn({ err, filter }, 'subscribe_failed');
        granted.push(v5 ? ReasonCode.UnspecifiedError : 0x80);
        continue;
      }
      granted.push(qos);
      // [MQTT-3.3.1-9..11] retained messages by Retain Handling; never for shared subscriptions
      if (shared === null && (subOptions.retainHandling === 0 || (subOptions.retainHandling === 1 && !existed))) {
        retainedFor.push([filter, subOptions]);
      }
    }
    if (!(await this.persistSession())) return;
    this.sink.send({ cmd: 'suback', messageId: packet.messageId ?? 0, granted });
    for (const [filter, subOptions] of retainedFor) await this.sendRetained(filter, subOptions);
  }

  private async sendRetained(filter: string, options: SubscriptionOptions): Promise<void> {
    try {
      for await (const message of this.ctx.retained.match([filter])) {
        if (this.state !== 'connected') return;
        const qos = (message.qos < options.qos ? message.qos : options.qos) as QoS;
        const subscriptionIds = options.subscriptionId !== undefined ? [options.subscriptionId] : undefined;
        // retained messages sent for a new subscription keep the retain flag [MQTT-3.3.1-8]
        this.deliverRetained(message, qos, subscriptionIds);
      }
    } catch (err) {
      this.log.warn({ err, filter }, 'retained_fetch_failed');
    }
  }

  private deliverRetained(message: Message, qos: QoS, subscriptionIds: number[] | undefined): void {
    const session = this.session!;
    if (!this.mayRead(message.topic)) return;
    if (qos === 0) {
      this.sendPublish(message, 0, true, subscriptionIds, undefined, false);
    } else if (session.queue.length > 0 || session.inflight.size >= this.sendQuota) {
      this.ctx.stats.limits.inflight++;
      if (session.queue.push({ message, qos, retain: true, subscriptionIds }) !== undefined) this.queueDropped();
    } else {
      this.sendInflight(message, qos, true, subscriptionIds);
    }
  }

  private async handleUnsubscribe(packet: IUnsubscribePacket): Promise<void> {
    if (packet.unsubscriptions.length === 0) {
      // [MQTT-3.10.3-2] at least one topic filter
      return this.closeWith(ReasonCode.ProtocolError, 'unsubscribe without topic filters', true);
    }
    const session = this.session!;
    const codes: number[] = [];
    for (const filter of packet.unsubscriptions) {
      const shared = parseSharedFilter(filter);
      const inner = shared === null ? filter : shared === 'invalid' ? undefined : shared.filter;
      if (inner === undefined || !isValidTopicFilter(inner)) {
        codes.push(ReasonCode.TopicFilterInvalid);
        continue;
      }
      if (!session.subscriptions.delete(filter)) {
        codes.push(ReasonCode.NoSubscriptionExisted);
        continue;
      }
      await this.ctx.router.unsubscribe(this.clientId, filter);
      codes.push(ReasonCode.Success);
    }
    if (!(await this.persistSession())) return;
    if (this.protocolVersion === 5) {
      this.sink.send({ cmd: 'unsuback', messageId: packet.messageId ?? 0, granted: codes });
    } else {
      this.sink.send({ cmd: 'unsuback', messageId: packet.messageId ?? 0, granted: [] });
    }
  }

  // ------------------------------------------------------------- disconnect

  private handleDisconnect(packet: IDisconnectPacket): void {
    const session = this.session!;
    const reasonCode = packet.reasonCode ?? 0;
    const expiry = packet.properties?.sessionExpiryInterval;
    if (this.protocolVersion === 5 && expiry !== undefined) {
      if (this.connectExpiry === 0 && expiry !== 0) {
        // (3.14.2.2.2) CONNECT asked for expiry 0: setting one on DISCONNECT is a protocol error
        return this.closeWith(ReasonCode.ProtocolError, 'session expiry set on disconnect', true);
      }
      session.expiryInterval = Math.min(expiry, this.ctx.options.maxSessionExpiryInterval);
    }
    // [MQTT-3.14.4-3] a normal DISCONNECT (0x00) deletes the will; any other code, 0x04
    // included, leaves it to be published [MQTT-3.1.2-8]
    this.publishWillOnClose = reasonCode !== ReasonCode.Success;
    this.sink.close('client_disconnect');
    this.handleClosed('client_disconnect');
  }

  // ---------------------------------------------------------------- takeover

  takeover(): { session: Session; will: WillMessage | undefined } {
    const session = this.session!;
    this.takenOver = true;
    this.clearCredentialTimer();
    const will = session.will;
    session.will = undefined;
    if (this.protocolVersion === 5 && this.state === 'connected') {
      this.sink.send({ cmd: 'disconnect', reasonCode: ReasonCode.SessionTakenOver });
    }
    this.ctx.router.detach(this);
    this.state = 'disconnected';
    this.sink.close('session_taken_over');
    // the aliases of this connection die with it; a new channel starts afresh
    this.aliasesOut = undefined;
    return { session, will };
  }

  private get log(): BrokerLog {
    return (this.logger ??= this.clientId === '' ? this.ctx.log : this.ctx.log.child({ clientId: this.clientId }));
  }

  get user(): string | undefined {
    return this.username;
  }
}

/** A QoS 1 PUBLISH waiting for the bus; `error` once it was refused. */
interface PendingAck {
  readonly packetId: number;
  readonly topic: string;
  settled: boolean;
  error: unknown;
}

function toBuffer(payload: string | Buffer | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  return typeof payload === 'string' ? Buffer.from(payload) : payload;
}

/** The MQTT 5 properties that travel with a message unchanged [MQTT-3.3.2-4 and following]. */
function applicationProperties(p: {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}): MessageProperties | undefined {
  const out: MessageProperties = {};
  let any = false;
  if (p.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = p.payloadFormatIndicator;
    any = true;
  }
  if (p.contentType !== undefined) {
    out.contentType = p.contentType;
    any = true;
  }
  if (p.responseTopic !== undefined) {
    out.responseTopic = p.responseTopic;
    any = true;
  }
  if (p.correlationData !== undefined) {
    out.correlationData = p.correlationData;
    any = true;
  }
  if (p.userProperties !== undefined) {
    out.userProperties = p.userProperties;
    any = true;
  }
  return any ? out : undefined;
}
