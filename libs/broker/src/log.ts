/**
 * The logging surface the broker core needs: pino's, narrowed so that the core does not
 * depend on pino. `msg` is a stable snake_case event ID; fields come first.
 */
export interface BrokerLog {
  error(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
  isLevelEnabled(level: string): boolean;
  child(bindings: Record<string, unknown>): BrokerLog;
}

/** A log that writes nothing (tests, embedding). */
export const silentLog: BrokerLog = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  isLevelEnabled: () => false,
  child: () => silentLog,
};
