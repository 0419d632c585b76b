/* wsgate.node: the Node-API glue between JavaScript and wsgate's C ABI.
 *
 * Only include/wsgate/wsgate.h is used; everything Node-like (EventEmitter,
 * promises, option names) lives in index.js. This file moves values across:
 *  - payloads: a string is sent as text (UTF-8), a Buffer, typed array,
 *    DataView or ArrayBuffer as binary; wsgate copies them before returning;
 *  - connection ids are bigints (64-bit, never reused while the server lives);
 *  - a failed call throws an Error whose .code is the status name
 *    ("WSG_EINVAL"), .status its number and .message wsg_last_error();
 *  - blocking calls (stop, drain) run on libuv's thread pool;
 *  - events come through events.c.
 * Lifetime: a server is freed (wsg_server_free) by whichever comes first of
 * its wrapper's finalizer, its environment's teardown (a Worker ending), or
 * process exit (an atexit handler: process.exit() runs no finalizers), so no
 * service thread outlives the JavaScript that receives its events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "history.h"

/* ------------------------------------------------------------------ errors */

/* Throws for a failed call; reads wsg_last_error() at once. */
static napi_value throw_status(napi_env env, wsg_status st, const char *msg) {
    napi_value code, text, err, num;
    napi_create_string_utf8(env, wsg_status_str(st), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    if (napi_create_error(env, code, text, &err) == napi_ok) {
        napi_create_int32(env, (int32_t)st, &num);
        napi_set_named_property(env, err, "status", num);
        napi_throw(env, err);
    }
    return NULL;
}

static napi_value check(napi_env env, wsg_status st) {
    return st == WSG_OK ? NULL : throw_status(env, st, wsg_last_error());
}

/* A wrong argument type: TypeError with the status WSG_EINVAL. */
static napi_value throw_type(napi_env env, const char *msg) {
    napi_value code, text, err, num;
    napi_create_string_utf8(env, wsg_status_str(WSG_EINVAL), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    if (napi_create_type_error(env, code, text, &err) == napi_ok) {
        napi_create_int32(env, WSG_EINVAL, &num);
        napi_set_named_property(env, err, "status", num);
        napi_throw(env, err);
    }
    return NULL;
}

/* ------------------------------------------------------------------ arguments */

/* A JS string as a NUL-terminated UTF-8 C string: in `stack` when it fits,
 * else on the heap (*heap, freed by the caller). NULL (and a pending
 * exception) for a non-string or a string holding NUL. */
static const char *get_cstr(napi_env env, napi_value v, const char *what, char *stack, size_t cap,
                            char **heap) {
    size_t len = 0;
    *heap = NULL;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be a string", what);
        throw_type(env, msg);
        return NULL;
    }
    char *buf = stack;
    if (len + 1 > cap) {
        buf = *heap = malloc(len + 1);
        if (!buf) {
            throw_status(env, WSG_ENOMEM, "out of memory copying a string argument");
            return NULL;
        }
    }
    napi_get_value_string_utf8(env, v, buf, len + 1, &len);
    if (strlen(buf) != len) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s contains a NUL character", what);
        free(*heap);
        *heap = NULL;
        throw_status(env, WSG_EINVAL, msg);
        return NULL;
    }
    return buf;
}

/* A connection id: a bigint, or a number that is a safe non-negative integer. */
static int get_conn(napi_env env, napi_value v, wsg_conn_id *out) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_bigint) {
        bool lossless = false;
        uint64_t id = 0;
        napi_get_value_bigint_uint64(env, v, &id, &lossless);
        if (lossless) {
            *out = id;
            return 0;
        }
    } else if (t == napi_number) {
        double d = 0;
        napi_get_value_double(env, v, &d);
        if (d >= 0 && d <= 9007199254740991.0 && d == (double)(uint64_t)d) {
            *out = (uint64_t)d;
            return 0;
        }
    }
    throw_type(env, "a connection id must be a bigint (as the 'open' event gives it)");
    return -1;
}

/* A message: string -> text, Buffer/typed array/DataView/ArrayBuffer -> binary. */
typedef struct payload {
    const void *data;
    size_t len;
    wsg_msg_type type;
    char *heap;
    char stack[1024];
} payload;

static int get_payload(napi_env env, napi_value v, payload *p) {
    napi_valuetype t;
    bool is = false;
    p->heap = NULL;
    napi_typeof(env, v, &t);
    if (t == napi_string) {
        size_t len = 0;
        napi_get_value_string_utf8(env, v, NULL, 0, &len);
        char *buf = p->stack;
        if (len + 1 > sizeof p->stack) {
            buf = p->heap = malloc(len + 1);
            if (!buf) {
                throw_status(env, WSG_ENOMEM, "out of memory encoding a text message");
                return -1;
            }
        }
        napi_get_value_string_utf8(env, v, buf, len + 1, &len);
        p->data = buf;
        p->len = len;
        p->type = WSG_MSG_TEXT;
        return 0;
    }
    p->type = WSG_MSG_BINARY;
    void *data = NULL;
    if (napi_is_buffer(env, v, &is) == napi_ok && is) {
        napi_get_buffer_info(env, v, &data, &p->len);
    } else if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
        napi_typedarray_type tt;
        size_t n = 0, off = 0;
        napi_value ab;
        napi_get_typedarray_info(env, v, &tt, &n, &data, &ab, &off);
        size_t unit = 1;
        switch (tt) {
        case napi_int16_array: case napi_uint16_array: unit = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: unit = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: unit = 8; break;
        default: break;
        }
        p->len = n * unit;
    } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
        napi_value ab;
        size_t off = 0;
        napi_get_dataview_info(env, v, &p->len, &data, &ab, &off);
    } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
        napi_get_arraybuffer_info(env, v, &data, &p->len);
    } else {
        throw_type(env, "a message must be a string (text) or a Buffer, typed array, DataView or "
                        "ArrayBuffer (binary)");
        return -1;
    }
    static const char empty[1] = {0};
    p->data = data ? data : empty;
    return 0;
}

