#include "observe/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace wsgate {
namespace metric {

size_t cause_index(wsg_close_cause cause) {
    size_t i = 0;
#define WSGATE_CAUSE_INDEX_(name, value, text, doc) \
    if (cause == WSG_CAUSE_##name) return i;         \
    i++;
    WSG_CLOSE_CAUSE_MAP(WSGATE_CAUSE_INDEX_)
#undef WSGATE_CAUSE_INDEX_
    return static_cast<size_t>(CauseLabel::count);  // never: every cause is in the map
}

size_t policy_index(wsg_queue_policy policy) {
    size_t i = 0;
#define WSGATE_POLICY_INDEX_(name, value, text, doc) \
    if (policy == WSG_QUEUE_##name) return i;         \
    i++;
    WSG_QUEUE_POLICY_MAP(WSGATE_POLICY_INDEX_)
#undef WSGATE_POLICY_INDEX_
    return 0;
}

size_t code_index(int code) {
    size_t i = 0;
#define WSGATE_CODE_INDEX_(c) \
    if (code == c) return i;  \
    i++;
    WSGATE_CLOSE_CODES(WSGATE_CODE_INDEX_)
#undef WSGATE_CODE_INDEX_
    if (code >= 3000 && code <= 3999) return i;
    if (code >= 4000 && code <= 4999) return i + 1;
    return i + 2;
}

namespace {

void line(std::string &out, const char *name, const char *suffix, const char *label, const char *value,
          const char *le, const char *number) {
    out += name;
    out += suffix;
    if (label || le) {
        out += '{';
        if (label) {
            out += label;
            out += "=\"";
            out += value;
            out += '"';
        }
        if (le) {
            if (label) out += ',';
            out += "le=\"";
            out += le;
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    out += number;
    out += '\n';
}

void head(std::string &out, const char *name, const char *help, const char *type) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;  // plain text: no backslash or newline to escape
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

// Microseconds as seconds, exactly ("0.0025", "12.5", "3").
std::string seconds(uint64_t us) {
    char buf[40];
    uint64_t frac = us % 1000000;
    if (!frac) {
        std::snprintf(buf, sizeof buf, "%" PRIu64, us / 1000000);
        return buf;
    }
    std::snprintf(buf, sizeof buf, "%" PRIu64 ".%06" PRIu64, us / 1000000, frac);
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    return s;
}

template <class L, class B>
void render(std::string &out, const char *name, const char *help, const Counter<L, B> &m) {
    head(out, name, help, "counter");
    char num[32];
    for (size_t i = 0; i < L::count; i++) {
        std::snprintf(num, sizeof num, "%" PRIu64, m.get(i));
        line(out, name, "", L::name, L::values[i], nullptr, num);
    }
}

template <class L, class B>
void render(std::string &out, const char *name, const char *help, const Gauge<L, B> &m) {
    head(out, name, help, "gauge");
    char num[32];
    for (size_t i = 0; i < L::count; i++) {
        std::snprintf(num, sizeof num, "%" PRId64, m.get(i));
        line(out, name, "", L::name, L::values[i], nullptr, num);
    }
}

template <class L, class B>
void render(std::string &out, const char *name, const char *help, const Histogram<L, B> &m) {
    head(out, name, help, "histogram");
    char num[32];
    for (size_t i = 0; i < L::count; i++) {
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= B::count; b++) {
            cumulative += m.buckets[i][b].load(std::memory_order_relaxed);
            std::snprintf(num, sizeof num, "%" PRIu64, cumulative);
            const std::string le = b < B::count ? seconds(static_cast<uint64_t>(B::bounds_us[b])) : "+Inf";
            line(out, name, "_bucket", L::name, L::values[i], le.c_str(), num);
        }
        line(out, name, "_sum", L::name, L::values[i], nullptr,
             seconds(m.sum_us[i].load(std::memory_order_relaxed)).c_str());
        std::snprintf(num, sizeof num, "%" PRIu64, cumulative);
        line(out, name, "_count", L::name, L::values[i], nullptr, num);
    }
}

}  // namespace
}  // namespace metric

std::string Metrics::render() const {
    std::string out;
    out.reserve(16384);
#define WSGATE_METRIC_RENDER_(id, kind, labels, buckets, name, help) metric::render(out, name, help, id);
    WSGATE_METRICS(WSGATE_METRIC_RENDER_)
#undef WSGATE_METRIC_RENDER_
    return out;
}

}  // namespace wsgate
