export * from './contracts/index.js';
export * from './servers.js';
export * from './packets.js';
export * from './raw-client.js';
export * from './pki.js';
export * from './tcp-proxy.js';
export * from './mosquitto.js';
