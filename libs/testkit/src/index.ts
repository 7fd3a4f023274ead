export * from './contracts/index.js';
export * from './servers.js';
