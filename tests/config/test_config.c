/*
 * ABI tests of the configuration calls, the option table, status and cause
 * names, versions, the thread-local last error and the server constructor's
 * argument checks. A C99 program against the shared library, as users link it.
 *
 * Every case that expects a failure also checks that the failed call changed
 * nothing (the stored value, or the caller's out variable).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wsgate/wsgate.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Fails the test unless wsg_last_error() contains `needle`, printing both. */
static void error_mentions_(const char *needle, const char *file, int line) {
    const char *e = wsg_last_error();
    if (e == NULL) {
        print_error("wsg_last_error() returned NULL\n");
        _fail(file, line);
    }
    if (strstr(e, needle) == NULL) {
        print_error("wsg_last_error() = \"%s\" does not mention \"%s\"\n", e, needle);
        _fail(file, line);
    }
}
#define assert_error_mentions(needle) error_mentions_((needle), __FILE__, __LINE__)

static const char *describe(size_t index, wsg_option_field field) {
    const char *s = NULL;
    assert_int_equal(wsg_option_describe(index, field, &s), WSG_OK);
    assert_non_null(s);
    return s;
}

static size_t index_of(const char *name) {
    size_t i = (size_t)-1;
    assert_int_equal(wsg_option_find(name, &i), WSG_OK);
    assert_true(i < wsg_option_count());
    return i;
}

static const char *range_of(const char *name) { return describe(index_of(name), WSG_OPTION_RANGE); }

/* Parses "MIN..MAX"; returns 1 on success. */
static int parse_range(const char *text, int64_t *min, int64_t *max) {
    char *end = NULL;
    long long lo = strtoll(text, &end, 10);
    if (end == text || strncmp(end, "..", 2) != 0) return 0;
    const char *rest = end + 2;
    long long hi = strtoll(rest, &end, 10);
    if (end == rest || *end != '\0') return 0;
    *min = lo;
    *max = hi;
    return 1;
}

/* 1 if `value` is one of the '|'-separated `choices`. */
static int choice_listed(const char *choices, const char *value) {
    size_t n = strlen(value);
    const char *p = choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

static int64_t get_int(const wsg_config *cfg, const char *key) {
    int64_t v = -12345;
    assert_int_equal(wsg_config_get_int(cfg, key, &v), WSG_OK);
    return v;
}

static const char *get_string(const wsg_config *cfg, const char *key) {
    const char *v = NULL;
    assert_int_equal(wsg_config_get_string(cfg, key, &v), WSG_OK);
    assert_non_null(v);
    return v;
}

/* Name of the first option of `type`, or NULL when the table has none. */
static const char *first_option_of_type(const char *type) {
    for (size_t i = 0; i < wsg_option_count(); i++)
        if (strcmp(describe(i, WSG_OPTION_TYPE), type) == 0) return describe(i, WSG_OPTION_NAME);
    return NULL;
}

static int setup_config(void **state) {
    wsg_config *cfg = NULL;
    if (wsg_config_new(&cfg) != WSG_OK || cfg == NULL) return -1;
    *state = cfg;
    return 0;
}

static int teardown_config(void **state) {
    wsg_config_free(*state);
    *state = NULL;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Option table                                                        */
/* ------------------------------------------------------------------ */

static void test_option_table_rows_are_complete(void **state) {
    (void)state;
    size_t n = wsg_option_count();
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        const char *name = describe(i, WSG_OPTION_NAME);
        const char *type = describe(i, WSG_OPTION_TYPE);
        const char *def = describe(i, WSG_OPTION_DEFAULT);
        const char *range = describe(i, WSG_OPTION_RANGE);
        const char *doc = describe(i, WSG_OPTION_DOC);
        assert_true(strlen(name) > 0);
        assert_non_null(strchr(name, '.')); /* dotted "section.key" */
        assert_true(strlen(doc) > 0);
        if (strcmp(type, "int") == 0) {
            int64_t min = 0, max = 0;
            if (!parse_range(range, &min, &max)) {
                print_error("option %s: int range \"%s\" is not MIN..MAX\n", name, range);
                fail();
            }
            assert_true(min <= max);
            char *end = NULL;
            long long d = strtoll(def, &end, 10);
            assert_true(end != def && *end == '\0');
            assert_true(d >= min && d <= max);
        } else if (strcmp(type, "enum") == 0) {
            assert_true(strlen(range) > 0);
            assert_true(choice_listed(range, def));
        } else if (strcmp(type, "bool") == 0 || strcmp(type, "string") == 0) {
            assert_string_equal(range, "");
        } else {
            print_error("option %s has unknown type \"%s\"\n", name, type);
            fail();
        }
    }
}

static void test_option_names_are_unique(void **state) {
    (void)state;
    size_t n = wsg_option_count();
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(describe(i, WSG_OPTION_NAME), describe(j, WSG_OPTION_NAME));
}

static void test_option_describe_rejects_bad_index_field_and_null(void **state) {
    (void)state;
    const char *sentinel = "unchanged";
    const char *s = sentinel;
    size_t n = wsg_option_count();
    assert_int_equal(wsg_option_describe(n, WSG_OPTION_NAME, &s), WSG_EINVAL);
    assert_ptr_equal(s, sentinel);
    assert_int_equal(wsg_option_describe((size_t)-1, WSG_OPTION_NAME, &s), WSG_EINVAL);
    assert_ptr_equal(s, sentinel);
    assert_int_equal(wsg_option_describe(0, (wsg_option_field)0, &s), WSG_EINVAL);
    assert_ptr_equal(s, sentinel);
    assert_int_equal(wsg_option_describe(0, (wsg_option_field)6, &s), WSG_EINVAL);
    assert_ptr_equal(s, sentinel);
    assert_int_equal(wsg_option_describe(0, WSG_OPTION_NAME, NULL), WSG_EINVAL);
}

static void test_option_find_finds_every_name(void **state) {
    (void)state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        size_t found = (size_t)-1;
        assert_int_equal(wsg_option_find(describe(i, WSG_OPTION_NAME), &found), WSG_OK);
        assert_int_equal(found, i);
    }
}

