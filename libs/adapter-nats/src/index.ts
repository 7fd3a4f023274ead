export * from './subject-codec.js';
export * from './envelope.js';
export * from './nats-message-bus.js';
export * from './nats-node-link.js';
