/**
 * The Lua scripts of the cluster bus: each runs atomically in Redis, so registering a node with
 * its interest, reaping a dead node and taking a session over are never seen half done.
 *
 * Keys and channels under the prefix `P`:
 *
 * | name            | kind    | content                                              |
 * | --------------- | ------- | ---------------------------------------------------- |
 * | `P nodes`       | set     | ids of registered nodes                              |
 * | `P alive:ID`    | string  | liveness key of a node, with a TTL (heartbeat)       |
 * | `P interest:ID` | set     | the topic filters a node has local subscribers for   |
 * | `P members:ID`  | hash    | shared group → its members on the node, when over 1  |
 * | `P owner`       | hash    | client id → id of the node owning its session        |
 * | `P owned:ID`    | set     | client ids a node owns                               |
 * | `P wills`       | hash    | client id → its will (encoded message), while owned  |
 * | `P retained`    | hash    | topic → its retained message (encoded message)       |
 * | `P stats`       | hash    | node → its counters (JSON), for cluster-wide `$SYS`  |
 * | `P ctl`         | channel | interest changes, syncs and departures, for all      |
 * | `P to:ID`       | channel | takeover notices for one node                        |
 * | `P s:ID`        | stream  | messages forwarded to one node, until it reads them  |
 * | `P dead:ID`     | stream  | a node's stream after it left or died, for 10 min    |
 *
 * @module
 */

const KEYS = `
local P = ARGV[1]
local NODES = P .. 'nodes'
local OWNER = P .. 'owner'
local WILLS = P .. 'wills'
local function alive(n) return P .. 'alive:' .. n end
local function interest(n) return P .. 'interest:' .. n end
local function owned(n) return P .. 'owned:' .. n end
local function release_all(n)
  local clients = {}
  for _, c in ipairs(redis.call('SMEMBERS', owned(n))) do
    if redis.call('HGET', OWNER, c) == n then
      redis.call('HDEL', OWNER, c)
      clients[#clients + 1] = c
    end
  end
  redis.call('DEL', owned(n), interest(n), alive(n), P .. 'members:' .. n)
  redis.call('HDEL', P .. 'stats', n)
  -- Its unread stream is kept a while: the nodes adopting its sessions read what they missed.
  local s = P .. 's:' .. n
  if redis.call('EXISTS', s) == 1 then
    redis.call('RENAME', s, P .. 'dead:' .. n)
    redis.call('PEXPIRE', P .. 'dead:' .. n, 600000)
  end
  redis.call('SREM', NODES, n)
  return clients
end
`;

/**
 * ARGV: prefix, node, ttl ms, sync frame, number of filters, filters..., owned client ids...
 * Registers the node with its liveness key, replaces its interest set, re-claims the sessions
 * it owns that nobody else claimed meanwhile, and announces its interest on the control channel.
 * Returns the client ids it could not re-claim (taken over while it was away).
 */
export const REGISTER_SCRIPT = KEYS + `
local me, ttl, frame, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
redis.call('SADD', NODES, me)
redis.call('SET', alive(me), '1', 'PX', ttl)
-- An adopting node may have given its stream a lifetime (written to after it was reaped).
redis.call('PERSIST', P .. 's:' .. me)
redis.call('DEL', interest(me))
for i = 6, 5 + n do redis.call('SADD', interest(me), ARGV[i]) end
local lost = {}
for i = 6 + n, #ARGV do
  local c = ARGV[i]
  local owner = redis.call('HGET', OWNER, c)
  if owner == false or owner == me then
    redis.call('HSET', OWNER, c, me)
    redis.call('SADD', owned(me), c)
  else
    lost[#lost + 1] = c
  end
end
redis.call('PUBLISH', P .. 'ctl', frame)
return lost
`;

/**
 * ARGV: prefix, node. Returns the interest of every other registered node:
 * { node, { filters... }, node, { filters... }, ... }.
 */
export const SNAPSHOT_SCRIPT = KEYS + `
local me = ARGV[2]
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', NODES)) do
  if n ~= me then
    out[#out + 1] = n
    out[#out + 1] = redis.call('SMEMBERS', interest(n))
  end
end
return out
`;

/**
 * ARGV: prefix, node, ttl ms. Refreshes the node's liveness key (if it is still registered) and
 * reaps every registered node whose liveness key expired: its sessions are released and its
 * keys deleted, by exactly one node. Returns { registered (0/1), { members... },
 * { reaped node, { its client ids } , ... } }.
 */
