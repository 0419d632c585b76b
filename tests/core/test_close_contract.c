/* The close-code contract: one code per server-decided cause, one advice
 * per code, the application's own codes declared, and what real clients
 * see matches the list (code on the wire, advice in the close event). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsclient.h"

typedef struct {
    int code;
    wsg_reconnect advice;
    const char *causes;
} code_row;

static const code_row kCodes[] = {
#define ROW(code, name, advice, causes, doc) {code, WSG_RECONNECT_##advice, causes},
    WSG_CLOSE_CODE_MAP(ROW)
#undef ROW
};
#define NCODES (sizeof kCodes / sizeof kCodes[0])

/* Whether `cause` is a word of the comma-separated list. */
static int lists(const char *list, const char *cause) {
    size_t n = strlen(cause);
    for (const char *p = list; (p = strstr(p, cause)) != NULL; p += n) {
        int starts = p == list || p[-1] == ' ' || p[-1] == ',';
        int ends = p[n] == 0 || p[n] == ',';
        if (starts && ends) return 1;
    }
    return 0;
}

static void every_server_decided_cause_has_exactly_one_code(void **state) {
    (void)state;
    static const wsg_close_cause causes[] = {
#define C(name, value, text, doc) WSG_CAUSE_##name,
        WSG_CLOSE_CAUSE_MAP(C)
#undef C
    };
    for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++) {
        const char *name = wsg_close_cause_str(causes[i]);
        int found = 0;
        for (size_t k = 0; k < NCODES; k++) found += lists(kCodes[k].causes, name);
        /* The application and the peer choose their codes, a close that
         * timed out keeps the one it sent: every other cause has one. */
        if (!strcmp(name, "app") || !strcmp(name, "peer")) {
            assert_true(found >= 1);
        } else if (!strcmp(name, "close_timeout")) {
            assert_int_equal(found, 0);
        } else if (found != 1) {
            fail_msg("cause %s is listed under %d close codes (want exactly 1)", name, found);
        }
    }
    /* And every cause a code lists exists. */
    for (size_t k = 0; k < NCODES; k++) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", kCodes[k].causes);
        for (char *save = NULL, *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
            int known = 0;
            for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++)
                known |= !strcmp(wsg_close_cause_str(causes[i]), w);
            if (!known) fail_msg("code %d lists unknown cause %s", kCodes[k].code, w);
        }
    }
}

static void advice_of_codes(void **state) {
    (void)state;
    for (size_t k = 0; k < NCODES; k++) assert_int_equal(wsg_close_code_advice(NULL, kCodes[k].code), kCodes[k].advice);
    assert_string_equal(wsg_reconnect_str(WSG_RECONNECT_BACKOFF), "backoff");
    assert_string_equal(wsg_reconnect_str(WSG_RECONNECT_NO), "no");
    assert_string_equal(wsg_reconnect_str(WSG_RECONNECT_APP), "app");
    assert_string_equal(wsg_reconnect_str((wsg_reconnect)99), "unknown");
    assert_int_equal(wsg_close_code_advice(NULL, 1001), WSG_RECONNECT_BACKOFF);
    assert_int_equal(wsg_close_code_advice(NULL, 1008), WSG_RECONNECT_NO);
    assert_int_equal(wsg_close_code_advice(NULL, 4123), WSG_RECONNECT_APP);
    assert_int_equal(wsg_close_code_advice(NULL, 3000), WSG_RECONNECT_APP);
    assert_int_equal(wsg_close_code_advice(NULL, 1004), WSG_RECONNECT_NO);
    assert_int_equal(wsg_close_code_advice(NULL, 5000), WSG_RECONNECT_NO);
    assert_int_equal(wsg_close_code_advice(NULL, -1), WSG_RECONNECT_NO);
}