static void test_option_find_reports_unknown_names(void **state) {
    (void)state;
    const char *unknown[] = {"no.such.option", "", "listen", "listen.", "listen.port ",
                             " listen.port", "listen.portx", "listen.port=1"};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        size_t found = 4242;
        assert_int_equal(wsg_option_find(unknown[k], &found), WSG_ENOTFOUND);
        assert_int_equal(found, 4242);
    }
    size_t found = 4242;
    assert_int_equal(wsg_option_find(NULL, &found), WSG_EINVAL);
    assert_int_equal(found, 4242);
    assert_int_equal(wsg_option_find("listen.port", NULL), WSG_EINVAL);
}

/* ------------------------------------------------------------------ */
/* Defaults and typed access                                           */
/* ------------------------------------------------------------------ */

static void test_every_default_reads_back_with_its_typed_getter(void **state) {
    wsg_config *cfg = *state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        const char *name = describe(i, WSG_OPTION_NAME);
        const char *type = describe(i, WSG_OPTION_TYPE);
        const char *def = describe(i, WSG_OPTION_DEFAULT);
        if (strcmp(type, "int") == 0) {
            int64_t v = -1;
            assert_int_equal(wsg_config_get_int(cfg, name, &v), WSG_OK);
            assert_true(v == strtoll(def, NULL, 10));
        } else if (strcmp(type, "bool") == 0) {
            int v = -1;
            assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
            int want = strcmp(def, "true") == 0 || strcmp(def, "1") == 0 ||
                       strcmp(def, "yes") == 0 || strcmp(def, "on") == 0;
            assert_int_equal(v, want);
        } else {
            const char *v = NULL;
            assert_int_equal(wsg_config_get_string(cfg, name, &v), WSG_OK);
            assert_non_null(v);
            assert_string_equal(v, def);
        }
    }
}

static void test_getters_of_other_types_fail_for_every_option(void **state) {
    wsg_config *cfg = *state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        const char *name = describe(i, WSG_OPTION_NAME);
        const char *type = describe(i, WSG_OPTION_TYPE);
        int64_t iv = 77;
        int bv = 77;
        const char *sv = "sentinel";
        if (strcmp(type, "int") != 0) {
            assert_int_equal(wsg_config_get_int(cfg, name, &iv), WSG_EINVAL);
            assert_error_mentions(name);
        }
        if (strcmp(type, "bool") != 0) {
            assert_int_equal(wsg_config_get_bool(cfg, name, &bv), WSG_EINVAL);
            assert_error_mentions(name);
        }
        if (strcmp(type, "string") != 0 && strcmp(type, "enum") != 0) {
            assert_int_equal(wsg_config_get_string(cfg, name, &sv), WSG_EINVAL);
            assert_error_mentions(name);
        }
        assert_true(iv == 77);
        assert_int_equal(bv, 77);
        assert_string_equal(sv, "sentinel");
    }
}

static void test_every_int_option_accepts_its_min_and_max(void **state) {
    wsg_config *cfg = *state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        if (strcmp(describe(i, WSG_OPTION_TYPE), "int") != 0) continue;
        const char *name = describe(i, WSG_OPTION_NAME);
        int64_t min = 0, max = 0;
        assert_true(parse_range(describe(i, WSG_OPTION_RANGE), &min, &max));
        assert_int_equal(wsg_config_set_int(cfg, name, min), WSG_OK);
        assert_true(get_int(cfg, name) == min);
        assert_int_equal(wsg_config_set_int(cfg, name, max), WSG_OK);
        assert_true(get_int(cfg, name) == max);
    }
}

static void test_every_int_option_rejects_just_outside_its_range(void **state) {
    wsg_config *cfg = *state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        if (strcmp(describe(i, WSG_OPTION_TYPE), "int") != 0) continue;
        const char *name = describe(i, WSG_OPTION_NAME);
        const char *range = describe(i, WSG_OPTION_RANGE);
        int64_t min = 0, max = 0;
        assert_true(parse_range(range, &min, &max));
        int64_t before = get_int(cfg, name);
        if (min > INT64_MIN) {
            assert_int_equal(wsg_config_set_int(cfg, name, min - 1), WSG_EINVAL);
            assert_error_mentions(name);
            assert_error_mentions(range);
        }
        if (max < INT64_MAX) {
            assert_int_equal(wsg_config_set_int(cfg, name, max + 1), WSG_EINVAL);
            assert_error_mentions(name);
            assert_error_mentions(range);
        }
        assert_int_equal(wsg_config_set_int(cfg, name, INT64_MIN), WSG_EINVAL);
        assert_int_equal(wsg_config_set_int(cfg, name, INT64_MAX), WSG_EINVAL);
        assert_true(get_int(cfg, name) == before);
    }
}

