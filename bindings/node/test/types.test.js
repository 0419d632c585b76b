'use strict';
// index.d.ts against what index.js exports (tsc is not available offline:
// this checks the names, not the types), and that the loaded libwsgate is the
// installed one when run_tests.sh says where it is.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { wsgate } = require('./helpers');

const dts = fs.readFileSync(path.join(path.dirname(require.resolve('wsgate')), 'index.d.ts'), 'utf8');

test('index.d.ts declares exactly the exports of index.js', () => {
  const declared = [...dts.matchAll(/^export declare (?:class|const|function) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), Object.keys(wsgate).sort());
});

test('index.d.ts declares every Server method and accessor, and no other', () => {
  const body = dts.slice(dts.indexOf('export declare class Server'));
  const members = new Set([...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(?:readonly )?(\w+)[(<?:]/gm)]
    .map((m) => m[1]).filter((n) => n !== 'constructor'));
  const proto = Object.getOwnPropertyNames(wsgate.Server.prototype).filter((n) => n !== 'constructor');
  // on/once/off/emit are EventEmitter's, declared for their event types.
  for (const n of ['on', 'once', 'off', 'emit']) assert.ok(members.delete(n), n);
  assert.deepEqual([...members].sort(), proto.sort());
});

test('index.d.ts names every event index.js emits', () => {
  const src = fs.readFileSync(require.resolve('wsgate'), 'utf8');
  const emitted = new Set([...src.matchAll(/this\.emit\('(\w+)'/g)].map((m) => m[1]));
  const declared = new Set([...dts.matchAll(/^ {2}(\w+): \[/gm)].map((m) => m[1]));
  assert.deepEqual([...emitted].sort(), [...declared].sort());
});

test('the addon loads the installed libwsgate', { skip: !process.env.WSGATE_EXPECT_LIB }, () => {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const libs = new Set([...maps.matchAll(/\s(\S*libwsgate\.so[^\s]*)$/gm)].map((m) => fs.realpathSync(m[1])));
  assert.deepEqual([...libs], [fs.realpathSync(process.env.WSGATE_EXPECT_LIB)]);
});
