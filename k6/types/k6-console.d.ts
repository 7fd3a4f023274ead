/**
 * k6 has a global `console` (log, info, warn, error, debug: lines in k6's output, with the VU's
 * context); @types/k6 does not declare it, and this project compiles k6 scripts without the
 * DOM or Node libraries that would.
 */
declare const console: {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
};
