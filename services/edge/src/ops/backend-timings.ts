import { BackendUnavailableError, MqttError, type Backend } from '@fleetmq/protocol';
import { FencedError } from '@fleetmq/broker';

/** Upper bounds (seconds) of `fleetmq_backend_request_duration_seconds`: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * One backend operation's request durations and errors as plain numbers: recording is a
 * bucket search and a few increments, no allocation; the metrics registry reads them when
 * scraped.
 */
export class OperationTimings {
  /** Requests per bucket (not cumulative); the last slot is above the largest bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  count = 0;
  sum = 0;
  errors = 0;

  constructor(
    readonly backend: Backend,
    readonly operation: string,
  ) {}

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += seconds;
  }
}

/**
 * Every backend operation timed on this node, and each backend's last outcome (which stands
 * for `fleetmq_backend_up` where the adapter has no `ready` flag, as DynamoDB's have none).
 */
export class BackendTimings {
  private readonly operations = new Map<string, OperationTimings>();
  private readonly lastOutcome = new Map<Backend, boolean>();

  /** The record of one (backend, operation); created once per method, when it is wrapped. */
  operation(backend: Backend, operation: string): OperationTimings {
    const key = `${backend}/${operation}`;
    let timings = this.operations.get(key);
    if (timings === undefined) {
      timings = new OperationTimings(backend, operation);
      this.operations.set(key, timings);
    }
    return timings;
  }

  all(): IterableIterator<OperationTimings> {
    return this.operations.values();
  }

  /** Did the last request to the backend succeed (undefined: none made yet)? */
  lastSucceeded(backend: Backend): boolean | undefined {
    return this.lastOutcome.get(backend);
  }

  record(timings: OperationTimings, start: number, err?: unknown): void {
    timings.observe((performance.now() - start) / 1000);
    const failed = err !== undefined && isBackendFailure(err);
    if (failed) timings.errors++;
    this.lastOutcome.set(timings.backend, !failed);
  }
}

/**
 * An answer the backend gave on purpose is not an error of the backend: a fenced write (a newer
 * owner, DESIGN invariant 2) or a refusal of one message (a topic or payload NATS cannot carry).
 */
function isBackendFailure(err: unknown): boolean {
  if (err instanceof FencedError) return false;
  return err instanceof BackendUnavailableError || !(err instanceof MqttError);
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** Times the whole iteration (a retained-message scan), from the call to its end. */
async function* timedIteration<T>(source: AsyncIterable<T>, timings: BackendTimings, op: OperationTimings, start: number): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    timings.record(op, start, err);
    throw err;
  }
  timings.record(op, start);
}

/**
 * The port with every method that returns a promise (or an async iterable) timed into
 * `fleetmq_backend_request_duration_seconds{backend, operation=<method>}` and its failures
 * counted in `fleetmq_backend_errors_total`. Properties (`ready`) and synchronous methods
 * pass through; the adapter's methods run with the adapter itself as `this`.
 */
export function instrumentPort<T extends object>(port: T, backend: Backend, timings: BackendTimings): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(port, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
      let fn = wrapped.get(prop);
      if (fn === undefined) {
        const method = value as (...args: unknown[]) => unknown;
        const op = timings.operation(backend, prop);
        fn = function (this: unknown, ...args: unknown[]): unknown {
          const start = performance.now();
          let result: unknown;
          try {
            result = method.apply(target, args);
          } catch (err) {
            timings.record(op, start, err);
            throw err;
          }
          if (isPromiseLike(result)) {
            return Promise.resolve(result).then(
              (v) => {
                timings.record(op, start);
                return v;
              },
              (err: unknown) => {
                timings.record(op, start, err);
                throw err;
              },
            );
          }
          if (isAsyncIterable(result)) return timedIteration(result, timings, op, start);
          return result;
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
