/* Authentication before the upgrade, through real clients: JWT from every
 * token source, the 401/403 answers, the application's authenticator,
 * claims in the connection info and the close when a token expires. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"
static const char SECRET[] = "0123456789abcdef0123456789abcdef-test-secret";
static char secret_path[64];

static void b64url(const unsigned char *in, size_t n, char *out) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = al[(v >> 18) & 63];
        out[o++] = al[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = al[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = al[v & 63];
    }
    out[o] = 0;
}

/* An HS256 JWT over `payload` (alg may be overridden to forge "none"). */
static char *make_token(const char *alg, const char *payload, const char *key) {
    char header[64], h64[128], sig64[128];
    char *p64 = malloc(strlen(payload) / 3 * 4 + 8);
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    b64url((const unsigned char *)header, strlen(header), h64);
    b64url((const unsigned char *)payload, strlen(payload), p64);
    char *input = malloc(strlen(h64) + strlen(p64) + 2);
    sprintf(input, "%s.%s", h64, p64);
    free(p64);
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)input, strlen(input), mac, &maclen);
    b64url(mac, maclen, sig64);
    char *tok = malloc(strlen(input) + strlen(sig64) + 2);
    sprintf(tok, "%s.%s", input, strcmp(alg, "none") == 0 ? "" : sig64);
    free(input);
    return tok;
}

static char *token_for(const char *sub, long exp_in) {
    char payload[256];
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"exp\":%ld,\"role\":\"tester\"}", sub,
             (long)time(NULL) + exp_in);
    return make_token("HS256", payload, SECRET);
}

static int setup_secret(void **state) {
    (void)state;
    snprintf(secret_path, sizeof secret_path, "/tmp/wsg-auth-%d.secret", (int)getpid());
    FILE *f = fopen(secret_path, "w");
    if (!f) return -1;
    fputs(SECRET, f);
    fclose(f);
    return 0;
}

static int teardown_secret(void **state) {
    (void)state;
    unlink(secret_path);
    return 0;
}

static tsrv *jwt_server(const char *sources, const char *extra) {
    char s1[128], s2[96], s3[128];
    snprintf(s1, sizeof s1, "auth.jwt.secret_file=%s", secret_path);
    snprintf(s2, sizeof s2, "auth.token_sources=%s", sources);
    snprintf(s3, sizeof s3, "%s", extra ? extra : "auth.jwt.leeway_s=60");
    const char *settings[] = {"auth.mode=jwt", s1, s2, s3, "server.subprotocols=chat", NULL};
    return tsrv_start(settings, 1);
}

static int status_of(tsrv *t, const char *path, const char *headers, char **head) {
    int status = 0;
    wsc *c = wsc_connect_ex(HOST, t->port, path, headers, 3000, &status, head);
    if (c) wsc_free(c);
    return status;
}

static void info_string(tsrv *t, wsg_conn_id id, wsg_info_key key, char *out, size_t cap) {
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(t->srv, id, &info), WSG_OK);
    const char *s;
    assert_int_equal(wsg_conn_info_string(info, key, &s), WSG_OK);
    snprintf(out, cap, "%s", s);
    wsg_conn_info_free(info);
}

static void jwt_refusals_are_401_and_reveal_nothing(void **state) {
    (void)state;
    tsrv *t = jwt_server("header", NULL);
    assert_non_null(t);
    char *head = NULL;
    /* No token. */
    assert_int_equal(status_of(t, "/", NULL, &head), 401);
    assert_non_null(strstr(head, "www-authenticate: Bearer realm=\"wsgate\""));
    assert_null(strstr(head, "invalid_token"));
    free(head);
    /* Each way to be wrong: signature, expiry, alg none, garbage. */
    char *bad[5];
    char payload[128];
    snprintf(payload, sizeof payload, "{\"sub\":\"alice\",\"exp\":%ld}", (long)time(NULL) + 600);
    bad[0] = make_token("HS256", payload, "another-secret-another-secret-!!");
    bad[1] = token_for("alice", -3600);
    bad[2] = make_token("none", payload, SECRET);
    bad[3] = strdup("not.a.jwt");
    snprintf(payload, sizeof payload, "{\"exp\":%ld}", (long)time(NULL) + 600); /* no sub */
    bad[4] = make_token("HS256", payload, SECRET);
    for (int i = 0; i < 5; i++) {
        char hdr[1200];
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", bad[i]);
        head = NULL;
        int st = status_of(t, "/", hdr, &head);
        if (st != 401) fail_msg("bad token %d: status %d", i, st);
        assert_non_null(strstr(head, "error=\"invalid_token\""));
        /* The body says nothing about why. */
        assert_non_null(strstr(head, "content-length: 24\r\n"));
        free(head);
        free(bad[i]);
    }
    assert_int_equal(tsrv_opens(t), 0);
    /* A good token still works after all that. */
    char *good = token_for("alice", 600);
    char hdr[1200];
    snprintf(hdr, sizeof hdr, "Authorization: bearer %s\r\n", good);
    assert_int_equal(status_of(t, "/", hdr, NULL), 101);
    free(good);
    tsrv_free(t);
}