static int get_int(napi_env env, napi_value v, const char *what, int64_t *out) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    double d = 0;
    /* Range first: casting NaN or a huge double to an integer is undefined. */
    if (t == napi_number && napi_get_value_double(env, v, &d) == napi_ok &&
        d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == (double)(int64_t)d) {
        *out = (int64_t)d;
        return 0;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer", what);
    throw_type(env, msg);
    return -1;
}

static int is_nullish(napi_env env, napi_value v) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    return t == napi_undefined || t == napi_null;
}

/* ------------------------------------------------------------------ the live servers */

/* g_mu guards the list of servers whose wsg_server is not freed yet, their
 * srv fields' change to NULL, and busy (a stop or drain on the thread pool). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;
static wsn_server *g_live;
static int g_atexit_set;

typedef struct server_ext {
    wsn_server *s;
} server_ext;

/* Frees s's wsg_server once, from whichever of finalizer, environment
 * teardown and exit gets there first; waits for a stop or drain running on
 * the thread pool. JavaScript thread (or exit). */
static void shutdown_server(wsn_server *s) {
    pthread_mutex_lock(&g_mu);
    while (s->busy) pthread_cond_wait(&g_idle, &g_mu);
    wsg_server *srv = s->srv;
    s->srv = NULL;
    if (srv) {
        if (s->prev) s->prev->next = s->next;
        else g_live = s->next;
        if (s->next) s->next->prev = s->prev;
        s->prev = s->next = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    atomic_store(&s->dead, 1);
    if (srv) wsg_server_free(srv);
}

/* process.exit() and a normal exit both end in exit(): stop every server
 * still running before libwsgate's own globals go, with no JavaScript left
 * to receive its events. */
static void at_exit(void) {
    for (;;) {
        pthread_mutex_lock(&g_mu);
        wsn_server *s = g_live;
        pthread_mutex_unlock(&g_mu);
        if (!s) return;
        shutdown_server(s);
    }
}

static void env_teardown(void *arg) {
    server_ext *x = arg;
    shutdown_server(x->s);
    wsn_close_queue(x->s);
}

static void finalize_server(napi_env env, void *data, void *hint) {
    (void)hint;
    server_ext *x = data;
    wsn_server *s = x->s;
    napi_remove_env_cleanup_hook(env, env_teardown, x);
    shutdown_server(s);
    wsn_close_queue(s);
    if (s->dispatcher) napi_delete_reference(env, s->dispatcher);
    s->dispatcher = NULL;
    free(x);
    wsn_unref(s);
}

static server_ext *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
    napi_value self;
    void *data = NULL;
    if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
    if (napi_unwrap(env, self, &data) != napi_ok || !data) {
        throw_type(env, "not a wsgate native server");
        return NULL;
    }
    server_ext *x = data;
    if (!x->s->srv) {
        throw_status(env, WSG_ESTATE, "this server was shut down (its environment is exiting)");
        return NULL;
    }
    return x;
}

/* ------------------------------------------------------------------ config */

static const char *option_type(const char *key) {
    size_t index = 0;
    const char *t = "";
    if (wsg_option_find(key, &index) != WSG_OK) return "";
    if (wsg_option_describe(index, WSG_OPTION_TYPE, &t) != WSG_OK) return "";
    return t;
}

/* Sets one option the way the Python binding does: booleans to set_bool,
 * integers to set_int, strings to string/enum options as they are and to
 * others through the core's "key=value" parser; the core writes every
 * message. Returns non-zero with an exception pending. */
static int set_option(napi_env env, wsg_config *cfg, napi_value k, napi_value v) {
    char kbuf[256], vbuf[512], *kheap = NULL, *vheap = NULL;
    const char *key = get_cstr(env, k, "an option name", kbuf, sizeof kbuf, &kheap);
    if (!key) return -1;
    const char *type = option_type(key);
    napi_valuetype t;
    napi_typeof(env, v, &t);
    wsg_status st = WSG_OK;
    int rc = 0;
    if (t == napi_boolean) {
        bool b = false;
        napi_get_value_bool(env, v, &b);
        st = wsg_config_set_bool(cfg, key, b);
    } else if (t == napi_number) {
        double d = 0;
        napi_get_value_double(env, v, &d);
        char text[64];
        int integral = d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == (double)(int64_t)d;
        if (integral && strcmp(type, "bool") != 0) {
            st = wsg_config_set_int(cfg, key, (int64_t)d);
        } else {
            /* The parser gives the core's own message for a fraction or a bool option. */
            size_t klen = strlen(key);
            char *assign = malloc(klen + sizeof text + 2);
            if (!assign) {
                free(kheap);
                throw_status(env, WSG_ENOMEM, "out of memory");
                return -1;
            }
            snprintf(text, sizeof text, "%.17g", d);
            snprintf(assign, klen + sizeof text + 2, "%s=%s", key, text);
            st = wsg_config_set_from_string(cfg, assign);
            free(assign);
        }
    } else if (t == napi_string) {
        char what[300];
        snprintf(what, sizeof what, "option '%s'", key);
        const char *val = get_cstr(env, v, what, vbuf, sizeof vbuf, &vheap);
        if (!val) {
            rc = -1;
        } else if (!strcmp(type, "string") || !strcmp(type, "enum")) {
            st = wsg_config_set_string(cfg, key, val);
        } else {
            size_t n = strlen(key) + strlen(val) + 2;
            char *assign = malloc(n);
            if (!assign) {
                rc = -1;
                throw_status(env, WSG_ENOMEM, "out of memory");
            } else {
                snprintf(assign, n, "%s=%s", key, val);
                st = wsg_config_set_from_string(cfg, assign);
                free(assign);
            }
        }
    } else {
        char msg[320];
        snprintf(msg, sizeof msg, "option '%s': the value must be a number, boolean or string", key);
        throw_type(env, msg);
        rc = -1;
    }
    if (rc == 0 && st != WSG_OK) {
        check(env, st);
        rc = -1;
    }
    free(kheap);
    free(vheap);
    return rc;
}

