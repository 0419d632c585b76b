#include "cluster/cluster.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "base/time.h"

namespace wsgate {
namespace {

uint64_t random_tag() {
    std::random_device rd;
    uint64_t t = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    return t ? t : 1;
}

std::string hex(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

Cluster::Cluster(const ClusterConfig &cfg, Transport &transport, Logger &log, Metrics &metrics, ClusterSink &sink)
    : cfg_(cfg),
      transport_(transport),
      log_(log),
      metrics_(metrics),
      sink_(sink),
      tag_(random_tag()),
      hb_channel_(cfg.prefix + ":hb:" + hex(tag_)) {
    if (!cfg_.enabled) return;
    RedisLink::Options o;
    o.address = cfg_.address;
    o.password = cfg_.password;
    o.db = cfg_.db;
    o.connect_timeout_ms = cfg_.connect_timeout_ms;
    o.command_timeout_ms = cfg_.command_timeout_ms;
    o.reconnect_min_ms = cfg_.reconnect_min_ms;
    o.reconnect_max_ms = cfg_.reconnect_max_ms;
    o.max_pending = cfg_.max_pending;
    o.name = "commands";
    cmd_ = std::make_unique<RedisLink>(o, transport_, *this);
    o.name = "subscriptions";
    o.subscriber = true;
    sub_ = std::make_unique<RedisLink>(o, transport_, *this);
    const std::string topics = cfg_.prefix + ":t:";
    channels_ = std::make_unique<ChannelSet>(*sub_, [this, topics](const std::string &channel) {
        if (channel.compare(0, topics.size(), topics) == 0) sink_.on_topic_listening(channel.substr(topics.size()));
    });
    presence_ = std::make_unique<Presence>(
        cfg_, *cmd_, tag_, log_, metrics_, [this](std::vector<PresenceGroup> *out) { sink_.on_presence_snapshot(out); },
        [this](uint16_t node, bool conflict) { on_node(node, conflict); });
    // Deadlines are checked a few times per timeout; the heartbeat goes out
    // three times per command timeout.
    check_every_ms_ = std::clamp<int64_t>(std::min(cfg_.connect_timeout_ms, cfg_.command_timeout_ms) / 5, 5, 100);
    hb_every_ms_ = std::max<int64_t>(cfg_.command_timeout_ms / 3, 5);
}

Cluster::~Cluster() { stop(); }

void Cluster::start() {
    if (!cfg_.enabled || running_) return;
    running_ = true;
    down_since_ms_ = mono_ms();
    down_logged_ = false;
    presence_->reset();
    // A server that listens again after a stop: its connections (and the ids
    // carrying its node number) are gone and the clean stop gave the lease
    // back, so a fresh number is taken; asking for the old one could meet
    // another instance that took it meanwhile.
    if (const uint16_t old = node()) {
        channels_->want(node_channel(old), false);
        node_.store(0, std::memory_order_release);
        sink_.on_cluster_node(0);
    }
    {
        std::lock_guard<std::mutex> lock(reason_mu_);
        down_reason_ = "connecting to Redis at " + cfg_.address.text();
    }
    LogFields f;
    f["node_id"] = cfg_.node_id;
    f["redis"] = cfg_.address.text();
    f["prefix"] = cfg_.prefix;
    log_.emit(LogEvent::cluster_start, f);
    channels_->want(hb_channel_, true);
    cmd_->start();
    sub_->start();
    transport_.start_timer(&check_timer_, check_every_ms_ * 1000, [this] { on_check(); });
}

void Cluster::stop() {
    if (!running_) return;
    running_ = false;
    transport_.stop_timer(&check_timer_);
    cmd_->stop();
    sub_->stop();
    channels_->link_lost();
    presence_->link_lost();
    update();
}

std::string Cluster::down_reason() const {
    std::lock_guard<std::mutex> lock(reason_mu_);
    return down_reason_;
}

void Cluster::want_topic(std::string_view topic, bool on) {
    if (cfg_.enabled) channels_->want(topic_channel(topic), on);
}

void Cluster::want_user(std::string_view user, bool on) {
    if (cfg_.enabled) channels_->want(user_channel(user), on);
}

bool Cluster::relay(const std::string &channel, const std::string &envelope) {
    if (!up()) {
        metrics_.cluster_dropped.add(metric::ClusterDrop::down);
        return false;
    }
    const int64_t t0 = mono_us();
    const bool sent = cmd_->command({"PUBLISH", channel, envelope}, [this, t0](const redisReply *r) {
        if (!r) {
            metrics_.cluster_dropped.add(metric::ClusterDrop::unconfirmed);
            return;
        }
        metrics_.cluster_publish_rtt.observe_us(mono_us() - t0);
    });
    if (!sent) {
        metrics_.cluster_dropped.add(cmd_->ready() ? metric::ClusterDrop::full : metric::ClusterDrop::down);
        return false;
    }
    metrics_.cluster_sent.inc();
    return true;
}

bool Cluster::command(std::initializer_list<std::string_view> argv, RedisLink::ReplyFn cb) {
    return up() && cmd_->command(argv, std::move(cb));
}

bool Cluster::command(const std::vector<std::string> &argv, RedisLink::ReplyFn cb) {
    return up() && cmd_->command(argv, std::move(cb));
}

void Cluster::on_link_ready(RedisLink *link) {
    if (link->connects() > 1) metrics_.cluster_reconnects.inc();
    if (link == sub_.get()) {
        channels_->link_ready();
    } else {
        presence_->link_ready(node());
    }
    update();
}

void Cluster::presence_add(char kind, const std::string &name, uint64_t conn, const std::string &value) {
    if (cfg_.enabled && running_) presence_->add(kind, name, conn, value);
}

void Cluster::presence_remove(char kind, const std::string &name, uint64_t conn) {
    if (cfg_.enabled && running_) presence_->remove(kind, name, conn);
}

bool Cluster::presence_read(char kind, const std::string &name, Presence::ReadFn fn) {
    if (!up()) return false;
    return presence_->read(kind, name, std::move(fn));
}

void Cluster::leave(std::function<void()> done) {
    if (!cfg_.enabled || !running_) return done();
    presence_->leave(std::move(done));
}

// The node number is leased (lib/cluster/presence.h): the first one this
// server gets is its number for good, since its connection ids carry it.
void Cluster::on_node(uint16_t n, bool conflict) {
    if (conflict) {
        metrics_.cluster_node_conflicts.inc();
        LogFields f;
        f["node"] = n;
        f["node_id"] = cfg_.node_id;
        f["message"] = "another server holds the lease of node number " + std::to_string(n) +
                       " (Redis lost its data, or this instance was cut off longer than "
                       "cluster.presence_ttl_ms): this instance keeps the number, its presence entries are "
                       "written again once the lease is its own";
        log_.emit(LogEvent::cluster_node_conflict, f);
    }
    if (node()) return;
    node_.store(n, std::memory_order_release);
    sink_.on_cluster_node(n);
    channels_->want(node_channel(n), true);
    update();
}

void Cluster::update() {
    const bool now_up = running_ && cmd_->ready() && sub_->ready() && node() != 0;
    if (now_up == up()) return;
    up_.store(now_up, std::memory_order_release);
    metrics_.cluster_up.set(now_up ? 1 : 0);
    if (now_up) {
        const int64_t now = mono_ms();
        LogFields f;
        f["node"] = node();
        f["node_id"] = cfg_.node_id;
        f["redis"] = cfg_.address.text();
        f["down_ms"] = now - down_since_ms_;
        log_.emit(LogEvent::cluster_up, f);
        down_logged_ = false;
        last_hb_ms_ = 0;
    } else {
        down_since_ms_ = mono_ms();
    }
    sink_.on_cluster_state(now_up);
}

void Cluster::on_link_lost(RedisLink *link, const std::string &why, bool was_ready) {
    (void)was_ready;
    if (link == sub_.get())
        channels_->link_lost();
    else
        presence_->link_lost();
    {
        std::lock_guard<std::mutex> lock(reason_mu_);
        down_reason_ = why;
    }
    update();
    if (!running_) return;
    LogFields f;
    f["link"] = link->name();
    f["message"] = why;
    if (!down_logged_) {
        down_logged_ = true;
        f["redis"] = cfg_.address.text();
        log_.emit(LogEvent::cluster_down, f);
    } else if (log_.enabled(LogEvent::cluster_retry)) {
        log_.emit(LogEvent::cluster_retry, f);
    }
}

void Cluster::on_link_message(RedisLink *link, std::string_view channel, std::string_view payload) {
    (void)link;
    if (channel == hb_channel_) return;
    Envelope e;
    if (!decode_envelope(payload, &e)) {
        metrics_.cluster_dropped.add(metric::ClusterDrop::invalid);
        LogFields f;
        f["channel"] = std::string(channel);
        f["bytes"] = payload.size();
        log_.emit(LogEvent::cluster_invalid, f);
        return;
    }
    // Our own, delivered locally already; but a history message is
    // delivered from its echo everywhere (lib/core/history.h).
    if (e.origin_tag == tag_ && e.kind != EnvelopeKind::TopicHistory) return;
    metrics_.cluster_received.inc();
    sink_.on_cluster_message(e);
}

void Cluster::on_check() {
    const int64_t now = mono_ms();
    cmd_->check(now);
    sub_->check(now);
    presence_->tick(now);
    // The heartbeat: published on the command link to a channel the
    // subscriber link listens to. A subscriber link that hears nothing for a
    // command timeout while the command link works is hung: made again.
    if (!(cmd_->ready() && sub_->ready() && channels_->listening(hb_channel_))) {
        hb_watch_since_ms_ = 0;
    } else {
        if (!hb_watch_since_ms_) hb_watch_since_ms_ = now;
        if (now - last_hb_ms_ >= hb_every_ms_) {
            last_hb_ms_ = now;
            cmd_->command({"PUBLISH", hb_channel_, "."}, [](const redisReply *) {});
        }
        const int64_t silent = now - std::max(sub_->last_message(), hb_watch_since_ms_);
        if (silent > cfg_.command_timeout_ms + hb_every_ms_)
            sub_->reset("the subscriptions connection heard nothing (not even its heartbeat) for " +
                        std::to_string(silent) + " ms while the commands connection worked");
    }
    transport_.start_timer(&check_timer_, check_every_ms_ * 1000, [this] { on_check(); });
}

}  // namespace wsgate
