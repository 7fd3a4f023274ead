#!/usr/bin/env node
// Aedes (npm) as a benchmark peer: one broker with its defaults (in-memory persistence,
// mqemitter) on a plain `net` server, as Aedes' own example runs it. Started and stopped (by
// PID) by `npm run bench`. --no-delay turns Nagle's algorithm off on accepted sockets.
//
//   node bench/peers/aedes-server.mjs --port 1883 [--host 127.0.0.1] [--no-delay]
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '1883' },
    host: { type: 'string', default: '127.0.0.1' },
    'no-delay': { type: 'boolean', default: false },
  },
});

const broker = await Aedes.createBroker();
const server = net.createServer({ noDelay: values['no-delay'] }, broker.handle);

server.on('error', (err) => {
  process.stderr.write(`aedes-server: ${err.message}\n`);
  process.exit(1);
});
server.listen(Number(values.port), values.host, () => {
  process.stderr.write(`aedes-server: listening on ${values.host}:${values.port}\n`);
});

const stop = () => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
