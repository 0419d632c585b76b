'use strict';
// Failures: Error objects with .code (the status name), .status and the
// library's message; promises reject with them.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { wsgate, newServer } = require('./helpers');

function expectError(fn, code, pattern) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, code, err.message);
    assert.equal(err.status, wsgate.statuses[code]);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

test('options: names in every form; a bad value or name is WSG_EINVAL naming the option', { timeout: 20000 }, async () => {
  const server = new wsgate.Server({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'warn',
    heartbeatPingIntervalMs: 1000, 'security.allowed_origins': ['https://a.example', 'https://b.example'] });
  const port = await server.listen();
  assert.ok(port > 0);
  await server.close();
  expectError(() => newServer({ 'listen.port': 70000 }), 'WSG_EINVAL', /listen\.port/);
  expectError(() => newServer({ noSuchOption: 1 }), 'WSG_EINVAL', /noSuchOption/);
  expectError(() => newServer({ 'log.level': 'loud' }), 'WSG_EINVAL', /log\.level/);
  expectError(() => newServer({ 'listen.port': 1.5 }), 'WSG_EINVAL', /listen\.port/);
  expectError(() => newServer({ 'listen.port': NaN }), 'WSG_EINVAL', /listen\.port/);
  expectError(() => newServer({ 'listen.port': 1e300 }), 'WSG_EINVAL', /listen\.port/);
  assert.ok(wsgate.options.some((o) => o.name === 'listen.port' && o.type === 'int'));
  assert.match(wsgate.version, /^\d+\.\d+\.\d+/);
});

test('calls on stale ids, bad arguments, and a port in use', { timeout: 20000 }, async () => {
  const server = newServer();
  // Not running yet.
  expectError(() => server.broadcast('x'), 'WSG_ESTATE');
  await server.listen();
  expectError(() => server.send(12345n, 'x'), 'WSG_ENOTFOUND');
  expectError(() => server.close(12345n, 1000, 'x'), 'WSG_ENOTFOUND');
  expectError(() => server.info(12345n), 'WSG_ENOTFOUND');
  expectError(() => server.send('12345', 'x'), 'WSG_EINVAL', /bigint/);
  expectError(() => server.send(12345n, { not: 'a payload' }), 'WSG_EINVAL', /string .*Buffer/);
  expectError(() => server.publish('', 'x'), 'WSG_EINVAL');
  expectError(() => server.publish('a\0b', 'x'), 'WSG_EINVAL', /NUL/);
  expectError(() => server.userSend('nobody', 'x'), 'WSG_ENOTFOUND');
  await assert.rejects(server.drain(-1), (err) => err.code === 'WSG_EINVAL');
  await assert.rejects(server.drain(NaN), (err) => err.code === 'WSG_EINVAL');
  expectError(() => server.close(12345n, Infinity), 'WSG_EINVAL');

  // listen() on a running server rejects, and the server keeps serving.
  await assert.rejects(server.listen(), { code: 'WSG_ESTATE' });
  const opened = new Promise((resolve) => server.once('open', resolve));
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
  await opened;
  ws.close();

  // A second server on the same port: listen() rejects with WSG_EIO.
  const other = newServer({ port: server.port });
  await assert.rejects(other.listen(), (err) => {
    assert.equal(err.code, 'WSG_EIO');
    assert.match(err.message, new RegExp(String(server.port)));
    return true;
  });
  await server.close();
  // Closing a server that is not running resolves.
  await other.close();
});

test('a port held by another program', { timeout: 20000 }, async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const server = newServer({ port: blocker.address().port });
  await assert.rejects(server.listen(), { code: 'WSG_EIO' });
  blocker.close();
});
