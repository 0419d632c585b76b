/* The event queue between wsgate's service thread and JavaScript: see events.h. */
#include "events.h"
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After a burst, a batch keeps at most this much memory for the next one. */
#define WSN_KEEP_BYTES (1u << 20)
#define WSN_KEEP_EVENTS 16384u

void wsn_batch_free(wsn_batch *b) {
    free(b->evs);
    free(b->bytes);
    memset(b, 0, sizeof *b);
}

/* Makes room for one more event and `need` more bytes. 0 on success. */
static int batch_reserve(wsn_batch *b, size_t need) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        wsn_event *evs = realloc(b->evs, cap * sizeof *evs);
        if (!evs) return -1;
        b->evs = evs;
        b->cap = cap;
    }
    if (need > b->bcap - b->used) {
        size_t bcap = b->bcap ? b->bcap : 16384;
        while (bcap - b->used < need) {
            if (bcap > SIZE_MAX / 2) return -1;
            bcap *= 2;
        }
        char *bytes = realloc(b->bytes, bcap);
        if (!bytes) return -1;
        b->bytes = bytes;
        b->bcap = bcap;
    }
    return 0;
}

/* Wakes the JavaScript thread. */
static void signal_js(wsn_server *s) {
    pthread_mutex_lock(&s->sig_mu);
    if (s->tsfn) napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
    pthread_mutex_unlock(&s->sig_mu);
}

/* Queues one event with the bytes p1 then p2. Returns 0 when queued, -1 when
 * dropped (no threadsafe function: not listening; or no memory). */
