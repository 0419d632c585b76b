'use strict';
// The process's life: it exits by itself once servers are closed, exits
// cleanly with events in flight, and closed servers are garbage-collected.
const test = require('node:test');
const assert = require('node:assert/strict');
const { runNode } = require('./helpers');

const prelude = `
const { Server } = require('wsgate');
// The clients are in the same process, so no close handshake completes
// once it exits: a short shutdown timeout keeps the test short.
const server = new Server({ host: '127.0.0.1', port: 0, 'log.level': 'warn', 'server.shutdown_timeout_ms': 200 });
`;

test('the process exits by itself after close()', { timeout: 20000 }, async () => {
  const r = await runNode(`${prelude}
server.on('message', (conn, data) => server.send(conn, data));
server.listen().then((port) => {
  const ws = new WebSocket('ws://127.0.0.1:' + port + '/');
  ws.onopen = () => ws.send('ping');
  ws.onmessage = async (ev) => {
    console.log('echo ' + ev.data);
    await server.close();
    console.log('closed');
  };
});`);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'echo ping\nclosed\n');
});

test('process.exit() with messages in flight ends cleanly', { timeout: 20000 }, async () => {
  const r = await runNode(`${prelude}
let n = 0;
server.on('message', (conn, data) => {
  server.send(conn, data);
  if (++n === 500) { console.log('exiting'); process.exit(7); }
});
server.listen().then((port) => {
  for (let c = 0; c < 4; c++) {
    const ws = new WebSocket('ws://127.0.0.1:' + port + '/');
    ws.onopen = () => { for (let i = 0; i < 2000; i++) ws.send('x'.repeat(100)); };
  }
});`);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 7, r.stderr);
  assert.equal(r.stdout, 'exiting\n');
});

test('a listener that throws reaches uncaughtException; serving goes on', { timeout: 20000 }, async () => {
  const r = await runNode(`${prelude}
let errors = 0;
process.on('uncaughtException', (err) => { errors++; console.log('caught ' + err.message); });
server.on('message', (conn, data) => { if (data === 'boom') throw new Error('boom'); server.send(conn, data); });
server.listen().then((port) => {
  const ws = new WebSocket('ws://127.0.0.1:' + port + '/');
  ws.onopen = () => { ws.send('boom'); ws.send('after'); };
  ws.onmessage = async (ev) => { console.log('echo ' + ev.data + ' errors ' + errors); ws.close(); await server.close(); };
});`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'caught boom\necho after errors 1\n');
});

test('closed servers are garbage-collected (no cycle through the addon)', { timeout: 20000 }, async () => {
  const r = await runNode(`
const { Server } = require('wsgate');
let collected = 0;
const registry = new FinalizationRegistry(() => { collected++; });
// In a function of its own, so no frame of the loop below holds a server.
async function cycle(i) {
  const s = new Server({ host: '127.0.0.1', port: 0, 'log.level': 'warn' });
  s.on('message', () => {});
  await s.listen();
  await s.close();
  registry.register(s, i);
}
(async () => {
  for (let i = 0; i < 10; i++) await cycle(i);
  for (let i = 0; i < 20 && collected < 10; i++) {
    global.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log('collected ' + collected);
})();`, ['--expose-gc']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'collected 10\n');
});