/* new NativeServer(options: [key, value][], dispatcher: function[, historyPosition: string]) */
static napi_value server_new(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3], self;
    napi_get_cb_info(env, info, &argc, argv, &self, NULL);
    bool is_array = false;
    napi_valuetype ft = napi_undefined;
    if (argc >= 2) napi_typeof(env, argv[1], &ft);
    if (argc < 2 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
        ft != napi_function)
        return throw_type(env, "NativeServer(options: [key, value][], dispatcher: function[, historyPosition: string])");

    /* The history hook's field name, checked before anything is made. */
    char field[WSN_FIELD_MAX + 1] = "";
    if (argc >= 3 && !is_nullish(env, argv[2])) {
        char fbuf[256], *fheap = NULL;
        const char *f = get_cstr(env, argv[2], "historyPosition", fbuf, sizeof fbuf, &fheap);
        if (!f) return NULL;
        const char *problem = wsn_field_problem(f);
        if (!problem) memcpy(field, f, strlen(f) + 1);
        free(fheap);
        if (problem) return throw_status(env, WSG_EINVAL, problem);
    }

    wsg_config *cfg = NULL;
    if (check(env, wsg_config_new(&cfg))) return NULL;
    uint32_t n = 0;
    napi_get_array_length(env, argv[0], &n);
    for (uint32_t i = 0; i < n; i++) {
        napi_value pair, k, v;
        napi_get_element(env, argv[0], i, &pair);
        if (napi_get_element(env, pair, 0, &k) != napi_ok || napi_get_element(env, pair, 1, &v) != napi_ok) {
            wsg_config_free(cfg);
            return throw_type(env, "options must be [key, value] pairs");
        }
        if (set_option(env, cfg, k, v) != 0) {
            wsg_config_free(cfg);
            return NULL;
        }
    }

    wsn_server *s = calloc(1, sizeof *s);
    server_ext *x = calloc(1, sizeof *x);
    if (!s || !x) {
        free(s);
        free(x);
        wsg_config_free(cfg);
        return throw_status(env, WSG_ENOMEM, "out of memory creating a server");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->sig_mu, NULL);
    s->refs = 1;
    s->env = env;
    x->s = s;
    wsg_status st = wsg_server_new(&s->srv, cfg);
    wsg_config_free(cfg);
    if (st == WSG_OK) st = wsn_register_callbacks(s);
    const char *why = NULL;
    if (st == WSG_OK && field[0]) st = wsn_embed_positions(s->srv, field, &why);
    if (st != WSG_OK) {
        throw_status(env, st, why ? why : wsg_last_error());
        wsg_server_free(s->srv);
        s->srv = NULL;
        free(x);
        wsn_unref(s);
        return NULL;
    }
    /* Weak: the threadsafe function holds the dispatcher while listening. */
    napi_create_reference(env, argv[1], 0, &s->dispatcher);
    if (napi_wrap(env, self, x, finalize_server, NULL, NULL) != napi_ok) {
        napi_delete_reference(env, s->dispatcher);
        wsg_server_free(s->srv);
        free(x);
        wsn_unref(s);
        return throw_status(env, WSG_EINTERNAL, "napi_wrap failed");
    }
    pthread_mutex_lock(&g_mu);
    s->next = g_live;
    if (g_live) g_live->prev = s;
    g_live = s;
    if (!g_atexit_set) g_atexit_set = atexit(at_exit) == 0;
    pthread_mutex_unlock(&g_mu);
    napi_add_env_cleanup_hook(env, env_teardown, x);
    return self;
}

/* ------------------------------------------------------------------ lifecycle */

/* start(): listen and serve on wsgate's service thread. */
static napi_value server_start(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    server_ext *x = unwrap(env, info, &argc, NULL);
    if (!x) return NULL;
    pthread_mutex_lock(&g_mu);
    int busy = x->s->busy;
    pthread_mutex_unlock(&g_mu);
    if (busy) return throw_status(env, WSG_ESTATE, "the server is stopping: wait for close() or drain() first");
    /* A server already running keeps its queue: start fails with WSG_ESTATE. */
    pthread_mutex_lock(&x->s->mu);
    int opened = !x->s->accepting;
    pthread_mutex_unlock(&x->s->mu);
    if (wsn_open_queue(x->s, env) != napi_ok)
        return throw_status(env, WSG_EINTERNAL, "cannot create the thread-safe function for events");
    wsg_status st = wsg_server_start(x->s->srv);
    if (st != WSG_OK) {
        napi_value r = throw_status(env, st, wsg_last_error());
        if (opened) {
            wsn_dispatch_now(x->s, env); /* the failure's log events */
            wsn_close_queue(x->s);
        }
        return r;
    }
    return NULL;
}

typedef struct stop_work {
    server_ext *x;
    napi_ref self;
    napi_deferred deferred;
    napi_async_work work;
    int64_t drain_ms; /* < 0: stop */
    wsg_status st;
    char msg[512];
} stop_work;