static int push(wsn_server *s, wsn_event *e, const void *p1, size_t l1, const void *p2, size_t l2) {
    int rc = -1, wake = 0;
    pthread_mutex_lock(&s->mu);
    if (s->accepting) {
        wsn_batch *b = &s->filling;
        if (l1 > SIZE_MAX - l2 || batch_reserve(b, l1 + l2) != 0) {
            s->lost++;
        } else {
            e->off = b->used;
            e->len = l1 + l2;
            if (l1) memcpy(b->bytes + b->used, p1, l1);
            if (l2) memcpy(b->bytes + b->used + l1, p2, l2);
            b->used += l1 + l2;
            b->evs[b->n++] = *e;
            /* Only the first event of a batch wakes the JavaScript thread,
             * and only when it is not dispatching already (then it looks
             * again before it returns): it takes everything queued by then. */
            wake = b->n == 1 && !s->active;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (wake) signal_js(s);
    return rc;
}

static int gone(wsn_server *s) { return atomic_load_explicit(&s->dead, memory_order_acquire); }

/* ---- trampolines: service thread (logs: also lifecycle callers' threads) */

static void on_open(wsg_server *srv, wsg_conn_id conn, void *user) {
    (void)srv;
    wsn_server *s = user;
    if (gone(s)) return;
    wsn_event e = {.kind = WSN_OPEN, .conn = conn};
    push(s, &e, NULL, 0, NULL, 0);
}

static void on_message(wsg_server *srv, wsg_conn_id conn, wsg_msg_type type, const void *data,
                       size_t len, void *user) {
    (void)srv;
    wsn_server *s = user;
    if (gone(s)) return;
    wsn_event e = {.kind = WSN_MESSAGE, .conn = conn, .a = (int32_t)type};
    push(s, &e, data, len, NULL, 0);
}

static void on_close(wsg_server *srv, wsg_conn_id conn, int code, const char *reason,
                     size_t reason_len, wsg_close_cause cause, void *user) {
    wsn_server *s = user;
    if (gone(s)) return;
    wsn_event e = {.kind = WSN_CLOSE, .conn = conn, .a = code, .b = (int32_t)cause,
                   .c = (int32_t)wsg_close_code_advice(srv, code)};
    push(s, &e, reason, reason_len, NULL, 0);
}

static void on_drain(wsg_server *srv, wsg_conn_id conn, size_t queued, void *user) {
    (void)srv;
    wsn_server *s = user;
    if (gone(s)) return;
    wsn_event e = {.kind = WSN_DRAIN, .conn = conn, .count = queued};
    push(s, &e, NULL, 0, NULL, 0);
}

static void on_log(wsg_server *srv, wsg_log_level level, const char *event, const char *json,
                   size_t json_len, void *user) {
    (void)srv;
    wsn_server *s = user;
    if (!event) event = "";
    if (!gone(s) && atomic_load_explicit(&s->want_log, memory_order_acquire)) {
        size_t elen = strlen(event);
        wsn_event e = {.kind = WSN_LOG, .a = (int32_t)level, .split = elen};
        if (push(s, &e, event, elen, json, json_len) == 0) return;
    }
    /* Nobody listens in JavaScript (or it is gone): write what wsgate's
     * default sink writes, one JSON line on stderr. */
    flockfile(stderr);
    fwrite(json, 1, json_len, stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
}

/* ---- asynchronous results: service thread */

wsn_call *wsn_call_new(wsn_server *s, uint64_t id, int op) {
    wsn_call *call = calloc(1, sizeof *call);
    if (!call) return NULL;
    call->s = s;
    call->id = id;
    call->op = op;
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
    return call;
}

void wsn_call_free(wsn_call *call) {
    if (!call) return;
    wsn_unref(call->s);
    free(call);
}

/* Presence entries in the event's bytes, each as conn (8 bytes), since_ms
 * (8), the user id's length (4) and the user id; read by dispatch_one. */
#define WSN_ENTRY_HEAD 20

static char *pack_presence(const wsg_result *r, size_t count, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        const char *user = "";
        if (wsg_result_presence(r, i, NULL, &user, NULL) != WSG_OK) return NULL;
        total += WSN_ENTRY_HEAD + strlen(user);
    }
    char *buf = malloc(total ? total : 1);
    if (!buf) return NULL;
    char *p = buf;
    for (size_t i = 0; i < count; i++) {
        wsg_conn_id conn = 0;
        const char *user = "";
        int64_t since = 0;
        wsg_result_presence(r, i, &conn, &user, &since);
        uint32_t ulen = (uint32_t)strlen(user);
        memcpy(p, &conn, 8);
        memcpy(p + 8, &since, 8);
        memcpy(p + 16, &ulen, 4);
        memcpy(p + WSN_ENTRY_HEAD, user, ulen);
        p += WSN_ENTRY_HEAD + ulen;
    }
    *len = total;
    return buf;
}

void wsn_result_callback(wsg_server *srv, const wsg_result *r, void *user) {
    (void)srv;
    wsn_call *call = user;
    wsn_server *s = call->s;
    if (!gone(s)) {
        const char *msg = wsg_result_message(r);
        if (!msg) msg = "";
        size_t mlen = strlen(msg), plen = 0;
        const void *payload = NULL;
        char *packed = NULL;
        wsg_position pos = {0, 0};
        wsn_event e = {.kind = WSN_RESULT, .conn = call->id, .a = (int32_t)wsg_result_status(r),
                       .b = call->op, .split = mlen};
        if (call->op == WSN_OP_PRESENCE) {
            e.count = wsg_result_count(r);
            packed = pack_presence(r, (size_t)e.count, &plen);
            if (!packed) {
                /* Out of memory: the call still ends, with no entries. */
                e.count = 0;
                e.a = WSG_ENOMEM;
                msg = "out of memory passing the presence entries to JavaScript";
                mlen = e.split = strlen(msg);
            }
            payload = packed;
        } else if (call->op == WSN_OP_VALUE && wsg_result_value(r, &payload, &plen) == WSG_OK) {
            e.c = 1;
        } else if (call->op == WSN_OP_POSITION && wsg_result_position(r, &pos) == WSG_OK) {
            e.c = 1;
            payload = &pos;
            plen = sizeof pos;
        } else {
            payload = NULL;
            plen = 0;
        }
        push(s, &e, msg, mlen, payload, plen);
        free(packed);
    }
    wsn_call_free(call);
}

wsg_status wsn_register_callbacks(wsn_server *s) {
    wsg_status st;
    if ((st = wsg_server_on_open(s->srv, on_open, s, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_message(s->srv, on_message, s, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_close(s->srv, on_close, s, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_drain(s->srv, on_drain, s, NULL)) != WSG_OK) return st;
    return wsg_server_on_log(s->srv, on_log, s, NULL);
}

/* ---- the JavaScript thread */

void wsn_unref(wsn_server *s) {
    pthread_mutex_lock(&s->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last) return;
    wsn_batch_free(&s->filling);
    wsn_batch_free(&s->spare);
    pthread_mutex_destroy(&s->sig_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The presence entries packed by pack_presence, as an array of
 * { conn, userId, node, sinceMs } (userId null when anonymous). */
static void result_entries(napi_env env, const wsn_event *e, const char *p, napi_value *out) {
    napi_create_array_with_length(env, (size_t)e->count, out);
    for (uint64_t i = 0; i < e->count; i++) {
        uint64_t conn;
        int64_t since;
        uint32_t ulen;
        memcpy(&conn, p, 8);
        memcpy(&since, p + 8, 8);
        memcpy(&ulen, p + 16, 4);
        napi_value obj, v;
        napi_create_object(env, &obj);
        napi_create_bigint_uint64(env, conn, &v);
        napi_set_named_property(env, obj, "conn", v);
        if (ulen) napi_create_string_utf8(env, p + WSN_ENTRY_HEAD, ulen, &v);
        else napi_get_null(env, &v);
        napi_set_named_property(env, obj, "userId", v);
        napi_create_uint32(env, (uint32_t)(conn >> 48), &v);
        napi_set_named_property(env, obj, "node", v);
        napi_create_double(env, (double)since, &v);
        napi_set_named_property(env, obj, "sinceMs", v);
        napi_set_element(env, *out, (uint32_t)i, obj);
        p += WSN_ENTRY_HEAD + ulen;
    }
}

/* Calls the dispatcher for one event. */
static void dispatch_one(napi_env env, napi_value fn, napi_value undef, const wsn_event *e,
                         const char *bytes) {
    napi_value argv[6];
    size_t argc = 2;
    napi_create_int32(env, e->kind, &argv[0]);
    switch (e->kind) {
    case WSN_OPEN:
        napi_create_bigint_uint64(env, e->conn, &argv[1]);
        break;
    case WSN_MESSAGE:
        napi_create_bigint_uint64(env, e->conn, &argv[1]);
        if (e->a == WSG_MSG_TEXT) {
            /* wsgate validated the text as UTF-8. */
            napi_create_string_utf8(env, bytes, e->len, &argv[2]);
            napi_get_boolean(env, false, &argv[3]);
        } else {
            napi_create_buffer_copy(env, e->len, bytes, NULL, &argv[2]);
            napi_get_boolean(env, true, &argv[3]);
        }
        argc = 4;
        break;
    case WSN_CLOSE:
        napi_create_bigint_uint64(env, e->conn, &argv[1]);
        napi_create_int32(env, e->a, &argv[2]);
        napi_create_string_utf8(env, bytes, e->len, &argv[3]);
        napi_create_string_utf8(env, wsg_close_cause_str((wsg_close_cause)e->b), NAPI_AUTO_LENGTH,
                                &argv[4]);
        napi_create_string_utf8(env, wsg_reconnect_str((wsg_reconnect)e->c), NAPI_AUTO_LENGTH,
                                &argv[5]);
        argc = 6;
        break;
    case WSN_DRAIN:
        napi_create_bigint_uint64(env, e->conn, &argv[1]);
        napi_create_double(env, (double)e->count, &argv[2]);
        argc = 3;
        break;
    case WSN_LOG:
        napi_create_int32(env, e->a, &argv[1]);
        napi_create_string_utf8(env, bytes, e->split, &argv[2]);
        napi_create_string_utf8(env, bytes + e->split, e->len - e->split, &argv[3]);
        argc = 4;
        break;
    case WSN_RESULT:
        /* (kind, call id, status, message, payload): the payload is the
         * presence entries, the value (a Buffer, or null), the position
         * ({ epoch, offset, text }) or undefined. */
        napi_create_double(env, (double)e->conn, &argv[1]);
        napi_create_int32(env, e->a, &argv[2]);
        napi_create_string_utf8(env, bytes, e->split, &argv[3]);
        if (e->b == WSN_OP_PRESENCE) {
            result_entries(env, e, bytes + e->split, &argv[4]);
        } else if (e->b == WSN_OP_VALUE && e->c) {
            napi_create_buffer_copy(env, e->len - e->split, bytes + e->split, NULL, &argv[4]);
        } else if (e->b == WSN_OP_VALUE) {
            napi_get_null(env, &argv[4]);
        } else if (e->b == WSN_OP_POSITION && e->c && e->len - e->split == sizeof(wsg_position)) {
            wsg_position pos;
            memcpy(&pos, bytes + e->split, sizeof pos);
            argv[4] = wsn_position_value(env, &pos);
        } else {
            napi_get_undefined(env, &argv[4]);
        }
        argc = 5;
        break;
    default:
        return;
    }
    if (napi_call_function(env, undef, fn, argc, argv, NULL) == napi_pending_exception) {
        /* A listener threw: report it as Node reports an exception from
         * any event emitter ('uncaughtException', which exits the process
         * unless handled), then go on with the rest of the batch. */
        napi_value err;
        if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
}

/* Rounds of one dispatch: after a batch, the JavaScript thread takes what
 * arrived meanwhile without a new wake-up, up to this many times, then lets
 * the event loop run (timers, I/O) and is signalled for the rest. */
#define WSN_ROUNDS 8

static void batch_reset(wsn_batch *b) {
    b->n = 0;
    b->used = 0;
    if (b->bcap > WSN_KEEP_BYTES || b->cap > WSN_KEEP_EVENTS) wsn_batch_free(b);
}

void wsn_dispatch_now(wsn_server *s, napi_env env) {
    if (s->dispatching) {
        /* Re-entered (not expected: nothing dispatches from inside a
         * listener): the outer call looks again for what it left. */
        return;
    }
    s->dispatching = 1;
    napi_value fn = NULL, undef;
    if (s->dispatcher) napi_get_reference_value(env, s->dispatcher, &fn);
    napi_get_undefined(env, &undef);

    pthread_mutex_lock(&s->mu);
    wsn_batch work = s->filling;
    s->filling = s->spare;
    memset(&s->spare, 0, sizeof s->spare);
    s->active = 1;
    pthread_mutex_unlock(&s->mu);

    for (int round = 1;; round++) {
        if (work.n > 0 && fn) {
            for (size_t i = 0; i < work.n; i++) {
                napi_handle_scope scope;
                if (napi_open_handle_scope(env, &scope) != napi_ok) break;
                dispatch_one(env, fn, undef, &work.evs[i], work.bytes + work.evs[i].off);
                napi_close_handle_scope(env, scope);
            }
        }
        if (work.n > 0) {
            s->batches++;
            s->events += work.n;
        }
        batch_reset(&work);
        pthread_mutex_lock(&s->mu);
        if (s->filling.n == 0 || round == WSN_ROUNDS) {
            int wake = s->filling.n > 0;
            s->active = 0;
            pthread_mutex_unlock(&s->mu);
            if (wake) signal_js(s);
            break;
        }
        wsn_batch next = s->filling;
        s->filling = work;
        work = next;
        pthread_mutex_unlock(&s->mu);
    }
    s->spare = work;
    s->dispatching = 0;
}

/* The threadsafe function's finalizer: forgets it (unless a newer one took
 * its place) and drops its reference on the server. */
typedef struct wsn_token {
    wsn_server *s;
    napi_threadsafe_function tsfn;
} wsn_token;

static void tsfn_finalized(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    wsn_token *tok = data;
    wsn_server *s = tok->s;
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&s->sig_mu);
    if (s->tsfn == tok->tsfn) {
        s->tsfn = NULL;
        s->accepting = 0;
    }
    pthread_mutex_unlock(&s->sig_mu);
    pthread_mutex_unlock(&s->mu);
    free(tok);
    wsn_unref(s);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
    (void)js_cb;
    (void)data;
    if (!env) return; /* the environment is being torn down */
    wsn_dispatch_now(context, env);
}

napi_status wsn_open_queue(wsn_server *s, napi_env env) {
    if (s->tsfn) return napi_ok;
    napi_value fn = NULL, name;
    napi_status st;
    if (!s->dispatcher || napi_get_reference_value(env, s->dispatcher, &fn) != napi_ok || !fn)
        return napi_generic_failure;
    if ((st = napi_create_string_utf8(env, "wsgate", NAPI_AUTO_LENGTH, &name)) != napi_ok) return st;
    wsn_token *tok = calloc(1, sizeof *tok);
    if (!tok) return napi_generic_failure;
    tok->s = s;
    napi_threadsafe_function t;
    /* The function keeps the dispatcher (and through it the Server) alive,
     * and the event loop running, until wsn_close_queue releases it. */
    st = napi_create_threadsafe_function(env, fn, NULL, name, 0, 1, tok, tsfn_finalized, s, call_js,
                                         &t);
    if (st != napi_ok) {
        free(tok);
        return st;
    }
    tok->tsfn = t;
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&s->sig_mu);
    s->tsfn = t;
    s->accepting = 1;
    s->refs++;
    pthread_mutex_unlock(&s->sig_mu);
    pthread_mutex_unlock(&s->mu);
    return napi_ok;
}

void wsn_close_queue(wsn_server *s) {
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&s->sig_mu);
    napi_threadsafe_function t = s->tsfn;
    s->tsfn = NULL;
    s->accepting = 0;
    pthread_mutex_unlock(&s->sig_mu);
    pthread_mutex_unlock(&s->mu);
    if (t) napi_release_threadsafe_function(t, napi_tsfn_release);
}