static void test_int_round_trip(void **state) {
    wsg_config *cfg = *state;
    const int64_t ports[] = {0, 1, 80, 9000, 65534, 65535};
    for (size_t k = 0; k < sizeof ports / sizeof ports[0]; k++) {
        assert_int_equal(wsg_config_set_int(cfg, "listen.port", ports[k]), WSG_OK);
        assert_true(get_int(cfg, "listen.port") == ports[k]);
    }
    assert_int_equal(wsg_config_set_int(cfg, "limits.max_message_bytes", 1), WSG_OK);
    assert_true(get_int(cfg, "limits.max_message_bytes") == 1);
    assert_int_equal(wsg_config_set_int(cfg, "limits.max_message_bytes", 1073741824), WSG_OK);
    assert_true(get_int(cfg, "limits.max_message_bytes") == 1073741824);
    assert_int_equal(wsg_config_set_int(cfg, "tuning.rx_buffer_bytes", 125), WSG_OK);
    assert_true(get_int(cfg, "tuning.rx_buffer_bytes") == 125);
    /* Setting one option leaves the others alone. */
    assert_true(get_int(cfg, "listen.port") == 65535);
    assert_true(get_int(cfg, "limits.max_message_bytes") == 1073741824);
}

static void test_string_round_trip_copies_the_value(void **state) {
    wsg_config *cfg = *state;
    char buf[32];
    strcpy(buf, "/chat");
    assert_int_equal(wsg_config_set_string(cfg, "server.path", buf), WSG_OK);
    strcpy(buf, "/changed");
    assert_string_equal(get_string(cfg, "server.path"), "/chat");
    assert_ptr_not_equal(get_string(cfg, "server.path"), buf);

    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "::1"), WSG_OK);
    assert_string_equal(get_string(cfg, "listen.host"), "::1");
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", ""), WSG_OK);
    assert_string_equal(get_string(cfg, "listen.host"), "");
    assert_string_equal(get_string(cfg, "server.path"), "/chat");
}

static void test_enum_round_trip_for_every_choice(void **state) {
    wsg_config *cfg = *state;
    for (size_t i = 0; i < wsg_option_count(); i++) {
        if (strcmp(describe(i, WSG_OPTION_TYPE), "enum") != 0) continue;
        const char *name = describe(i, WSG_OPTION_NAME);
        char choices[256];
        assert_true(strlen(describe(i, WSG_OPTION_RANGE)) < sizeof choices);
        strcpy(choices, describe(i, WSG_OPTION_RANGE));
        int seen = 0;
        for (char *save = NULL, *c = strtok_r(choices, "|", &save); c != NULL;
             c = strtok_r(NULL, "|", &save)) {
            assert_int_equal(wsg_config_set_string(cfg, name, c), WSG_OK);
            assert_string_equal(get_string(cfg, name), c);
            seen++;
        }
        assert_true(seen > 0);
    }
    /* The documented log levels, by name. */
    const char *levels[] = {"debug", "info", "warn", "error", "off"};
    for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "log.level", levels[k]), WSG_OK);
        assert_string_equal(get_string(cfg, "log.level"), levels[k]);
    }
}

static void test_bool_round_trip_when_a_bool_option_exists(void **state) {
    wsg_config *cfg = *state;
    const char *name = first_option_of_type("bool");
    if (name == NULL) skip(); /* no bool option in the table yet */
    int v = -1;
    assert_int_equal(wsg_config_set_bool(cfg, name, 1), WSG_OK);
    assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
    assert_int_equal(v, 1);
    assert_int_equal(wsg_config_set_bool(cfg, name, 0), WSG_OK);
    assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(wsg_config_set_bool(cfg, name, 7), WSG_OK); /* any non-zero is true */
    assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
    assert_int_equal(v, 1);

    const char *texts_true[] = {"true", "1", "yes", "on", "TRUE", "On"};
    const char *texts_false[] = {"false", "0", "no", "off", "FALSE", "Off"};
    char a[128];
    for (size_t k = 0; k < 6; k++) {
        snprintf(a, sizeof a, "%s=%s", name, texts_false[k]);
        assert_int_equal(wsg_config_set_from_string(cfg, a), WSG_OK);
        assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
        assert_int_equal(v, 0);
        snprintf(a, sizeof a, "%s=%s", name, texts_true[k]);
        assert_int_equal(wsg_config_set_from_string(cfg, a), WSG_OK);
        assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
        assert_int_equal(v, 1);
    }
    snprintf(a, sizeof a, "%s=maybe", name);
    assert_int_equal(wsg_config_set_from_string(cfg, a), WSG_EINVAL);
    assert_int_equal(wsg_config_get_bool(cfg, name, &v), WSG_OK);
    assert_int_equal(v, 1);
}

static void test_set_bool_on_non_bool_options_fails_and_changes_nothing(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9000), WSG_OK);
    assert_int_equal(wsg_config_set_bool(cfg, "listen.port", 0), WSG_EINVAL);
    assert_error_mentions("listen.port");
    assert_true(get_int(cfg, "listen.port") == 9000);
    assert_int_equal(wsg_config_set_bool(cfg, "listen.port", 1), WSG_EINVAL);
    assert_true(get_int(cfg, "listen.port") == 9000);
    assert_int_equal(wsg_config_set_bool(cfg, "log.level", 1), WSG_EINVAL);
    assert_error_mentions("log.level");
    assert_string_equal(get_string(cfg, "log.level"), "info");
    assert_int_equal(wsg_config_set_bool(cfg, "server.path", 1), WSG_EINVAL);
    assert_string_equal(get_string(cfg, "server.path"), "/");
}

