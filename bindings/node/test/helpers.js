'use strict';
// Shared by the binding's tests: the installed package, a WebSocket client
// (Node's own, --experimental-websocket in Node 20) and child processes.
const { spawn } = require('node:child_process');
const wsgate = require('wsgate'); // NODE_PATH names the installed package (run_tests.sh)

// Every server in the tests: loopback, a free port, quiet logs.
function newServer(extra = {}) {
  return new wsgate.Server({ host: '127.0.0.1', port: 0, 'log.level': 'warn', ...extra });
}

// A client whose messages queue up until next() takes them.
function connect(port, path = '/') {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.binaryType = 'arraybuffer';
    const inbox = [];
    const waiters = [];
    ws.onmessage = (ev) => {
      const data = typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data);
      const w = waiters.shift();
      if (w) w(data);
      else inbox.push(data);
    };
    ws.closed = new Promise((done) => {
      ws.onclose = (ev) => done({ code: ev.code, reason: ev.reason });
    });
    ws.next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r)));
    ws.pending = () => inbox.length;
    ws.onopen = () => resolve(ws);
    ws.onerror = (ev) => reject(new Error(`client could not connect: ${ev.message ?? ev.type}`));
  });
}

// Resolves with the next emission of `event` (its arguments as an array).
function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

// Runs `node -e script` (with this process's flags and NODE_PATH) and
// resolves with { code, signal, stdout, stderr } once it ends, or rejects
// after `ms`.
function runNode(script, args = [], ms = 15000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), ...args, '-e', script],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit within ${ms} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

module.exports = { wsgate, newServer, connect, once, runNode };
