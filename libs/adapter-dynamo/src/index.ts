export * from './client.js';
export * from './errors.js';
export * from './retained-keys.js';
export * from './tables.js';
export * from './dynamo-retained-store.js';
