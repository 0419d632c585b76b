#include "core/history.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/time.h"
#include "cluster/presence_keys.h"

namespace wsgate {
namespace {

// KEYS: he, ho, h. ARGV: epoch if new, size, ttl ms, channel, msg type,
// payload, envelope head, tag of an origin that delivered it already ("").
// The epoch is below 2^53: Lua numbers are doubles.
const char *const kPublishScript = R"(
local e = redis.call('GET', KEYS[1])
if not e then
  e = ARGV[1]
  redis.call('SET', KEYS[1], e)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local o = redis.call('INCR', KEYS[2])
local id = string.format('%d-0', o)
if ARGV[8] == '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], id, 't', ARGV[5], 'p', ARGV[6])
else
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], id, 't', ARGV[5], 'p', ARGV[6], 'l', ARGV[8])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], ARGV[7] .. struct.pack('<I8I8', tonumber(e), o) .. ARGV[6])
return {e, o}
)";

// KEYS: he, ho, h. ARGV: the first offset wanted (0: none), the epoch it
// belongs to ('0': any). Returns the epoch ('' when the topic has no
// history), the last offset, the oldest entry's id (0: none) and the
// entries from the one wanted, or all of them when the epoch is another
// (the history started again: all of it is new to the caller).
const char *const kReadScript = R"(
local e = redis.call('GET', KEYS[1])
if not e then return {'', 0, 0, {}} end
local o = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
local oldest = 0
if #first > 0 then oldest = first[1][1] end
local entries = {}
if ARGV[2] ~= '0' and ARGV[2] ~= e then
  entries = redis.call('XRANGE', KEYS[3], '-', '+')
elseif tonumber(ARGV[1]) > 0 then
  entries = redis.call('XRANGE', KEYS[3], ARGV[1] .. '-0', '+')
end
return {e, o, oldest, entries}
)";

const char *const kScripts[] = {kPublishScript, kReadScript};
enum { kPublish = 0, kRead = 1 };

uint64_t to_u64(std::string_view s) {
    if (s.empty() || s.size() > 20) return 0;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return 0;
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    return v;
}

uint64_t reply_u64(const redisReply *r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? static_cast<uint64_t>(r->integer) : 0;
    if (r->type == REDIS_REPLY_STRING) {
        std::string_view s(r->str, r->len);
        return to_u64(s.substr(0, s.find('-')));  // a stream id "N-0"
    }
    return 0;
}

std::string reply_error(const redisReply *r) {
    if (!r) return "the connection to Redis was lost or timed out";
    if (r->type == REDIS_REPLY_ERROR) return "Redis: " + std::string(r->str, r->len);
    return "unexpected reply from Redis (type " + std::to_string(r->type) + ")";
}

// What the read script answered.
struct ReadResult {
    uint64_t epoch = 0, last = 0, oldest = 0;
    struct Entry {
        uint64_t offset;
        wsg_msg_type type;
        std::string payload;
        std::string delivered_by;  // field 'l'
    };
    std::vector<Entry> entries;
};

bool parse_read(const redisReply *r, ReadResult *out) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) return false;
    const redisReply *e = r->element[0];
    out->epoch = e->type == REDIS_REPLY_STRING ? to_u64(std::string_view(e->str, e->len)) : 0;
    out->last = reply_u64(r->element[1]);
    out->oldest = reply_u64(r->element[2]);
    const redisReply *list = r->element[3];
    if (list->type != REDIS_REPLY_ARRAY) return false;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *x = list->element[i];
        if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 || x->element[1]->type != REDIS_REPLY_ARRAY) continue;
        ReadResult::Entry en{reply_u64(x->element[0]), WSG_MSG_TEXT, {}, {}};
        const redisReply *f = x->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            std::string_view name(f->element[k]->str ? f->element[k]->str : "", f->element[k]->len);
            std::string_view value(f->element[k + 1]->str ? f->element[k + 1]->str : "", f->element[k + 1]->len);
            if (name == "t") en.type = value == "2" ? WSG_MSG_BINARY : WSG_MSG_TEXT;
            if (name == "p") en.payload.assign(value);
            if (name == "l") en.delivered_by.assign(value);
        }
        if (en.offset) out->entries.push_back(std::move(en));
    }
    return true;
}