static void applications_declare_their_codes(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4000, 4099, WSG_RECONNECT_NO), WSG_OK);
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4050, 4050, WSG_RECONNECT_BACKOFF), WSG_OK);
    assert_int_equal(wsg_close_code_advice(t->srv, 4000), WSG_RECONNECT_NO);
    assert_int_equal(wsg_close_code_advice(t->srv, 4050), WSG_RECONNECT_BACKOFF); /* later wins */
    assert_int_equal(wsg_close_code_advice(t->srv, 4099), WSG_RECONNECT_NO);
    assert_int_equal(wsg_close_code_advice(t->srv, 4100), WSG_RECONNECT_APP);
    assert_int_equal(wsg_close_code_advice(t->srv, 1001), WSG_RECONNECT_BACKOFF); /* wsgate's stay */
    assert_int_equal(wsg_close_code_advice(NULL, 4000), WSG_RECONNECT_APP);      /* per server */
    /* Only application codes, in order, with a known advice. */
    assert_int_equal(wsg_server_set_close_advice(t->srv, 1000, 1000, WSG_RECONNECT_NO), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "3000"));
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4100, 4000, WSG_RECONNECT_NO), WSG_EINVAL);
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4000, 5000, WSG_RECONNECT_NO), WSG_EINVAL);
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4000, 4001, (wsg_reconnect)7), WSG_EINVAL);
    assert_int_equal(wsg_server_set_close_advice(NULL, 4000, 4001, WSG_RECONNECT_NO), WSG_EINVAL);
    assert_int_equal(tsrv_free(t), 0);
}

/* The advice in the close event of the n-th close. */
static void close_advice_of(tsrv *t, int n, char *out, size_t cap) {
    char json[4096];
    assert_true(WAIT_UNTIL(tsrv_log_get(t, "close", n, json, sizeof json), 3000));
    const char *p = strstr(json, "\"advice\":\"");
    assert_non_null(p);
    p += strlen("\"advice\":\"");
    size_t len = strcspn(p, "\"");
    if (len >= cap) len = cap - 1;
    memcpy(out, p, len);
    out[len] = 0;
}

static void real_closes_follow_the_list(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", "limits.max_message_bytes=16", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    assert_int_equal(wsg_server_set_close_advice(t->srv, 4000, 4099, WSG_RECONNECT_NO), WSG_OK);
    char advice[32];

    /* too_big: 1009 on the wire, "no". */
    wsc *c = wsc_connect("127.0.0.1", t->port, "/", NULL, 2000, NULL);
    assert_non_null(c);
    assert_int_equal(wsc_send_text(c, "this message is longer than sixteen bytes"), 0);
    int code = -1;
    assert_true(wsc_wait_closed(c, 3000, 1, &code));
    assert_int_equal(code, 1009);
    wsc_free(c);
    close_advice_of(t, 0, advice, sizeof advice);
    assert_string_equal(advice, "no");
    assert_int_equal(wsg_close_code_advice(t->srv, code), WSG_RECONNECT_NO);

    /* An application code it declared: 4042, "no". */
    c = wsc_connect("127.0.0.1", t->port, "/", NULL, 2000, NULL);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 2, 2000));
    assert_int_equal(wsg_conn_close(t->srv, tsrv_last_open(t), 4042, "bad request"), WSG_OK);
    assert_true(wsc_wait_closed(c, 3000, 1, &code));
    assert_int_equal(code, 4042);
    wsc_free(c);
    close_advice_of(t, 1, advice, sizeof advice);
    assert_string_equal(advice, "no");

    /* shutdown: 1001, "backoff". */
    c = wsc_connect("127.0.0.1", t->port, "/", NULL, 2000, NULL);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 3, 2000));
    assert_int_equal(wsg_server_request_stop(t->srv), WSG_OK);
    assert_true(wsc_wait_closed(c, 3000, 1, &code));
    assert_int_equal(code, 1001);
    wsc_free(c);
    close_advice_of(t, 2, advice, sizeof advice);
    assert_string_equal(advice, "backoff");
    assert_int_equal(tsrv_free(t), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_server_decided_cause_has_exactly_one_code),
        cmocka_unit_test(advice_of_codes),
        cmocka_unit_test(applications_declare_their_codes),
        cmocka_unit_test(real_closes_follow_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