static void jwt_user_and_claims_from_each_source(void **state) {
    (void)state;
    tsrv *t = jwt_server("header,query,cookie,subprotocol", NULL);
    assert_non_null(t);
    char *tok = token_for("alice", 600);
    char hdr[1400], path[1200], buf[512], origin[64];
    int status;
    /* With cookie among the sources every request needs an Origin. */
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%d\r\n", t->port);

    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    assert_int_equal(status_of(t, "/", hdr, NULL), 403);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n%s", tok, origin);
    wsc *c = wsc_connect(HOST, t->port, "/", hdr, 3000, &status);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 1, 3000));
    info_string(t, tsrv_last_open(t), WSG_INFO_USER_ID, buf, sizeof buf);
    assert_string_equal(buf, "alice");
    info_string(t, tsrv_last_open(t), WSG_INFO_CLAIMS, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"role\":\"tester\""));
    wsc_free(c);

    /* Query: the token never reaches the connection's query. */
    snprintf(path, sizeof path, "/?room=1&access_token=%s", tok);
    c = wsc_connect(HOST, t->port, path, origin, 3000, &status);
    if (!c) fail_msg("query token: status %d", status);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 2, 3000));
    info_string(t, tsrv_last_open(t), WSG_INFO_QUERY, buf, sizeof buf);
    assert_string_equal(buf, "room=1");
    wsc_free(c);

    /* Cookie: Origin becomes mandatory (a cross-site page must not ride on it). */
    snprintf(hdr, sizeof hdr, "Cookie: theme=dark; access_token=%s\r\n", tok);
    assert_int_equal(status_of(t, "/", hdr, NULL), 403);
    snprintf(hdr, sizeof hdr, "Cookie: theme=dark; access_token=%s\r\nOrigin: http://127.0.0.1:%d\r\n",
             tok, t->port);
    c = wsc_connect(HOST, t->port, "/", hdr, 3000, &status);
    assert_non_null(c);
    wsc_free(c);

    /* Subprotocol: a whole JWT travels in the offer (the browser way), the
       answer names "chat" only: the token is never echoed. (With lws' ws
       role, offers were capped at 126 bytes and this got 400.) */
    snprintf(hdr, sizeof hdr, "Sec-WebSocket-Protocol: chat, bearer.%s\r\n%s", tok, origin);
    assert_true(strlen(tok) > 126);  /* past the old cap */
    char *head = NULL;
    c = wsc_connect_ex(HOST, t->port, "/", hdr, 3000, &status, &head);
    if (!c) fail_msg("subprotocol token: status %d", status);
    assert_int_equal(status, 101);
    assert_non_null(head);
    assert_non_null(strstr(head, "sec-websocket-protocol: chat\r\n"));
    assert_null(strstr(head, "bearer."));
    free(head);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 4, 3000));
    info_string(t, tsrv_last_open(t), WSG_INFO_USER_ID, buf, sizeof buf);
    assert_string_equal(buf, "alice");
    info_string(t, tsrv_last_open(t), WSG_INFO_SUBPROTOCOL, buf, sizeof buf);
    assert_string_equal(buf, "chat");
    wsc_free(c);

    /* A percent-encoded parameter name is the same parameter: the token
       authenticates, and it is gone from the query all the same. */
    snprintf(path, sizeof path, "/?acc%%65ss_token=%s&room=2", tok);
    c = wsc_connect(HOST, t->port, path, origin, 3000, &status);
    if (!c) fail_msg("encoded query token: status %d", status);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 5, 3000));
    info_string(t, tsrv_last_open(t), WSG_INFO_QUERY, buf, sizeof buf);
    assert_string_equal(buf, "room=2");
    wsc_free(c);
    free(tok);
    tsrv_free(t);
}

