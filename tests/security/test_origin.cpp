// The Origin policy matrix (lib/origin): parsing, exact and wildcard
// matches, the tricky look-alikes, same-origin, null, missing and repeated
// headers.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
extern "C" {
#include <cmocka.h>
}

#include <cstring>
#include <string>

#include "security/origin.h"

using wsgate::Origin;
using wsgate::OriginPolicy;

static OriginPolicy policy(const char *list) {
    OriginPolicy p;
    std::string err = OriginPolicy::parse(list, &p);
    if (!err.empty()) fail_msg("policy '%s' refused: %s", list, err.c_str());
    return p;
}

static std::string check(const OriginPolicy &p, const char *origin, const char *host = "ws.internal:9000",
                         bool tls = false, bool require = false, int count = -1) {
    OriginPolicy::Request r;
    r.origin_count = count >= 0 ? count : (origin ? 1 : 0);
    r.origin = origin ? origin : "";
    r.host = host;
    r.tls = tls;
    return p.check(r, require);
}

#define ALLOWED(p, ...) assert_string_equal(check(p, __VA_ARGS__).c_str(), "")
#define REFUSED(p, ...) assert_string_not_equal(check(p, __VA_ARGS__).c_str(), "")

static void origins_parse_and_normalise(void **) {
    Origin o;
    assert_true(Origin::parse("HTTPS://App.Example.COM", &o));
    assert_string_equal(o.scheme.c_str(), "https");
    assert_string_equal(o.host.c_str(), "app.example.com");
    assert_int_equal(o.port, 443);
    assert_true(Origin::parse("http://localhost:8080", &o));
    assert_int_equal(o.port, 8080);
    assert_true(Origin::parse("http://[::1]:8080", &o));
    assert_string_equal(o.host.c_str(), "[::1]");
    assert_true(Origin::parse("chrome-extension://abcdef:1", &o));
    const char *bad[] = {"app.example.com", "https://", "https://a.com/", "https://a.com/path",
                         "https://user@a.com", "https://a.com:0", "https://a.com:65536",
                         "https://a.com:abc", "https://a.com:", "foo://a.com", "https://a..com",
                         "https://.a.com", "https://a.com.", "https://a.com?x", "https://a.com#f",
                         "https://a com", "://a.com", "https://[::1", "https://a.com:80:80", "null"};
    for (const char *b : bad)
        if (Origin::parse(b, &o)) fail_msg("'%s' parsed as an origin", b);
}

static void exact_entries_match_scheme_host_and_port(void **) {
    OriginPolicy p = policy("https://app.example.com, http://localhost:8080");
    ALLOWED(p, "https://app.example.com");
    ALLOWED(p, "https://APP.Example.com");
    ALLOWED(p, "HTTPS://app.example.com:443");
    ALLOWED(p, "http://localhost:8080");
    REFUSED(p, "http://app.example.com");
    REFUSED(p, "https://app.example.com:8443");
    REFUSED(p, "https://evil.app.example.com");
    REFUSED(p, "https://app.example.com.evil.net");
    REFUSED(p, "https://appexample.com");
    REFUSED(p, "http://localhost");
    REFUSED(p, "http://localhost:8081");
    REFUSED(p, "https://app.example.com/");  // malformed: has a path
    REFUSED(p, "null");
}

static void wildcards_match_subdomains_only(void **) {
    OriginPolicy p = policy("https://*.example.com");
    ALLOWED(p, "https://a.example.com");
    ALLOWED(p, "https://a.b.example.com");
    ALLOWED(p, "https://A.EXAMPLE.COM");
    REFUSED(p, "https://example.com");
    REFUSED(p, "https://evilexample.com");
    REFUSED(p, "https://example.com.evil.net");
    REFUSED(p, "https://a.example.com.evil.net");
    REFUSED(p, "https://aexample.com");
    REFUSED(p, "http://a.example.com");
    REFUSED(p, "https://a.example.com:444");
    REFUSED(p, "https://.example.com");
    OriginPolicy ported = policy("http://*.dev.test:3000");
    ALLOWED(ported, "http://x.dev.test:3000");
    REFUSED(ported, "http://x.dev.test");
}

static void star_allows_any_wellformed_origin_but_not_null(void **) {
    OriginPolicy p = policy("*");
    ALLOWED(p, "https://anything.example");
    ALLOWED(p, "http://[::1]:1234");
    REFUSED(p, "null");
    REFUSED(p, "not an origin");
    REFUSED(p, "https://a.com", "h", false, false, 2);  // repeated header
}

