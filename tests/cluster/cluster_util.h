/* Shared by the cluster suites: wsgate instances on one real Redis
 * (tests/support/redis_proc.h), clients with a user id, bounded waits. */
#ifndef WSGATE_CLUSTER_UTIL_H
#define WSGATE_CLUSTER_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_proc.h"
#include "test_clients.h"
#include "testutil.h"
#include "wsclient.h"

/* The user id comes from an x-user header (none: no user). */
static inline void user_from_header(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    (void)user;
    const char *who;
    if (wsg_auth_request_header(req, "x-user", &who) == WSG_OK)
        wsg_auth_accept(req, who);
    else
        wsg_auth_accept(req, NULL);
}

/* An instance of the cluster on `address`, with extra settings (NULL-ended,
 * may be NULL). Echoes messages. */
static inline tsrv *instance(const char *address, const char *prefix, const char *const *extra) {
    char redis[96], pre[64];
    snprintf(redis, sizeof redis, "cluster.redis=%s", address);
    snprintf(pre, sizeof pre, "cluster.prefix=%s", prefix);
    const char *settings[24] = {"auth.mode=callback", "log.level=info", redis, pre,
                                "cluster.reconnect_min_ms=20", "cluster.reconnect_max_ms=200",
                                "cluster.connect_timeout_ms=500", "cluster.command_timeout_ms=500"};
    int n = 8;
    for (int i = 0; extra && extra[i] && n < 23; i++) settings[n++] = extra[i];
    settings[n] = NULL;
    return tsrv_start_auth(settings, 1, user_from_header);
}



static inline int cluster_up(tsrv *t) { return tsrv_metric(t, "wsgate_cluster_up") == 1; }

/* A client of `user` (NULL: none), through the x-user header. */
static inline client open_user(tsrv *t, const char *user) {
    char headers[128] = "";
    if (user) snprintf(headers, sizeof headers, "x-user: %s\r\n", user);
    return open_client(t, headers);
}

/* Nothing arrives within ms (no duplicate, no stray delivery). */
static inline void expect_nothing(wsc *c, int ms) {
    wsc_frame f;
    int got = wsc_recv_message(c, &f, ms);
    if (got == 1) {
        fail_msg("unexpected message '%.*s'", (int)f.len, (const char *)f.data);
        wsc_frame_free(&f);
    }
}

/* Redis' count of subscribers (instances) of one channel. */
static inline int numsub(redis_proc *r, const char *channel) {
    const char *argv[] = {"PUBSUB", "NUMSUB", channel};
    char *reply = rp_query(r, 3, argv);
    if (!reply) return -1;
    const char *nl = strchr(reply, '\n');
    int n = nl ? atoi(nl + 1) : -1;
    free(reply);
    return n;
}

#endif
