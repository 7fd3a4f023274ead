export * from './message.js';
export * from './subscription.js';
export * from './session-snapshot.js';
export * from './topic-trie.js';
export * from './ports/index.js';
