#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tu_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tu_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream itself */
}

size_t tu_conn_count(wsg_server *srv) {
    size_t n = 0;
    wsg_server_conn_count(srv, &n);
    return n;
}

static void on_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)s;
    tsrv *t = user;
    pthread_mutex_lock(&t->mu);
    t->opens++;
    t->last_open = id;
    pthread_mutex_unlock(&t->mu);
}

static void on_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                       size_t len, void *user) {
    tsrv *t = user;
    pthread_mutex_lock(&t->mu);
    t->messages++;
    pthread_mutex_unlock(&t->mu);
    if (t->echo) wsg_conn_send(s, id, type, data, len);
}

static void on_close(wsg_server *s, wsg_conn_id id, int code, const char *reason,
                     size_t reason_len, wsg_close_cause cause, void *user) {
    (void)s;
    tsrv *t = user;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->nrecords; i++)
        if (t->records[i].id == id) t->double_close = 1;
    t->closes++;
    if (t->nrecords < TSRV_MAX_RECORDS) {
        tsrv_close *r = &t->records[t->nrecords++];
        r->id = id;
        r->code = code;
        r->cause = cause;
        size_t n = reason_len < sizeof r->reason - 1 ? reason_len : sizeof r->reason - 1;
        memcpy(r->reason, reason, n);
        r->reason[n] = 0;
    }
    pthread_mutex_unlock(&t->mu);
}

#define TSRV_LOG_CAP (1 << 20)

static void on_log(wsg_server *s, wsg_log_level level, const char *event, const char *json,
                   size_t len, void *user) {
    (void)s;
    tsrv *t = user;
    if (level >= WSG_LOG_ERROR) fprintf(stderr, "%.*s\n", (int)len, json);
    size_t need = strlen(event) + 1 + len + 1;
    pthread_mutex_lock(&t->mu);
    if (t->log && t->log_len + need < TSRV_LOG_CAP) {
        t->log_len += (size_t)sprintf(t->log + t->log_len, "%s %.*s\n", event, (int)len, json);
    }
    pthread_mutex_unlock(&t->mu);
}

/* The n-th line of event `event` in the kept log, or NULL (t->mu held). */
static const char *log_line(tsrv *t, const char *event, int n) {
    size_t elen = strlen(event);
    for (const char *p = t->log; p && *p;) {
        const char *end = strchr(p, '\n');
        if (strncmp(p, event, elen) == 0 && p[elen] == ' ' && n-- == 0) return p + elen + 1;
        p = end + 1;
    }
    return NULL;
}

int tsrv_log_count(tsrv *t, const char *event) {
    pthread_mutex_lock(&t->mu);
    int n = 0;
    while (log_line(t, event, n)) n++;
    pthread_mutex_unlock(&t->mu);
    return n;
}

int tsrv_log_get(tsrv *t, const char *event, int n, char *out, size_t cap) {
    pthread_mutex_lock(&t->mu);
    const char *line = log_line(t, event, n);
    if (line && cap) {
        size_t len = (size_t)(strchr(line, '\n') - line);
        if (len >= cap) len = cap - 1;
        memcpy(out, line, len);
        out[len] = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return line != NULL;
}

tsrv *tsrv_start(const char *const *settings, int echo) { return tsrv_start_auth(settings, echo, NULL); }

void (*tsrv_before_start)(wsg_server *srv) = NULL;

tsrv *tsrv_start_auth(const char *const *settings, int echo, wsg_auth_fn auth) {
    tsrv *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->echo = echo;
    t->log = calloc(1, TSRV_LOG_CAP);
    if (!t->log) goto fail;
    wsg_config *cfg;
    if (wsg_config_new(&cfg) != WSG_OK) goto fail;
    wsg_config_set_string(cfg, "listen.host", "127.0.0.1");
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "error");
    for (int i = 0; settings && settings[i]; i++) {
        if (wsg_config_set_from_string(cfg, settings[i]) != WSG_OK) {
            fprintf(stderr, "tsrv_start: %s\n", wsg_last_error());
            wsg_config_free(cfg);
            goto fail;
        }
    }
    wsg_status st = wsg_server_new(&t->srv, cfg);
    wsg_config_free(cfg);
    if (st != WSG_OK) goto fail;
    wsg_server_on_open(t->srv, on_open, t, NULL);
    wsg_server_on_message(t->srv, on_message, t, NULL);
    wsg_server_on_close(t->srv, on_close, t, NULL);
    wsg_server_on_log(t->srv, on_log, t, NULL);
    if (auth) wsg_server_on_auth(t->srv, auth, t, NULL);
    if (tsrv_before_start) tsrv_before_start(t->srv);
    if (wsg_server_start(t->srv) != WSG_OK || wsg_server_port(t->srv, &t->port) != WSG_OK) {
        fprintf(stderr, "tsrv_start: %s\n", wsg_last_error());
        wsg_server_free(t->srv);
        goto fail;
    }
    return t;
fail:
    pthread_mutex_destroy(&t->mu);
    free(t->log);
    free(t);
    return NULL;
}

int tsrv_free(tsrv *t) {
    if (!t) return 0;
    wsg_server_free(t->srv);
    int dbl = t->double_close;
    pthread_mutex_destroy(&t->mu);
    free(t->log);
    free(t);
    return dbl;
}

#define LOCKED_READ(t, field)          \
    do {                               \
        pthread_mutex_lock(&(t)->mu);  \
        __typeof__((t)->field) v_ = (t)->field; \
        pthread_mutex_unlock(&(t)->mu); \
        return v_;                     \
    } while (0)

int tsrv_opens(tsrv *t) { LOCKED_READ(t, opens); }
int tsrv_closes(tsrv *t) { LOCKED_READ(t, closes); }
int tsrv_messages(tsrv *t) { LOCKED_READ(t, messages); }
wsg_conn_id tsrv_last_open(tsrv *t) { LOCKED_READ(t, last_open); }

int tsrv_find_close(tsrv *t, wsg_conn_id id, tsrv_close *out) {
    int found = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->nrecords; i++)
        if (t->records[i].id == id) {
            *out = t->records[i];
            found = 1;
        }
    pthread_mutex_unlock(&t->mu);
    return found;
}

int tsrv_wait_close(tsrv *t, int index, int timeout_ms, tsrv_close *out) {
    int64_t deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int have = t->nrecords > index;
        if (have && out) *out = t->records[index];
        pthread_mutex_unlock(&t->mu);
        if (have) return 1;
        if (tu_now_ms() >= deadline) return 0;
        tu_sleep_ms(2);
    }
}

long long tsrv_metric(tsrv *t, const char *name) {
    static char buf[65536];
    size_t len = 0;
    if (wsg_server_metrics(t->srv, buf, sizeof buf - 1, &len) != WSG_OK) return -1;
    buf[len < sizeof buf ? len : sizeof buf - 1] = 0;
    char want[160];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *p = strstr(buf, want);
    return p ? atoll(p + strlen(want)) : -1;
}
