#include "cluster/presence.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/time.h"
#include "cluster/presence_scripts.h"

namespace wsgate {
namespace {

enum Script { kTake, kRenew, kWrite, kClear, kRead, kScripts };
const char *const kScriptText[kScripts] = {lua::kTakeNode, lua::kRenew, lua::kWrite, lua::kClear, lua::kRead};

const std::string &sha_of(int script) {
    static const std::vector<std::string> shas = [] {
        std::vector<std::string> v;
        for (const char *s : kScriptText) v.push_back(script_sha1(s));
        return v;
    }();
    return shas[static_cast<size_t>(script)];
}

// Candidates tried for a free node number before giving up (each is one
// INCR and one SET NX inside the script).
constexpr int kTakeTries = 64;
// Entries per write command during a resync.
constexpr size_t kResyncChunk = 256;

std::string hex16(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string reply_text(const redisReply *r) {
    if (!r) return "the connection to Redis was lost";
    if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
    return "unexpected reply type " + std::to_string(r->type);
}

}  // namespace

Presence::Presence(const ClusterConfig &cfg, RedisLink &cmd, uint64_t tag, Logger &log, Metrics &metrics,
                   SnapshotFn snapshot, NodeFn on_node)
    : cfg_(cfg),
      cmd_(cmd),
      tag_(hex16(tag)),
      log_(log),
      metrics_(metrics),
      snapshot_(std::move(snapshot)),
      on_node_(std::move(on_node)) {}

void Presence::reset() {
    held_ = taking_ = renewing_ = dirty_ = leaving_ = conflict_logged_ = false;
    renewed_ms_ = tried_ms_ = 0;
    gen_++;
}

bool Presence::eval(int script, std::vector<std::string> argv, RedisLink::ReplyFn cb) {
    argv.insert(argv.begin(), {"EVALSHA", sha_of(script)});
    return cmd_.command(argv, std::move(cb));
}

void Presence::load_scripts() {
    for (const char *s : kScriptText) cmd_.command({"SCRIPT", "LOAD", s}, [](const redisReply *) {});
}

bool Presence::noscript(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ERROR || std::strncmp(r->str, "NOSCRIPT", 8) != 0) return false;
    // Someone ran SCRIPT FLUSH: loaded again, in order before what follows.
    load_scripts();
    dirty_ = true;
    return true;
}

void Presence::link_ready(uint16_t node) {
    if (leaving_) return;
    node_ = node;
    held_ = false;
    taking_ = renewing_ = false;
    load_scripts();
    take();
}

void Presence::link_lost() {
    gen_++;
    held_ = false;
    taking_ = renewing_ = false;
}

// The lease, then a resync: every entry of this node written again.
void Presence::take() {
    if (taking_ || leaving_ || !cmd_.ready()) return;
    tried_ms_ = mono_ms();
    const uint64_t gen = gen_;
    taking_ = eval(kTake,
                   {"1", cfg_.prefix + ":nodes", cfg_.prefix + ":lease:", tag_, std::to_string(cfg_.presence_ttl_ms),
                    std::to_string(node_), std::to_string(kTakeTries)},
                   [this, gen](const redisReply *r) {
                       if (gen != gen_) return;
                       taking_ = false;
                       if (!r) return;  // the link was lost: taken again when it is back
                       if (noscript(r)) return;
                       if (r->type != REDIS_REPLY_INTEGER) {
                           cmd_.reset("taking a node number failed (" + reply_text(r) +
                                      "): is a key under cluster.prefix '" + cfg_.prefix +
                                      "' used by something else?");
                           return;
                       }
                       if (r->integer == 0) {
                           cmd_.reset("no free node number: " + std::to_string(kTakeTries) +
                                      " numbers in a row are leased by running instances");
                           return;
                       }
                       const bool conflict = r->integer < 0;
                       node_ = static_cast<uint16_t>(conflict ? -r->integer : r->integer);
                       held_ = !conflict;
                       renewed_ms_ = mono_ms();
                       on_node_(node_, conflict);
                       if (held_) {
                           conflict_logged_ = false;
                           resync("the connection to Redis is new");
                       }
                   });
}

void Presence::tick(int64_t now) {
    // A take under way ends in a resync itself: no renewal beside it.
    if (leaving_ || taking_ || !cmd_.ready()) return;
    const int64_t every = std::max<int64_t>(cfg_.presence_ttl_ms / 3, 1);
    if (!node_ || (!held_ && !renewed_ms_)) {
        // No number yet (the take failed or is under way): tried again.
        if (!taking_ && now - tried_ms_ >= every) take();
        return;
    }
    if (!renewing_ && now - renewed_ms_ >= every) renew(now);
}

void Presence::renew(int64_t now) {
    const uint64_t gen = gen_;
    renewed_ms_ = now;
    renewing_ = eval(kRenew,
                     {"2", lease_key(cfg_.prefix, node_), presence_keyset_key(cfg_.prefix, node_), tag_,
                      std::to_string(cfg_.presence_ttl_ms), cfg_.prefix, std::to_string(node_)},
                     [this, gen](const redisReply *r) {
                         if (gen != gen_) return;
                         renewing_ = false;
                         if (!r || leaving_) return;
                         if (noscript(r)) return;
                         if (r->type != REDIS_REPLY_INTEGER) {
                             LogFields f;
                             f["where"] = "cluster presence";
                             f["message"] = "renewing the node number's lease failed: " + reply_text(r);
                             log_.emit(LogEvent::error, f);
                             return;
                         }
                         if (r->integer == 3) {
                             held_ = false;
                             if (!conflict_logged_) {
                                 conflict_logged_ = true;
                                 on_node_(node_, true);
                             }
                             return;
                         }
                         const bool was_held = held_;
                         held_ = true;
                         conflict_logged_ = false;
                         if (r->integer == 2)
                             resync("the node number's lease had lapsed (this instance was frozen or cut off "
                                    "longer than cluster.presence_ttl_ms, or Redis lost its data)");
                         else if (!was_held)
                             resync("the node number's lease is this instance's again");
                         else if (dirty_)
                             resync("earlier presence writes did not reach Redis");
                     });
}

void Presence::resync(const char *why) {
    if (leaving_ || !held_ || !cmd_.ready()) return;
    dirty_ = false;
    std::vector<PresenceGroup> groups;
    snapshot_(&groups);
    const std::string lease = lease_key(cfg_.prefix, node_), keyset = presence_keyset_key(cfg_.prefix, node_);
    const std::string node = std::to_string(node_);
    auto on_write = [this](const redisReply *r) { write_failed(r); };
    bool sent = eval(kClear, {"2", lease, keyset, tag_, cfg_.prefix, node, "0"}, on_write);
    size_t entries = 0;
    for (const PresenceGroup &g : groups) {
        const std::string hash = presence_hash_key(cfg_.prefix, g.kind, node_, g.name);
        const std::string set = presence_set_key(cfg_.prefix, g.kind, g.name);
        const std::string member = std::string(1, g.kind) + ":" + g.name;
        for (size_t i = 0; sent && i < g.fields.size(); i += kResyncChunk) {
            std::vector<std::string> argv = {"4", lease, hash, set, keyset, tag_, node, member};
            const size_t end = std::min(g.fields.size(), i + kResyncChunk);
            for (size_t j = i; j < end; j++) {
                argv.push_back(std::to_string(g.fields[j].first));
                argv.push_back(g.fields[j].second);
            }
            entries += end - i;
            sent = eval(kWrite, std::move(argv), on_write);
        }
    }
    if (!sent) dirty_ = true;
    metrics_.cluster_presence_resyncs.inc();
    if (log_.enabled(LogEvent::cluster_presence_resync)) {
        LogFields f;
        f["node"] = node_;
        f["names"] = groups.size();
        f["entries"] = entries;
        f["why"] = why;
        if (!sent) f["message"] = "not every entry could be handed to Redis: tried again at the next renewal";
        log_.emit(LogEvent::cluster_presence_resync, f);
    }
}

void Presence::write_failed(const redisReply *r) {
    if (!r) return;  // link lost: a resync follows when it is back
    if (noscript(r)) return;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) return;
    // 0: the lease is not ours right now (the renewal sorts it out); an
    // error: written again at the next renewal.
    dirty_ = true;
}

