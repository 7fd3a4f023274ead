export * from './reason-codes.js';
export * from './errors.js';
export * from './topic.js';
export * from './limits.js';
