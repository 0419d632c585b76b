'use strict';
// Echo server through the Node.js binding (require('wsgate'): NODE_PATH names
// an installed package). Prints "listening on ws://HOST:PORT/" like the other
// bench servers and stops on SIGTERM or SIGINT.
const { Server } = require('wsgate');

const server = new Server({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0), 'log.level': 'warn' });
server.on('message', (conn, data) => server.send(conn, data));
server.listen().then((port) => console.log(`listening on ws://127.0.0.1:${port}/`));
const stop = () => server.close();
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
