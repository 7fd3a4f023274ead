import { describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  ConfigError,
  ConnackReturnCode,
  MalformedPacketError,
  MqttError,
  NotAuthorizedError,
  ProtocolError,
  QuotaExceededError,
  ReasonCode,
  SessionTakenOverError,
  errors,
  reasonName,
  toV3ConnackCode,
} from '@fleetmq/protocol';

describe('ReasonCode table', () => {
  it('has the MQTT 5.0 values (spec 2.4) for a sample of codes', () => {
    expect(ReasonCode.Success).toBe(0x00);
    expect(ReasonCode.GrantedQoS2).toBe(0x02);
    expect(ReasonCode.NoMatchingSubscribers).toBe(0x10);
    expect(ReasonCode.UnspecifiedError).toBe(0x80);
    expect(ReasonCode.MalformedPacket).toBe(0x81);
    expect(ReasonCode.NotAuthorized).toBe(0x87);
    expect(ReasonCode.SessionTakenOver).toBe(0x8e);
    expect(ReasonCode.TopicFilterInvalid).toBe(0x8f);
    expect(ReasonCode.QuotaExceeded).toBe(0x97);
    expect(ReasonCode.SharedSubscriptionsNotSupported).toBe(0x9e);
    expect(ReasonCode.WildcardSubscriptionsNotSupported).toBe(0xa2);
  });

  it('gives every name a distinct value', () => {
    const values = Object.values(ReasonCode);
    expect(new Set(values).size).toBe(values.length);
  });

  it('has the MQTT 3.1.1 CONNACK return codes (spec 3.2.2.3)', () => {
    expect(ConnackReturnCode).toEqual({
      Accepted: 0,
      UnacceptableProtocolVersion: 1,
      IdentifierRejected: 2,
      ServerUnavailable: 3,
      BadUserNameOrPassword: 4,
      NotAuthorized: 5,
    });
  });
});

describe('toV3ConnackCode', () => {
  it.each<[string, number, number]>([
    ['Success', ReasonCode.Success, ConnackReturnCode.Accepted],
    ['UnsupportedProtocolVersion', ReasonCode.UnsupportedProtocolVersion, ConnackReturnCode.UnacceptableProtocolVersion],
    ['ClientIdentifierNotValid', ReasonCode.ClientIdentifierNotValid, ConnackReturnCode.IdentifierRejected],
    ['BadUserNameOrPassword', ReasonCode.BadUserNameOrPassword, ConnackReturnCode.BadUserNameOrPassword],
    ['BadAuthenticationMethod', ReasonCode.BadAuthenticationMethod, ConnackReturnCode.BadUserNameOrPassword],
    ['NotAuthorized', ReasonCode.NotAuthorized, ConnackReturnCode.NotAuthorized],
    ['Banned', ReasonCode.Banned, ConnackReturnCode.NotAuthorized],
    ['ServerUnavailable', ReasonCode.ServerUnavailable, ConnackReturnCode.ServerUnavailable],
    ['ServerBusy', ReasonCode.ServerBusy, ConnackReturnCode.ServerUnavailable],
    ['UnspecifiedError', ReasonCode.UnspecifiedError, ConnackReturnCode.ServerUnavailable],
    ['MalformedPacket', ReasonCode.MalformedPacket, ConnackReturnCode.ServerUnavailable],
    ['ProtocolError', ReasonCode.ProtocolError, ConnackReturnCode.ServerUnavailable],
    ['ImplementationSpecificError', ReasonCode.ImplementationSpecificError, ConnackReturnCode.ServerUnavailable],
    ['QuotaExceeded', ReasonCode.QuotaExceeded, ConnackReturnCode.ServerUnavailable],
    ['ConnectionRateExceeded', ReasonCode.ConnectionRateExceeded, ConnackReturnCode.ServerUnavailable],
    ['UseAnotherServer', ReasonCode.UseAnotherServer, ConnackReturnCode.ServerUnavailable],
    ['ServerMoved', ReasonCode.ServerMoved, ConnackReturnCode.ServerUnavailable],
    ['unknown 0x7f', 0x7f, ConnackReturnCode.ServerUnavailable],
    ['unknown 0xff', 0xff, ConnackReturnCode.ServerUnavailable],
  ])('%s -> %i', (_name, code, expected) => {
    expect(toV3ConnackCode(code)).toBe(expected);
  });

  it('never returns a value outside 0..5 and returns Accepted only for Success', () => {
    for (let code = 0; code <= 0xff; code++) {
      const v3 = toV3ConnackCode(code);
      expect(v3).toBeGreaterThanOrEqual(0);
      expect(v3).toBeLessThanOrEqual(5);
      expect(v3 === ConnackReturnCode.Accepted).toBe(code === ReasonCode.Success);
    }
  });
});