std::string hex16(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return buf;
}

}  // namespace

bool parse_position(std::string_view text, wsg_position *out) {
    const size_t dash = text.find('-');
    if (dash == std::string_view::npos) return false;
    const std::string_view e = text.substr(0, dash), o = text.substr(dash + 1);
    // "0-0" is the position before the first message; otherwise both parts count from 1.
    if (e.empty() || o.empty() || (e.size() > 1 && e[0] == '0') || (o.size() > 1 && o[0] == '0')) return false;
    const uint64_t epoch = to_u64(e), offset = to_u64(o);
    if ((epoch == 0) != (e == "0") || (offset == 0) != (o == "0")) return false;
    if ((epoch == 0) != (offset == 0)) return false;
    out->epoch = epoch;
    out->offset = offset;
    return true;
}

std::string format_position(const wsg_position &pos) {
    char buf[WSG_POSITION_TEXT_MAX];
    std::snprintf(buf, sizeof buf, "%" PRIu64 "-%" PRIu64, pos.epoch, pos.offset);
    return buf;
}

History::History(const ClusterConfig &cfg, Cluster &cluster, AsyncCalls &calls, Metrics &metrics, HistorySink &sink)
    : cfg_(cfg), cluster_(cluster), calls_(calls), metrics_(metrics), sink_(sink), rng_(std::random_device{}()) {}

uint64_t History::new_epoch() {
    // Below 2^53 (the publish script's Lua numbers are doubles), never 0.
    return (rng_() & ((uint64_t{1} << 53) - 1)) | 1;
}

std::vector<std::string> History::keys(const std::string &topic) const {
    return {cfg_.prefix + ":he:" + topic, cfg_.prefix + ":ho:" + topic, cfg_.prefix + ":h:" + topic};
}

