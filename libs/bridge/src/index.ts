export * from './topic-rules.js';
export * from './outgoing-queue.js';
export * from './local-client.js';
export * from './bridge.js';
export * from './bridge-manager.js';