static void stop_execute(napi_env env, void *data) {
    (void)env;
    stop_work *w = data;
    wsg_server *srv = w->x->s->srv;
    w->st = w->drain_ms < 0 ? wsg_server_stop(srv) : wsg_server_drain(srv, w->drain_ms);
    if (w->st != WSG_OK) snprintf(w->msg, sizeof w->msg, "%s", wsg_last_error());
    pthread_mutex_lock(&g_mu);
    w->x->s->busy = 0;
    pthread_cond_broadcast(&g_idle);
    pthread_mutex_unlock(&g_mu);
}

static void stop_complete(napi_env env, napi_status status, void *data) {
    stop_work *w = data;
    /* Every event of the stop (the closes, the logs) is emitted before the
     * promise resolves; then the event loop is let go. */
    wsn_dispatch_now(w->x->s, env);
    wsn_close_queue(w->x->s);
    napi_value result;
    if (status != napi_ok) {
        napi_value code, text;
        napi_create_string_utf8(env, "WSG_EINTERNAL", NAPI_AUTO_LENGTH, &code);
        napi_create_string_utf8(env, "the stop did not run", NAPI_AUTO_LENGTH, &text);
        napi_create_error(env, code, text, &result);
        napi_reject_deferred(env, w->deferred, result);
    } else if (w->st != WSG_OK) {
        napi_value code, text, num;
        napi_create_string_utf8(env, wsg_status_str(w->st), NAPI_AUTO_LENGTH, &code);
        napi_create_string_utf8(env, w->msg, NAPI_AUTO_LENGTH, &text);
        napi_create_error(env, code, text, &result);
        napi_create_int32(env, (int32_t)w->st, &num);
        napi_set_named_property(env, result, "status", num);
        napi_reject_deferred(env, w->deferred, result);
    } else {
        napi_get_undefined(env, &result);
        napi_resolve_deferred(env, w->deferred, result);
    }
    napi_delete_async_work(env, w->work);
    napi_delete_reference(env, w->self);
    free(w);
}

/* stop() / drain(ms): promises; the blocking call runs on the thread pool. */
static napi_value stop_or_drain(napi_env env, napi_callback_info info, int drain) {
    size_t argc = 1;
    napi_value argv[1], self, promise, name;
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    napi_get_cb_info(env, info, &argc, argv, &self, NULL);
    int64_t ms = -1;
    if (drain) {
        if (argc < 1 || get_int(env, argv[0], "drain's duration in ms", &ms) != 0) return NULL;
        if (ms < 0 || ms > 3600000)
            return throw_status(env, WSG_EINVAL, "drain's duration must be 0..3600000 ms");
    }
    pthread_mutex_lock(&g_mu);
    int busy = x->s->busy;
    if (!busy) x->s->busy = 1;
    pthread_mutex_unlock(&g_mu);
    if (busy) return throw_status(env, WSG_ESTATE, "a close() or drain() is already under way");
    stop_work *w = calloc(1, sizeof *w);
    if (!w) {
        pthread_mutex_lock(&g_mu);
        x->s->busy = 0;
        pthread_mutex_unlock(&g_mu);
        return throw_status(env, WSG_ENOMEM, "out of memory");
    }
    w->x = x;
    w->drain_ms = ms;
    napi_create_reference(env, self, 1, &w->self); /* no finalizer while it runs */
    napi_create_promise(env, &w->deferred, &promise);
    napi_create_string_utf8(env, drain ? "wsgate.drain" : "wsgate.close", NAPI_AUTO_LENGTH, &name);
    if (napi_create_async_work(env, NULL, name, stop_execute, stop_complete, w, &w->work) != napi_ok ||
        napi_queue_async_work(env, w->work) != napi_ok) {
        pthread_mutex_lock(&g_mu);
        x->s->busy = 0;
        pthread_mutex_unlock(&g_mu);
        napi_delete_reference(env, w->self);
        free(w);
        return throw_status(env, WSG_EINTERNAL, "cannot queue the stop on the thread pool");
    }
    return promise;
}

static napi_value server_stop(napi_env env, napi_callback_info info) { return stop_or_drain(env, info, 0); }
static napi_value server_drain(napi_env env, napi_callback_info info) { return stop_or_drain(env, info, 1); }

/* ------------------------------------------------------------------ sending */

/* send(conn, data) */
static napi_value server_send(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    wsg_conn_id id;
    payload p;
    if (argc < 2) return throw_type(env, "send(conn, data)");
    if (get_conn(env, argv[0], &id) != 0 || get_payload(env, argv[1], &p) != 0) return NULL;
    wsg_status st = wsg_conn_send(x->s->srv, id, p.type, p.data, p.len);
    free(p.heap);
    return check(env, st);
}

/* broadcast(data[, except]) */
static napi_value server_broadcast(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    wsg_conn_id except = 0;
    payload p;
    if (argc < 1) return throw_type(env, "broadcast(data[, except])");
    if (argc >= 2 && !is_nullish(env, argv[1]) && get_conn(env, argv[1], &except) != 0) return NULL;
    if (get_payload(env, argv[0], &p) != 0) return NULL;
    wsg_status st = except ? wsg_server_broadcast_except(x->s->srv, except, p.type, p.data, p.len)
                           : wsg_server_broadcast(x->s->srv, p.type, p.data, p.len);
    free(p.heap);
    return check(env, st);
}