/* ------------------------------------------------------------------ */
/* Invalid keys, values and types                                      */
/* ------------------------------------------------------------------ */

static void test_unknown_key_is_rejected_and_named(void **state) {
    wsg_config *cfg = *state;
    const char *key = "listen.no_such_key";
    int64_t iv = 5;
    int bv = 5;
    const char *sv = "sentinel";
    assert_int_equal(wsg_config_set_int(cfg, key, 1), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_set_bool(cfg, key, 1), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_set_string(cfg, key, "x"), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.no_such_key=1"), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_get_int(cfg, key, &iv), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_get_bool(cfg, key, &bv), WSG_EINVAL);
    assert_error_mentions(key);
    assert_int_equal(wsg_config_get_string(cfg, key, &sv), WSG_EINVAL);
    assert_error_mentions(key);
    assert_true(iv == 5);
    assert_int_equal(bv, 5);
    assert_string_equal(sv, "sentinel");
    /* Near misses of real names are unknown too. */
    assert_int_equal(wsg_config_set_int(cfg, "", 1), WSG_EINVAL);
    assert_int_equal(wsg_config_set_int(cfg, "listen.port ", 1), WSG_EINVAL);
    assert_int_equal(wsg_config_set_int(cfg, "port", 1), WSG_EINVAL);
    assert_true(get_int(cfg, "listen.port") == 8080);
}

/* An unknown name gets the closest known ones (whole names, then last
 * segments, then a section's options), at most three, or none. Every entry
 * point that takes a name says the same. */
static void test_unknown_key_suggests_the_closest_names(void **state) {
    wsg_config *cfg = *state;
    static const struct {
        const char *key, *hint;
    } cases[] = {
        {"log.levl", " (did you mean log.level?)"},
        {"Log.Level", " (did you mean log.level?)"},
        {"listen.prot", " (did you mean listen.port?)"},
        {"limits.max_conections", " (did you mean limits.max_connections?)"},
        {"ping_interval", " (did you mean heartbeat.ping_interval_ms?)"},
        {"pong_wait", " (did you mean heartbeat.pong_wait_ms?)"},
        {"max_connections", " (did you mean limits.max_connections?)"},
        {"tls.cert", " (did you mean tls.cert_file?)"},
        {"cert_file", " (did you mean tls.cert_file?)"},
        {"level", " (did you mean compression.level or log.level?)"},
        {"tls", " (did you mean tls.cert_file, tls.key_file or tls.ca_file?)"},
        {"heartbeat.", " (did you mean heartbeat.preset, heartbeat.ping_interval_ms or "
                       "heartbeat.pong_wait_ms?)"},
        /* Nothing close: no guess, the way to list the options instead. */
        {"heartbeat.nonsense", " (wsg_option_count/wsg_option_describe list the options)"},
        {"no.such.option", " (wsg_option_count/wsg_option_describe list the options)"},
        {"x", " (wsg_option_count/wsg_option_describe list the options)"},
        {"timeout", " (wsg_option_count/wsg_option_describe list the options)"},
    };
    char want[512], assignment[256];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(want, sizeof want, "unknown option '%s'%s", cases[k].key, cases[k].hint);
        assert_int_equal(wsg_config_set_int(cfg, cases[k].key, 1), WSG_EINVAL);
        assert_string_equal(wsg_last_error(), want);
        assert_int_equal(wsg_config_get_string(cfg, cases[k].key, &(const char *){NULL}), WSG_EINVAL);
        assert_string_equal(wsg_last_error(), want);
        snprintf(assignment, sizeof assignment, "%s=1", cases[k].key);
        assert_int_equal(wsg_config_set_from_string(cfg, assignment), WSG_EINVAL);
        assert_string_equal(wsg_last_error(), want);
        size_t index = 4242;
        assert_int_equal(wsg_option_find(cases[k].key, &index), WSG_ENOTFOUND);
        assert_string_equal(wsg_last_error(), want);
        assert_int_equal(index, 4242);
    }
    /* Never more than three, whatever the name. */
    for (size_t i = 0; i < wsg_option_count(); i++) {
        const char *name = describe(i, WSG_OPTION_NAME);
        char typo[128];
        snprintf(typo, sizeof typo, "%.*s", (int)strlen(name) - 1, name);
        assert_int_equal(wsg_config_set_from_string(cfg, strcat(typo, "=1")), WSG_EINVAL);
        const char *e = wsg_last_error();
        int commas = 0;
        for (const char *p = e; *p; p++) commas += *p == ',';
        assert_true(commas <= 1);
        assert_non_null(strstr(e, "did you mean"));
        assert_non_null(strstr(e, name)); /* a name missing its last letter is found */
    }
}

/* One out-of-range case: fails, names key and range, leaves the value. */
static void check_out_of_range(wsg_config *cfg, const char *key, int64_t good, int64_t bad,
                               const char *range_text) {
    assert_int_equal(wsg_config_set_int(cfg, key, good), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, key, bad), WSG_EINVAL);
    assert_error_mentions(key);
    assert_error_mentions(range_text);
    assert_true(get_int(cfg, key) == good);
}