bool History::eval(int script, std::vector<std::string> args, RedisLink::ReplyFn cb) {
    // EVALSHA, and EVAL (which loads it) when Redis does not know it yet.
    std::vector<std::string> argv{"EVALSHA", script_sha1(kScripts[script]), "3"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto retry = [this, script, argv, cb](const redisReply *r) mutable {
        if (r && r->type == REDIS_REPLY_ERROR && std::strncmp(r->str, "NOSCRIPT", 8) == 0) {
            argv[0] = "EVAL";
            argv[1] = kScripts[script];
            if (!cluster_.command(argv, cb)) cb(nullptr);
            return;
        }
        cb(r);
    };
    return cluster_.command(argv, std::move(retry));
}

void History::sweep() {
    if (rings_.empty()) return;
    const int64_t now = mono_ms();
    if (now - swept_ms_ < 1000) return;
    swept_ms_ = now;
    for (auto it = rings_.begin(); it != rings_.end();) {
        if (now - it->second.touched_ms > cfg_.history_ttl_ms)
            it = rings_.erase(it);
        else
            ++it;
    }
}

size_t History::pending() const {
    size_t n = 0;
    for (const auto &kv : outage_) n += kv.second.size();
    return n;
}

// ---------------------------------------------------------------- publish

void History::publish(const std::string &topic, wsg_msg_type type, std::string payload) {
    if (!cluster_.enabled()) return publish_local(topic, type, std::move(payload));
    if (cluster_.up() && outage_.empty()) return publish_redis(topic, type, payload, false);
    // Redis down (or what was kept meanwhile not written yet: order is kept).
    std::deque<Kept> &kept = outage_[topic];
    sink_.history_deliver(topic, wsg_position{0, 0}, type, payload, 0);
    if (kept.size() >= cfg_.history_size) {
        kept.pop_front();
        metrics_.cluster_dropped.add(metric::ClusterDrop::history_full);
    }
    kept.push_back(Kept{0, type, std::move(payload)});
    metrics_.history_kept.set(static_cast<int64_t>(pending()));
    if (cluster_.up()) on_cluster_state(true);
}

void History::publish_local(const std::string &topic, wsg_msg_type type, std::string payload) {
    Ring &r = rings_[topic];
    const int64_t now = mono_ms();
    if (!r.epoch || now - r.touched_ms > cfg_.history_ttl_ms) {
        r = Ring();
        r.epoch = new_epoch();
    }
    r.touched_ms = now;
    r.last++;
    const wsg_position pos{r.epoch, r.last};
    sink_.history_deliver(topic, pos, type, payload, 0);
    r.msgs.push_back(Kept{r.last, type, std::move(payload)});
    while (r.msgs.size() > cfg_.history_size) r.msgs.pop_front();
}

void History::publish_redis(const std::string &topic, wsg_msg_type type, const std::string &payload,
                            bool delivered_here) {
    std::vector<std::string> args = keys(topic);
    const uint8_t flags = delivered_here ? kFlagDeliveredHere : 0;
    args.insert(args.end(), {std::to_string(new_epoch()), std::to_string(cfg_.history_size),
                             std::to_string(cfg_.history_ttl_ms), cluster_.topic_channel(topic),
                             type == WSG_MSG_BINARY ? "2" : "1", payload,
                             envelope_head(EnvelopeKind::TopicHistory, static_cast<uint8_t>(type), flags,
                                           cluster_.node(), cluster_.tag(), topic),
                             delivered_here ? hex16(cluster_.tag()) : std::string()});
    // Delivered from the echo; a failure after sending is counted like a
    // lost publish (whether Redis ran it is unknown).
    const bool sent = eval(kPublish, std::move(args), [this](const redisReply *r) {
        if (!r || r->type != REDIS_REPLY_ARRAY) metrics_.cluster_dropped.add(metric::ClusterDrop::unconfirmed);
    });
    if (!sent) {
        metrics_.cluster_dropped.add(cluster_.up() ? metric::ClusterDrop::full : metric::ClusterDrop::down);
        return;
    }
    metrics_.cluster_sent.inc();
}

// ---------------------------------------------------------------- delivery (cluster)

void History::on_envelope(const Envelope &e) {
    Live live;
    std::string_view payload;
    if (!parse_history_body(e.body, &live.pos.epoch, &live.pos.offset, &payload)) return;
    const std::string topic(e.target);
    live.type = static_cast<wsg_msg_type>(e.msg_type);
    live.payload.assign(payload);
    live.delivered_here = (e.flags & kFlagDeliveredHere) && e.origin_tag == cluster_.tag();
    take(topic, std::move(live));
}

void History::take(const std::string &topic, Live live) {
    TopicState &s = states_[topic];
    // While fetching, and before a first position is known here while a
    // replay runs (its answer gives one: a live message must not become
    // the first while those between the replay and it are unknown).
    const bool no_base = !s.known && std::any_of(s.replays.begin(), s.replays.end(),
                                                 [](const auto &kv) { return kv.second.running; });
    if (s.fetching || no_base) {
        s.waiting.push_back(std::move(live));
        return;
    }
    // The history was empty when this instance looked: every message of
    // it is new here, from offset 1.
    if (s.known && !s.last.epoch) s.last = wsg_position{live.pos.epoch, 0};
    if (s.last.epoch == live.pos.epoch && live.pos.offset <= s.last.offset) return;  // a duplicate
    // Another epoch after one seen here: the history started again (Redis
    // lost it, or it lapsed); what it holds before this one is new here.
    if (s.last.epoch && s.last.epoch != live.pos.epoch) s.last = wsg_position{live.pos.epoch, 0};
    if (s.last.epoch == live.pos.epoch && live.pos.offset > s.last.offset + 1) {
        // A gap: fetched first, this one waits.
        s.waiting.push_back(std::move(live));
        fetch_gap(topic);
        return;
    }
    // The next one, or the first one seen here.
    s.last = live.pos;
    s.known = true;
    if (!live.delivered_here) sink_.history_deliver(topic, live.pos, live.type, live.payload, 0);
}

void History::fetch_gap(const std::string &topic) {
    TopicState &s = states_[topic];
    s.fetching = true;
    s.refetch = false;  // a read sent after the channel's confirmation covers it
    const uint64_t from = s.last.offset + 1;
    auto done = [this, topic](const redisReply *r) {
        if (!cluster_.running()) return;  // the server stops
        auto it = states_.find(topic);
        if (it == states_.end()) return;  // nobody subscribed here any more
        TopicState &st = it->second;
        st.fetching = false;
        ReadResult rr;
        if (parse_read(r, &rr) && rr.epoch) {
            // Another epoch: the history started again, all of it is new here.
            if (rr.epoch != st.last.epoch) st.last = wsg_position{rr.epoch, 0};
            st.known = true;
            const std::string mine = hex16(cluster_.tag());
            for (ReadResult::Entry &en : rr.entries) {
                if (en.offset <= st.last.offset) continue;
                st.last.offset = en.offset;
                if (en.delivered_by == mine) continue;
                metrics_.history_gap_messages.inc();
                sink_.history_deliver(topic, st.last, en.type, en.payload, 0);
            }
        }
        // What waited, in order. A gap the fetch could not fill (Redis
        // failed, the messages were trimmed) is skipped: no second fetch.
        std::vector<Live> waiting;
        waiting.swap(st.waiting);
        for (Live &l : waiting) {
            TopicState &again = states_[topic];
            if (again.fetching) {
                again.waiting.push_back(std::move(l));
                continue;
            }
            if (again.last.epoch == l.pos.epoch && l.pos.offset > again.last.offset + 1)
                again.last.offset = l.pos.offset - 1;
            take(topic, std::move(l));
        }
        refetch_if_asked(topic);
    };
    std::vector<std::string> args = keys(topic);
    args.push_back(std::to_string(from));
    args.push_back(std::to_string(s.last.epoch));
    if (!eval(kRead, std::move(args), done)) done(nullptr);
}

void History::on_cluster_state(bool up) {
    if (!up) return;
    // First what was kept while Redis was down, in order.
    for (auto &kv : outage_)
        for (Kept &k : kv.second) publish_redis(kv.first, k.type, k.payload, true);
    outage_.clear();
    metrics_.history_kept.set(0);
    // Then what this instance missed.
    for (auto &kv : states_)
        if (kv.second.known && !kv.second.fetching) fetch_gap(kv.first);
}

void History::topic_unused(const std::string &topic) { states_.erase(topic); }

void History::topic_used(const std::string &topic) {
    if (!cfg_.history_topic(topic) || !cluster_.up()) return;  // down: the first message seen is the base
    TopicState &s = states_[topic];
    if (s.known || s.fetching) return;
    s.fetching = true;  // live messages wait for the base
    auto done = [this, topic](const redisReply *r) {
        if (!cluster_.running()) return;
        auto it = states_.find(topic);
        if (it == states_.end()) return;  // nobody subscribed here any more
        TopicState &st = it->second;
        st.fetching = false;
        ReadResult rr;
        if (parse_read(r, &rr) && !st.known) {
            st.known = true;
            st.last = wsg_position{rr.epoch, rr.last};
            // What came on the channel meanwhile came after the local
            // subscription, even if the read counted it already: delivered,
            // from the first of them (they came in offset order).
            for (const Live &l : st.waiting)
                if (l.pos.epoch == rr.epoch && l.pos.offset && l.pos.offset <= st.last.offset) {
                    st.last.offset = l.pos.offset - 1;
                    break;
                }
            if (!rr.epoch) st.last = wsg_position{0, 0};
        }
        std::vector<Live> waiting;
        waiting.swap(st.waiting);
        for (Live &l : waiting) take(topic, std::move(l));
        refetch_if_asked(topic);
    };
    std::vector<std::string> args = keys(topic);
    args.push_back("0");
    args.push_back("0");
    if (!eval(kRead, std::move(args), done)) done(nullptr);
}

void History::begin_hold(const std::string &topic, wsg_conn_id conn) {
    Replay &r = states_[topic].replays[conn];
    if (!r.running) r = Replay();
}

void History::on_listening(const std::string &topic) {
    auto it = states_.find(topic);
    if (it == states_.end()) return;  // nothing delivered here yet: nothing to miss
    it->second.refetch = true;
    refetch_if_asked(topic);
}

void History::refetch_if_asked(const std::string &topic) {
    auto it = states_.find(topic);
    if (it == states_.end()) return;
    TopicState &s = it->second;
    const bool replaying = std::any_of(s.replays.begin(), s.replays.end(),
                                       [](const auto &kv) { return kv.second.running; });
    // A read without a base would deliver the whole history; a running
    // fetch or replay calls again when it ends.
    if (!s.refetch || s.fetching || replaying || !s.known || !cluster_.up()) return;
    s.refetch = false;
    fetch_gap(topic);
}

// ---------------------------------------------------------------- subscribe from

void History::subscribe_from(wsg_conn_id conn, const std::string &topic, const wsg_position *from,
                             AsyncReply reply) {
    if (!cluster_.enabled()) return subscribe_local(conn, topic, from, reply);
    subscribe_redis(conn, topic, from, reply);
}

namespace {

// Whether the messages after `from` can be given, knowing the history's
// epoch, last offset and oldest kept one. "" when yes, else why not.
std::string check_from(const wsg_position &from, uint64_t epoch, uint64_t last, uint64_t oldest) {
    if (from.epoch == 0 && from.offset == 0) {
        // From the start: only if the first message is still there.
        if (epoch == 0 || last == 0 || oldest == 1) return {};
        return "the history no longer holds its first message (it keeps the last cluster.history_size)";
    }
    if (epoch == 0) return "the topic has no history now (it lapsed after cluster.history_ttl_ms, or was lost)";
    if (from.epoch != epoch)
        return "position " + format_position(from) + " is of another epoch (the history is now epoch " +
               std::to_string(epoch) + ": it was lost and started again)";
    if (from.offset > last)
        return "position " + format_position(from) + " is ahead of the history (last offset " +
               std::to_string(last) + ")";
    if (from.offset < last && (oldest == 0 || oldest > from.offset + 1))
        return "position " + format_position(from) + " is older than the oldest message kept (offset " +
               std::to_string(oldest) + ")";
    return {};
}

wsg_result position_result(wsg_status st, std::string message, const wsg_position &pos) {
    wsg_result r;
    r.status = st;
    r.message = std::move(message);
    r.has_position = st == WSG_OK;
    r.position = pos;
    return r;
}

}  // namespace

void History::subscribe_local(wsg_conn_id conn, const std::string &topic, const wsg_position *from,
                              const AsyncReply &reply) {
    const AsyncCalls::Id id = calls_.add(reply);
    auto it = rings_.find(topic);
    if (it != rings_.end() && mono_ms() - it->second.touched_ms > cfg_.history_ttl_ms) {
        rings_.erase(it);
        it = rings_.end();
    }
    const Ring empty;
    const Ring &r = it == rings_.end() ? empty : it->second;
    const wsg_position now{r.epoch, r.last};
    if (!from) {
        calls_.answer(id, position_result(WSG_OK, "", now));
        return;
    }
    const uint64_t oldest = r.msgs.empty() ? 0 : r.msgs.front().offset;
    std::string why = check_from(*from, r.epoch, r.last, oldest);
    if (!why.empty()) {
        end_replay(topic, conn, wsg_position{0, 0});  // held live messages (a call on the service thread) go
        metrics_.history_gone.inc();
        calls_.answer(id, position_result(WSG_EGONE, why, wsg_position{0, 0}));
        return;
    }
    for (const Kept &k : r.msgs) {
        if (k.offset <= from->offset) continue;
        metrics_.history_replayed.inc();
        sink_.history_deliver(topic, wsg_position{r.epoch, k.offset}, k.type, k.payload, conn);
    }
    end_replay(topic, conn, now);  // held live messages are in the ring: replayed already
    calls_.answer(id, position_result(WSG_OK, "", now));
}

void History::subscribe_redis(wsg_conn_id conn, const std::string &topic, const wsg_position *from,
                              AsyncReply reply) {
    const AsyncCalls::Id id = calls_.add(reply);
    if (!cluster_.up()) {
        end_replay(topic, conn, wsg_position{0, 0});
        calls_.answer(id, WSG_ECLUSTER,
                      "the cluster is down (" + cluster_.down_reason() + "): subscribed, live messages only");
        return;
    }
    const bool has_from = from != nullptr;
    // Live messages for this connection wait from now until the replay ends
    // (nothing is replayed without `from`: nothing waits).
    if (has_from) begin_hold(topic, conn);
    const wsg_position f = from ? *from : wsg_position{0, 0};
    auto done = [this, id, conn, topic, has_from, f](const redisReply *r) {
        if (!cluster_.running()) return;  // the server stops: answered WSG_ESTATE already
        ReadResult rr;
        wsg_position floor{0, 0};
        if (!parse_read(r, &rr)) {
            end_replay(topic, conn, floor);
            calls_.answer(id, WSG_ECLUSTER, "reading the history failed (" + reply_error(r) + "): live messages only");
            return;
        }
        const wsg_position now{rr.epoch, rr.last};
        if (!sink_.history_conn_open(conn)) {
            end_replay(topic, conn, floor);
            calls_.answer(id, WSG_ENOTFOUND, "connection " + std::to_string(conn) + " closed meanwhile");
            return;
        }
        std::string why = has_from ? check_from(f, rr.epoch, rr.last, rr.oldest) : std::string();
        if (!why.empty()) {
            end_replay(topic, conn, floor);
            metrics_.history_gone.inc();
            calls_.answer(id, position_result(WSG_EGONE, why, wsg_position{0, 0}));
            return;
        }
        floor = now;
        if (has_from)
            for (const ReadResult::Entry &en : rr.entries)
                if (en.offset > f.offset && en.offset <= rr.last) {
                    metrics_.history_replayed.inc();
                    sink_.history_deliver(topic, wsg_position{rr.epoch, en.offset}, en.type, en.payload, conn);
                }
        end_replay(topic, conn, floor);
        calls_.answer(id, position_result(WSG_OK, "", now));
    };
    std::vector<std::string> args = keys(topic);
    args.push_back(has_from ? std::to_string(f.offset + 1) : "0");
    args.push_back("0");
    if (!eval(kRead, std::move(args), done)) done(nullptr);
}

bool History::hold(const std::string &topic, wsg_conn_id conn, const wsg_position &pos, const OutMessage &m) {
    auto it = states_.find(topic);
    if (it == states_.end() || it->second.replays.empty()) return false;
    auto r = it->second.replays.find(conn);
    if (r == it->second.replays.end()) return false;
    Replay &rp = r->second;
    if (rp.running) {
        rp.held.push_back(Held{pos, m});
        return true;
    }
    // After the replay: a late duplicate of a replayed message stays out;
    // the first one past the floor ends the watch.
    if (pos.epoch == rp.floor.epoch && pos.offset <= rp.floor.offset && pos.offset) return true;
    it->second.replays.erase(r);
    return false;
}

void History::end_replay(const std::string &topic, wsg_conn_id conn, const wsg_position &floor) {
    auto it = states_.find(topic);
    if (it == states_.end()) return;
    auto r = it->second.replays.find(conn);
    if (r == it->second.replays.end()) return;
    std::vector<Held> held;
    held.swap(r->second.held);
    r->second.running = false;
    r->second.floor = floor;
    bool passed = false;
    for (Held &h : held) {
        const bool dup = h.pos.epoch == floor.epoch && h.pos.offset && h.pos.offset <= floor.offset;
        if (dup) continue;
        passed = true;
        sink_.history_deliver_held(conn, h.msg);
    }
    if (passed || !floor.epoch) it->second.replays.erase(conn);
    // The first position known here, if none was: live messages that
    // waited for it follow, a gap after it fetched.
    TopicState &s = it->second;
    if (!s.known && floor.epoch) {
        s.last = floor;
        s.known = true;
    }
    if (!s.fetching && !s.waiting.empty()) {
        std::vector<Live> waiting;
        waiting.swap(s.waiting);
        for (Live &l : waiting) take(topic, std::move(l));
    }
    refetch_if_asked(topic);
}

}  // namespace wsgate
