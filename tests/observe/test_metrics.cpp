// The metrics module: label indexes, counting, histogram buckets, and the
// text exposition (every metric of the list once, with HELP and TYPE, every
// label value as its own series, cumulative buckets ending in +Inf = _count).
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "observe/metrics.h"

extern "C" {
#include <cmocka.h>
}

using wsgate::Metrics;
namespace metric = wsgate::metric;

namespace {

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The value of the sample written exactly as `series` ("name{...}").
std::string sample(const std::string &text, const std::string &series) {
    for (const std::string &l : lines_of(text))
        if (l.compare(0, series.size() + 1, series + " ") == 0) return l.substr(series.size() + 1);
    return "<absent>";
}

}  // namespace

static void test_label_indexes_cover_every_value(void **) {
    assert_int_equal(metric::cause_index(WSG_CAUSE_PEER), 0);
    assert_string_equal(metric::CauseLabel::values[metric::cause_index(WSG_CAUSE_PROTOCOL_ERROR)],
                        "protocol_error");
    assert_string_equal(metric::CauseLabel::values[metric::cause_index(WSG_CAUSE_BACKPRESSURE)], "backpressure");
    assert_string_equal(metric::PolicyLabel::values[metric::policy_index(WSG_QUEUE_CONFLATE)], "conflate");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(1000)], "1000");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(1006)], "1006");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(1015)], "1015");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(3000)], "3xxx");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(3999)], "3xxx");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(4401)], "4xxx");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(1004)], "other");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(0)], "other");
    assert_string_equal(metric::CodeLabel::values[metric::code_index(5000)], "other");
    assert_int_equal(metric::code_index(5000), metric::CodeLabel::count - 1);
    assert_string_equal(metric::RefusalLabel::values[static_cast<size_t>(metric::Refusal::shutdown)], "shutdown");
}

static void test_counters_gauges_and_histograms_count(void **) {
    Metrics m;
    m.handshakes_accepted.inc();
    m.handshakes_accepted.inc(4);
    m.handshakes_refused.add(metric::Refusal::origin);
    m.handshakes_refused.add(metric::Refusal::origin);
    m.closes.add(metric::cause_index(WSG_CAUSE_PEER));
    m.queued_bytes.add(100);
    m.queued_bytes.add(-30);
    m.ping_rtt.observe_us(250);      // on the first bound: in it (le is inclusive)
    m.ping_rtt.observe_us(251);      // the next
    m.ping_rtt.observe_us(-5);       // a clock step: counted as 0
    m.ping_rtt.observe_us(60000000); // past the last bound: +Inf only
    assert_int_equal(m.handshakes_accepted.get(), 5);
    assert_int_equal(m.handshakes_refused.get(static_cast<size_t>(metric::Refusal::origin)), 2);
    assert_int_equal(m.queued_bytes.get(), 70);
    assert_int_equal(m.ping_rtt.count(), 4);

    const std::string text = m.render();
    assert_string_equal(sample(text, "wsgate_handshakes_accepted_total").c_str(), "5");
    assert_string_equal(sample(text, "wsgate_handshakes_refused_total{reason=\"origin\"}").c_str(), "2");
    assert_string_equal(sample(text, "wsgate_handshakes_refused_total{reason=\"path\"}").c_str(), "0");
    assert_string_equal(sample(text, "wsgate_closes_total{cause=\"peer\"}").c_str(), "1");
    assert_string_equal(sample(text, "wsgate_queued_bytes").c_str(), "70");
    // Buckets are cumulative, in seconds.
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_bucket{le=\"0.00025\"}").c_str(), "2");
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_bucket{le=\"0.0005\"}").c_str(), "3");
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_bucket{le=\"10\"}").c_str(), "3");
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_bucket{le=\"+Inf\"}").c_str(), "4");
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_count").c_str(), "4");
    assert_string_equal(sample(text, "wsgate_ping_rtt_seconds_sum").c_str(), "60.000501");
    // A labelled histogram puts its label before le.
    m.handshake_seconds.observe_us(1500, metric::TransportKind::tls);
    const std::string t2 = m.render();
    assert_string_equal(
        sample(t2, "wsgate_handshake_duration_seconds_bucket{transport=\"tls\",le=\"0.0025\"}").c_str(), "1");
    assert_string_equal(
        sample(t2, "wsgate_handshake_duration_seconds_bucket{transport=\"tcp\",le=\"+Inf\"}").c_str(), "0");
    assert_string_equal(sample(t2, "wsgate_handshake_duration_seconds_sum{transport=\"tls\"}").c_str(), "0.0015");
}