static void null_only_when_listed(void **) {
    REFUSED(policy(""), "null");
    ALLOWED(policy("null"), "null");
    ALLOWED(policy("https://a.com, null"), "null");
    ALLOWED(policy("NULL"), "null");
}

static void empty_list_means_same_origin(void **) {
    OriginPolicy p = policy("");
    ALLOWED(p, "http://ws.internal:9000");
    ALLOWED(p, "http://WS.internal:9000");
    REFUSED(p, "https://ws.internal:9000");  // plain request: the page is http
    REFUSED(p, "http://ws.internal:9001");
    REFUSED(p, "http://ws.internal");
    REFUSED(p, "http://evil.example");
    ALLOWED(p, "http://example.com", "example.com");       // default port 80
    ALLOWED(p, "https://example.com", "example.com", true); // TLS: https, 443
    REFUSED(p, "http://example.com", "example.com", true);
    ALLOWED(p, "http://[::1]:8080", "[::1]:8080");
    REFUSED(p, "http://a.com", "");  // no Host: nothing is same-origin
}

// The Host header is the client's: with a list, same origin by Host counts
// only when asked for (it used to pass any list: DNS rebinding).
static void same_origin_by_host_only_when_asked(void **) {
    using Mode = OriginPolicy::SameOrigin;
    OriginPolicy listed = policy("https://a.com");
    REFUSED(listed, "http://ws.internal:9000");
    REFUSED(listed, "http://attacker.test", "attacker.test", false, true);
    ALLOWED(listed, "https://a.com", "attacker.test", false, true);
    REFUSED(policy("null"), "http://attacker.test", "attacker.test");
    REFUSED(policy("https://*.a.com"), "http://attacker.test", "attacker.test");
    listed.set_same_origin(Mode::Always);
    ALLOWED(listed, "http://attacker.test", "attacker.test", false, true);
    ALLOWED(listed, "https://a.com");
    listed.set_same_origin(Mode::Auto);
    REFUSED(listed, "http://attacker.test", "attacker.test");

    OriginPolicy empty = policy("");
    empty.set_same_origin(Mode::Never);
    REFUSED(empty, "http://ws.internal:9000");
    ALLOWED(empty, nullptr);  // native clients are not concerned
    assert_non_null(strstr(check(empty, "http://ws.internal:9000").c_str(), "no origin listed"));
    empty.set_same_origin(Mode::Auto);
    ALLOWED(empty, "http://ws.internal:9000");
    // "*" allows every origin whatever the mode.
    OriginPolicy any = policy("*");
    any.set_same_origin(Mode::Never);
    ALLOWED(any, "http://attacker.test", "attacker.test");
}

static void missing_and_repeated_headers(void **) {
    OriginPolicy p = policy("https://a.com");
    ALLOWED(p, nullptr);                           // native client
    REFUSED(p, nullptr, "h", false, true);         // required
    ALLOWED(p, "https://a.com", "h", false, true); // required and present
    REFUSED(p, "https://a.com", "h", false, false, 2);
    REFUSED(policy("*"), nullptr, "h", false, true);
}

static void bad_lists_are_refused_with_the_entry(void **) {
    const char *bad[] = {"https://*.example.com/x", "*.example.com", "https://a*.example.com",
                         "https://a.com,,https://b.com", "https://*.[::1]", "example.com",
                         "https://*", "ftp://a.com"};
    for (const char *b : bad) {
        OriginPolicy p;
        std::string err = OriginPolicy::parse(b, &p);
        if (err.empty()) fail_msg("list '%s' accepted", b);
    }
    OriginPolicy p;
    std::string err = OriginPolicy::parse("https://ok.com, example.com", &p);
    assert_non_null(strstr(err.c_str(), "example.com"));
    // Spaces around entries and a trailing comma are fine.
    assert_string_equal(OriginPolicy::parse(" https://a.com , https://b.com ,", &p).c_str(), "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(origins_parse_and_normalise),
        cmocka_unit_test(exact_entries_match_scheme_host_and_port),
        cmocka_unit_test(wildcards_match_subdomains_only),
        cmocka_unit_test(star_allows_any_wellformed_origin_but_not_null),
        cmocka_unit_test(null_only_when_listed),
        cmocka_unit_test(empty_list_means_same_origin),
        cmocka_unit_test(same_origin_by_host_only_when_asked),
        cmocka_unit_test(missing_and_repeated_headers),
        cmocka_unit_test(bad_lists_are_refused_with_the_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
