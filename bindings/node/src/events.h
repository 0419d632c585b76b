/* The road from wsgate's service thread to JavaScript.
 *
 * wsgate calls its callbacks on its own service thread, where JavaScript
 * cannot run. The trampolines here copy each event into a queue under a
 * mutex and signal a napi_threadsafe_function only when the queue goes from
 * empty to non-empty; the JavaScript thread then takes the whole queue in one
 * swap and dispatches every event in it, so one event-loop turn handles as
 * many messages as arrived meanwhile, for one wake-up. */
#ifndef WSGATE_NODE_EVENTS_H
#define WSGATE_NODE_EVENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define NAPI_VERSION 8
#include <node_api.h>
#include <wsgate/wsgate.h>

/* Event kinds, as the JavaScript dispatcher (index.js) knows them. */
enum wsn_kind { WSN_OPEN = 1, WSN_MESSAGE = 2, WSN_CLOSE = 3, WSN_DRAIN = 4, WSN_LOG = 5, WSN_RESULT = 6 };

/* What an asynchronous call's result carries to JavaScript. */
enum wsn_op { WSN_OP_NONE = 0, WSN_OP_PRESENCE = 1, WSN_OP_VALUE = 2, WSN_OP_POSITION = 3 };

/* One event. Its bytes (a payload, a close reason, or a log event's name and
 * JSON) live in the batch's byte arena at [off, off + len). */
typedef struct wsn_event {
    uint64_t conn;  /* result: the call's id (index.js numbers them) */
    uint64_t count; /* drain: bytes still queued; result: presence entries */
    size_t off, len;
    size_t split;   /* log: length of the event name; the JSON follows it;
                     * result: length of the message; the payload follows it */
    int32_t a, b, c; /* message: type; close: code, cause, advice; log: level;
                      * result: status, wsn_op, 1 when a value (or a
                      * position) is there */
    uint8_t kind;
} wsn_event;

/* A growable list of events and their bytes. Two of them take turns: the
 * service thread fills one while the JavaScript thread empties the other. */
typedef struct wsn_batch {
    wsn_event *evs;
    size_t n, cap;
    char *bytes;
    size_t used, bcap;
} wsn_batch;

/* The native side of one JavaScript Server. */
typedef struct wsn_server {
    wsg_server *srv;          /* NULL once freed (finalizer, environment teardown, exit) */
    napi_env env;
    napi_ref dispatcher;      /* the JS function every event goes to (weak while closed) */

    /* mu guards filling, accepting, active, lost and refs. Producers are
     * the service thread and the threads calling wsgate's lifecycle
     * functions (log events); the consumer is the JavaScript thread. */
    pthread_mutex_t mu;
    wsn_batch filling;
    int accepting;            /* events are queued (a tsfn exists) */
    int active;               /* the JavaScript thread is dispatching and will look again */
    uint64_t lost;            /* events dropped for want of memory */
    int refs;                 /* the JS wrapper, plus one while a tsfn lives */

    /* sig_mu guards tsfn: producers signal under it, after leaving mu, so
     * the JavaScript thread never waits for mu while a producer is inside
     * napi_call_threadsafe_function (which writes to an eventfd: the woken
     * thread may run at once on the same CPU). */
    pthread_mutex_t sig_mu;
    napi_threadsafe_function tsfn; /* NULL while not listening */

    wsn_batch spare;          /* JavaScript thread only */
    int dispatching;          /* JavaScript thread only: no re-entry */
    uint64_t batches, events; /* JavaScript thread only: what was dispatched */

    /* 1 once the JavaScript side is gone or going: callbacks return at once. */
    atomic_int dead;
    /* 1 while a 'log' listener exists; otherwise log lines go to stderr, as
     * wsgate's default sink would write them. */
    atomic_int want_log;

    /* Guarded by addon.c's g_mu: every live server, and whether a stop or
     * drain runs on the thread pool. */
    struct wsn_server *prev, *next;
    int busy;
} wsn_server;

/* One asynchronous call (presence, session data, subscribe_from) on its way: its result
 * goes to JavaScript as a WSN_RESULT event. Holds a reference on the server
 * until the result came. */
typedef struct wsn_call {
    wsn_server *s;
    uint64_t id;
    int op; /* enum wsn_op */
} wsn_call;

/* A call for s (NULL for want of memory); pass wsn_result_callback and it
 * to the C call, and wsn_call_free it if that call fails. */
wsn_call *wsn_call_new(wsn_server *s, uint64_t id, int op);
void wsn_call_free(wsn_call *call);

/* The wsg_result_fn of every call: queues the result and frees the call.
 * Service thread. */
void wsn_result_callback(wsg_server *srv, const wsg_result *r, void *user);

/* Registers the trampolines with s->srv (before it listens). */
wsg_status wsn_register_callbacks(wsn_server *s);

/* Creates the threadsafe function that wakes the JavaScript thread, calling
 * `dispatcher`. JavaScript thread. */
napi_status wsn_open_queue(wsn_server *s, napi_env env);

/* Dispatches what is queued now, on the JavaScript thread (after a stop: so
 * every event has been emitted when the stop's promise resolves). */
void wsn_dispatch_now(wsn_server *s, napi_env env);

/* Releases the threadsafe function, so the process may exit. Events queued
 * afterwards are dropped. JavaScript thread. */
void wsn_close_queue(wsn_server *s);

/* Drops a reference; frees s with the last one. */
void wsn_unref(wsn_server *s);

/* Frees a batch's memory. */
void wsn_batch_free(wsn_batch *b);

#endif
