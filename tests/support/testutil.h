/* Shared helpers for the server tests: a recording server on 127.0.0.1:0
 * and bounded waiting. */
#ifndef WSGATE_TESTUTIL_H
#define WSGATE_TESTUTIL_H

#include <pthread.h>
#include <stdint.h>

#include <wsgate/wsgate.h>

#define TSRV_MAX_RECORDS 4096

typedef struct tsrv_close {
    wsg_conn_id id;
    int code;
    wsg_close_cause cause;
    char reason[128];
} tsrv_close;

typedef struct tsrv {
    wsg_server *srv;
    int port;
    int echo; /* on_message echoes back */
    pthread_mutex_t mu;
    /* guarded by mu */
    int opens, closes, messages;
    int double_close; /* on_close seen twice for one id (must stay 0) */
    wsg_conn_id last_open;
    tsrv_close records[TSRV_MAX_RECORDS];
    int nrecords;
    char *log;       /* every log event kept, one "event json" line each (up to 1 MiB) */
    size_t log_len;
} tsrv;

/* Starts a server on 127.0.0.1 port 0 with log.level=error and the given
 * extra "key=value" settings (NULL-terminated list, may be NULL). NULL on failure. */
tsrv *tsrv_start(const char *const *settings, int echo);
/* The same with an authenticator (auth.mode=callback or jwt+callback in settings). */
tsrv *tsrv_start_auth(const char *const *settings, int echo, wsg_auth_fn auth);
/* When set, called with each new server before it starts (registering a
 * callback such as wsg_server_on_history). */
extern void (*tsrv_before_start)(wsg_server *srv);
/* Stops and frees. Returns nonzero if on_close fired twice for an id. */
int tsrv_free(tsrv *t);
int tsrv_opens(tsrv *t);
int tsrv_closes(tsrv *t);
int tsrv_messages(tsrv *t);
/* A metric's value (its first sample line starting with `name`, e.g.
 * `wsgate_x_total{reason="y"}`), -1 if absent. */
long long tsrv_metric(tsrv *t, const char *name);
wsg_conn_id tsrv_last_open(tsrv *t);
/* Copies the close record of `id` into *out; 1 if found. */
int tsrv_find_close(tsrv *t, wsg_conn_id id, tsrv_close *out);
/* Waits for the n-th close record (0-based) up to timeout_ms; 1 if present. */
int tsrv_wait_close(tsrv *t, int index, int timeout_ms, tsrv_close *out);
/* Log events named `event` kept so far (pass log.level=debug or info in the
 * settings to see more than errors, which also go to stderr). */
int tsrv_log_count(tsrv *t, const char *event);
/* Copies the JSON of the n-th (0-based) such event into out; 1 if there is one. */
int tsrv_log_get(tsrv *t, const char *event, int n, char *out, size_t cap);

/* Polls `cond` every 2 ms until it is true or timeout_ms passes. */
#define WAIT_UNTIL(cond, timeout_ms)                                  \
    ({                                                                \
        int64_t wu_deadline_ = tu_now_ms() + (timeout_ms);            \
        int wu_ok_;                                                   \
        while (!(wu_ok_ = !!(cond)) && tu_now_ms() < wu_deadline_)    \
            tu_sleep_ms(2);                                           \
        wu_ok_;                                                       \
    })

/* ThreadSanitizer makes the server and the test's own threads several times
 * slower. A test multiplies by TU_SLOW_FACTOR only a deadline it gives the
 * server so that its own work (filling a queue...) finishes first, never a
 * bound an assertion puts on what the server does. */
#if defined(__SANITIZE_THREAD__)
#define TU_SLOW_FACTOR 4
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_SLOW_FACTOR 4
#endif
#endif
#ifndef TU_SLOW_FACTOR
#define TU_SLOW_FACTOR 1
#endif

int64_t tu_now_ms(void);
void tu_sleep_ms(int ms);
/* Number of open file descriptors of this process. */
int tu_open_fds(void);
/* Connected clients count of the server. */
size_t tu_conn_count(wsg_server *srv);

#endif
