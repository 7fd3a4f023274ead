export * from './memory-message-bus.js';
export * from './memory-session-ownership.js';
export * from './memory-session-store.js';
export * from './memory-offline-queue.js';
export * from './memory-retained-store.js';
export * from './memory-node-registry.js';
export * from './memory-node-link.js';
export * from './memory-lease.js';
