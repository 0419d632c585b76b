'use strict';
// The README's Node.js snippet (between <!-- snippet:node:begin --> and
// <!-- snippet:node:end -->), run as written against the installed package:
// it must print its URL, echo, report the close, and exit on SIGINT.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { connect } = require('./helpers');

const readme = path.join(process.env.WSGATE_SOURCE_DIR ?? path.join(__dirname, '../../..'), 'README.md');

function snippet() {
  const text = fs.readFileSync(readme, 'utf8');
  const m = text.match(/<!-- snippet:node:begin -->\n```js\n([\s\S]*?)```\n<!-- snippet:node:end -->/);
  assert.ok(m, `${readme} has no Node.js snippet between the markers`);
  return m[1];
}

test('the README snippet echoes and stops on SIGINT', { timeout: 20000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsg-node-readme-'));
  const file = path.join(dir, 'echo.js');
  fs.writeFileSync(file, snippet());
  const child = spawn(process.execPath, [file], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters = [];
  child.stdout.on('data', (d) => { out += d; for (const w of waiters.splice(0)) w(); });
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const waitFor = async (re) => {
    while (!re.test(out)) await new Promise((r) => waiters.push(r));
    return out.match(re);
  };
  try {
    const [, port] = await waitFor(/listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
    const ws = await connect(Number(port));
    ws.send('hi');
    assert.equal(await ws.next(), 'hi');
    ws.send(Buffer.from([1, 2]));
    assert.deepEqual(await ws.next(), Buffer.from([1, 2]));
    ws.close(1000);
    await waitFor(/closed 1000 \(peer, reconnect: app\)/);
    child.kill('SIGINT');
    assert.deepEqual(await exited, { code: 0, signal: null }, `stdout: ${out}\nstderr: ${err}`);
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