static void expired_token_closes_the_connection(void **state) {
    (void)state;
    tsrv *t = jwt_server("header", "auth.jwt.leeway_s=0");
    assert_non_null(t);
    char *tok = token_for("alice", 2);
    char hdr[1200];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    int status;
    wsc *c = wsc_connect(HOST, t->port, "/", hdr, 3000, &status);
    assert_non_null(c);
    int64_t t0 = tu_now_ms();
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 5000, 1, &code), 1);
    int64_t took = tu_now_ms() - t0;
    assert_int_equal(code, 1008);
    assert_true(took >= 900 && took <= 2600); /* exp has one-second resolution */
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 3000, &r), 1);
    assert_int_equal(r.cause, WSG_CAUSE_TOKEN_EXPIRED);
    wsc_free(c);
    free(tok);
    tsrv_free(t);
}

/* An exp near or past INT64_MAX / 1000 seconds (9.2e15) once overflowed when
 * turned into milliseconds: the connection opened and was closed at once as
 * expired. Now such a token lasts (as any exp past the year 2100 would). */
static void far_future_exp_does_not_expire_at_once(void **state) {
    (void)state;
    tsrv *t = jwt_server("header", "auth.expiry_grace_ms=86400000");
    assert_non_null(t);
    const char *exps[] = {"9223372036854775", "9223372036854776", "9300000000000000",
                          "9223372036854775807", "1e19", "4102444800"};
    wsc *open[sizeof exps / sizeof *exps];
    for (size_t i = 0; i < sizeof exps / sizeof *exps; i++) {
        char payload[128], hdr[1200];
        snprintf(payload, sizeof payload, "{\"sub\":\"far%zu\",\"exp\":%s}", i, exps[i]);
        char *tok = make_token("HS256", payload, SECRET);
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
        free(tok);
        int status = 0;
        open[i] = wsc_connect(HOST, t->port, "/", hdr, 3000, &status);
        if (!open[i]) fail_msg("exp %s: status %d", exps[i], status);
    }
    /* Several heartbeat ticks (100 ms): an overdue deadline would have fired. */
    tu_sleep_ms(400);
    tsrv_close r;
    if (tsrv_wait_close(t, 0, 0, &r))
        fail_msg("a connection was closed (code %d, cause %s)", r.code, wsg_close_cause_str(r.cause));
    for (size_t i = 0; i < sizeof exps / sizeof *exps; i++) {
        assert_int_equal(wsc_send_text(open[i], "still"), 0);
        wsc_frame f;
        if (wsc_recv_message(open[i], &f, 3000) != 1) fail_msg("exp %s: closed", exps[i]);
        wsc_frame_free(&f);
        wsc_free(open[i]);
    }
    assert_true(WAIT_UNTIL(tsrv_closes(t) == (int)(sizeof exps / sizeof *exps), 3000));
    for (int i = 0; i < (int)(sizeof exps / sizeof *exps); i++) {
        assert_int_equal(tsrv_wait_close(t, i, 1000, &r), 1);
        assert_int_not_equal(r.cause, WSG_CAUSE_TOKEN_EXPIRED);
    }
    tsrv_free(t);
}

/* A valid token of about `bytes` characters (a padding claim makes it long). */
static char *long_token(const char *sub, size_t bytes) {
    size_t pad = bytes * 3 / 4;
    char *payload = malloc(pad + 128);
    int n = sprintf(payload, "{\"sub\":\"%s\",\"exp\":%ld,\"pad\":\"", sub, (long)time(NULL) + 600);
    memset(payload + n, 'p', pad);
    strcpy(payload + n + pad, "\"}");
    char *tok = make_token("HS256", payload, SECRET);
    free(payload);
    return tok;
}

/* A token longer than the request line (query) or the header block
 * (Authorization) gets 414 or 431 with a reason, never a silent close; the
 * limits are options. Past them, the verifier's own cap (8 KiB) answers 401. */
static tsrv *limits_server(const char *line_bytes, const char *header_bytes) {
    char s1[128], s2[96], s3[96];
    snprintf(s1, sizeof s1, "auth.jwt.secret_file=%s", secret_path);
    snprintf(s2, sizeof s2, "limits.max_request_line_bytes=%s", line_bytes);
    snprintf(s3, sizeof s3, "limits.max_header_bytes=%s", header_bytes);
    const char *settings[] = {"auth.mode=jwt", s1, "auth.token_sources=query,header", s2, s3, NULL};
    return tsrv_start(settings, 1);
}

