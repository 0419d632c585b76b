'use strict';
// History and recovery without Redis (each instance keeps an in-memory
// history): subscribeFrom replays what a client missed then goes live,
// WSG_EGONE and the other refusals, the historyPosition option (the addon's
// own history hook, in C), and formatPosition/parsePosition.
const test = require('node:test');
const assert = require('node:assert/strict');
const { wsgate, newServer, connect, once } = require('./helpers');

function historyServer(extra = {}) {
  return newServer({ 'cluster.history_topics': 'room:*', 'cluster.history_size': 3, ...extra });
}

// Connects a client and resolves with it and its connection id.
async function join(server, port, opened) {
  const before = opened.length;
  const ws = await connect(port);
  while (opened.length <= before) await once(server, 'open');
  return { ws, conn: opened[before] };
}

function tracked(server) {
  const opened = [];
  server.on('open', (conn) => opened.push(conn));
  return opened;
}

async function rejectsWith(promise, code, text) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code);
    assert.equal(err.status, wsgate.statuses[code]);
    if (text) assert.match(err.message, text);
    return true;
  });
}

test('subscribeFrom replays after a position, then the live messages', { timeout: 20000 }, async () => {
  const server = historyServer({ historyPosition: 'pos' });
  const opened = tracked(server);
  const port = await server.listen();
  const a = await join(server, port, opened);
  // No history yet: the topic's position is 0-0.
  assert.deepEqual(await server.subscribeFrom(a.conn, 'room:1'), { epoch: 0n, offset: 0n, text: '0-0' });
  for (let i = 1; i <= 5; i++) server.publish('room:1', JSON.stringify({ text: `m${i}` }));
  const first = JSON.parse(await a.ws.next());
  const E = wsgate.parsePosition(first.pos).epoch;
  assert.deepEqual(first, { pos: `${E}-1`, text: 'm1' });
  for (let i = 2; i <= 5; i++) assert.deepEqual(JSON.parse(await a.ws.next()), { pos: `${E}-${i}`, text: `m${i}` });

  // Back after offset 3, given as text: m4 and m5 (shaped like the live
  // ones), the position reached, then the live messages.
  const b = await join(server, port, opened);
  assert.deepEqual(await server.subscribeFrom(b.conn, 'room:1', `${E}-3`), { epoch: E, offset: 5n, text: `${E}-5` });
  assert.equal(await b.ws.next(), `{"pos":"${E}-4","text":"m4"}`);
  assert.equal(await b.ws.next(), `{"pos":"${E}-5","text":"m5"}`);
  server.publish('room:1', '{"text":"m6"}');
  assert.equal(await b.ws.next(), `{"pos":"${E}-6","text":"m6"}`);
  assert.equal(await a.ws.next(), `{"pos":"${E}-6","text":"m6"}`);

  // The same as { epoch, offset }, with bigints or numbers.
  const c = await join(server, port, opened);
  const reached = await server.subscribeFrom(c.conn, 'room:1', { epoch: E, offset: 5 });
  assert.equal(reached.text, `${E}-6`);
  assert.equal(await c.ws.next(), `{"pos":"${E}-6","text":"m6"}`);
  const d = await join(server, port, opened);
  assert.equal((await server.subscribeFrom(d.conn, 'room:1', { epoch: E, offset: 6n })).offset, 6n);
  server.publish('room:1', '{"text":"m7"}');
  for (const client of [a, b, c, d]) assert.equal(await client.ws.next(), `{"pos":"${E}-7","text":"m7"}`);
  for (const client of [a, b, c, d]) assert.equal(client.ws.pending(), 0);
  for (const client of [a, b, c, d]) client.ws.close();
  await server.close();
});

test('subscribeFrom rejects WSG_EGONE for a lost position, and refuses bad calls', { timeout: 20000 }, async () => {
  const server = historyServer({ historyPosition: 'pos' });
  const opened = tracked(server);
  await rejectsWith(server.subscribeFrom(1n, 'room:1'), 'WSG_ENOTFOUND'); // not running: no connection yet
  const port = await server.listen();
  const a = await join(server, port, opened);
  await server.subscribeFrom(a.conn, 'room:1');
  for (let i = 1; i <= 5; i++) server.publish('room:1', `{"n":${i}}`);
  let last;
  for (let i = 1; i <= 5; i++) last = JSON.parse(await a.ws.next());
  const E = wsgate.parsePosition(last.pos).epoch;

  // Kept: 3..5. Trimmed, another epoch, ahead: WSG_EGONE with the reason,
  // nothing replayed, subscribed to the live messages all the same.
  const b = await join(server, port, opened);
  await rejectsWith(server.subscribeFrom(b.conn, 'room:1', `${E}-1`), 'WSG_EGONE', /older than the oldest/);
  await rejectsWith(server.subscribeFrom(b.conn, 'room:1', { epoch: E + 2n, offset: 4n }), 'WSG_EGONE', /another epoch/);
  await rejectsWith(server.subscribeFrom(b.conn, 'room:1', `${E}-9`), 'WSG_EGONE', /ahead/);
  await rejectsWith(server.subscribeFrom(b.conn, 'room:1', '0-0'), 'WSG_EGONE'); // offset 1 is gone
  server.publish('room:1', '{"n":6}');
  assert.equal(await b.ws.next(), `{"pos":"${E}-6","n":6}`);
  assert.equal(b.ws.pending(), 0);

  // Refused at once.
  await rejectsWith(server.subscribeFrom(a.conn, 'plain', `${E}-1`), 'WSG_EINVAL', /cluster\.history_topics/);
  await rejectsWith(server.subscribeFrom(a.conn, '', null), 'WSG_EINVAL');
  await rejectsWith(server.subscribeFrom(a.conn, 'room:1', 'junk'), 'WSG_EINVAL', /'junk' is no position/);
  await rejectsWith(server.subscribeFrom(a.conn + 77n, 'room:1'), 'WSG_ENOTFOUND');
  await assert.rejects(server.subscribeFrom(a.conn, 'room:1', 42), TypeError);
  await assert.rejects(server.subscribeFrom(a.conn, 'room:1', { epoch: -1, offset: 1 }), TypeError);
  await assert.rejects(server.subscribeFrom('x', 'room:1'), TypeError);
  a.ws.close();
  b.ws.close();
  await server.close();
  await rejectsWith(server.subscribeFrom(a.conn, 'room:1'), 'WSG_ENOTFOUND'); // stopped: its connections are gone
});

