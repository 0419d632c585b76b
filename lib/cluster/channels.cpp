#include "cluster/channels.h"

#include <vector>

namespace wsgate {

void ChannelSet::want(const std::string &channel, bool on) {
    Entry &e = map_[channel];
    if (e.want != on) wanted_ += on ? 1 : size_t(-1);
    e.want = on;
    step(channel);
}

void ChannelSet::step(const std::string &channel) {
    auto it = map_.find(channel);
    if (it == map_.end()) return;
    Entry &e = it->second;
    if (e.want && e.st == St::Off) {
        if (link_.subscribe(channel, true, [this, channel](const redisReply *r) {
                auto i = map_.find(channel);
                if (!r || i == map_.end() || i->second.st != St::Subscribing) return;
                i->second.st = St::On;
                if (i->second.want && confirmed_) confirmed_(channel);
                step(channel);
            }))
            e.st = St::Subscribing;
    } else if (!e.want && e.st == St::On) {
        if (link_.subscribe(channel, false, [this, channel](const redisReply *r) {
                auto i = map_.find(channel);
                if (!r || i == map_.end() || i->second.st != St::Unsubscribing) return;
                i->second.st = St::Off;
                step(channel);
            }))
            e.st = St::Unsubscribing;
    } else if (!e.want && e.st == St::Off) {
        map_.erase(it);
    }
}

void ChannelSet::link_ready() {
    std::vector<std::string> names;
    names.reserve(map_.size());
    for (auto &kv : map_) names.push_back(kv.first);
    for (const std::string &n : names) step(n);
}

void ChannelSet::link_lost() {
    for (auto it = map_.begin(); it != map_.end();) {
        it->second.st = St::Off;
        if (!it->second.want)
            it = map_.erase(it);
        else
            ++it;
    }
}

bool ChannelSet::listening(const std::string &channel) const {
    auto it = map_.find(channel);
    return it != map_.end() && it->second.st == St::On;
}

}  // namespace wsgate
