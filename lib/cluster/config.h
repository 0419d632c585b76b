// The cluster's settings (the cluster.* options), read once when the server
// is created. Off when cluster.redis is empty: then nothing about Redis runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cluster/address.h"

struct wsg_config;

namespace wsgate {

struct ClusterConfig {
    bool enabled = false;
    RedisAddress address;
    std::string node_id;   // cluster.node_id, or generated: host-pid-random
    std::string prefix;    // key and channel namespace
    std::string password;  // from cluster.password_file (never logged)
    std::string password_file;
    int db = 0;
    int64_t connect_timeout_ms = 0, command_timeout_ms = 0;
    int64_t reconnect_min_ms = 0, reconnect_max_ms = 0;
    size_t max_pending = 0;
    bool require = false;
    int64_t session_ttl_ms = 0;    // wsg_session_set's TTL when it gives 0
    size_t session_max_bytes = 0;  // a session value's size at most
    int64_t presence_ttl_ms = 0;  // the node number's lease and presence entries
    // Why the settings cannot be used ("" when they can): checked when the
    // server is created.
    std::string error;

    explicit ClusterConfig(const wsg_config &c);
};

// A node id for this process: hostname-pid-6 random hex digits.
std::string generate_node_id();

}  // namespace wsgate
