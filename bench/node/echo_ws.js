'use strict';
// The same echo server with the npm `ws` package (WebSocketServer), the
// comparison for the Node.js binding. Resolved from NODE_PATH (run.py
// installs bench/node/package.json with npm ci).
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0), perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}/`));
const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