void Presence::add(char kind, const std::string &name, uint64_t conn, const std::string &value) {
    if (leaving_) return;
    if (!held_ || !cmd_.ready()) {
        dirty_ = true;
        return;
    }
    const bool sent =
        eval(kWrite,
             {"4", lease_key(cfg_.prefix, node_), presence_hash_key(cfg_.prefix, kind, node_, name),
              presence_set_key(cfg_.prefix, kind, name), presence_keyset_key(cfg_.prefix, node_), tag_,
              std::to_string(node_), std::string(1, kind) + ":" + name, std::to_string(conn), value},
             [this](const redisReply *r) { write_failed(r); });
    if (!sent) dirty_ = true;
}

void Presence::remove(char kind, const std::string &name, uint64_t conn) {
    if (leaving_) return;
    if (!held_ || !cmd_.ready()) {
        dirty_ = true;
        return;
    }
    const bool sent = cmd_.command({"HDEL", presence_hash_key(cfg_.prefix, kind, node_, name), std::to_string(conn)},
                                   [this](const redisReply *r) {
                                       if (r && r->type == REDIS_REPLY_ERROR) dirty_ = true;
                                   });
    if (!sent) dirty_ = true;
}

bool Presence::read(char kind, const std::string &name, ReadFn fn) {
    auto done = [this, kind, name, fn = std::move(fn)](const redisReply *r) {
        std::vector<PresenceEntry> entries;
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (noscript(r)) {
                fn(false, "Redis had forgotten the presence scripts (SCRIPT FLUSH?): loaded again, ask again",
                   entries);
                return;
            }
            fn(false, r ? "Redis refused the presence read: " + reply_text(r) : reply_text(r), entries);
            return;
        }
        std::vector<std::string_view> flat;
        flat.reserve(r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            // Anything but a string is never a valid node, field or value: skipped.
            if (e->type == REDIS_REPLY_STRING)
                flat.emplace_back(e->str, e->len);
            else
                flat.emplace_back();
        }
        size_t invalid = 0;
        if (!parse_presence_reply(kind, name, flat, &entries, &invalid)) {
            fn(false, "Redis answered the presence read with " + std::to_string(flat.size()) +
                          " items (not node, connection, value triples)",
               entries);
            return;
        }
        if (invalid) {
            LogFields f;
            f["where"] = "cluster presence";
            f["message"] = std::to_string(invalid) + " presence entries under cluster.prefix '" + cfg_.prefix +
                           "' are not wsgate's (skipped): does another program write there?";
            log_.emit(LogEvent::error, f);
        }
        fn(true, std::string(), entries);
    };
    const std::string hash_head = cfg_.prefix + ":p" + std::string(1, kind) + ":";
    return eval(kRead, {"1", presence_set_key(cfg_.prefix, kind, name), hash_head, ":" + name}, std::move(done));
}

void Presence::leave(std::function<void()> done) {
    if (leaving_) return;
    leaving_ = true;
    bool sent = false;
    if (held_ && node_ && cmd_.ready())
        sent = eval(kClear,
                    {"2", lease_key(cfg_.prefix, node_), presence_keyset_key(cfg_.prefix, node_), tag_, cfg_.prefix,
                     std::to_string(node_), "1"},
                    [done](const redisReply *) { done(); });
    held_ = false;
    if (!sent) done();
}

}  // namespace wsgate
