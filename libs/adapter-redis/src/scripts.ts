/**
 * The Lua scripts of the Redis adapters. ioredis (`defineCommand`) sends each one with EVAL
 * the first time on a connection and with EVALSHA after that (and falls back to EVAL when
 * Redis answers NOSCRIPT, e.g. after a restart). Times come from the Redis clock (`TIME`), so
 * every node judges deadlines by the same clock. Requires Redis >= 5 (scripts replicated by
 * effect). The registry scripts touch only the keys passed in KEYS (one hash tag). The
 * ownership scripts change a client's hash and the per-node index sets in one step, and the
 * previous owner's set is known only inside the script: those keys are in different hash
 * slots, so ownership needs a Redis without cluster mode (a primary with replicas).
 */

/** Milliseconds since the Unix epoch on the Redis clock. */
const NOW_MS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * Hands KEYS[1] (a client's hash, read as `current`) to node ARGV[1] with the next epoch: the
 * last + 1, or (ARGV[2] `clock`) the Redis time in ms when that is greater. Returns last, epoch.
 */
const TAKE = `
local function take(current)
  local last = tonumber(current[2]) or 0
  local epoch = last + 1
  if ARGV[2] == 'clock' then
    local now = now_ms()
    if now > epoch then epoch = now end
  end
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', string.format('%d', epoch))
  return last, epoch
end
`;

/**
 * Moves a client ID between the per-node index sets, in the same script as the claim: SADD to
 * KEYS[2] (the new owner's set) and, when the owner changes node, SREM from the previous
 * owner's set, `ARGV[4] .. previous` (ARGV[4] the sets' key prefix: the previous owner is
 * known only inside the script). ARGV[5] is the client ID.
 */
const REINDEX = `
local function reindex(previous)
  redis.call('SADD', KEYS[2], ARGV[5])
  if previous and previous ~= ARGV[1] then
    redis.call('SREM', ARGV[4] .. previous, ARGV[5])
  end
end
`;

/**
 * Claims a client ID for a node. KEYS[1] the client's hash, KEYS[2] the node's index set;
 * ARGV[1] node ID; ARGV[2] `clock` or `counter`; ARGV[3] unused; ARGV[4] the index sets' key
 * prefix; ARGV[5] the client ID. The new epoch is the last one + 1, or (clock) the Redis time
 * in ms when that is greater. Returns { epoch } or { epoch, previousNode, previousEpoch }.
 */
export const CLAIM_SCRIPT = `${NOW_MS}${TAKE}${REINDEX}
local current = redis.call('HMGET', KEYS[1], 'node', 'epoch')
local last, epoch = take(current)
reindex(current[1])
if current[1] then
  return { epoch, current[1], last }
end
return { epoch }
`;

/**
 * Claims a client ID for a node only while another given node owns it (adoption of a dead
 * node's sessions). KEYS[1] the client's hash, KEYS[2] the node's index set; ARGV[1] node ID;
 * ARGV[2] `clock` or `counter`; ARGV[3] the expected owner; ARGV[4] the index sets' key
 * prefix; ARGV[5] the client ID. Returns { epoch, previousNode, previousEpoch }, or {} (and
 * changes nothing) when the owner is not the expected one.
 */
export const CLAIM_FROM_SCRIPT = `${NOW_MS}${TAKE}${REINDEX}
local current = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if current[1] ~= ARGV[3] then
  return {}
end
local last, epoch = take(current)
reindex(current[1])
return { epoch, current[1], last }
`;

/**
 * Releases a client ID if its owner still has this epoch. KEYS[1] the client's hash; ARGV[1]
 * the epoch, ARGV[2] the index sets' key prefix, ARGV[3] the client ID. Removes the owner and
 * its index entry in one step; the last epoch stays, so epochs keep growing. Returns the node
 * it released, or 0 when it released nothing.
 */
export const RELEASE_SCRIPT = `
local current = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if current[1] and current[2] == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'node')
  redis.call('SREM', ARGV[2] .. current[1], ARGV[3])
  return current[1]
end
return 0
`;

/**
 * Registers a node. KEYS[1] deadlines (sorted set), KEYS[2] info (hash); ARGV[1] node ID,
 * ARGV[2] TTL in ms, ARGV[3] info as JSON. Returns the deadline.
 */
export const REGISTER_SCRIPT = `${NOW_MS}
local deadline = now_ms() + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', deadline), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return deadline
`;

/**
 * Extends a live node's deadline. KEYS[1] deadlines; ARGV[1] node ID, ARGV[2] TTL in ms.
 * Returns the new deadline, or 0 (and changes nothing) when the node is not live.
 */
export const HEARTBEAT_SCRIPT = `${NOW_MS}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local now = now_ms()
if not score or tonumber(score) <= now then
  return 0
end
local deadline = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', deadline), ARGV[1])
return deadline
`;

/**
 * Lists the known nodes, first forgetting those whose deadline is older than the retention.
 * KEYS[1] deadlines, KEYS[2] info; ARGV[1] retention in ms. Returns
 * { now, id1, deadline1, info1, id2, … } (numbers as decimal strings).
 */
export const LIST_SCRIPT = `${NOW_MS}
local now = now_ms()
local horizon = string.format('%d', now - tonumber(ARGV[1]))
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[2], id)
end
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
end
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = { string.format('%d', now) }
for i = 1, #entries, 2 do
  out[#out + 1] = entries[i]
  out[#out + 1] = entries[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], entries[i]) or ''
end
return out
`;