/* publish(topic, data) and userSend(user, data) */
static napi_value named_send(napi_env env, napi_callback_info info, int user) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 2) return throw_type(env, user ? "userSend(userId, data)" : "publish(topic, data)");
    char nbuf[512], *heap = NULL;
    const char *name = get_cstr(env, argv[0], user ? "a user id" : "a topic", nbuf, sizeof nbuf, &heap);
    if (!name) return NULL;
    payload p;
    if (get_payload(env, argv[1], &p) != 0) {
        free(heap);
        return NULL;
    }
    wsg_status st = user ? wsg_user_send(x->s->srv, name, p.type, p.data, p.len)
                         : wsg_server_publish(x->s->srv, name, p.type, p.data, p.len);
    free(p.heap);
    free(heap);
    return check(env, st);
}
static napi_value server_publish(napi_env env, napi_callback_info info) { return named_send(env, info, 0); }
static napi_value server_user_send(napi_env env, napi_callback_info info) { return named_send(env, info, 1); }

/* closeConn(conn, code, reason) and userClose(user, code, reason) */
static napi_value close_like(napi_env env, napi_callback_info info, int user) {
    size_t argc = 3;
    napi_value argv[3];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 1) return throw_type(env, user ? "userClose(userId, code, reason)" : "close(conn, code, reason)");
    int64_t code = 1000;
    if (argc >= 2 && !is_nullish(env, argv[1]) && get_int(env, argv[1], "a close code", &code) != 0) return NULL;
    if (code < 0 || code > 65535) return throw_status(env, WSG_EINVAL, "a close code must be 1000..4999");
    char rbuf[256], *rheap = NULL, ubuf[512], *uheap = NULL;
    const char *reason = "";
    if (argc >= 3 && !is_nullish(env, argv[2])) {
        reason = get_cstr(env, argv[2], "a close reason", rbuf, sizeof rbuf, &rheap);
        if (!reason) return NULL;
    }
    wsg_status st;
    if (user) {
        const char *uid = get_cstr(env, argv[0], "a user id", ubuf, sizeof ubuf, &uheap);
        if (!uid) {
            free(rheap);
            return NULL;
        }
        st = wsg_user_close(x->s->srv, uid, (int)code, reason);
    } else {
        wsg_conn_id id;
        if (get_conn(env, argv[0], &id) != 0) {
            free(rheap);
            return NULL;
        }
        st = wsg_conn_close(x->s->srv, id, (int)code, reason);
    }
    free(rheap);
    free(uheap);
    return check(env, st);
}
static napi_value server_close_conn(napi_env env, napi_callback_info info) { return close_like(env, info, 0); }
static napi_value server_user_close(napi_env env, napi_callback_info info) { return close_like(env, info, 1); }

/* subscribe(conn, topic) / unsubscribe(conn, topic) */
static napi_value topic_call(napi_env env, napi_callback_info info, int on) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 2) return throw_type(env, on ? "subscribe(conn, topic)" : "unsubscribe(conn, topic)");
    wsg_conn_id id;
    if (get_conn(env, argv[0], &id) != 0) return NULL;
    char tbuf[512], *heap = NULL;
    const char *topic = get_cstr(env, argv[1], "a topic", tbuf, sizeof tbuf, &heap);
    if (!topic) return NULL;
    wsg_status st = on ? wsg_conn_subscribe(x->s->srv, id, topic) : wsg_conn_unsubscribe(x->s->srv, id, topic);
    free(heap);
    return check(env, st);
}
static napi_value server_subscribe(napi_env env, napi_callback_info info) { return topic_call(env, info, 1); }
static napi_value server_unsubscribe(napi_env env, napi_callback_info info) { return topic_call(env, info, 0); }

/* ------------------------------------------------------------------ presence and session data */

/* Each call takes the id index.js gave it (a safe integer) first; its result
 * comes back as a WSN_RESULT event with that id. A call the library refuses
 * at once throws, and no event comes. */
static int get_call_id(napi_env env, napi_value v, uint64_t *out) {
    int64_t id = 0;
    if (get_int(env, v, "a call id", &id) != 0) return -1;
    if (id < 0) {
        throw_type(env, "a call id must not be negative");
        return -1;
    }
    *out = (uint64_t)id;
    return 0;
}

/* Ends a call made with `call`: on failure frees it and throws. */
static napi_value call_made(napi_env env, wsn_call *call, wsg_status st) {
    if (st != WSG_OK) {
        napi_value r = throw_status(env, st, wsg_last_error()); /* read before anything else */
        wsn_call_free(call);
        return r;
    }
    return NULL;
}

/* topicPresence(id, topic) and userPresence(id, userId) */
static napi_value presence_call(napi_env env, napi_callback_info info, int user) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 2) return throw_type(env, user ? "userPresence(id, userId)" : "topicPresence(id, topic)");
    uint64_t id;
    if (get_call_id(env, argv[0], &id) != 0) return NULL;
    char nbuf[512], *heap = NULL;
    const char *name = get_cstr(env, argv[1], user ? "a user id" : "a topic", nbuf, sizeof nbuf, &heap);
    if (!name) return NULL;
    wsn_call *call = wsn_call_new(x->s, id, WSN_OP_PRESENCE);
    if (!call) {
        free(heap);
        return throw_status(env, WSG_ENOMEM, "out of memory");
    }
    wsg_status st = user ? wsg_user_presence(x->s->srv, name, wsn_result_callback, call)
                         : wsg_topic_presence(x->s->srv, name, wsn_result_callback, call);
    free(heap);
    return call_made(env, call, st);
}
static napi_value server_topic_presence(napi_env env, napi_callback_info info) { return presence_call(env, info, 0); }
static napi_value server_user_presence(napi_env env, napi_callback_info info) { return presence_call(env, info, 1); }