static void test_out_of_range_ints_are_rejected_and_change_nothing(void **state) {
    wsg_config *cfg = *state;
    assert_string_equal(range_of("listen.port"), "0..65535");
    check_out_of_range(cfg, "listen.port", 9000, -1, "0..65535");
    check_out_of_range(cfg, "listen.port", 9000, 65536, "0..65535");
    check_out_of_range(cfg, "listen.port", 0, 1000000, "0..65535");

    const char *mmb = range_of("limits.max_message_bytes");
    assert_string_equal(mmb, "1..1073741824");
    check_out_of_range(cfg, "limits.max_message_bytes", 4096, 0, mmb);
    check_out_of_range(cfg, "limits.max_message_bytes", 4096, -1, mmb);
    check_out_of_range(cfg, "limits.max_message_bytes", 4096, 1073741825, mmb);

    const char *rx = range_of("tuning.rx_buffer_bytes");
    assert_string_equal(rx, "125..1048576");
    check_out_of_range(cfg, "tuning.rx_buffer_bytes", 125, 124, rx);
    check_out_of_range(cfg, "tuning.rx_buffer_bytes", 4096, 0, rx);
    check_out_of_range(cfg, "tuning.rx_buffer_bytes", 4096, 1048577, rx);
}

static void test_type_mismatch_is_rejected_and_changes_nothing(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "listen.host", 1), WSG_EINVAL);
    assert_error_mentions("listen.host");
    assert_string_equal(get_string(cfg, "listen.host"), "127.0.0.1");

    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9000), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "listen.port", "9001"), WSG_EINVAL);
    assert_error_mentions("listen.port");
    assert_true(get_int(cfg, "listen.port") == 9000);

    int b = 42;
    assert_int_equal(wsg_config_get_bool(cfg, "listen.port", &b), WSG_EINVAL);
    assert_error_mentions("listen.port");
    assert_int_equal(b, 42);

    const char *s = "sentinel";
    assert_int_equal(wsg_config_get_string(cfg, "listen.port", &s), WSG_EINVAL);
    assert_string_equal(s, "sentinel");

    int64_t i = 42;
    assert_int_equal(wsg_config_get_int(cfg, "log.level", &i), WSG_EINVAL);
    assert_error_mentions("log.level");
    assert_true(i == 42);
    assert_int_equal(wsg_config_set_int(cfg, "log.level", 10), WSG_EINVAL);
    assert_string_equal(get_string(cfg, "log.level"), "info");
}

static void test_enum_value_outside_choices_is_rejected(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_string(cfg, "log.level", "warn"), WSG_OK);
    const char *bad[] = {"verbose", "", "deb", "debugx", "debug|info",
                         "debug|info|warn|error|off", "|"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "log.level", bad[k]), WSG_EINVAL);
        assert_error_mentions("log.level");
        assert_string_equal(get_string(cfg, "log.level"), "warn");
    }
    assert_int_equal(wsg_config_set_string(cfg, "log.level", "verbose"), WSG_EINVAL);
    assert_error_mentions("verbose");
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=verbose"), WSG_EINVAL);
    assert_error_mentions("log.level");
    assert_string_equal(get_string(cfg, "log.level"), "warn");
}

static void test_listen_host_accepts_address_literals_only(void **state) {
    wsg_config *cfg = *state;
    const char *good[] = {"", "127.0.0.1", "::1", "0.0.0.0", "::", "192.168.1.20",
                          "fe80::1"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "listen.host", good[k]), WSG_OK);
        assert_string_equal(get_string(cfg, "listen.host"), good[k]);
    }
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "127.0.0.1"), WSG_OK);
    const char *bad[] = {"localhost", "1.2.3", "example.com", "256.1.1.1", "127.0.0.1 ",
                         " ::1", "[::1]", "127.0.0.1:80"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "listen.host", bad[k]), WSG_EINVAL);
        assert_error_mentions("listen.host");
        assert_string_equal(get_string(cfg, "listen.host"), "127.0.0.1");
    }
}

static void test_server_path_accepts_plain_absolute_paths_only(void **state) {
    wsg_config *cfg = *state;
    const char *good[] = {"/", "/chat", "/a/b/c", "/a=b", "/ws-1.0_x~"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "server.path", good[k]), WSG_OK);
        assert_string_equal(get_string(cfg, "server.path"), good[k]);
    }
    assert_int_equal(wsg_config_set_string(cfg, "server.path", "/chat"), WSG_OK);
    const char *bad[] = {"", "chat", "/a?b", "/a b", "/a#b", "/a\tb", "/a\nb", " /chat"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(wsg_config_set_string(cfg, "server.path", bad[k]), WSG_EINVAL);
        assert_error_mentions("server.path");
        assert_string_equal(get_string(cfg, "server.path"), "/chat");
    }
}

/* ------------------------------------------------------------------ */
/* Text assignments                                                    */
/* ------------------------------------------------------------------ */

static void test_set_from_string_parses_by_option_type(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=9000"), WSG_OK);
    assert_true(get_int(cfg, "listen.port") == 9000);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=0"), WSG_OK);
    assert_true(get_int(cfg, "listen.port") == 0);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=65535"), WSG_OK);
    assert_true(get_int(cfg, "listen.port") == 65535);
    assert_int_equal(wsg_config_set_from_string(cfg, "limits.max_message_bytes=1073741824"),
                     WSG_OK);
    assert_true(get_int(cfg, "limits.max_message_bytes") == 1073741824);
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=debug"), WSG_OK);
    assert_string_equal(get_string(cfg, "log.level"), "debug");
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host=::1"), WSG_OK);
    assert_string_equal(get_string(cfg, "listen.host"), "::1");
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host="), WSG_OK);
    assert_string_equal(get_string(cfg, "listen.host"), "");
}