static void expect_answer(tsrv *t, const char *path, const char *hdr, int status, const char *line) {
    char *head = NULL;
    int got = status_of(t, path, hdr, &head);
    if (got != status) fail_msg("path of %zu bytes, header of %zu: status %d, expected %d", strlen(path),
                                hdr ? strlen(hdr) : 0, got, status);
    assert_non_null(head);
    if (line && strncmp(head, line, strlen(line)) != 0) fail_msg("answer %.60s, expected %s", head, line);
    if (status == 401) assert_non_null(strstr(head, "www-authenticate: Bearer"));
    free(head);
}

static void long_tokens_get_an_answer(void **state) {
    (void)state;
    char *tok = long_token("big", 6000), *huge = long_token("huge", 20000);
    size_t cap = strlen(huge) + 64;
    char *path = malloc(cap), *hdr = malloc(cap), *hpath = malloc(cap), *hhdr = malloc(cap);
    snprintf(path, cap, "/?access_token=%s", tok);
    snprintf(hdr, cap, "Authorization: Bearer %s\r\n", tok);
    snprintf(hpath, cap, "/?access_token=%s", huge);
    snprintf(hhdr, cap, "Authorization: Bearer %s\r\n", huge);

    /* Defaults (8192-byte request line, 16384 header bytes). */
    tsrv *t = limits_server("8192", "16384");
    assert_non_null(t);
    expect_answer(t, path, NULL, 101, NULL);
    expect_answer(t, "/", hdr, 101, NULL);
    expect_answer(t, hpath, NULL, 414, "HTTP/1.1 414 URI Too Long\r\n");
    expect_answer(t, "/", hhdr, 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 2, 3000));
    tsrv_free(t);

    /* Lowered limits refuse the 6000-byte token where it travels. */
    t = limits_server("4096", "4096");
    assert_non_null(t);
    expect_answer(t, path, NULL, 414, "HTTP/1.1 414 ");
    expect_answer(t, "/", hdr, 431, "HTTP/1.1 431 ");
    tsrv_free(t);

    /* Raised limits: the 20000-byte token reaches the verifier, whose cap
     * refuses it with 401 (reason too_large in the log). */
    t = limits_server("16384", "61440");
    assert_non_null(t);
    expect_answer(t, hpath, NULL, 414, "HTTP/1.1 414 ");
    expect_answer(t, "/", hhdr, 401, "HTTP/1.1 401 ");
    tsrv_free(t);
    free(path);
    free(hdr);
    free(hpath);
    free(hhdr);
    free(tok);
    free(huge);
}

/* ---- the application's authenticator ---- */
struct seen {
    char path[64], peer[64], jwt_user[64];
    int calls;
};

static void authenticator(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    struct seen *seen = user;
    seen->calls++;
    const char *v;
    wsg_auth_request_get(req, WSG_AUTH_PATH, &v);
    snprintf(seen->path, sizeof seen->path, "%s", v);
    wsg_auth_request_get(req, WSG_AUTH_PEER_ADDR, &v);
    snprintf(seen->peer, sizeof seen->peer, "%s", v);
    wsg_auth_request_get(req, WSG_AUTH_JWT_USER, &v);
    snprintf(seen->jwt_user, sizeof seen->jwt_user, "%s", v);
    if (*seen->jwt_user) {
        if (strcmp(seen->jwt_user, "mallory") == 0) wsg_auth_refuse(req, 403, "banned user");
        else wsg_auth_accept(req, NULL);
        return;
    }
    wsg_auth_request_get(req, WSG_AUTH_TOKEN, &v);
    if (strcmp(v, "k-carol") == 0) {
        wsg_auth_accept(req, "carol");
        return;
    }
    if (wsg_auth_request_header(req, "X-Api-Key", &v) != WSG_OK) return; /* decides nothing */
    if (strcmp(v, "good") == 0) {
        wsg_auth_set_timeout(req, "heartbeat.idle_timeout_ms", 300);
        wsg_auth_accept(req, "bob");
    } else {
        wsg_auth_refuse(req, 403, "bad key");
    }
}

static wsg_server *callback_server(const char *mode, struct seen *seen, int *port) {
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", HOST);
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "off");
    wsg_config_set_string(cfg, "auth.mode", mode);
    wsg_config_set_string(cfg, "auth.jwt.secret_file", secret_path);
    wsg_config_set_string(cfg, "auth.token_sources", "header,subprotocol");
    wsg_config_set_string(cfg, "server.subprotocols", "chat");
    wsg_server *srv;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_auth(srv, authenticator, seen, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    assert_int_equal(wsg_server_on_auth(srv, authenticator, seen, NULL), WSG_ESTATE);
    wsg_server_port(srv, port);
    return srv;
}

