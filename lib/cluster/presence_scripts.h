// The Lua scripts of presence and the node number's lease (keys:
// lib/cluster/presence_keys.h). Each runs atomically in Redis, so a reader
// never sees a hash without its node in the node set, and no presence hash
// outlives the lease of its node: a hash gets the lease's remaining time
// when written (never a fresh full TTL) and the full TTL only together with
// the lease, in the renewal.
#pragma once

namespace wsgate {
namespace lua {

// The node number. KEYS[1] P:nodes; ARGV: lease key prefix "P:lease:",
// tag, ttl ms, preferred number (0: none), tries.
// A preferred number (the one this server had: its connection ids carry it)
// is taken again if free or still ours; -n when another server holds it.
// Else INCR gives a candidate, folded into 1..65535, taken if free
// (SET NX), the next one tried otherwise. 0: none free within the tries.
constexpr const char *kTakeNode = R"lua(
local pref = tonumber(ARGV[4])
if pref > 0 then
  local k = ARGV[1] .. pref
  local v = redis.call('GET', k)
  if v == false then
    redis.call('SET', k, ARGV[2], 'PX', ARGV[3])
    return pref
  end
  if v == ARGV[2] then
    redis.call('PEXPIRE', k, ARGV[3])
    return pref
  end
  return -pref
end
for i = 1, tonumber(ARGV[5]) do
  local n = (redis.call('INCR', KEYS[1]) - 1) % 65535 + 1
  if redis.call('SET', ARGV[1] .. n, ARGV[2], 'NX', 'PX', ARGV[3]) then return n end
end
return 0
)lua";

// The renewal. KEYS[1] lease, KEYS[2] the node's key set P:pk:N; ARGV: tag,
// ttl ms, prefix, node. 1: still ours; 2: it had lapsed (or Redis lost it)
// and is ours again; 3: another server holds it (nothing touched). Every
// hash of the node gets the lease's TTL, its node set at least as much; a
// hash that is gone leaves the key set.
constexpr const char *kRenew = R"lua(
local v = redis.call('GET', KEYS[1])
local st = 1
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  st = 2
elseif v ~= ARGV[1] then
  return 3
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local ttl = tonumber(ARGV[2])
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local kind = string.sub(m, 1, 1)
  local name = string.sub(m, 3)
  if redis.call('PEXPIRE', ARGV[3] .. ':p' .. kind .. ':' .. ARGV[4] .. ':' .. name, ttl) == 1 then
    local s = ARGV[3] .. ':p' .. kind .. 'n:' .. name
    redis.call('SADD', s, ARGV[4])
    if redis.call('PTTL', s) < ttl then redis.call('PEXPIRE', s, ttl) end
  else
    redis.call('SREM', KEYS[2], m)
  end
end
redis.call('PEXPIRE', KEYS[2], ttl)
return st
)lua";

// Entries of one hash. KEYS[1] lease, KEYS[2] hash, KEYS[3] node set,
// KEYS[4] key set; ARGV: tag, node, "K:<name>", then field, value pairs.
// 0 (nothing written) unless the lease is ours; the hash and the sets get
// the lease's remaining time.
constexpr const char *kWrite = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SADD', KEYS[3], ARGV[2])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call('SADD', KEYS[4], ARGV[3])
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return 1
)lua";

// Every hash of the node, gone (a resync begins, or a clean stop, which
// also gives the lease back). KEYS[1] lease, KEYS[2] key set; ARGV: tag,
// prefix, node, release (1 or 0). 0 unless the lease is ours.
constexpr const char *kClear = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local kind = string.sub(m, 1, 1)
  local name = string.sub(m, 3)
  redis.call('DEL', ARGV[2] .. ':p' .. kind .. ':' .. ARGV[3] .. ':' .. name)
  redis.call('SREM', ARGV[2] .. ':p' .. kind .. 'n:' .. name, ARGV[3])
end
redis.call('DEL', KEYS[2])
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
return 1
)lua";

// The reader: every node's entries for one name, in one round trip.
// KEYS[1] node set; ARGV: "P:pK:", ":<name>". Returns node, field, value
// triples; nodes whose hash is gone (expired with their lease) leave the set.
constexpr const char *kRead = R"lua(
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = redis.call('HGETALL', ARGV[1] .. n .. ARGV[2])
  if #h == 0 then
    redis.call('SREM', KEYS[1], n)
  else
    for i = 1, #h, 2 do
      out[#out + 1] = n
      out[#out + 1] = h[i]
      out[#out + 1] = h[i + 1]
    end
  end
end
return out
)lua";

}  // namespace lua
}  // namespace wsgate