/* sessionSet(id, key, value, ttlMs) */
static napi_value server_session_set(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 3) return throw_type(env, "sessionSet(id, key, value[, ttlMs])");
    uint64_t id;
    if (get_call_id(env, argv[0], &id) != 0) return NULL;
    int64_t ttl = 0;
    if (argc >= 4 && !is_nullish(env, argv[3]) && get_int(env, argv[3], "a TTL in ms", &ttl) != 0) return NULL;
    char kbuf[300], *kheap = NULL;
    const char *key = get_cstr(env, argv[1], "a session key", kbuf, sizeof kbuf, &kheap);
    if (!key) return NULL;
    payload p;
    if (get_payload(env, argv[2], &p) != 0) {
        free(kheap);
        return NULL;
    }
    wsn_call *call = wsn_call_new(x->s, id, WSN_OP_NONE);
    wsg_status st = call ? wsg_session_set(x->s->srv, key, p.data, p.len, ttl, wsn_result_callback, call)
                         : WSG_ENOMEM;
    free(p.heap);
    free(kheap);
    if (!call) return throw_status(env, WSG_ENOMEM, "out of memory");
    return call_made(env, call, st);
}

/* sessionGet(id, key) and sessionDelete(id, key) */
static napi_value session_key_call(napi_env env, napi_callback_info info, int get) {
    size_t argc = 2;
    napi_value argv[2];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 2) return throw_type(env, get ? "sessionGet(id, key)" : "sessionDelete(id, key)");
    uint64_t id;
    if (get_call_id(env, argv[0], &id) != 0) return NULL;
    char kbuf[300], *kheap = NULL;
    const char *key = get_cstr(env, argv[1], "a session key", kbuf, sizeof kbuf, &kheap);
    if (!key) return NULL;
    wsn_call *call = wsn_call_new(x->s, id, get ? WSN_OP_VALUE : WSN_OP_NONE);
    if (!call) {
        free(kheap);
        return throw_status(env, WSG_ENOMEM, "out of memory");
    }
    wsg_status st = get ? wsg_session_get(x->s->srv, key, wsn_result_callback, call)
                        : wsg_session_delete(x->s->srv, key, wsn_result_callback, call);
    free(kheap);
    return call_made(env, call, st);
}
static napi_value server_session_get(napi_env env, napi_callback_info info) { return session_key_call(env, info, 1); }
static napi_value server_session_delete(napi_env env, napi_callback_info info) { return session_key_call(env, info, 0); }

/* ------------------------------------------------------------------ history */

/* subscribeFrom(id, conn, topic, from): from is null/undefined (nothing from
 * the past), a position's text or { epoch, offset }. */
static napi_value server_subscribe_from(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    if (argc < 3) return throw_type(env, "subscribeFrom(id, conn, topic[, from])");
    uint64_t id;
    wsg_conn_id conn;
    if (get_call_id(env, argv[0], &id) != 0 || get_conn(env, argv[1], &conn) != 0) return NULL;
    wsg_position from = {0, 0};
    const int has_from = argc >= 4 && !is_nullish(env, argv[3]);
    if (has_from && wsn_position_from(env, argv[3], &from) != 0) return NULL;
    char tbuf[512], *heap = NULL;
    const char *topic = get_cstr(env, argv[2], "a topic", tbuf, sizeof tbuf, &heap);
    if (!topic) return NULL;
    wsn_call *call = wsn_call_new(x->s, id, WSN_OP_POSITION);
    if (!call) {
        free(heap);
        return throw_status(env, WSG_ENOMEM, "out of memory");
    }
    wsg_status st = wsg_conn_subscribe_from(x->s->srv, conn, topic, has_from ? &from : NULL, wsn_result_callback, call);
    free(heap);
    return call_made(env, call, st);
}

/* formatPosition({ epoch, offset }): "EPOCH-OFFSET". */
static napi_value lib_format_position(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], r;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    napi_valuetype t = napi_undefined;
    if (argc >= 1) napi_typeof(env, argv[0], &t);
    if (t != napi_object) return throw_type(env, "formatPosition({ epoch, offset })");
    wsg_position pos;
    if (wsn_position_from(env, argv[0], &pos) != 0) return NULL;
    char text[WSG_POSITION_TEXT_MAX];
    if (check(env, wsg_position_format(&pos, text, sizeof text))) return NULL;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &r);
    return r;
}

/* parsePosition(text): { epoch, offset, text }. */
static napi_value lib_parse_position(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    napi_valuetype t = napi_undefined;
    if (argc >= 1) napi_typeof(env, argv[0], &t);
    if (t != napi_string) return throw_type(env, "parsePosition(text: string)");
    wsg_position pos;
    if (wsn_position_from(env, argv[0], &pos) != 0) return NULL;
    return wsn_position_value(env, &pos);
}

/* ------------------------------------------------------------------ state */

static napi_value server_port(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    server_ext *x = unwrap(env, info, &argc, NULL);
    if (!x) return NULL;
    int port = 0;
    napi_value r;
    if (wsg_server_port(x->s->srv, &port) != WSG_OK) {
        napi_get_null(env, &r); /* not listening */
        return r;
    }
    napi_create_int32(env, port, &r);
    return r;
}

static napi_value server_ready(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    server_ext *x = unwrap(env, info, &argc, NULL);
    if (!x) return NULL;
    int ready = 0;
    if (check(env, wsg_server_ready(x->s->srv, &ready))) return NULL;
    napi_value r;
    napi_get_boolean(env, ready != 0, &r);
    return r;
}

static napi_value server_metrics(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    server_ext *x = unwrap(env, info, &argc, NULL);
    if (!x) return NULL;
    size_t len = 0;
    if (check(env, wsg_server_metrics(x->s->srv, NULL, 0, &len))) return NULL;
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t cap = len + 4096;
        char *buf = malloc(cap);
        if (!buf) return throw_status(env, WSG_ENOMEM, "out of memory reading the metrics");
        wsg_status st = wsg_server_metrics(x->s->srv, buf, cap, &len);
        if (st != WSG_OK) {
            free(buf);
            return check(env, st);
        }
        if (len < cap) {
            napi_value r;
            napi_create_string_utf8(env, buf, len, &r);
            free(buf);
            return r;
        }
        free(buf);
    }
    return throw_status(env, WSG_EINTERNAL, "the metrics text kept growing while being read");
}

