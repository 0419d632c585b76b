// limits.max_connections_per_user across the cluster: the user's connections
// on the other instances, from their presence entries (lib/cluster/
// presence_keys.h: PREFIX:pun:<user> holds the nodes with entries,
// PREFIX:pu:<node>:<user> one field per connection). Entries of a dead
// instance expire with its lease, so a crashed instance does not keep its
// users' connections counted.
#include <hiredis/hiredis.h>

#include <string>
#include <utility>

#include "cluster/cluster.h"

namespace wsgate {
namespace {

// KEYS[1]: the user's node set; ARGV[1]: this node (not counted: the local
// count is exact), ARGV[2]: "PREFIX:pu:", ARGV[3]: the user.
constexpr const char kCountUser[] =
    "local n = 0\n"
    "for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if node ~= ARGV[1] then n = n + redis.call('HLEN', ARGV[2] .. node .. ':' .. ARGV[3]) end\n"
    "end\n"
    "return n\n";

}  // namespace

bool Cluster::count_user(const std::string &user, std::function<void(int64_t)> done) {
    if (!up()) return false;
    const std::string set = cfg_.prefix + ":pun:" + user, hashes = cfg_.prefix + ":pu:";
    const std::string self = std::to_string(node());
    return cmd_->command({"EVAL", kCountUser, "1", set, self, hashes, user}, [done = std::move(done)](const redisReply *r) {
        done(r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1);
    });
}

}  // namespace wsgate
