import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type Logger = PinoLogger;

/** JSON lines on stdout; `msg` is a stable snake_case event ID (STYLE.md). */
export function createLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'fleetmq-edge' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password'], censor: '[redacted]' },
    },
    destination ?? pino.destination({ sync: false }),
  );
}