static void test_set_from_string_keeps_later_equals_signs_in_the_value(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_from_string(cfg, "server.path=/a=b"), WSG_OK);
    assert_string_equal(get_string(cfg, "server.path"), "/a=b");
    assert_int_equal(wsg_config_set_from_string(cfg, "server.path=/x==y="), WSG_OK);
    assert_string_equal(get_string(cfg, "server.path"), "/x==y=");
    /* For an int the rest after the first '=' must be a number. */
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=90=00"), WSG_EINVAL);
    assert_true(get_int(cfg, "listen.port") == 8080);
}

static void test_set_from_string_rejects_malformed_assignments(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9000), WSG_OK);
    const char *bad[] = {"noequals",
                         "=value",
                         "=",
                         "",
                         "listen.port",
                         "listen.port=",
                         "listen.port=12x",
                         "listen.port=x12",
                         "listen.port=1.5",
                         "listen.port=0x10",
                         "listen.port=-1",
                         "listen.port=65536",
                         "listen.port=99999999999999999999",
                         "listen.port=-99999999999999999999",
                         "listen.port=9223372036854775808",
                         "listen.port= 9000",
                         "listen.port=\t9000",
                         "listen.port=+9000",
                         "listen.port=9000 "};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        wsg_status st = wsg_config_set_from_string(cfg, bad[k]);
        if (st != WSG_EINVAL) {
            print_error("\"%s\" gave %s, not WSG_EINVAL\n", bad[k], wsg_status_str(st));
            fail();
        }
        assert_true(get_int(cfg, "listen.port") == 9000);
    }
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=12x"), WSG_EINVAL);
    assert_error_mentions("listen.port");
    assert_error_mentions("12x");
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=-1"), WSG_EINVAL);
    assert_error_mentions("0..65535");
    assert_int_equal(wsg_config_set_from_string(cfg, "server.path=chat"), WSG_EINVAL);
    assert_string_equal(get_string(cfg, "server.path"), "/");
}

/* ------------------------------------------------------------------ */
/* NULL arguments                                                      */
/* ------------------------------------------------------------------ */

static void test_null_arguments_are_rejected_without_crashing(void **state) {
    wsg_config *cfg = *state;
    int64_t iv = 3;
    int bv = 3;
    const char *sv = "sentinel";

    assert_int_equal(wsg_config_new(NULL), WSG_EINVAL);
    assert_error_mentions("out");

    assert_int_equal(wsg_config_set_int(NULL, "listen.port", 1), WSG_EINVAL);
    assert_error_mentions("config");
    assert_int_equal(wsg_config_set_bool(NULL, "listen.port", 1), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(NULL, "server.path", "/x"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_from_string(NULL, "listen.port=1"), WSG_EINVAL);
    assert_int_equal(wsg_config_get_int(NULL, "listen.port", &iv), WSG_EINVAL);
    assert_int_equal(wsg_config_get_bool(NULL, "listen.port", &bv), WSG_EINVAL);
    assert_int_equal(wsg_config_get_string(NULL, "server.path", &sv), WSG_EINVAL);

    assert_int_equal(wsg_config_set_int(cfg, NULL, 1), WSG_EINVAL);
    assert_int_equal(wsg_config_set_bool(cfg, NULL, 1), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, NULL, "/x"), WSG_EINVAL);
    assert_int_equal(wsg_config_get_int(cfg, NULL, &iv), WSG_EINVAL);
    assert_int_equal(wsg_config_get_bool(cfg, NULL, &bv), WSG_EINVAL);
    assert_int_equal(wsg_config_get_string(cfg, NULL, &sv), WSG_EINVAL);

    assert_int_equal(wsg_config_set_string(cfg, "server.path", NULL), WSG_EINVAL);
    assert_error_mentions("server.path");
    assert_int_equal(wsg_config_set_string(cfg, "log.level", NULL), WSG_EINVAL);
    assert_int_equal(wsg_config_set_from_string(cfg, NULL), WSG_EINVAL);

    assert_int_equal(wsg_config_get_int(cfg, "listen.port", NULL), WSG_EINVAL);
    assert_int_equal(wsg_config_get_string(cfg, "server.path", NULL), WSG_EINVAL);
    assert_int_equal(wsg_config_get_bool(cfg, "listen.port", NULL), WSG_EINVAL);

    assert_true(iv == 3);
    assert_int_equal(bv, 3);
    assert_string_equal(sv, "sentinel");
    assert_true(get_int(cfg, "listen.port") == 8080);
    assert_string_equal(get_string(cfg, "server.path"), "/");
    assert_string_equal(get_string(cfg, "log.level"), "info");
}

/* ------------------------------------------------------------------ */
/* Copy and free                                                       */
/* ------------------------------------------------------------------ */

static void test_config_copy_is_independent(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9000), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "server.path", "/old"), WSG_OK);
    wsg_config *copy = NULL;
    assert_int_equal(wsg_config_copy(&copy, cfg), WSG_OK);
    assert_non_null(copy);
    assert_ptr_not_equal(copy, cfg);
    assert_true(get_int(copy, "listen.port") == 9000);
    assert_string_equal(get_string(copy, "server.path"), "/old");

    const char *copy_path = get_string(copy, "server.path");
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9001), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "server.path", "/new"), WSG_OK);
    assert_true(get_int(copy, "listen.port") == 9000);
    assert_string_equal(get_string(copy, "server.path"), "/old");
    assert_string_equal(copy_path, "/old");

    assert_int_equal(wsg_config_set_int(copy, "listen.port", 1), WSG_OK);
    assert_true(get_int(cfg, "listen.port") == 9001);

    /* The copy outlives its source. */
    wsg_config_free(cfg);
    *state = NULL;
    assert_true(get_int(copy, "listen.port") == 1);
    assert_string_equal(get_string(copy, "server.path"), "/old");
    wsg_config_free(copy);
}

