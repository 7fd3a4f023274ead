export { Connection, type ConnectionOptions } from './connection.js';
export type { AcceptHandler, Listener, ListenerOptions } from './listener.js';
export { TcpListener } from './tcp-listener.js';
export { WsListener, type WsListenerOptions } from './ws-listener.js';
