export * from './redis-connection.js';
export * from './redis-session-ownership.js';
export * from './redis-node-registry.js';
export * from './scripts.js';
export * from './redis-lease.js';