export const HEARTBEAT_SCRIPT = KEYS + `
local me, ttl = ARGV[2], ARGV[3]
local registered = redis.call('SISMEMBER', NODES, me)
if registered == 1 then redis.call('SET', alive(me), '1', 'PX', ttl) end
local reaped = {}
for _, n in ipairs(redis.call('SMEMBERS', NODES)) do
  if n ~= me and redis.call('EXISTS', alive(n)) == 0 then
    reaped[#reaped + 1] = n
    reaped[#reaped + 1] = release_all(n)
  end
end
return { registered, redis.call('SMEMBERS', NODES), reaped }
`;

/** ARGV: prefix, node. Unregisters the node; returns the client ids it owned. */
export const LEAVE_SCRIPT = KEYS + `
return release_all(ARGV[2])
`;

/**
 * ARGV: prefix, node, then per claim its client id, takeover frame and will (encoded message,
 * or '' for none): the claims of concurrent logins in one call, in the order made. Makes the node
 * the owner of each session, with its will, and, when another node owned it, sends that node the
 * takeover frame. Returns per claim the previous owner or ''.
 */
export const CLAIM_SCRIPT = KEYS + `
local me = ARGV[2]
local out = {}
for i = 3, #ARGV, 3 do
  local c = ARGV[i]
  local old = redis.call('HGET', OWNER, c)
  redis.call('HSET', OWNER, c, me)
  redis.call('SADD', owned(me), c)
  if ARGV[i + 2] == '' then redis.call('HDEL', WILLS, c) else redis.call('HSET', WILLS, c, ARGV[i + 2]) end
  if old and old ~= me then
    redis.call('SREM', owned(old), c)
    redis.call('PUBLISH', P .. 'to:' .. old, ARGV[i + 1])
    out[#out + 1] = old
  else
    out[#out + 1] = ''
  end
end
return out
`;

/**
 * ARGV: prefix, node, client id. Forgets the session's will (published or discarded by its
 * node), unless another node owns the session now (its will is the new connection's).
 */
export const DROP_WILL_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
local owner = redis.call('HGET', OWNER, c)
if owner == me or owner == false then redis.call('HDEL', WILLS, c) end
return 0
`;

/**
 * ARGV: prefix, client id. Takes the will of a session nobody owns (its node died and was
 * reaped): returns it and deletes it, so that exactly one node publishes it; '' when there is
 * none or the client is owned again (reconnected elsewhere).
 */
export const TAKE_WILL_SCRIPT = KEYS + `
local c = ARGV[2]
if redis.call('HEXISTS', OWNER, c) == 1 then return '' end
local will = redis.call('HGET', WILLS, c)
if will == false then return '' end
redis.call('HDEL', WILLS, c)
return will
`;

/**
 * ARGV: prefix, node, client id, '1' when asked again after a run whose answer did not come.
 * Adopts a session nobody owns (its node died or left): makes the node its owner and takes its
 * will, in one step, so that exactly one node adopts it and publishes the will. Returns
 * { 1, will or '' }, or { 0, '' } when the client is owned already (another node adopted it, or
 * it reconnected); asked again, { 1, '' } when the node owns it (that run adopted it: its will
 * went with the answer).
 */
export const ADOPT_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
local owner = redis.call('HGET', OWNER, c)
if owner == me and ARGV[4] == '1' then return { 1, '' } end
if owner ~= false then return { 0, '' } end
-- Reads before writes: a script that fails half-way leaves its writes, and a session owned by
-- a node that took it as not adopted would be adopted by nobody.
local will = redis.call('HGET', WILLS, c)
redis.call('HSET', OWNER, c, me)
redis.call('SADD', owned(me), c)
if will == false then return { 1, '' } end
redis.call('HDEL', WILLS, c)
return { 1, will }
`;

/**
 * ARGV: prefix, topic, retained frame, message ('' to clear). Sets or clears the topic's retained
 * message and announces the frame to every node, in one step: every node applies the changes in
 * the order Redis made them.
 */
export const RETAIN_SCRIPT = KEYS + `
if ARGV[4] == '' then
  redis.call('HDEL', P .. 'retained', ARGV[2])
else
  redis.call('HSET', P .. 'retained', ARGV[2], ARGV[4])
end
redis.call('PUBLISH', P .. 'ctl', ARGV[3])
return 0
`;

/** ARGV: prefix, node, client id. Gives up ownership if the node still has it; returns 1 if so. */
export const RELEASE_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
redis.call('SREM', owned(me), c)
if redis.call('HGET', OWNER, c) == me then
  redis.call('HDEL', OWNER, c)
  redis.call('HDEL', WILLS, c)
  return 1
end
return 0
`;
