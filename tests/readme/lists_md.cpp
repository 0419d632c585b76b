// Prints one of the README's generated tables as Markdown, from the list it
// comes from: `events` (lib/observe/events.h), `causes`
// (WSG_CLOSE_CAUSE_MAP), `statuses` (WSG_STATUS_MAP), `policies`
// (WSG_QUEUE_POLICY_MAP) or `metrics` (lib/observe/metrics.h). README.md holds the
// output between "<NAME>-table" markers; the readme test keeps them equal
// and scripts/update-readme.sh rewrites them.
#include <cstdio>
#include <cstring>

#include <string>

#include "observe/events.h"
#include "observe/metrics.h"
#include "wsgate/wsgate.h"

namespace {

void cell(const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            std::fputs("\\|", stdout);
        else
            std::putchar(*s);
    }
}

const char *lower(const char *level) {
    if (!std::strcmp(level, "DEBUG")) return "debug";
    if (!std::strcmp(level, "INFO")) return "info";
    if (!std::strcmp(level, "WARN")) return "warn";
    return "error";
}

const char *type_name(const char *kind) {
    if (!std::strcmp(kind, "Counter")) return "counter";
    if (!std::strcmp(kind, "Gauge")) return "gauge";
    return "histogram";
}

// `label`: `a`, `b`, ... (every value it takes), or nothing.
template <class L>
void label_cell() {
    if (!L::name) return;
    std::printf("`%s`: ", L::name);
    for (size_t i = 0; i < L::count; i++) std::printf("%s`%s`", i ? ", " : "", L::values[i]);
}

// The name of an advice, from its list (this tool links no library).
const char *advice_text(int value) {
#define WSG_ADVICE_TEXT_(name, v, text, doc) \
    if (value == v) return text;
    WSG_RECONNECT_MAP(WSG_ADVICE_TEXT_)
#undef WSG_ADVICE_TEXT_
    return "unknown";
}

// The "limited" column: how log.max_per_s applies to the event.
const char *limited(wsgate::LogEvent e) {
    static std::string text;
    const char *key = wsgate::log_event_flood_key(e);
    if (!key) return "always logged";
    text = *key ? std::string("per ") + key : std::string("yes");
    return text.c_str();
}

}  // namespace

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    if (!std::strcmp(which, "events")) {
        std::puts("| event | level | limited | fields |");
        std::puts("|---|---|---|---|");
#define ROW(name, level, fields)                                                           \
    std::printf("| `%s` | %s | %s | ", #name, lower(#level), limited(wsgate::LogEvent::name)); \
    cell(fields);                                                                          \
    std::puts(" |");
        WSGATE_LOG_EVENTS(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "causes")) {
        std::puts("| cause | value | name | when |");
        std::puts("|---|---|---|---|");
#define ROW(name, value, text, doc)                                      \
    std::printf("| `WSG_CAUSE_%s` | %d | `%s` | ", #name, value, text);  \
    cell(doc);                                                           \
    std::puts(" |");
        WSG_CLOSE_CAUSE_MAP(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "statuses")) {
        std::puts("| status | value | meaning |");
        std::puts("|---|---|---|");
#define ROW(name, value, doc)                              \
    std::printf("| `WSG_%s` | %d | ", #name, value);        \
    cell(doc);                                             \
    std::puts(" |");
        WSG_STATUS_MAP(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "policies")) {
        std::puts("| `limits.queue_policy` | value | what a full send queue does |");
        std::puts("|---|---|---|");
#define ROW(name, value, text, doc)                                   \
    std::printf("| `%s` | `WSG_QUEUE_%s` (%d) | ", text, #name, value); \
    cell(doc);                                                        \
    std::puts(" |");
        WSG_QUEUE_POLICY_MAP(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "metrics")) {
        std::puts("| metric | type | labels | meaning |");
        std::puts("|---|---|---|---|");
#define ROW(id, kind, labels, buckets, name, help)                     \
    std::printf("| `%s` | %s | ", name, type_name(#kind));              \
    label_cell<wsgate::metric::labels>();                                \
    std::fputs(" | ", stdout);                                           \
    cell(help);                                                          \
    std::puts(" |");
        WSGATE_METRICS(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "codes")) {
        std::puts("| code | reconnect? | sent for (causes) | meaning |");
        std::puts("|---|---|---|---|");
#define ROW(code, name, advice, causes, doc)                                                       \
    std::printf("| %d `%s` | `%s` | %s | ", code, #name, advice_text(WSG_RECONNECT_##advice), causes); \
    cell(doc);                                                                                     \
    std::puts(" |");
        WSG_CLOSE_CODE_MAP(ROW)
#undef ROW
        return 0;
    }
    if (!std::strcmp(which, "advice")) {
        std::puts("| advice | value | what the client does |");
        std::puts("|---|---|---|");
#define ROW(name, value, text, doc)                                        \
    std::printf("| `%s` | `WSG_RECONNECT_%s` (%d) | ", text, #name, value); \
    cell(doc);                                                             \
    std::puts(" |");
        WSG_RECONNECT_MAP(ROW)
#undef ROW
        return 0;
    }
    // The chat demo page's copy of the contract (examples/chat/index.html,
    // between its close-advice markers).
    if (!std::strcmp(which, "advice-js")) {
        std::puts("  const CLOSE_ADVICE = {");
#define ROW(code, name, advice, causes, doc) std::printf("    %d: \"%s\",\n", code, advice_text(WSG_RECONNECT_##advice));
        WSG_CLOSE_CODE_MAP(ROW)
#undef ROW
        std::puts("  };");
        return 0;
    }
    std::fprintf(stderr, "usage: %s events|causes|statuses|policies|codes|advice|advice-js|metrics\n", argv[0]);
    return 2;
}
