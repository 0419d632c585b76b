'use strict';
// Events, payloads, topics and promises against real loopback clients.
const test = require('node:test');
const assert = require('node:assert/strict');
const { newServer, connect, once } = require('./helpers');

test('open, message and close events; echo of a string and a Buffer', { timeout: 20000 }, async () => {
  const server = newServer();
  const seen = [];
  server.on('open', (conn) => seen.push(['open', typeof conn]));
  server.on('message', (conn, data, isBinary) => {
    seen.push(['message', typeof data === 'string' ? 'string' : data.constructor.name, isBinary]);
    server.send(conn, data);
  });
  const port = await server.listen();
  assert.equal(typeof port, 'number');
  assert.equal(server.port, port);
  assert.equal(server.ready, true);

  const opened = once(server, 'open');
  const ws = await connect(port);
  const [conn] = await opened;
  assert.equal(typeof conn, 'bigint');
  ws.send('héllo');
  assert.equal(await ws.next(), 'héllo');
  ws.send(new Uint8Array([0, 1, 2, 255]));
  assert.deepEqual(await ws.next(), Buffer.from([0, 1, 2, 255]));
  // Typed arrays, DataView and ArrayBuffer go as binary; strings as text.
  server.send(conn, new Uint16Array([0x0201]));
  assert.deepEqual(await ws.next(), Buffer.from([1, 2]));
  server.send(conn, new ArrayBuffer(3));
  assert.deepEqual(await ws.next(), Buffer.alloc(3));

  const closed = once(server, 'close');
  ws.close(4000, 'bye');
  const [cconn, code, reason, cause, advice] = await closed;
  assert.equal(cconn, conn);
  assert.deepEqual([code, reason, cause, advice], [4000, 'bye', 'peer', 'app']);
  assert.deepEqual(seen, [['open', 'bigint'], ['message', 'string', false], ['message', 'Buffer', true]]);
  await server.close();
  assert.equal(server.port, null);
  assert.equal(server.ready, false);
});

test('publish reaches the subscribers of a topic only; broadcast reaches all', { timeout: 20000 }, async () => {
  const server = newServer();
  const opened = [];
  server.on('open', (conn) => opened.push(conn));
  const port = await server.listen();
  const a = await connect(port);
  const b = await connect(port);
  while (opened.length < 2) await once(server, 'open');
  server.subscribe(opened[0], 'news');
  server.publish('news', 'first');
  assert.equal(await a.next(), 'first');
  server.unsubscribe(opened[0], 'news');
  server.subscribe(opened[1], 'news');
  server.publish('news', Buffer.from('second'));
  assert.deepEqual(await b.next(), Buffer.from('second'));
  assert.deepEqual(server.info(opened[1]).topics, ['news']);
  server.broadcast('all', opened[0]); // except the first
  assert.equal(await b.next(), 'all');
  server.broadcast('everyone');
  assert.equal(await a.next(), 'everyone');
  assert.equal(await b.next(), 'everyone');
  assert.equal(a.pending(), 0);
  assert.deepEqual(server.connections().sort(), [...opened].sort());

  // close(conn, code, reason) from the server, then stop: 'close' for the
  // other one (1001, shutdown) is emitted before close() resolves.
  const causes = [];
  server.on('close', (conn, code, reason, cause, advice) => causes.push([code, cause, advice]));
  server.close(opened[0], 4001, 'go');
  assert.deepEqual(await a.closed, { code: 4001, reason: 'go' });
  await server.close();
  assert.deepEqual(causes, [[4001, 'app', 'app'], [1001, 'shutdown', 'backoff']]);
  assert.equal((await b.closed).code, 1001);
});

test('many messages reach JavaScript in few event-loop turns', { timeout: 20000 }, async () => {
  const server = newServer();
  const N = 2000;
  let count = 0;
  let turns = 0;
  let inTurn = false;
  const done = new Promise((resolve) => {
    server.on('message', () => {
      if (!inTurn) {
        inTurn = true;
        turns++;
        setImmediate(() => { inTurn = false; });
      }
      if (++count === N) resolve();
    });
  });
  const port = await server.listen();
  const ws = await connect(port);
  for (let i = 0; i < N; i++) ws.send(`m${i}`);
  // Keep the JavaScript thread busy while the service thread queues them.
  const until = Date.now() + 200;
  while (Date.now() < until);
  await done;
  const stats = server.eventStats();
  console.log(`# ${N} messages in ${turns} turns; eventStats ${JSON.stringify(stats)}`);
  assert.equal(count, N);
  assert.ok(turns <= N / 10, `${N} messages took ${turns} event-loop turns`);
  assert.ok(stats.batches < stats.events / 10, `batches ${stats.batches} for ${stats.events} events`);
  assert.equal(stats.lost, 0);
  ws.close();
  await server.close();
});

test('drain(ms) closes with 1012 and resolves; metrics and log events', { timeout: 20000 }, async () => {
  const server = newServer({ 'log.level': 'info' });
  const logs = [];
  server.on('log', (level, event, record) => logs.push([level, event, record]));
  const port = await server.listen();
  const opened = once(server, 'open');
  const ws = await connect(port);
  await opened;
  assert.match(server.metrics(), /^wsgate_connections(_open)? /m);
  const closed = once(server, 'close');
  await server.drain(100);
  const [, code, , cause, advice] = await closed;
  assert.deepEqual([code, cause, advice], [1012, 'drain', 'backoff']);
  assert.equal((await ws.closed).code, 1012);
  assert.ok(logs.length > 0, 'no log event reached the listener');
  for (const [level, event, record] of logs) {
    assert.ok(['debug', 'info', 'warn', 'error'].includes(level));
    assert.equal(typeof event, 'string');
    assert.equal(typeof record, 'object');
  }
  assert.ok(logs.some(([, event]) => event === 'open'), `events: ${logs.map((l) => l[1])}`);
  // A stopped server listens again.
  const port2 = await server.listen();
  assert.equal(typeof port2, 'number');
  await server.close();
});
