'use strict';
// Presence and session data: promises settled by the results the service
// thread sends through the event queue. Without cluster.redis: this
// instance's presence and the in-memory session store.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { newServer, connect, once } = require('./helpers');

// HS256 tokens for user ids (the binding has no authenticator callback).
const secret = crypto.randomBytes(32);
function token(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

function jwtServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsg-node-async-'));
  const file = path.join(dir, 'secret');
  fs.writeFileSync(file, secret);
  const server = newServer({ 'auth.mode': 'jwt', 'auth.jwt.secret_file': file, 'auth.token_sources': 'query' });
  fs.rmSync(dir, { recursive: true }); // read when the server was made
  return server;
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code);
    assert.equal(typeof err.status, 'number');
    assert.ok(err.message.length > 0);
    return true;
  });
}

test('topicPresence and userPresence list this instance\'s connections', { timeout: 20000 }, async () => {
  const server = jwtServer();
  await rejectsWith(server.topicPresence('news'), 'WSG_ESTATE'); // not running
  const opened = [];
  server.on('open', (conn) => opened.push(conn));
  const port = await server.listen();
  const before = Date.now() - 1000;
  const clients = [];
  for (const user of ['ann', 'bob', 'ann']) {
    clients.push(await connect(port, `/?access_token=${token(user)}`));
    while (opened.length < clients.length) await once(server, 'open');
  }
  const [ann1, bob, ann2] = opened;
  server.subscribe(ann1, 'news');
  server.subscribe(bob, 'news');

  const news = await server.topicPresence('news');
  assert.equal(news.length, 2);
  const byConn = new Map(news.map((p) => [p.conn, p]));
  assert.equal(byConn.get(ann1).userId, 'ann');
  assert.equal(byConn.get(bob).userId, 'bob');
  for (const p of news) {
    assert.equal(typeof p.conn, 'bigint');
    assert.equal(p.node, Number(p.conn >> 48n));
    assert.ok(p.sinceMs >= before && p.sinceMs <= Date.now() + 1000, `sinceMs ${p.sinceMs}`);
  }
  const ann = await server.userPresence('ann');
  assert.deepEqual(ann.map((p) => p.conn).sort(), [ann1, ann2].sort());
  assert.deepEqual(await server.userPresence('nobody'), []);
  assert.deepEqual(await server.topicPresence('nobody-follows'), []);
  // Many at once: each promise gets its own answer.
  const many = await Promise.all([...Array(20)].map((_, i) => (i % 2 ? server.userPresence('bob') : server.topicPresence('news'))));
  many.forEach((r, i) => assert.equal(r.length, i % 2 ? 1 : 2));

  await rejectsWith(server.topicPresence(''), 'WSG_EINVAL');
  await assert.rejects(server.userPresence(42), TypeError);
  await rejectsWith(server.userPresence('a\0b'), 'WSG_EINVAL');
  for (const c of clients) c.close();
  await server.close();
  await rejectsWith(server.userPresence('ann'), 'WSG_ESTATE');
});

test('sessionSet, sessionGet and sessionDelete', { timeout: 20000 }, async () => {
  const server = newServer();
  await server.listen();
  assert.equal(await server.sessionGet('k'), null);
  assert.equal(await server.sessionSet('k', Buffer.from([0, 1, 2, 255])), undefined);
  assert.deepEqual(await server.sessionGet('k'), Buffer.from([0, 1, 2, 255]));
  await server.sessionSet('k', 'héllo', 60000); // a string is stored as UTF-8
  assert.equal((await server.sessionGet('k')).toString('utf8'), 'héllo');
  await server.sessionSet('empty', '');
  assert.deepEqual(await server.sessionGet('empty'), Buffer.alloc(0));
  assert.equal(await server.sessionDelete('k'), undefined);
  assert.equal(await server.sessionGet('k'), null);
  await server.sessionDelete('k'); // absent: not an error

  await server.sessionSet('brief', 'x', 30);
  const deadline = Date.now() + 3000;
  while ((await server.sessionGet('brief')) !== null) {
    assert.ok(Date.now() < deadline, 'a 30 ms value outlived 3 s');
    await new Promise((r) => setTimeout(r, 10));
  }

  await rejectsWith(server.sessionSet('', 'v'), 'WSG_EINVAL');
  await rejectsWith(server.sessionSet('k'.repeat(256), 'v'), 'WSG_EINVAL');
  await rejectsWith(server.sessionSet('neg', 'v', -1), 'WSG_EINVAL');
  await rejectsWith(server.sessionSet('big', Buffer.alloc(65537)), 'WSG_ELIMIT');
  await assert.rejects(server.sessionSet('k', 'v', 1.5), TypeError);
  await assert.rejects(server.sessionSet('k', {}), TypeError);
  await rejectsWith(server.sessionGet(''), 'WSG_EINVAL');
  await rejectsWith(server.sessionDelete(''), 'WSG_EINVAL');
  assert.equal(await server.sessionGet('neg'), null);
  assert.equal(await server.sessionGet('big'), null);
  await server.close();
  await rejectsWith(server.sessionSet('k', 'v'), 'WSG_ESTATE');
});

test('a call made as the server stops is settled, never left pending', { timeout: 20000 }, async () => {
  const server = newServer();
  await server.listen();
  const calls = [];
  for (let i = 0; i < 50; i++) calls.push(server.sessionSet(`k${i}`, 'v'));
  const stopped = server.close();
  for (let i = 0; i < 50; i++) calls.push(server.sessionGet(`k${i}`));
  const outcomes = await Promise.allSettled(calls);
  await stopped;
  for (const o of outcomes) {
    if (o.status === 'rejected') assert.equal(o.reason.code, 'WSG_ESTATE');
  }
});
