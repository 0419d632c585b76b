'use strict';
// wsgate for Node.js: an EventEmitter over the native addon (wsgate.node),
// which is glue over wsgate's C ABI. Nothing here decides anything the core
// decides (limits, validation, closes): this file names options, turns the
// native events into emitted ones and calls into the addon.
const { EventEmitter } = require('node:events');
const path = require('node:path');

function loadNative() {
  // Installed: wsgate.node sits beside this file. WSGATE_NODE_ADDON names
  // another one (a build tree's).
  const file = process.env.WSGATE_NODE_ADDON || path.join(__dirname, 'wsgate.node');
  try {
    return require(file);
  } catch (err) {
    err.message = `wsgate: cannot load the native addon ${file} (it needs libwsgate.so.0 ` +
      `from the same install, two directories up, or on LD_LIBRARY_PATH): ${err.message}`;
    throw err;
  }
}
const native = loadNative();

// Event kinds, as src/events.h numbers them.
const OPEN = 1;
const MESSAGE = 2;
const CLOSE = 3;
const DRAIN = 4;
const LOG = 5;
const RESULT = 6;
const LEVELS = { 10: 'debug', 20: 'info', 30: 'warn', 40: 'error' };

// The option table (name, type, default, range, doc), from the library.
const options = Object.freeze(native.options().map((o) => Object.freeze(o)));
const camel = (name) => name.replace(/[._]([a-z0-9])/g, (_, c) => c.toUpperCase());
const byName = new Map();
for (const o of options) {
  byName.set(o.name, o.name);
  byName.set(camel(o.name), o.name);
}
// The short names `ws` users know.
byName.set('port', 'listen.port');
byName.set('host', 'listen.host');
byName.set('path', 'server.path');

// { 'listen.port': 0 }, { listenPort: 0 }, { listen: { port: 0 } } and
// { port: 0 } all name listen.port. An unknown name is passed on as it is,
// for the library to refuse with its own message. Arrays are joined with
// commas, the separator of the list options (security.allowed_origins...).
function optionPairs(opts, prefix = '', out = []) {
  if (opts === null || typeof opts !== 'object') {
    throw Object.assign(new TypeError('wsgate: options must be an object'), { code: 'WSG_EINVAL', status: 1 });
  }
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined) continue;
    const key = prefix + k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      optionPairs(v, key + '.', out);
      continue;
    }
    const name = byName.get(key) ?? byName.get(camel(key)) ?? key;
    out.push([name, Array.isArray(v) ? v.join(',') : v]);
  }
  return out;
}

const statusNames = new Map(Object.entries(native.statuses).map(([name, value]) => [value, name]));

// An Error as the addon throws them: .code the status name, .status its number.
function statusError(status, message) {
  const err = new Error(message || statusNames.get(status) || `status ${status}`);
  err.code = statusNames.get(status) ?? `WSG_${status}`;
  err.status = status;
  return err;
}

// Asynchronous calls (presence, session data): a promise per call, kept in
// server._calls by call id until its RESULT event settles it. Functions, not
// methods, so that the prototype holds the public API alone.
function asyncCall(server, method, ...args) {
  const id = server._nextCall++;
  return new Promise((resolve, reject) => {
    server._calls.set(id, { resolve, reject });
    try {
      server._native[method](id, ...args);
    } catch (err) {
      server._calls.delete(id);
      reject(err);
    }
  });
}

function settle(server, id, status, message, payload) {
  const call = server._calls.get(id);
  if (!call) return;
  server._calls.delete(id);
  if (status === 0) {
    call.resolve(payload);
  } else if (status === native.statuses.WSG_ENOTFOUND && payload === null) {
    call.resolve(null); // sessionGet: no such key
  } else {
    const err = statusError(status, message);
    if (Array.isArray(payload)) err.entries = payload;
    call.reject(err);
  }
}

// After a stop every accepted call has been answered (WSG_ESTATE at worst)
// and its event dispatched: any call left would wait forever.
function failPending(server) {
  for (const [id] of server._calls) settle(server, id, native.statuses.WSG_ESTATE, 'the server stopped before the answer');
}