test('historyPosition embeds the position in JSON objects only', { timeout: 20000 }, async () => {
  const server = historyServer({ historyPosition: 'at', 'cluster.history_topics': 'room:*,raw' });
  const opened = tracked(server);
  const port = await server.listen();
  const a = await join(server, port, opened);
  await server.subscribeFrom(a.conn, 'room:x');
  server.subscribe(a.conn, 'plain'); // not a history topic: never shaped
  server.publish('room:x', '{"k":1}');
  const E = wsgate.parsePosition(JSON.parse(await a.ws.next()).at).epoch;
  const cases = [
    ['{}', `{"at":"${E}-2"}`],
    ['{ }', `{"at":"${E}-3" }`],
    ['{\n "k" : [1, {"z":2}] }', `{"at":"${E}-4",\n "k" : [1, {"z":2}] }`],
    [' {"lead":"space"}', ' {"lead":"space"}'],
    ['[1,2]', '[1,2]'],
    ['plain text {x}', 'plain text {x}'],
    ['{"é":"ü"}', `{"at":"${E}-8","é":"ü"}`],
  ];
  for (const [sent] of cases) server.publish('room:x', sent);
  for (const [, want] of cases) assert.equal(await a.ws.next(), want);
  server.publish('room:x', Buffer.from('{"bin":1}'));
  assert.deepEqual(await a.ws.next(), Buffer.from('{"bin":1}'));
  server.publish('plain', '{"k":2}');
  assert.equal(await a.ws.next(), '{"k":2}');
  // Replayed messages are shaped the same way.
  const b = await join(server, port, opened);
  await server.subscribeFrom(b.conn, 'room:x', `${E}-7`);
  assert.equal(await b.ws.next(), `{"at":"${E}-8","é":"ü"}`);
  assert.deepEqual(await b.ws.next(), Buffer.from('{"bin":1}'));
  a.ws.close();
  b.ws.close();
  await server.close();

  // Without the option, history messages go as published.
  const bare = historyServer();
  const bareOpened = tracked(bare);
  const barePort = await bare.listen();
  const c = await join(bare, barePort, bareOpened);
  await bare.subscribeFrom(c.conn, 'room:1');
  bare.publish('room:1', '{"k":1}');
  assert.equal(await c.ws.next(), '{"k":1}');
  c.ws.close();
  await bare.close();

  // A field name that cannot go into JSON as it is.
  for (const bad of ['', 'a"b', 'back\\slash', 'new\nline', 'x'.repeat(65), 'ünï']) {
    assert.throws(() => historyServer({ historyPosition: bad }), (err) => err.code === 'WSG_EINVAL' && /historyPosition/.test(err.message));
  }
  assert.throws(() => historyServer({ historyPosition: 42 }), TypeError);
  historyServer({ historyPosition: 'x'.repeat(64) });
  historyServer({ historyPosition: undefined });
});

test('formatPosition and parsePosition round-trip and refuse bad input', () => {
  const max = 18446744073709551615n;
  for (const [epoch, offset] of [[0n, 0n], [1n, 1n], [1234n, 56n], [max, max], [9007199254740993n, 2n]]) {
    const text = wsgate.formatPosition({ epoch, offset });
    assert.equal(text, `${epoch}-${offset}`);
    assert.deepEqual(wsgate.parsePosition(text), { epoch, offset, text });
  }
  assert.equal(wsgate.formatPosition({ epoch: 12, offset: 3 }), '12-3');
  assert.equal(wsgate.formatPosition(wsgate.parsePosition('77-8')), '77-8');
  for (const bad of ['', '12', '12-', '-3', '01-2', '1-02', '1-0', '0-1', 'a-b', '1-2 ', ' 1-2', '1-2-3',
    '18446744073709551616-1', '1'.repeat(60), '1-2\0']) {
    assert.throws(() => wsgate.parsePosition(bad), (err) => err.code === 'WSG_EINVAL' && err.status === wsgate.statuses.WSG_EINVAL &&
      /EPOCH-OFFSET|NUL/.test(err.message), `parsePosition(${JSON.stringify(bad)})`);
  }
  assert.throws(() => wsgate.parsePosition(12), TypeError);
  assert.throws(() => wsgate.parsePosition(), TypeError);
  for (const bad of [{ epoch: -1, offset: 1 }, { epoch: 1.5, offset: 1 }, { epoch: 2 ** 53, offset: 1 },
    { epoch: 1n << 64n, offset: 1n }, { epoch: 1 }, { epoch: '1', offset: '2' }]) {
    assert.throws(() => wsgate.formatPosition(bad), TypeError, JSON.stringify(bad, (k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  }
  assert.throws(() => wsgate.formatPosition('1-2'), TypeError);
});