static napi_value server_conn_ids(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    server_ext *x = unwrap(env, info, &argc, NULL);
    if (!x) return NULL;
    size_t count = 0, cap = 0;
    wsg_conn_id *ids = NULL;
    for (;;) {
        if (check(env, wsg_server_conn_ids(x->s->srv, ids, cap, &count))) {
            free(ids);
            return NULL;
        }
        if (count <= cap) break;
        free(ids);
        cap = count + 64;
        ids = malloc(cap * sizeof *ids);
        if (!ids) return throw_status(env, WSG_ENOMEM, "out of memory listing connections");
    }
    napi_value arr;
    napi_create_array_with_length(env, count, &arr);
    for (size_t i = 0; i < count; i++) {
        napi_value v;
        napi_create_bigint_uint64(env, ids[i], &v);
        napi_set_element(env, arr, (uint32_t)i, v);
    }
    free(ids);
    return arr;
}

/* info(conn): a snapshot of the connection as a plain object. */
static napi_value server_info(napi_env env, napi_callback_info info) {
    static const struct { wsg_info_key key; const char *name; int str; } fields[] = {
        {WSG_INFO_PEER_ADDR, "peerAddr", 1}, {WSG_INFO_PEER_PORT, "peerPort", 0},
        {WSG_INFO_PATH, "path", 1}, {WSG_INFO_QUERY, "query", 1},
        {WSG_INFO_ORIGIN, "origin", 1}, {WSG_INFO_SUBPROTOCOL, "subprotocol", 1},
        {WSG_INFO_CONNECTED_AT_MS, "connectedAtMs", 0}, {WSG_INFO_DURATION_MS, "durationMs", 0},
        {WSG_INFO_MESSAGES_IN, "messagesIn", 0}, {WSG_INFO_BYTES_IN, "bytesIn", 0},
        {WSG_INFO_MESSAGES_OUT, "messagesOut", 0}, {WSG_INFO_BYTES_OUT, "bytesOut", 0},
        {WSG_INFO_RTT_US, "rttUs", 0}, {WSG_INFO_TLS_SUBJECT, "tlsSubject", 1},
        {WSG_INFO_USER_ID, "userId", 1}, {WSG_INFO_CLAIMS, "claims", 1},
        {WSG_INFO_COMPRESSION, "compression", 0}, {WSG_INFO_QUEUED_BYTES, "queuedBytes", 0},
        {WSG_INFO_MESSAGES_DROPPED, "messagesDropped", 0},
    };
    size_t argc = 1;
    napi_value argv[1];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    wsg_conn_id id;
    if (argc < 1) return throw_type(env, "info(conn)");
    if (get_conn(env, argv[0], &id) != 0) return NULL;
    wsg_conn_info *ci = NULL;
    if (check(env, wsg_conn_info_get(x->s->srv, id, &ci))) return NULL;
    napi_value obj, v;
    napi_create_object(env, &obj);
    napi_create_bigint_uint64(env, id, &v);
    napi_set_named_property(env, obj, "id", v);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].str) {
            const char *sv = "";
            if (wsg_conn_info_string(ci, fields[i].key, &sv) != WSG_OK) continue;
            napi_create_string_utf8(env, sv, NAPI_AUTO_LENGTH, &v);
        } else {
            int64_t iv = 0;
            if (wsg_conn_info_int(ci, fields[i].key, &iv) != WSG_OK) continue;
            napi_create_double(env, (double)iv, &v);
        }
        napi_set_named_property(env, obj, fields[i].name, v);
    }
    int64_t policy = 0;
    if (wsg_conn_info_int(ci, WSG_INFO_QUEUE_POLICY, &policy) == WSG_OK) {
        napi_create_string_utf8(env, wsg_queue_policy_str((wsg_queue_policy)policy), NAPI_AUTO_LENGTH, &v);
        napi_set_named_property(env, obj, "queuePolicy", v);
    }
    size_t ntopics = 0;
    napi_value topics;
    wsg_conn_info_topic_count(ci, &ntopics);
    napi_create_array_with_length(env, ntopics, &topics);
    for (size_t i = 0; i < ntopics; i++) {
        const char *t = "";
        if (wsg_conn_info_topic(ci, i, &t) != WSG_OK) continue;
        napi_create_string_utf8(env, t, NAPI_AUTO_LENGTH, &v);
        napi_set_element(env, topics, (uint32_t)i, v);
    }
    napi_set_named_property(env, obj, "topics", topics);
    wsg_conn_info_free(ci);
    return obj;
}

/* setWantLog(bool): whether log events go to JavaScript (or to stderr). */
static napi_value server_set_want_log(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    server_ext *x = unwrap(env, info, &argc, argv);
    if (!x) return NULL;
    bool on = false;
    if (argc >= 1) napi_get_value_bool(env, argv[0], &on);
    atomic_store(&x->s->want_log, on ? 1 : 0);
    return NULL;
}

/* stats(): how events reached JavaScript ({ batches, events, lost }). */
static napi_value server_stats(napi_env env, napi_callback_info info) {
    size_t argc = 0;
    napi_value self, obj, v;
    void *data = NULL;
    napi_get_cb_info(env, info, &argc, NULL, &self, NULL);
    if (napi_unwrap(env, self, &data) != napi_ok || !data) return throw_type(env, "not a wsgate native server");
    wsn_server *s = ((server_ext *)data)->s;
    pthread_mutex_lock(&s->mu);
    uint64_t lost = s->lost;
    pthread_mutex_unlock(&s->mu);
    napi_create_object(env, &obj);
    napi_create_double(env, (double)s->batches, &v);
    napi_set_named_property(env, obj, "batches", v);
    napi_create_double(env, (double)s->events, &v);
    napi_set_named_property(env, obj, "events", v);
    napi_create_double(env, (double)lost, &v);
    napi_set_named_property(env, obj, "lost", v);
    return obj;
}