class Server extends EventEmitter {
  constructor(opts = {}) {
    super();
    // One function receives every event of a batch, in order (src/events.c).
    this._dispatch = (kind, a, b, c, d, e) => {
      switch (kind) {
        case MESSAGE: this.emit('message', a, b, c); break;
        case OPEN: this.emit('open', a); break;
        case CLOSE: this.emit('close', a, b, c, d, e); break;
        case DRAIN: this.emit('drain', a, b); break;
        case LOG: {
          let record;
          try { record = JSON.parse(c); } catch { record = { raw: c }; }
          this.emit('log', LEVELS[a] ?? String(a), b, record);
          break;
        }
        case RESULT: settle(this, a, b, c, d); break;
        default: break;
      }
    };
    // Asynchronous calls waiting for their RESULT event, by call id.
    this._calls = new Map();
    this._nextCall = 1;
    // historyPosition is the addon's own history hook (src/history.c), not
    // a library option: the hook cannot call JavaScript (see index.d.ts).
    let historyPosition;
    if (opts !== null && typeof opts === 'object' && 'historyPosition' in opts) {
      ({ historyPosition, ...opts } = opts);
    }
    this._native = new native.NativeServer(optionPairs(opts), this._dispatch, historyPosition);
    // Without a 'log' listener, log lines go to stderr from the service
    // thread, as wsgate's default sink writes them.
    this.on('newListener', (event) => {
      if (event === 'log') this._native.setWantLog(true);
    });
    this.on('removeListener', (event) => {
      if (event === 'log' && this.listenerCount('log') === 0) this._native.setWantLog(false);
    });
  }

  /** Bind and serve on wsgate's service thread; resolves with the bound port. */
  listen() {
    try {
      this._native.start();
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(this.port);
  }

  /**
   * close(): stop gracefully (every client gets 1001, 'close' is emitted for
   * each before the promise resolves) and let the process exit.
   * close(conn, code = 1000, reason = ''): close one connection (returns nothing).
   */
  close(conn, code, reason) {
    if (conn !== undefined) {
      this._native.closeConn(conn, code, reason);
      return undefined;
    }
    try {
      return this._native.stop().finally(() => failPending(this));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Same as close() with no argument. */
  stop() {
    return this.close();
  }

  /** Close every connection with 1012 spread over `ms`, then stop (wsg_server_drain). */
  drain(ms) {
    try {
      return this._native.drain(ms).finally(() => failPending(this));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Presence: every connection subscribed to `topic` on every instance of
   * the cluster (this instance's alone without cluster.redis). Resolves with
   * [{ conn, userId, node, sinceMs }]; rejects with WSG_ECLUSTER when Redis
   * failed (err.entries then holds this instance's entries).
   */
  topicPresence(topic) { return asyncCall(this, 'topicPresence', topic); }
  /** Presence: every open connection of `userId` on every instance (as topicPresence). */
  userPresence(userId) { return asyncCall(this, 'userPresence', userId); }
  /**
   * Session data shared by every instance: store `value` (a string as UTF-8,
   * or bytes) under `key` for `ttlMs` (0 or omitted: cluster.session_ttl_ms).
   */
  sessionSet(key, value, ttlMs = 0) { return asyncCall(this, 'sessionSet', key, value, ttlMs); }
  /** The value under `key` as a Buffer; null when absent or expired. */
  sessionGet(key) { return asyncCall(this, 'sessionGet', key); }
  /** Remove `key` (resolves also when it was absent). */
  sessionDelete(key) { return asyncCall(this, 'sessionDelete', key); }
  /**
   * History and recovery: subscribe `conn` to a history topic and give it
   * every message after `from` (a position's text or { epoch, offset };
   * omitted or null: nothing from the past), then the live ones. Resolves
   * with the position reached ({ epoch, offset, text }); rejects with
   * WSG_EGONE when `from` is no longer in the history (subscribed all the
   * same, live messages only).
   */
  subscribeFrom(conn, topic, from = null) { return asyncCall(this, 'subscribeFrom', conn, topic, from); }

  send(conn, data) { this._native.send(conn, data); }
  broadcast(data, except) { this._native.broadcast(data, except); }
  subscribe(conn, topic) { this._native.subscribe(conn, topic); }
  unsubscribe(conn, topic) { this._native.unsubscribe(conn, topic); }
  publish(topic, data) { this._native.publish(topic, data); }
  userSend(userId, data) { this._native.userSend(userId, data); }
  userClose(userId, code, reason) { this._native.userClose(userId, code, reason); }
  info(conn) { return this._native.info(conn); }
  connections() { return this._native.connIds(); }
  metrics() { return this._native.metrics(); }
  /** How events reached JavaScript: { batches, events, lost }. */
  eventStats() { return this._native.stats(); }
  get ready() { return this._native.ready(); }
  /** The bound port, or null when not listening. */
  get port() { return this._native.port(); }
}

module.exports = {
  Server,
  /** { epoch, offset } (bigints or safe integers) as the text "EPOCH-OFFSET". */
  formatPosition: native.formatPosition,
  /** "EPOCH-OFFSET" as { epoch, offset, text } (bigints); throws WSG_EINVAL for anything else. */
  parsePosition: native.parsePosition,
  version: native.version(),
  statuses: Object.freeze({ ...native.statuses }),
  options,
};
