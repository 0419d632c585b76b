#include "core/topics.h"

#include <algorithm>

#include "core/conn.h"
#include "protocol/utf8.h"

namespace wsgate {

std::string check_topic(std::string_view name) {
    if (name.empty()) return "a topic name is 1 to 255 bytes; this one is empty";
    if (name.size() > kMaxTopicBytes)
        return "topic name of " + std::to_string(name.size()) + " bytes: at most 255";
    Utf8Validator v;
    if (!(v.feed(reinterpret_cast<const uint8_t *>(name.data()), name.size()) && v.complete()))
        return "a topic name must be UTF-8";
    return {};
}

bool TopicIndex::subscribe(Conn *c, std::string_view name, int64_t since_ms) {
    if (!c->subs) c->subs = std::make_unique<std::vector<Subscription>>();
    std::vector<Subscription> &subs = *c->subs;
    for (const Subscription &s : subs)
        if (s.topic->name == name) return false;
    std::unique_ptr<Topic> &slot = topics_[std::string(name)];
    if (!slot) {
        slot = std::make_unique<Topic>();
        slot->name = std::string(name);
        if (on_first_last) on_first_last(slot->name, true);
    }
    Topic *t = slot.get();
    subs.push_back(Subscription{t, static_cast<uint32_t>(t->members.size()), since_ms});
    t->members.push_back(Topic::Member{c, static_cast<uint32_t>(subs.size() - 1)});
    subscriptions_++;
    return true;
}

bool TopicIndex::unsubscribe(Conn *c, std::string_view name) {
    if (!c->subs) return false;
    std::vector<Subscription> &subs = *c->subs;
    for (uint32_t i = 0; i < subs.size(); i++) {
        if (subs[i].topic->name != name) continue;
        remove(c, i);
        if (subs.empty()) c->subs.reset();
        return true;
    }
    return false;
}

// Swap-removes subscription i of c and c's member entry in its topic,
// fixing the positions of the entries that moved; a topic left without
// members is forgotten (publishing to it is then one failed lookup).
void TopicIndex::remove(Conn *c, uint32_t i) {
    std::vector<Subscription> &subs = *c->subs;
    Topic *t = subs[i].topic;
    const uint32_t pos = subs[i].pos;
    // Out of the topic's members.
    Topic::Member moved = t->members.back();
    t->members[pos] = moved;
    t->members.pop_back();
    if (pos < t->members.size()) (*moved.conn->subs)[moved.pos].pos = pos;
    // Out of the connection's subscriptions.
    Subscription last = subs.back();
    subs[i] = last;
    subs.pop_back();
    if (i < subs.size()) last.topic->members[last.pos].pos = i;
    if (t->members.empty()) {
        if (on_first_last) on_first_last(t->name, false);
        topics_.erase(t->name);
    }
    subscriptions_--;
}

void TopicIndex::drop_all(Conn *c) {
    if (!c->subs) return;
    while (!c->subs->empty()) remove(c, static_cast<uint32_t>(c->subs->size() - 1));
    c->subs.reset();
}

const Topic *TopicIndex::find(std::string_view name) const {
    auto it = topics_.find(std::string(name));
    return it == topics_.end() ? nullptr : it->second.get();
}

void UserIndex::add(const std::string &user, Conn *c) {
    std::vector<Conn *> &v = users_[user];
    v.push_back(c);
    if (v.size() == 1 && on_first_last) on_first_last(user, true);
}

void UserIndex::remove(const std::string &user, Conn *c) {
    auto it = users_.find(user);
    if (it == users_.end()) return;
    std::vector<Conn *> &v = it->second;
    v.erase(std::remove(v.begin(), v.end(), c), v.end());
    if (v.empty()) {
        users_.erase(it);
        if (on_first_last) on_first_last(user, false);
    }
}

const std::vector<Conn *> *UserIndex::find(std::string_view user) const {
    auto it = users_.find(std::string(user));
    return it == users_.end() ? nullptr : &it->second;
}

}  // namespace wsgate
