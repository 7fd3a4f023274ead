export * from './message-bus.js';
export * from './session-ownership.js';
export * from './session-store.js';
export * from './offline-queue.js';
export * from './retained-store.js';
export * from './node-registry.js';
export * from './node-link.js';
export * from './lease.js';
