/* 1,000 concurrent clients echoing through one server: everyone connected at
 * once, every message back in order, everything released afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "testutil.h"
#include "wsclient.h"

#define THREADS 8
#define PER_THREAD 125
#define MESSAGES 20

struct worker {
    tsrv *t;
    pthread_barrier_t *connected, *echoed;
    int failures;
    long received;
};

static void *work(void *arg) {
    struct worker *w = arg;
    wsc *cs[PER_THREAD] = {0};
    for (int i = 0; i < PER_THREAD; i++) {
        cs[i] = wsc_connect("127.0.0.1", w->t->port, "/", NULL, 10000, NULL);
        if (!cs[i]) w->failures++;
    }
    pthread_barrier_wait(w->connected);
    /* Pipeline every message on every connection, then read them back. */
    for (int m = 0; m < MESSAGES; m++)
        for (int i = 0; i < PER_THREAD; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "c%d-m%d", i, m);
            if (cs[i] && wsc_send_text(cs[i], buf) != 0) w->failures++;
        }
    for (int i = 0; i < PER_THREAD; i++) {
        for (int m = 0; cs[i] && m < MESSAGES; m++) {
            char want[32];
            snprintf(want, sizeof want, "c%d-m%d", i, m);
            wsc_frame f;
            if (wsc_recv_message(cs[i], &f, 10000) != 1) {
                w->failures++;
                break;
            }
            if (f.opcode != 1 || strcmp((char *)f.data, want) != 0)
                w->failures++;
            else
                w->received++;
            wsc_frame_free(&f);
        }
    }
    pthread_barrier_wait(w->echoed);
    for (int i = 0; i < PER_THREAD; i++)
        if (cs[i]) {
            if (i % 2)
                wsc_close(cs[i], 1000, 5000);
            else
                wsc_free(cs[i]);
        }
    return NULL;
}

static void thousand_clients_echo(void **state) {
    (void)state;
    /* 1,000 client sockets and 1,000 server sockets live in this process. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
        rl.rlim_cur = 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int fds = tu_open_fds();
    tsrv *t = tsrv_start(NULL, 1);
    assert_non_null(t);
    pthread_barrier_t connected, echoed;
    pthread_barrier_init(&connected, NULL, THREADS + 1);
    pthread_barrier_init(&echoed, NULL, THREADS + 1);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){t, &connected, &echoed, 0, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    pthread_barrier_wait(&connected);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == THREADS * PER_THREAD, 10000));
    pthread_barrier_wait(&echoed);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    long received = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].failures, 0);
        received += w[i].received;
    }
    assert_int_equal(received, THREADS * PER_THREAD * MESSAGES);
    assert_int_equal(tsrv_messages(t), THREADS * PER_THREAD * MESSAGES);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 0, 10000));
    assert_int_equal(tsrv_opens(t), THREADS * PER_THREAD);
    assert_true(WAIT_UNTIL(tsrv_closes(t) == THREADS * PER_THREAD, 5000));
    assert_int_equal(tsrv_free(t), 0);
    assert_int_equal(tu_open_fds(), fds);
    pthread_barrier_destroy(&connected);
    pthread_barrier_destroy(&echoed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thousand_clients_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