static void test_config_copy_rejects_null_arguments(void **state) {
    wsg_config *cfg = *state;
    wsg_config *copy = (wsg_config *)cfg; /* any non-NULL value */
    assert_int_equal(wsg_config_copy(&copy, NULL), WSG_EINVAL);
    assert_null(copy); /* constructors write NULL on failure */
    assert_int_equal(wsg_config_copy(NULL, cfg), WSG_EINVAL);
    assert_int_equal(wsg_config_copy(NULL, NULL), WSG_EINVAL);
}

static void test_config_free_accepts_null(void **state) {
    (void)state;
    wsg_config_free(NULL);
    wsg_config *cfg = NULL;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_non_null(cfg);
    wsg_config_free(cfg);
}

/* ------------------------------------------------------------------ */
/* Names, versions, last error                                         */
/* ------------------------------------------------------------------ */

static void test_status_str_names_every_status(void **state) {
    (void)state;
    const char *expected[] = {"WSG_OK",     "WSG_EINVAL", "WSG_ENOTFOUND", "WSG_ECLOSED",
                              "WSG_ENOMEM", "WSG_ESTATE", "WSG_EIO",       "WSG_ETLS",
                              "WSG_EBUSY",  "WSG_ELIMIT", "WSG_EINTERNAL", "WSG_ECLUSTER",
                              "WSG_ETIMEOUT"};
    const char *seen[13];
    for (int s = 0; s <= 12; s++) {
        const char *name = wsg_status_str((wsg_status)s);
        assert_non_null(name);
        assert_int_equal(strncmp(name, "WSG_", 4), 0);
        assert_string_not_equal(name, "WSG_UNKNOWN");
        assert_string_equal(name, expected[s]);
        for (int t = 0; t < s; t++) assert_string_not_equal(name, seen[t]);
        seen[s] = name;
    }
    assert_string_equal(wsg_status_str(WSG_OK), "WSG_OK");
    assert_string_equal(wsg_status_str(WSG_EINTERNAL), "WSG_EINTERNAL");
    assert_string_equal(wsg_status_str(WSG_ECLUSTER), "WSG_ECLUSTER");
    assert_string_equal(wsg_status_str(WSG_ETIMEOUT), "WSG_ETIMEOUT");
    assert_string_equal(wsg_status_str((wsg_status)13), "WSG_UNKNOWN");
    assert_string_equal(wsg_status_str((wsg_status)999), "WSG_UNKNOWN");
    assert_string_equal(wsg_status_str((wsg_status)-1), "WSG_UNKNOWN");
}

static void test_close_cause_str_names_every_cause(void **state) {
    (void)state;
    const char *expected[] = {NULL,           "peer",          "app",          "shutdown",
                              "lost",         "too_big",       "invalid_utf8", "backpressure",
                              "pong_timeout", "write_timeout", "idle_timeout", "close_timeout",
                              "token_expired", "rate_limit", "bad_compression", "protocol_error",
                              "drain"};
    for (int c = 1; c <= 16; c++) {
        const char *name = wsg_close_cause_str((wsg_close_cause)c);
        assert_non_null(name);
        assert_string_equal(name, expected[c]);
        for (int d = 1; d < c; d++)
            assert_string_not_equal(name, wsg_close_cause_str((wsg_close_cause)d));
    }
    assert_string_equal(wsg_close_cause_str((wsg_close_cause)0), "unknown");
    assert_string_equal(wsg_close_cause_str((wsg_close_cause)17), "unknown");
    /* The list behind the enum and the names (WSG_CLOSE_CAUSE_MAP) agrees with them. */
#define CHECK_CAUSE(name, value, text, doc)                                   \
    assert_int_equal(WSG_CAUSE_##name, value);                                \
    assert_string_equal(wsg_close_cause_str(WSG_CAUSE_##name), text);
    WSG_CLOSE_CAUSE_MAP(CHECK_CAUSE)
#undef CHECK_CAUSE
    assert_string_equal(wsg_close_cause_str((wsg_close_cause)99), "unknown");
}

static void test_version_matches_header(void **state) {
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", WSG_VERSION_MAJOR, WSG_VERSION_MINOR,
             WSG_VERSION_PATCH);
    assert_non_null(wsg_version());
    assert_string_equal(wsg_version(), want);
    assert_int_equal(wsg_version_num(), WSG_VERSION_NUM);
    assert_int_equal(WSG_VERSION_NUM,
                     WSG_VERSION_MAJOR * 10000 + WSG_VERSION_MINOR * 100 + WSG_VERSION_PATCH);
}

static void test_last_error_is_never_null(void **state) {
    wsg_config *cfg = *state;
    assert_non_null(wsg_last_error());
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 1), WSG_OK);
    assert_non_null(wsg_last_error());
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", -5), WSG_EINVAL);
    assert_non_null(wsg_last_error());
    assert_true(strlen(wsg_last_error()) > 0);
    (void)wsg_version();
    (void)wsg_status_str(WSG_OK);
    assert_non_null(wsg_last_error());
}

struct thread_result {
    int fresh_not_null;
    int fresh_free_of_main_error;
    int own_failure_named;
};

