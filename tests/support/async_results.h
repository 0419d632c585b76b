/* For suites of asynchronous calls (session data, presence): a callback that
 * records each answer (how many, the last status, message and value), read
 * from the test's thread under a lock, and bounded waits on it. */
#ifndef WSGATE_ASYNC_RESULTS_H
#define WSGATE_ASYNC_RESULTS_H

#include <pthread.h>
#include <string.h>

#include <wsgate/wsgate.h>

#include "testutil.h"

typedef struct answers {
    pthread_mutex_t mu;
    int calls;               /* callbacks run */
    wsg_status status;       /* of the last one */
    char message[512];
    int has_value;
    char value[1024];
    size_t len;
    wsg_server *server;      /* the server the callback was given */
} answers;

static inline void answers_init(answers *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

static inline void answers_destroy(answers *a) { pthread_mutex_destroy(&a->mu); }

static inline void answers_cb(wsg_server *server, const wsg_result *r, void *user) {
    answers *a = (answers *)user;
    const void *data = NULL;
    size_t len = 0;
    int has = wsg_result_value(r, &data, &len) == WSG_OK;
    pthread_mutex_lock(&a->mu);
    a->calls++;
    a->server = server;
    a->status = wsg_result_status(r);
    strncpy(a->message, wsg_result_message(r), sizeof a->message - 1);
    a->has_value = has;
    a->len = has ? len : 0;
    if (has && len < sizeof a->value) {
        memcpy(a->value, data, len);
        a->value[len] = 0;
    }
    pthread_mutex_unlock(&a->mu);
}

static inline int answers_calls(answers *a) {
    pthread_mutex_lock(&a->mu);
    int n = a->calls;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Waits up to timeout_ms for the n-th answer; returns the last status then
 * (-1 when it did not come). */
static inline int answers_wait(answers *a, int n, int timeout_ms) {
    if (!WAIT_UNTIL(answers_calls(a) >= n, timeout_ms)) return -1;
    pthread_mutex_lock(&a->mu);
    int st = (int)a->status;
    pthread_mutex_unlock(&a->mu);
    return st;
}

/* A counter per call, for "each answered exactly once" checks: user is one
 * element of an array of these. */
typedef struct once {
    int calls;  /* atomically incremented */
    int status; /* of the last answer */
} once;

static inline void once_cb(wsg_server *server, const wsg_result *r, void *user) {
    (void)server;
    once *o = (once *)user;
    __atomic_store_n(&o->status, (int)wsg_result_status(r), __ATOMIC_RELAXED);
    __atomic_add_fetch(&o->calls, 1, __ATOMIC_RELEASE);
}

static inline int once_calls(once *o) { return __atomic_load_n(&o->calls, __ATOMIC_ACQUIRE); }

#endif