static void test_exposition_has_every_metric_once_with_help_and_type(void **) {
    Metrics m;
    const std::string expo = m.render();
    std::map<std::string, std::string> types;
    std::map<std::string, int> helps;
    std::set<std::string> sampled;
    for (const std::string &l : lines_of(expo)) {
        assert_false(l.empty());
        if (l.compare(0, 7, "# HELP ") == 0) {
            helps[l.substr(7, l.find(' ', 7) - 7)]++;
            continue;
        }
        if (l.compare(0, 7, "# TYPE ") == 0) {
            const size_t sp = l.find(' ', 7);
            const std::string name = l.substr(7, sp - 7);
            assert_true(types.emplace(name, l.substr(sp + 1)).second);
            continue;
        }
        const size_t end = l.find_first_of("{ ");
        sampled.insert(l.substr(0, end));
    }
    size_t listed = 0;
#define CHECK_(id, kind, labels, buckets, name, help)                                         \
    listed++;                                                                                 \
    assert_int_equal(helps[name], 1);                                                         \
    assert_true(std::strncmp(name, "wsgate_", 7) == 0);                                       \
    if (std::string(#kind) == "Counter") {                                                    \
        assert_string_equal(types[name].c_str(), "counter");                                  \
        assert_true(std::string(name).size() > 6 &&                                          \
                    std::string(name).compare(std::string(name).size() - 6, 6, "_total") == 0); \
        assert_true(sampled.count(name));                                                     \
    } else if (std::string(#kind) == "Gauge") {                                               \
        assert_string_equal(types[name].c_str(), "gauge");                                    \
        assert_true(sampled.count(name));                                                     \
    } else {                                                                                  \
        assert_string_equal(types[name].c_str(), "histogram");                                \
        assert_true(sampled.count(std::string(name) + "_bucket"));                            \
        assert_true(sampled.count(std::string(name) + "_sum"));                               \
        assert_true(sampled.count(std::string(name) + "_count"));                             \
    }
    WSGATE_METRICS(CHECK_)
#undef CHECK_
    assert_int_equal(types.size(), listed);
    // Every close cause is its own series, even at 0 (rate() needs them).
#define CAUSE_(name, value, text, doc) \
    assert_string_equal(sample(expo, std::string("wsgate_closes_total{cause=\"") + text + "\"}").c_str(), "0");
    WSG_CLOSE_CAUSE_MAP(CAUSE_)
#undef CAUSE_
}

// One writer, many readers: what the service thread and a scrape do.
// Under TSan this is the proof that the load+store counters are race-free.
static void test_a_scrape_reads_while_the_writer_counts(void **) {
    Metrics m;
    std::thread writer([&m] {
        for (int i = 0; i < 200000; i++) {
            m.messages_in.inc();
            m.ping_rtt.observe_us(i % 5000);
        }
    });
    uint64_t last = 0;
    for (int i = 0; i < 50; i++) {
        const std::string text = m.render();
        const uint64_t now = std::stoull(sample(text, "wsgate_received_messages_total"));
        assert_true(now >= last);  // never goes back
        last = now;
    }
    writer.join();
    assert_int_equal(m.messages_in.get(), 200000);
    assert_int_equal(m.ping_rtt.count(), 200000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_indexes_cover_every_value),
        cmocka_unit_test(test_counters_gauges_and_histograms_count),
        cmocka_unit_test(test_exposition_has_every_metric_once_with_help_and_type),
        cmocka_unit_test(test_a_scrape_reads_while_the_writer_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
