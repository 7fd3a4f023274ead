import { ReasonCode, reasonName } from './reason-codes.js';

/** A protocol failure that carries the MQTT 5 reason code to answer with. */
export class MqttError extends Error {
  override readonly name: string = 'MqttError';
  readonly reasonCode: number;

  constructor(reasonCode: number, message?: string, options?: ErrorOptions) {
    super(message ?? reasonName(reasonCode), options);
    this.reasonCode = reasonCode;
  }
}

export class MalformedPacketError extends MqttError {
  override readonly name = 'MalformedPacketError';
  constructor(message?: string, options?: ErrorOptions) {
    super(ReasonCode.MalformedPacket, message, options);
  }
}

export class ProtocolError extends MqttError {
  override readonly name = 'ProtocolError';
  constructor(message?: string, options?: ErrorOptions) {
    super(ReasonCode.ProtocolError, message, options);
  }
}

export class NotAuthorizedError extends MqttError {
  override readonly name = 'NotAuthorizedError';
  constructor(message?: string, options?: ErrorOptions) {
    super(ReasonCode.NotAuthorized, message, options);
  }
}

export class QuotaExceededError extends MqttError {
  override readonly name = 'QuotaExceededError';
  constructor(message?: string, options?: ErrorOptions) {
    super(ReasonCode.QuotaExceeded, message, options);
  }
}

export class SessionTakenOverError extends MqttError {
  override readonly name = 'SessionTakenOverError';
  constructor(message?: string, options?: ErrorOptions) {
    super(ReasonCode.SessionTakenOver, message, options);
  }
}

export type Backend = 'nats' | 'redis' | 'dynamodb';

/** A backend could not be reached; callers retry with backoff and refuse what they cannot make durable. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
  readonly backend: Backend;
  constructor(backend: Backend, message: string, options?: ErrorOptions) {
    super(message, options);
    this.backend = backend;
  }
}

/** A configuration value is wrong; raised at start, names the key and how to fix it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly key: string;
  readonly hint: string;
  constructor(key: string, message: string, hint: string, options?: ErrorOptions) {
    super(`config ${key}: ${message}${hint ? ` (fix: ${hint})` : ''}`, options);
    this.key = key;
    this.hint = hint;
  }
}

export const errors = {
  MqttError,
  MalformedPacketError,
  ProtocolError,
  NotAuthorizedError,
  QuotaExceededError,
  SessionTakenOverError,
  BackendUnavailableError,
  ConfigError,
} as const;