describe('reasonName', () => {
  it.each<[number, string]>([
    [0x00, 'Success'],
    [0x01, 'GrantedQoS1'],
    [0x81, 'MalformedPacket'],
    [0x87, 'NotAuthorized'],
    [0x8e, 'SessionTakenOver'],
    [0xa2, 'WildcardSubscriptionsNotSupported'],
  ])('%i -> %s', (code, name) => {
    expect(reasonName(code)).toBe(name);
  });

  it('names every code of the table by its own key', () => {
    for (const [name, code] of Object.entries(ReasonCode)) expect(reasonName(code)).toBe(name);
  });

  it.each<[number, string]>([
    [0x03, 'Unknown(0x3)'],
    [0x7f, 'Unknown(0x7f)'],
    [0xff, 'Unknown(0xff)'],
    [0x100, 'Unknown(0x100)'],
  ])('unknown code %i -> %s', (code, name) => {
    expect(reasonName(code)).toBe(name);
  });
});

describe('errors', () => {
  it('MqttError carries the reason code and defaults the message to the reason name', () => {
    const e = new MqttError(ReasonCode.TopicNameInvalid);
    expect(e).toBeInstanceOf(Error);
    expect(e.reasonCode).toBe(0x90);
    expect(e.message).toBe('TopicNameInvalid');
    expect(e.name).toBe('MqttError');
    expect(String(e)).toBe('MqttError: TopicNameInvalid');
    expect(e.cause).toBeUndefined();
  });

  it('MqttError keeps an explicit message and passes the cause through', () => {
    const cause = new Error('root');
    const e = new MqttError(ReasonCode.PacketTooLarge, 'too big', { cause });
    expect(e.message).toBe('too big');
    expect(e.reasonCode).toBe(ReasonCode.PacketTooLarge);
    expect(e.cause).toBe(cause);
  });

  it('MqttError with an unknown code gets the Unknown(...) name as message', () => {
    expect(new MqttError(0x7e).message).toBe('Unknown(0x7e)');
  });

  type Sub = new (message?: string, options?: ErrorOptions) => MqttError;
  it.each<[string, Sub, number, string]>([
    ['MalformedPacketError', MalformedPacketError, ReasonCode.MalformedPacket, 'MalformedPacket'],
    ['ProtocolError', ProtocolError, ReasonCode.ProtocolError, 'ProtocolError'],
    ['NotAuthorizedError', NotAuthorizedError, ReasonCode.NotAuthorized, 'NotAuthorized'],
    ['QuotaExceededError', QuotaExceededError, ReasonCode.QuotaExceeded, 'QuotaExceeded'],
    ['SessionTakenOverError', SessionTakenOverError, ReasonCode.SessionTakenOver, 'SessionTakenOver'],
  ])('%s: reason code, name, default message, cause', (name, Ctor, code, defaultMessage) => {
    const plain = new Ctor();
    expect(plain).toBeInstanceOf(MqttError);
    expect(plain).toBeInstanceOf(Error);
    expect(plain.reasonCode).toBe(code);
    expect(plain.name).toBe(name);
    expect(plain.message).toBe(defaultMessage);
    expect(String(plain)).toBe(`${name}: ${defaultMessage}`);
    expect(plain.cause).toBeUndefined();

    const cause = { some: 'thing' };
    const withCause = new Ctor('custom', { cause });
    expect(withCause.message).toBe('custom');
    expect(withCause.cause).toBe(cause);
    expect(withCause.reasonCode).toBe(code);
    expect(withCause.name).toBe(name);
  });

  it('BackendUnavailableError keeps the backend, message, name and cause', () => {
    const cause = new Error('ECONNREFUSED');
    const e = new BackendUnavailableError('redis', 'redis down', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(MqttError);
    expect(e.name).toBe('BackendUnavailableError');
    expect(e.backend).toBe('redis');
    expect(e.message).toBe('redis down');
    expect(e.cause).toBe(cause);
  });

  it('ConfigError names the key and the hint in its message', () => {
    const cause = new RangeError('bad');
    const e = new ConfigError('MQTT_PORT', 'must be a port number, got "abc"', 'set MQTT_PORT to 1..65535', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ConfigError');
    expect(e.key).toBe('MQTT_PORT');
    expect(e.hint).toBe('set MQTT_PORT to 1..65535');
    expect(e.message).toContain('MQTT_PORT');
    expect(e.message).toContain('must be a port number, got "abc"');
    expect(e.message).toContain('set MQTT_PORT to 1..65535');
    expect(e.message).toBe('config MQTT_PORT: must be a port number, got "abc" (fix: set MQTT_PORT to 1..65535)');
    expect(e.cause).toBe(cause);
  });

  it('ConfigError with an empty hint leaves the fix part out', () => {
    const e = new ConfigError('NODE_ID', 'is required', '');
    expect(e.message).toBe('config NODE_ID: is required');
    expect(e.message).not.toContain('fix');
    expect(e.hint).toBe('');
  });

  it('errors groups every class', () => {
    expect(errors).toEqual({
      MqttError,
      MalformedPacketError,
      ProtocolError,
      NotAuthorizedError,
      QuotaExceededError,
      SessionTakenOverError,
      BackendUnavailableError,
      ConfigError,
    });
  });

  it('errors are caught by class', () => {
    const thrower = (): never => {
      throw new NotAuthorizedError('no');
    };
    expect(thrower).toThrow(NotAuthorizedError);
    expect(thrower).toThrow(MqttError);
    expect(thrower).not.toThrow(ProtocolError);
  });
});