/* ------------------------------------------------------------------ module */

static napi_value lib_version(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value r;
    napi_create_string_utf8(env, wsg_version(), NAPI_AUTO_LENGTH, &r);
    return r;
}

/* The option table: [{ name, type, default, range, doc }]. */
static napi_value lib_options(napi_env env, napi_callback_info info) {
    (void)info;
    static const struct { wsg_option_field f; const char *name; } cols[] = {
        {WSG_OPTION_NAME, "name"}, {WSG_OPTION_TYPE, "type"}, {WSG_OPTION_DEFAULT, "default"},
        {WSG_OPTION_RANGE, "range"}, {WSG_OPTION_DOC, "doc"},
    };
    size_t n = wsg_option_count();
    napi_value arr;
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) {
        napi_value row, v;
        napi_create_object(env, &row);
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            const char *text = "";
            wsg_option_describe(i, cols[c].f, &text);
            napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
            napi_set_named_property(env, row, cols[c].name, v);
        }
        napi_set_element(env, arr, (uint32_t)i, row);
    }
    return arr;
}

/* { WSG_OK: 0, WSG_EINVAL: 1, ... } from WSG_STATUS_MAP. */
static napi_value status_table(napi_env env) {
    napi_value obj, v;
    napi_create_object(env, &obj);
#define WSN_STATUS_(name, value, doc)                        \
    napi_create_int32(env, value, &v);                      \
    napi_set_named_property(env, obj, "WSG_" #name, v);
    WSG_STATUS_MAP(WSN_STATUS_)
#undef WSN_STATUS_
    return obj;
}

static napi_value init(napi_env env, napi_value exports) {
    napi_property_descriptor methods[] = {
        {"start", NULL, server_start, NULL, NULL, NULL, napi_default_method, NULL},
        {"stop", NULL, server_stop, NULL, NULL, NULL, napi_default_method, NULL},
        {"drain", NULL, server_drain, NULL, NULL, NULL, napi_default_method, NULL},
        {"send", NULL, server_send, NULL, NULL, NULL, napi_default_method, NULL},
        {"broadcast", NULL, server_broadcast, NULL, NULL, NULL, napi_default_method, NULL},
        {"publish", NULL, server_publish, NULL, NULL, NULL, napi_default_method, NULL},
        {"userSend", NULL, server_user_send, NULL, NULL, NULL, napi_default_method, NULL},
        {"closeConn", NULL, server_close_conn, NULL, NULL, NULL, napi_default_method, NULL},
        {"userClose", NULL, server_user_close, NULL, NULL, NULL, napi_default_method, NULL},
        {"subscribe", NULL, server_subscribe, NULL, NULL, NULL, napi_default_method, NULL},
        {"unsubscribe", NULL, server_unsubscribe, NULL, NULL, NULL, napi_default_method, NULL},
        {"port", NULL, server_port, NULL, NULL, NULL, napi_default_method, NULL},
        {"ready", NULL, server_ready, NULL, NULL, NULL, napi_default_method, NULL},
        {"metrics", NULL, server_metrics, NULL, NULL, NULL, napi_default_method, NULL},
        {"connIds", NULL, server_conn_ids, NULL, NULL, NULL, napi_default_method, NULL},
        {"info", NULL, server_info, NULL, NULL, NULL, napi_default_method, NULL},
        {"setWantLog", NULL, server_set_want_log, NULL, NULL, NULL, napi_default_method, NULL},
        {"stats", NULL, server_stats, NULL, NULL, NULL, napi_default_method, NULL},
        {"topicPresence", NULL, server_topic_presence, NULL, NULL, NULL, napi_default_method, NULL},
        {"userPresence", NULL, server_user_presence, NULL, NULL, NULL, napi_default_method, NULL},
        {"sessionSet", NULL, server_session_set, NULL, NULL, NULL, napi_default_method, NULL},
        {"sessionGet", NULL, server_session_get, NULL, NULL, NULL, napi_default_method, NULL},
        {"sessionDelete", NULL, server_session_delete, NULL, NULL, NULL, napi_default_method, NULL},
        {"subscribeFrom", NULL, server_subscribe_from, NULL, NULL, NULL, napi_default_method, NULL},
    };
    napi_value cls, fn;
    if (napi_define_class(env, "NativeServer", NAPI_AUTO_LENGTH, server_new, NULL,
                          sizeof methods / sizeof methods[0], methods, &cls) != napi_ok)
        return NULL;
    napi_set_named_property(env, exports, "NativeServer", cls);
    napi_create_function(env, "version", NAPI_AUTO_LENGTH, lib_version, NULL, &fn);
    napi_set_named_property(env, exports, "version", fn);
    napi_create_function(env, "options", NAPI_AUTO_LENGTH, lib_options, NULL, &fn);
    napi_set_named_property(env, exports, "options", fn);
    napi_create_function(env, "formatPosition", NAPI_AUTO_LENGTH, lib_format_position, NULL, &fn);
    napi_set_named_property(env, exports, "formatPosition", fn);
    napi_create_function(env, "parsePosition", NAPI_AUTO_LENGTH, lib_parse_position, NULL, &fn);
    napi_set_named_property(env, exports, "parsePosition", fn);
    napi_set_named_property(env, exports, "statuses", status_table(env));
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
