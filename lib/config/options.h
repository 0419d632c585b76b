// The option table (single source for validation, docs and bindings) and
// wsg_config, a set of values for it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wsgate/wsgate.h"

namespace wsgate {

enum class OptType { Int, Bool, String, Enum };

struct OptionDef {
    const char *name;
    OptType type;
    const char *default_text;
    int64_t min;          // Int only
    int64_t max;          // Int only
    // Enum: "a|b|c". Int (optional): the only values allowed within
    // min..max, numbers and ranges, e.g. "1008|1013|4000..4999".
    const char *choices;
    const char *doc;
    // Extra check for String values; returns an empty string when valid,
    // otherwise what is wrong (the caller adds the key).
    std::string (*validate)(std::string_view value);
};

const std::vector<OptionDef> &option_table();
// Index of `name` in option_table(), or -1.
int find_option(std::string_view name);
// The error text for a name that is no option: "unknown option 'KEY'",
// then the closest known names ("did you mean log.level?") when some are close.
std::string unknown_option_message(std::string_view key);
const char *option_type_name(OptType type);
// "MIN..MAX" for Int, "a|b|c" for Enum, "" otherwise (static storage).
const char *option_range_text(size_t index);

// metrics.listen: "PORT" (127.0.0.1), "HOST:PORT" or "[IPv6]:PORT", the
// host an address literal. "" when valid (*host, *port set), else what is wrong.
std::string parse_host_port(std::string_view v, std::string *host, int *port);

// heartbeat.preset: the values it gives the heartbeat options that were not
// set explicitly. Returns false for an unknown preset or key.
bool heartbeat_preset_value(const std::string &preset, const char *key, int64_t *out);

}  // namespace wsgate

// The opaque ABI type: one value per option, indexed like option_table().
struct wsg_config {
    struct Value {
        int64_t i = 0;  // Int and Bool
        std::string s;  // String and Enum
        bool set = false;  // set explicitly (presets fill only the others)
    };
    std::vector<Value> values;

    wsg_config();  // all defaults

    wsg_status set_int(const char *key, int64_t v);
    wsg_status set_bool(const char *key, bool v);
    wsg_status set_string(const char *key, const char *v);
    wsg_status set_from_string(const char *assignment);
    wsg_status get_int(const char *key, int64_t *out) const;
    wsg_status get_bool(const char *key, int *out) const;
    wsg_status get_string(const char *key, const char **out) const;

    // Internal typed reads by a key known to exist with that type.
    int64_t int_of(const char *key) const;
    bool bool_of(const char *key) const;
    const std::string &string_of(const char *key) const;
    bool is_set(const char *key) const;

private:
    wsg_status lookup(const char *key, wsgate::OptType want, int *index) const;
};