static void custom_authenticator_decides(void **state) {
    (void)state;
    struct seen seen = {{0}, {0}, {0}, 0};
    int port, status;
    wsg_server *srv = callback_server("callback", &seen, &port);
    assert_null(wsc_connect(HOST, port, "/a", NULL, 3000, &status));
    assert_int_equal(status, 401); /* decided nothing */
    assert_null(wsc_connect(HOST, port, "/a", "X-Api-Key: wrong\r\n", 3000, &status));
    assert_int_equal(status, 403);
    wsc *c = wsc_connect(HOST, port, "/room", "X-Api-Key: good\r\n", 3000, &status);
    assert_non_null(c);
    assert_string_equal(seen.path, "/room");
    assert_string_equal(seen.peer, "127.0.0.1");
    assert_int_equal(seen.calls, 3);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    wsg_conn_id id;
    size_t n;
    wsg_server_conn_ids(srv, &id, 1, &n);
    wsg_conn_info *info;
    wsg_conn_info_get(srv, id, &info);
    const char *user;
    wsg_conn_info_string(info, WSG_INFO_USER_ID, &user);
    assert_string_equal(user, "bob");
    wsg_conn_info_free(info);
    /* A short token offered as a subprotocol (the browser way). */
    char *head = NULL;
    wsc *sp = wsc_connect_ex(HOST, port, "/", "Sec-WebSocket-Protocol: chat, bearer.k-carol\r\n", 3000,
                             &status, &head);
    assert_non_null(sp);
    assert_non_null(strstr(head, "chat"));
    assert_null(strstr(head, "bearer."));
    free(head);
    wsc_free(sp);
    /* The per-connection idle timeout the authenticator set applies. */
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
    assert_int_equal(code, 1001);
    wsc_free(c);
    wsg_server_free(srv);
}

static void jwt_then_callback(void **state) {
    (void)state;
    struct seen seen = {{0}, {0}, {0}, 0};
    int port, status;
    wsg_server *srv = callback_server("jwt+callback", &seen, &port);
    char *tok = token_for("mallory", 600), hdr[1200];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    assert_null(wsc_connect(HOST, port, "/", hdr, 3000, &status));
    assert_int_equal(status, 403);
    assert_string_equal(seen.jwt_user, "mallory");
    free(tok);
    tok = token_for("alice", 600);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    wsc *c = wsc_connect(HOST, port, "/", hdr, 3000, &status);
    assert_non_null(c);
    assert_string_equal(seen.jwt_user, "alice");
    /* A bad JWT never reaches the callback. */
    int calls = seen.calls;
    assert_null(wsc_connect(HOST, port, "/", "Authorization: Bearer x.y.z\r\n", 3000, &status));
    assert_int_equal(status, 401);
    assert_int_equal(seen.calls, calls);
    wsc_free(c);
    free(tok);
    wsg_server_free(srv);
}

static void bad_auth_configuration_fails_at_creation(void **state) {
    (void)state;
    wsg_config *cfg;
    wsg_server *srv = NULL;
    wsg_config_new(&cfg);
    assert_int_equal(wsg_config_set_string(cfg, "auth.mode", "jwt"), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "auth.jwt.secret_file"));
    assert_int_equal(wsg_config_set_string(cfg, "auth.jwt.secret_file", "/nonexistent/secret"), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "/nonexistent/secret"));
    assert_null(srv);
    assert_int_equal(wsg_config_set_string(cfg, "auth.token_sources", "header,carrier-pigeon"), WSG_EINVAL);
    wsg_config_free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jwt_refusals_are_401_and_reveal_nothing),
        cmocka_unit_test(jwt_user_and_claims_from_each_source),
        cmocka_unit_test(expired_token_closes_the_connection),
        cmocka_unit_test(far_future_exp_does_not_expire_at_once),
        cmocka_unit_test(long_tokens_get_an_answer),
        cmocka_unit_test(custom_authenticator_decides),
        cmocka_unit_test(jwt_then_callback),
        cmocka_unit_test(bad_auth_configuration_fails_at_creation),
    };
    return cmocka_run_group_tests(tests, setup_secret, teardown_secret);
}