static void *last_error_thread(void *arg) {
    struct thread_result *r = arg;
    const char *e = wsg_last_error();
    r->fresh_not_null = e != NULL;
    r->fresh_free_of_main_error = e != NULL && strstr(e, "main.thread.key") == NULL;
    wsg_config *cfg = NULL;
    if (wsg_config_new(&cfg) == WSG_OK) {
        if (wsg_config_set_int(cfg, "thread.side.key", 1) == WSG_EINVAL)
            r->own_failure_named = strstr(wsg_last_error(), "thread.side.key") != NULL;
        wsg_config_free(cfg);
    }
    return NULL;
}

static void test_last_error_is_thread_local_and_never_null_in_a_fresh_thread(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_int(cfg, "main.thread.key", 1), WSG_EINVAL);
    assert_error_mentions("main.thread.key");

    struct thread_result r = {0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, last_error_thread, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(r.fresh_not_null);
    assert_true(r.fresh_free_of_main_error);
    assert_true(r.own_failure_named);

    /* The other thread's failure did not overwrite this thread's detail. */
    assert_error_mentions("main.thread.key");
}

/* ------------------------------------------------------------------ */
/* Server constructor arguments                                        */
/* ------------------------------------------------------------------ */

static void test_server_new_with_null_config_uses_defaults(void **state) {
    (void)state;
    wsg_server *srv = NULL;
    wsg_status st = wsg_server_new(&srv, NULL);
    if (st != WSG_OK) print_error("wsg_server_new: %s: %s\n", wsg_status_str(st), wsg_last_error());
    assert_int_equal(st, WSG_OK);
    assert_non_null(srv);
    int port = -7;
    assert_int_equal(wsg_server_port(srv, &port), WSG_ESTATE); /* nothing bound yet */
    assert_int_equal(port, -7);
    size_t n = 99;
    assert_int_equal(wsg_server_conn_count(srv, &n), WSG_OK);
    assert_int_equal(n, 0);
    wsg_server_free(srv);
}

static void test_server_new_copies_its_config(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 0), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "127.0.0.1"), WSG_OK);
    wsg_server *srv = NULL;
    wsg_status st = wsg_server_new(&srv, cfg);
    if (st != WSG_OK) print_error("wsg_server_new: %s: %s\n", wsg_status_str(st), wsg_last_error());
    assert_int_equal(st, WSG_OK);
    assert_non_null(srv);
    /* The server holds its own copy: freeing the config first is allowed. */
    wsg_config_free(cfg);
    *state = NULL;
    wsg_server_free(srv);
}

/* The read buffer is shared by every connection and inflation has its own
 * buffers: compression works with the smallest read size. */
static void test_server_new_takes_compression_with_tiny_rx_buffer(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_config_set_bool(cfg, "compression.enabled", 1), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "tuning.rx_buffer_bytes", 125), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 0), WSG_OK);
    wsg_server *srv = NULL;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    assert_non_null(srv);
    wsg_server_free(srv);
}

static void test_server_new_rejects_null_out(void **state) {
    wsg_config *cfg = *state;
    assert_int_equal(wsg_server_new(NULL, cfg), WSG_EINVAL);
    assert_error_mentions("out");
    assert_int_equal(wsg_server_new(NULL, NULL), WSG_EINVAL);
}

static void test_server_free_accepts_null(void **state) {
    (void)state;
    wsg_server_free(NULL);
    assert_non_null(wsg_last_error());
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_config, teardown_config)
    const struct CMUnitTest tests[] = {
        T(test_option_table_rows_are_complete),
        T(test_option_names_are_unique),
        T(test_option_describe_rejects_bad_index_field_and_null),
        T(test_option_find_finds_every_name),
        T(test_option_find_reports_unknown_names),
        T(test_every_default_reads_back_with_its_typed_getter),
        T(test_getters_of_other_types_fail_for_every_option),
        T(test_every_int_option_accepts_its_min_and_max),
        T(test_every_int_option_rejects_just_outside_its_range),
        T(test_int_round_trip),
        T(test_string_round_trip_copies_the_value),
        T(test_enum_round_trip_for_every_choice),
        T(test_bool_round_trip_when_a_bool_option_exists),
        T(test_set_bool_on_non_bool_options_fails_and_changes_nothing),
        T(test_unknown_key_is_rejected_and_named),
        T(test_unknown_key_suggests_the_closest_names),
        T(test_out_of_range_ints_are_rejected_and_change_nothing),
        T(test_type_mismatch_is_rejected_and_changes_nothing),
        T(test_enum_value_outside_choices_is_rejected),
        T(test_listen_host_accepts_address_literals_only),
        T(test_server_path_accepts_plain_absolute_paths_only),
        T(test_set_from_string_parses_by_option_type),
        T(test_set_from_string_keeps_later_equals_signs_in_the_value),
        T(test_set_from_string_rejects_malformed_assignments),
        T(test_null_arguments_are_rejected_without_crashing),
        T(test_config_copy_is_independent),
        T(test_config_copy_rejects_null_arguments),
        T(test_config_free_accepts_null),
        T(test_status_str_names_every_status),
        T(test_close_cause_str_names_every_cause),
        T(test_version_matches_header),
        T(test_last_error_is_never_null),
        T(test_last_error_is_thread_local_and_never_null_in_a_fresh_thread),
        T(test_server_new_with_null_config_uses_defaults),
        T(test_server_new_copies_its_config),
        T(test_server_new_takes_compression_with_tiny_rx_buffer),
        T(test_server_new_rejects_null_out),
        T(test_server_free_accepts_null),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
