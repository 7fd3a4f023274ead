export { dynamoTables } from './backends.js';
export { loadConfig, parseConfig, parseListenerUrls, type EdgeConfig, type ListenerConfig, type LoadOptions } from './config.js';
export { createLogger, type Logger } from './logger.js';
export { startNode, type RunningNode } from './main.js';
