/**
 * The Lua scripts of the cluster bus: each runs atomically in Redis, so registering a node with
 * its interest, reaping a dead node and taking a session over are never seen half done.
 *
 * Keys and channels under the prefix `P`:
 *
 * | name            | kind    | content                                              |
 * | --------------- | ------- | ---------------------------------------------------- |
 * | `P epoch`       | string  | a random token set by the first node to register     |
 * |                 |         | (SET NX): gone or another when Redis lost its data   |
 * | `P count`       | string  | a counter INCRed by every registration and heartbeat |
 * |                 |         | (never expires): lower than a node last got, under   |
 * |                 |         | its epoch, when Redis went back to older data        |
 * | `P gen`         | string  | not a number ({@linkcode PRE_VERSION_BARRIER}), set  |
 * |                 |         | by every registration and heartbeat with the node's  |
 * |                 |         | liveness TTL: the counter of the releases before     |
 * |                 |         | protocol versions, whose scripts INCR it and fail    |
 * | `P gen:ID`      | string  | the node's own counter, INCRed by its registrations, |
 * |                 |         | heartbeats, claims, adoptions, wills dropped or      |
 * |                 |         | taken, and store writes: lower than the most it got, |
 * |                 |         | under its epoch, when Redis went back; for a week    |
 * |                 |         | once the node was reaped or left, as `P inc:ID`      |
 * | `P nodes`       | set     | ids of registered nodes                              |
 * | `P alive:ID`    | string  | liveness key of a node, with a TTL (heartbeat)       |
 * | `P inc:ID`      | string  | the node's incarnation; `reaped` (for a week) once   |
 * |                 |         | it was reaped or left; gone after that week, which   |
 * |                 |         | fences it too while `P epoch` is unchanged           |
 * | `P interest:ID` | set     | the topic filters a node has local subscribers for   |
 * | `P members:ID`  | hash    | shared group → its members on the node, when over 1  |
 * | `P left:ID`     | hash    | shared group → the last entry of the node's stream   |
 * |                 |         | it had read when the group's last member there left, |
 * |                 |         | until the stream is trimmed past that entry          |
 * | `P durable:ID`  | set     | shared groups with a persistent member on the node   |
 * |                 |         | (kept until the group's last member there leaves)    |
 * | `P gone:ID`     | hash    | a departed node's shared groups: `+` (only clean     |
 * |                 |         | members when it went), `*` (a persistent one), or    |
 * |                 |         | its `P left:ID` mark; field '' always; for 10 min    |
 * | `P owner`       | hash    | client id → id of the node owning its session        |
 * | `P owned:ID`    | set     | client ids a node owns                               |
 * | `P store:writer`| hash    | the shared store's writer marks (client id → node,   |
 * |                 |         | `_redis_store_scripts.ts`): a claim from another     |
 * |                 |         | node names that node, a release drops the mark of a  |
 * |                 |         | session never stored (this node's, or any while it   |
 * |                 |         | still owns it); unless the owner has not read the    |
 * |                 |         | session since its own claim (a chain of moves)       |
 * | `P store:handing`| hash   | client id → the nodes the owner waits for in a chain |
 * |                 |         | of moves, by newlines, in their claims' order: set   |
 * |                 |         | by a claim from another node, dropped when the owner |
 * |                 |         | reads or releases it, or at a claim from nobody; a   |
 * |                 |         | node's handoff passes the writer mark along it       |
 * | `P wills`       | hash    | client id → its will (encoded message), while owned  |
 * | `P gaveway`     | hash    | client id → the node whose provisional session of it |
 * |                 |         | gave way with a will waiting for its delay: set by   |
 * |                 |         | that node's claim (read `w`, CLAIM_SCRIPT) or at an  |
 * |                 |         | adoption, dropped by another node's claim that goes  |
 * |                 |         | through (a login: the will is not published          |
 * |                 |         | [MQTT-3.1.3-9]), when the delay is over or a login   |
 * |                 |         | on that node cancelled it (GIVEN_WAY_WILL_SCRIPT),   |
 * |                 |         | or when that node leaves or is reaped                |
 * | `P pendsub:ID`  | hash    | filter → a subscription (JSON, `SubscribedEntry`) a  |
 * |                 |         | client made in a provisional session that gave way,  |
 * |                 |         | to add to its session (PEND_SCRIPT): applied by the  |
 * |                 |         | node holding or loading that session, then dropped   |
 * |                 |         | (APPLIED_PENDING_SCRIPT); dropped by a claim that    |
 * |                 |         | begins a new session (CLAIM_SCRIPT), by the owner's  |
 * |                 |         | release (the session ended), and by a reap or leave  |
 * |                 |         | of its owner when the store holds no such session    |
 * | `P pendsubs`    | set     | the client ids with a `P pendsub:ID`                 |
 * | `P born`        | hash    | client id → Redis's clock (ms) when its session      |
 * |                 |         | began (a clean start, or a claim finding none): a    |
 * |                 |         | provisional session's subscriptions are not added to |
 * |                 |         | one that began after it (PEND_SCRIPT); dropped as    |
 * |                 |         | `P pendsub:ID` is when the session ends              |
 * | `P retained`    | hash    | topic → its retained message (encoded message)       |
 * | `P stats`       | hash    | node → its counters and gauges (JSON: `counters`,    |
 * |                 |         | `gauges`), for cluster-wide `$SYS`; of registered    |
 * |                 |         | incarnations only (SHARE_STATS_SCRIPT)               |
 * | `P departed`    | hash    | counter → what departed nodes counted (their last    |
 * |                 |         | `P stats` counters, added as they were reaped or     |
 * |                 |         | left): cluster-wide counters never go down           |
 * | `P ctl`         | channel | interest changes, syncs, departures and emptyings    |
 * |                 |         | after a rollback, for all                            |
 * | `P to:ID`       | channel | takeover notices and handoffs for one node           |
 * | `P s:ID`        | stream  | messages forwarded to one node, until it reads them; |
 * |                 |         | read in group `r`, whose last id says how far        |
 * |                 |         | once it left, empty, for late writes, for 10 min     |
 * | `P dead:ID`     | stream  | a node's stream after it left or died, for 10 min    |
 * | `P passed:ID`   | zset    | shared-group messages of a node's stream passed on,  |
 * |                 |         | or taken for a QoS 2 delivery there (`TAKE_SCRIPT`): |
 * |                 |         | each key once, by whoever adds it first              |
 * | `P hops:KEY`    | string  | how often one message was passed on for one group    |
 * | `P versions`    | hash    | node → its cluster protocol version and incarnation  |
 * |                 |         | (`_protocol.ts`), set as it registers; a live node   |
 * |                 |         | without one of its incarnation runs a release before |
 * |                 |         | protocol versions                                    |
 *
 * @module
 */

import { COUNT_LUA, READ_SESSION_LUA } from "./_redis_store_scripts.ts";
import { CLUSTER_PROTOCOL, UNVERSIONED } from "./_protocol.ts";

/**
 * What the nodes keep in `P gen` (with their liveness TTL, so it goes with the last of them): the
 * cluster counter of the releases before cluster protocol versions, which their registration and
 * heartbeat INCR (`count`). Not a number, it fails their first script: such a node started beside
 * these does not register, and its start fails ("ERR value is not an integer or out of range");
 * the counter of this release is `P count`. (No quote, backslash or newline: it is Lua text.)
 */
export const PRE_VERSION_BARRIER =
  "cluster protocol 2 or later runs here: a release before cluster protocol versions cannot join";

/**
 * How long the key of a reaped (or departed) incarnation keeps saying `reaped`: a node only
 * paused learns at its next heartbeat that it was reaped, and its writes are refused until then;
 * a node paused longer than this finds the key gone, which fences it as well as long as the
 * cluster's `P epoch` is the one it registered under (Redis did not lose its data meanwhile).
 * Kept for a week, not forever: a node id made of the host and the pid (the default) is never
 * registered again, so one key per broker run would stay in Redis for good.
 */
export const REAPED_INCARNATION_MS = 7 * 24 * 3600 * 1000;

/**
 * The names of the cluster's keys under its prefix `P` that are one key each (`P epoch`), and
 * the families of those that are many (`P s:ID`: family `s`), as in the module doc's table; the
 * store's keys all go under `P store:`. What a rollback empties (`rolled_back`): not every key
 * the prefix begins, since another cluster's prefix may begin with this one's.
 */
export const CLUSTER_KEY_NAMES = [
  "epoch",
  "count",
  "gen",
  "nodes",
  "owner",
  "wills",
  "gaveway",
  "pendsubs",
  "born",
  "retained",
  "stats",
  "departed",
  "versions",
];
/** See {@linkcode CLUSTER_KEY_NAMES}. */
export const CLUSTER_KEY_FAMILIES = [
  "alive",
  "gen",
  "inc",
  "interest",
  "members",
  "left",
  "durable",
  "gone",
  "owned",
  "s",
  "dead",
  "passed",
  "hops",
  "pendsub",
  "store",
];

/**
 * The key prefix of the store the nodes share (`openClusterStore`), under the cluster's prefix:
 * the scripts here find the store's keys (`P store:writer`…) under it as well.
 */
export function clusterStorePrefix(prefix: string): string {
  return `${prefix}store:`;
}

function luaSet(names: string[]): string {
  return names.map((name) => `['${name}'] = true`).join(", ");
}

const KEYS = COUNT_LUA + `
local P = ARGV[1]
local GEN = P .. 'count'
-- See PRE_VERSION_BARRIER.
local function bar_old(ttl)
  redis.call('SET', P .. 'gen', '${PRE_VERSION_BARRIER}', 'PX', ttl)
end
local NODES = P .. 'nodes'
local OWNER = P .. 'owner'
local WILLS = P .. 'wills'
local GAVEWAY = P .. 'gaveway'
local PENDSUBS = P .. 'pendsubs'
local BORN = P .. 'born'
local function pendsub(c) return P .. 'pendsub:' .. c end
-- Redis's clock, ms: the one clock every node reads (a node's own is not another's).
local function redis_ms()
  local t = redis.call('TIME')
  return string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
-- The session of client 'c' begins (a clean start, or a claim finding none): noted with Redis's
-- clock, and the subscriptions left for the session before it are dropped: they were made in an
-- older session [MQTT-3.1.2-4] (PEND_SCRIPT).
local function began(c)
  redis.call('HSET', BORN, c, redis_ms())
  redis.call('DEL', pendsub(c))
  redis.call('SREM', PENDSUBS, c)
end
-- The session of client 'c' ended (released by its owner: ended or expired there; or a session
-- the store does not hold, of a node reaped or leaving): when it began, and the subscriptions
-- left for it, are forgotten.
local function ended(c)
  redis.call('HDEL', BORN, c)
  redis.call('DEL', pendsub(c))
  redis.call('SREM', PENDSUBS, c)
end
local VERSIONS = P .. 'versions'
-- The shared store's keys: under the prefix followed by 'store:' (\`clusterStorePrefix\`).
local SP = P .. 'store:'
local WRITER = SP .. 'writer'
local HANDING = SP .. 'handing'
local function alive(n) return P .. 'alive:' .. n end
local function interest(n) return P .. 'interest:' .. n end
local function owned(n) return P .. 'owned:' .. n end
local function incarnation(n) return P .. 'inc:' .. n end
local function own_gen(n) return P .. 'gen:' .. n end
-- The live nodes (registered, liveness key set) other than 'me' whose cluster protocol version
-- ('_protocol.ts') is not this release's: { node, version, ... }, version ${UNVERSIONED} for a node
-- with no record of its present incarnation in 'P versions' (a release before protocol versions,
-- or an earlier incarnation's record). A registered node whose liveness key expired is dead, not
-- counted: the first heartbeat after this node registers reaps it.
local function foreign(me)
  local out = {}
  for _, n in ipairs(redis.call('SMEMBERS', NODES)) do
    if n ~= me and redis.call('EXISTS', alive(n)) == 1 then
      local version = '${UNVERSIONED}'
      local record = redis.call('HGET', VERSIONS, n)
      if record then
        local space = string.find(record, ' ', 1, true)
        if space and string.sub(record, space + 1) == redis.call('GET', incarnation(n)) then
          version = string.sub(record, 1, space - 1)
        end
      end
      if version ~= '${CLUSTER_PROTOCOL}' then
        out[#out + 1] = n
        out[#out + 1] = version
      end
    end
  end
  return out
end
-- Whether the incarnation 'inc' of node 'n' was reaped (or left): its key names another one, or
-- it is gone while the cluster's epoch is still 'epoch', the one the node found when it last
-- registered: the 'reaped' mark expired (REAPED_INCARNATION_MS) while the node was paused, and a
-- live incarnation's key never expires. A key gone with the epoch (Redis lost its data), or a
-- node that knows no epoch yet (''), is no fence: the node registers again with the same one;
-- nor is one gone with 'P count' below 'gen', the last value the node got (Redis went back to
-- data older than its registration: 'rolled_back', which the node's next registration or
-- heartbeat runs, makes it a data loss).
local function fenced(n, inc, epoch, gen)
  local current = redis.call('GET', incarnation(n))
  if current ~= false then return current ~= inc end
  if epoch == nil or epoch == '' or redis.call('GET', P .. 'epoch') ~= epoch then return false end
  return tonumber(redis.call('GET', GEN) or '0') >= (tonumber(gen) or 0)
end
-- Whether a key under the prefix, 'rest' being what follows it, is one of this cluster's
-- (the table in the module doc; the store's keys all under 'store:'). Not every key the prefix
-- begins: another cluster's prefix may begin with this one ('a' and 'ab', 'amqtt:' and
-- 'amqtt:eu:'), and its keys ('abnodes', 'amqtt:eu:nodes') are no name of this one's.
local CLUSTER_KEYS = { ${luaSet(CLUSTER_KEY_NAMES)} }
local CLUSTER_FAMILIES = { ${luaSet(CLUSTER_KEY_FAMILIES)} }
local function ours(rest)
  if CLUSTER_KEYS[rest] then return true end
  local family = string.match(rest, '^(%l+):')
  return family ~= nil and CLUSTER_FAMILIES[family] == true
end
-- Whether Redis went back to older data (restarted from an older snapshot, a lagging replica
-- promoted) since node 'n' last got 'gen' from 'P count', or 'mine' from its own 'P gen:n', under
-- the epoch 'epoch' it registered under: a counter is lower. Then every key of the cluster
-- ('ours': the store's under 'P store:' too) but 'P count' and the store's id counter is deleted,
-- 'P epoch' and 'P store:epoch' with them, in this script: every node takes it for a data loss
-- (its epoch gone), registers again and writes what it holds, as after a FLUSHALL; what only the
-- rolled-back data held (sessions no live node holds) goes with it. Nothing else can tell: the
-- node's incarnation key would be back or gone, and the epoch is the old one.
-- The node's own counter, which its store writes advance too (a write acknowledged after the
-- snapshot tells), and no other node: scripts of nodes idle since the snapshot raise 'P count'
-- back past what an active node got, never its own one. A counter gone is no rollback: a
-- snapshot without 'P count' has no 'P epoch' either (set after the first registration's INCR, and
-- kept by no emptying), so it was deleted or evicted, and \`count\` starts it again above every
-- value it gave; a node's own one is gone as well for a node registered after the snapshot, or
-- paused past the week its key outlives a reap (then fenced, \`fenced\`): the node passes 'mine'
-- 0 when its last script was answered longer ago than that week (\`ClusterBus\`), so an own
-- counter gone with its incarnation key, for a node that passes one, is Redis gone back to
-- before its registration (an own counter evicted alone keeps the incarnation key).
local function rolled_back(epoch, gen, n, mine)
  local last, own = tonumber(gen) or 0, tonumber(mine) or 0
  if (last == 0 and own == 0) or epoch == nil or epoch == '' then return false end
  if redis.call('GET', P .. 'epoch') ~= epoch then return false end
  local current = redis.call('GET', GEN)
  local back = current ~= false and tonumber(current) < last
  if not back and own > 0 then
    local counted = redis.call('GET', own_gen(n))
    if counted == false then
      back = redis.call('EXISTS', incarnation(n)) == 0
    else
      back = tonumber(counted) < own
    end
  end
  if not back then return false end
  local keep = { [GEN] = true, [SP .. 'msgid'] = true }
  local pattern = string.gsub(P, '[%*%?%[%]\\\\]', '\\\\%0') .. '*'
  -- SCAN rather than KEYS, which ACLs often deny (@dangerous): a script failing here would fail
  -- every heartbeat from now on.
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = page[1]
    for _, k in ipairs(page[2]) do
      if not keep[k] and ours(string.sub(k, #P + 1)) then redis.call('UNLINK', k) end
    end
  until cursor == '0'
  return true
end
-- A departed node's counters (its last share in 'P stats', SHARE_STATS_SCRIPT) are added to
-- 'P departed' as its entry goes, in the script that reaps it or that it leaves by, so that they
-- are counted once, and the cluster-wide totals of counters (messages, bytes, drops) never go
-- down when a node dies (monitoring takes a counter going down for a restart). Its gauges
-- (clients connected) go with it. An entry of another form (an older release's: a flat object)
-- is not added: which of its figures are counters it does not say.
local function fold_stats(n)
  local stats = redis.call('HGET', P .. 'stats', n)
  if stats == false then return end
  redis.call('HDEL', P .. 'stats', n)
  local ok, value = pcall(cjson.decode, stats)
  if not ok or type(value) ~= 'table' or type(value.counters) ~= 'table' then return end
  for name, count in pairs(value.counters) do
    if type(name) == 'string' and type(count) == 'number' and count > 0 and count < 2^53 then
      -- (redis.pcall: a field that is no integer, a sum past 2^63, must not fail the reap.)
      redis.pcall('HINCRBY', P .. 'departed', name, string.format('%.0f', math.floor(count)))
    end
  end
end
local FENCED = 'AMQTT_FENCED this node was taken for dead: its sessions moved to other nodes'
local function release_all(n)
  local clients = {}
  for _, c in ipairs(redis.call('SMEMBERS', owned(n))) do
    if redis.call('HGET', OWNER, c) == n then
      redis.call('HDEL', OWNER, c)
      clients[#clients + 1] = c
      -- A session the store holds no record of ended with its node (nobody adopts it): what
      -- was noted or left for it in Redis goes with it, or stays for good (a client that never
      -- comes back). A stored one keeps both for its adopter or next loader.
      if redis.call('HEXISTS', SP .. 'sessions', c) == 0 then ended(c) end
    end
  end
  -- The writer marks it holds in chains of moves (sessions it had not handed over yet) go on as
  -- its handoff would pass them (HAND_OFF_SCRIPT): to the node after it in the chain, else to the
  -- owner, else nowhere. It writes nothing more (reaped: fenced; leaving: committed first). Left
  -- with its id, the mark would have a node adopting the session wait for a handoff that never
  -- comes, until its bound, while a node restarted under that id lives (the restart retires the
  -- previous run by this function). (Only sessions in a chain: a few, mid-move.)
  local chains = redis.call('HGETALL', HANDING)
  for i = 1, #chains, 2 do
    local c = chains[i]
    if redis.call('HGET', WRITER, c) == n then
      local after, seen = false, false
      for m in string.gmatch(chains[i + 1], '[^\\n]+') do
        if seen then
          after = m
          break
        end
        if m == n then seen = true end
      end
      if not after then after = redis.call('HGET', OWNER, c) end
      if after then redis.call('HSET', WRITER, c, after) else redis.call('HDEL', WRITER, c) end
    end
  end
  -- Its shared groups as it went, for the node rescuing its stream (ClusterBus #rescue): that
  -- node's own view of them may lag (it missed a leave); what it wrote here does not.
  local gone, left = P .. 'gone:' .. n, P .. 'left:' .. n
  redis.call('DEL', gone)
  if redis.call('EXISTS', left) == 1 then redis.call('RENAME', left, gone) end
  local durable = P .. 'durable:' .. n
  for _, f in ipairs(redis.call('SMEMBERS', interest(n))) do
    if string.sub(f, 1, 7) == '$share/' then
      redis.call('HSET', gone, f, redis.call('SISMEMBER', durable, f) == 1 and '*' or '+')
    end
  end
  -- The field '' says that a script of this kind wrote it (a hash that never exists otherwise).
  redis.call('HSET', gone, '', '1')
  redis.call('PEXPIRE', gone, 600000)
  redis.call('DEL', owned(n), interest(n), alive(n), P .. 'members:' .. n, durable)
  -- The delayed wills of its provisional sessions that gave way: it publishes none of them now.
  local gw = redis.call('HGETALL', GAVEWAY)
  for i = 1, #gw, 2 do
    if gw[i + 1] == n then redis.call('HDEL', GAVEWAY, gw[i]) end
  end
  fold_stats(n)
  -- Its unread stream is kept a while: the nodes adopting its sessions read what they missed,
  -- by entry id (after the node's read mark), so a registered node's stream is renamed whole.
  -- A node not registered (released again: a restart retiring its id) has only what others
  -- wrote after its release there, which nobody read: added to its dead stream.
  local s, d = P .. 's:' .. n, P .. 'dead:' .. n
  if redis.call('XLEN', s) == 0 then
    redis.call('DEL', s)
  elseif redis.call('SISMEMBER', NODES, n) == 1 or redis.call('EXISTS', d) == 0 then
    redis.call('RENAME', s, d)
    redis.call('PEXPIRE', d, 600000)
  else
    for _, e in ipairs(redis.call('XRANGE', s, '-', '+')) do
      redis.call('XADD', d, '*', unpack(e[2]))
    end
    redis.call('DEL', s)
    redis.call('PEXPIRE', d, 600000)
  end
  -- In its place an empty stream with the dead stream's lifetime: a node that has not heard of
  -- this yet writes there, and the entry keeps that lifetime (an XADD keeps a key's), however
  -- soon that writer stops or dies; else the XADD would create a stream nobody reads or deletes
  -- (a node id with a pid in it never registers again). A registration moves it away.
  redis.call('XADD', s, '*', 'x', '')
  redis.call('XTRIM', s, 'MAXLEN', 0)
  redis.call('PEXPIRE', s, 600000)
  redis.call('SREM', NODES, n)
  redis.call('HDEL', VERSIONS, n)
  -- Fences the incarnation: its store writes, claims and adoptions are refused from now on (it
  -- was maybe only paused), and it learns at its next registration that it was reaped.
  -- Kept a week (REAPED_INCARNATION_MS): a node id with a pid in it is never registered again.
  redis.call('SET', incarnation(n), 'reaped', 'PX', ${REAPED_INCARNATION_MS})
  -- Its own counter as long (a node id with a pid in it is never registered again): a node
  -- only paused finds it as it left it, which is no rollback.
  redis.call('PEXPIRE', own_gen(n), ${REAPED_INCARNATION_MS})
  return clients
end
`;

/**
 * ARGV: prefix, node, ttl ms, sync frame, incarnation, '1' for a new incarnation ('2' for the
 * first one of a starting node, refused while a live node of another cluster protocol version is
 * registered: then { 2, { node, version, ... }, 0, 0, 0 } and nothing written), the epoch the
 * node found at its last registration ('' for none), the last value of `P count` it got ('0' for
 * none), the last value of its own `P gen:ID` it got ('0' for none), number of filters,
 * filters..., owned client ids...
 * First finds whether Redis went back to older data since (`rolled_back`: then it empties the
 * cluster's keys, which makes it a data loss for every node), and counts one more `P count` and
 * `P gen:ID`.
 * Registers the node with its liveness key, replaces its interest set, re-claims the sessions
 * it owns that nobody else claimed meanwhile, and announces its interest on the control channel.
 * Returns { 1, the client ids it could not re-claim (taken over while it was away), `P count`,
 * 1 when it found Redis gone back (else 0), `P gen:ID`, Redis's clock in ms (`ClusterBus.redisNow`) },
 * or { 0, {}, `P count`, 0, `P gen:ID` }
 * and does nothing more
 * when the incarnation (not a new one) was reaped: the node was taken
 * for dead, its sessions were handed out, and it must let go of them before it registers again
 * with a new incarnation. A new incarnation first moves what other nodes wrote to its stream
 * after the reap (for the sessions handed out) to its dead stream, which their adopters read.
 */
export const REGISTER_SCRIPT = KEYS + `
local me, ttl, frame, inc, new, epoch = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
-- A starting node's first registration: refused, in the same script that would register it,
-- while a live node of another cluster protocol version is registered. Checked apart before
-- (VERSIONS_SCRIPT), two nodes of different versions starting within a moment could both pass.
if new == '2' then
  local others = foreign(me)
  if #others > 0 then return { 2, others, 0, 0, 0 } end
  new = '1'
end
local rolled = rolled_back(epoch, ARGV[8], me, ARGV[9]) and 1 or 0
local gen = count(GEN, ARGV[8])
local mine = count(own_gen(me), ARGV[9])
local n = tonumber(ARGV[10])
if new ~= '1' and fenced(me, inc, epoch, ARGV[8]) then return { 0, {}, gen, 0, mine } end
local s = P .. 's:' .. me
-- (The empty stream its release left for late writes goes.)
if new == '1' and redis.call('XLEN', s) == 0 then redis.call('DEL', s) end
if new == '1' and fenced(me, inc, epoch, ARGV[8]) and redis.call('EXISTS', s) == 1 then
  local d = P .. 'dead:' .. me
  if redis.call('EXISTS', d) == 0 then
    redis.call('RENAME', s, d)
  else
    for _, e in ipairs(redis.call('XRANGE', s, '-', '+')) do
      redis.call('XADD', d, '*', unpack(e[2]))
    end
    redis.call('DEL', s)
  end
  redis.call('PEXPIRE', d, 600000)
end
redis.call('SET', incarnation(me), inc)
-- Of this incarnation: a record left by an earlier one (reaped by a release that does not
-- delete it) does not vouch for a node of another release registered later under the same id.
redis.call('HSET', VERSIONS, me, '${CLUSTER_PROTOCOL} ' .. inc)
redis.call('PERSIST', own_gen(me))
redis.call('SADD', NODES, me)
redis.call('SET', alive(me), '1', 'PX', ttl)
-- A pass while it was not registered (PASS_SCRIPT) may have given its stream a lifetime.
redis.call('PERSIST', s)
redis.call('DEL', interest(me))
for i = 11, 10 + n do redis.call('SADD', interest(me), ARGV[i]) end
local lost = {}
for i = 11 + n, #ARGV do
  local c = ARGV[i]
  local owner = redis.call('HGET', OWNER, c)
  if owner == false or owner == me then
    redis.call('HSET', OWNER, c, me)
    redis.call('SADD', owned(me), c)
  else
    lost[#lost + 1] = c
  end
end
bar_old(ttl)
redis.call('PUBLISH', P .. 'ctl', frame)
return { 1, lost, gen, rolled, mine, redis_ms() }
`;

/**
 * ARGV: prefix, node. Returns the live nodes other than `node` whose cluster protocol version
 * (`_protocol.ts`) is not this release's: { node, version, ... } (`foreign` above, which
 * REGISTER_SCRIPT runs too).
 */
export const VERSIONS_SCRIPT = KEYS + `
return foreign(ARGV[2])
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
 * ARGV: prefix, node, ttl ms, incarnation, epoch, last `P count`, last `P gen:ID` (see
 * REGISTER_SCRIPT). Finds whether Redis went back to older data (as REGISTER_SCRIPT does) and
 * counts one more `P count` and `P gen:ID`,
 * refreshes the node's liveness key (if it is still
 * registered, as this incarnation) and reaps every registered node whose liveness key expired:
 * its sessions are released and its keys deleted, by exactly one node. Returns
 * { registered (0/1: 0 when reaped), { members... }, { reaped node, { its client ids } , ... },
 * `P epoch` or '', `P count`, 1 when it found Redis gone back (else 0), `P gen:ID`, Redis's clock in
 * ms (`ClusterBus.redisNow`) }: an epoch gone or changed
 * tells the node that Redis lost its data (emptied, a replica without it promoted, or gone back
 * and emptied by this or another node's script) though no connection closed.
 */
export const HEARTBEAT_SCRIPT = KEYS + `
local me, ttl = ARGV[2], ARGV[3]
local rolled = rolled_back(ARGV[5], ARGV[6], me, ARGV[7]) and 1 or 0
local gen = count(GEN, ARGV[6])
local mine = count(own_gen(me), ARGV[7])
local registered = redis.call('SISMEMBER', NODES, me)
if fenced(me, ARGV[4], ARGV[5], ARGV[6]) then registered = 0 end
if registered == 1 then
  redis.call('SET', alive(me), '1', 'PX', ttl)
  bar_old(ttl)
end
local reaped = {}
for _, n in ipairs(redis.call('SMEMBERS', NODES)) do
  if n ~= me and redis.call('EXISTS', alive(n)) == 0 then
    reaped[#reaped + 1] = n
    reaped[#reaped + 1] = release_all(n)
  end
end
return {
  registered, redis.call('SMEMBERS', NODES), reaped, redis.call('GET', P .. 'epoch') or '', gen, rolled,
  mine, redis_ms()
}
`;

/** ARGV: prefix, node. Unregisters the node; returns the client ids it owned. */
export const LEAVE_SCRIPT = KEYS + `
return release_all(ARGV[2])
`;

/**
 * ARGV: prefix, node, incarnation, epoch, last `P count` (see REGISTER_SCRIPT), then per claim its client id,
 * takeover frame, will (encoded message, or '' for none) and read: the claims
 * of concurrent logins in one call, in the order made. Makes the node the owner of each session,
 * with its will, and, when another node owned it, names that node the session's writer in the
 * shared store (its last writes before the handoff go through) and sends it the takeover frame.
 * Returns
 * per claim the previous owner or '', then the node's own counter `P gen:ID`, counted once per
 * call. Fails (`AMQTT_FENCED`) when the incarnation was reaped, with no claim made.
 *
 * A claim whose read is `r` or `s` reads the session from the store (its keys under the store's
 * prefix, {@linkcode clusterStorePrefix}; `READ_SESSION_LUA`: the call's reads share one part of
 * bodies and entries, the rest read after it) in the same step, a login's read
 * and claim in one round trip, and returns { previous owner ('' for none or this node), 1 when claimed else 0, the session's rows }
 * instead. `n` claims only when no session exists: no other node owns it and the store holds no
 * record of it (a session served provisionally while Redis was away, `ClusterSessions`); not
 * claimed, it is not read. `s` claims only when no subscription is stored: a stored session's filters are
 * announced before its claim (`ClusterSessions`), so that one is read only (its record and
 * subscriptions: the rest is read with its claim), and claimed by a later call. `k` reads and
 * claims as `r`, but only when no other node owns the session (not claimed, it is not read). A session claimed
 * from another node is not read (its rows say none): the login reads it after that node's handoff
 * (`LOAD_SESSION_SCRIPT`), and a session with a long queue would otherwise be read whole twice
 * more. The read marks the node as the session's writer (a session read as missing too) as a
 * read after the claim would (`LOAD_SESSION_SCRIPT`): when it owned the session already, or
 * claimed it from nobody; not when another node had it, which may still write it until its
 * handoff, and whose end of the session written meanwhile (`de`) must find itself the writer.
 */
export const CLAIM_SCRIPT = KEYS + READ_SESSION_LUA + `
local me = ARGV[2]
if fenced(me, ARGV[3], ARGV[4], ARGV[5]) then return redis.error_reply(FENCED) end
local out = {}
for i = 6, #ARGV, 4 do
  local c, read = ARGV[i], ARGV[i + 3]
  -- A read ending in '!': the claim of a login starting clean, whose session begins here.
  local clean = string.sub(read, -1) == '!'
  if clean then read = string.sub(read, 1, -2) end
  local old = redis.call('HGET', OWNER, c)
  local previous = ''
  if old and old ~= me then previous = old end
  local subscribed = read == 's' and readSubscribed(SP, c)
  -- 'n': a provisional session's claim, made only when no session exists cluster-wide: no other
  -- node owns it and the store holds no record of it. 'w': the same for one whose will waits for
  -- its delay: when it gives way, the node watches for a login of the client (GAVEWAY).
  local provisional = read == 'n' or read == 'w'
  local exists = provisional and (previous ~= '' or redis.call('HEXISTS', SP .. 'sessions', c) == 1)
  -- 'k': read as 'r', claimed only when no other node owns the session (a session brought over
  -- to keep a provisional one's subscriptions): one another node holds may have its client
  -- connected there, which the claim would close [MQTT-3.1.4-3] for no login of it.
  if read == 'k' and previous ~= '' then exists = true end
  if exists then
    if read == 'w' then redis.call('HSET', GAVEWAY, c, me) end
    out[#out + 1] = { previous, 0, NOT_READ }
  elseif subscribed then
    if old == me then ownerRead(SP, c, me) end
    out[#out + 1] = { previous, 0, subscribed }
  else
    -- A clean start, or a claim from nobody of a session the store holds no record of: a new
    -- session [MQTT-3.1.2-4], which no subscription left for an older one goes into.
    if clean or (not old and redis.call('HEXISTS', SP .. 'sessions', c) == 0) then began(c) end
    redis.call('HSET', OWNER, c, me)
    redis.call('SADD', owned(me), c)
    if ARGV[i + 2] == '' then redis.call('HDEL', WILLS, c) else redis.call('HSET', WILLS, c, ARGV[i + 2]) end
    -- A login of the client: the delayed will of a provisional session that gave way is not
    -- published [MQTT-3.1.3-9] (GIVEN_WAY_WILL_SCRIPT). Not the claim of the node watching: it
    -- brings the session over to keep the subscriptions made in the provisional one, and a
    -- login there cancels the will there.
    if redis.call('HGET', GAVEWAY, c) ~= me then redis.call('HDEL', GAVEWAY, c) end
    if previous ~= '' then
      -- Until this node reads the session (after the handoff), its old owner writes it: the store
      -- refuses a session's writes to a node that is neither its writer nor its owner ('wo'), and
      -- the mark may name another node (this one read it as missing before, say). Unless the old
      -- owner has not read it either since it claimed it from another node (a chain of moves, A
      -- to B, then this claim from B before A's handoff): the mark stays with the node that still
      -- writes it (A), and the old owner joins the chain, to write it once A handed over
      -- (LOAD_SESSION_SCRIPT) and until it hands over in turn.
      local chain = redis.call('HGET', HANDING, c)
      if chain then
        redis.call('HSET', HANDING, c, chain .. '\\n' .. old)
      else
        redis.call('HSET', WRITER, c, old)
        redis.call('HSET', HANDING, c, old)
      end
      redis.call('SREM', owned(old), c)
      redis.call('PUBLISH', P .. 'to:' .. old, ARGV[i + 1])
    end
    -- Claimed from nobody: no chain of moves leads to it.
    if not old then redis.call('HDEL', HANDING, c) end
    if read == '' then
      out[#out + 1] = previous
    elseif previous ~= '' then
      out[#out + 1] = { previous, 1, NOT_READ }
    else
      -- Read as its owner (claimed from nobody, or owned already), also as missing: the session
      -- the node starts is its own from here (LOAD_SESSION_SCRIPT).
      ownerRead(SP, c, me)
      out[#out + 1] = { previous, 1, readSession(SP, c, true) }
    end
  end
end
-- Counted in the node's own counter, answered last: a claim its login acknowledges (CONNACK)
-- after a snapshot Redis goes back to leaves the counter below what the node got, as a store
-- write does ('rolled_back'); else the previous owner, back in Redis, would send this node no
-- takeover when the client logs in elsewhere.
out[#out + 1] = count(own_gen(me))
return out
`;

/**
 * ARGV: prefix, node, client id. The delay of the will of a provisional session that gave way on
 * the node is over (`BrokerCore.giveWay`): returns 1 when no claim of the client went through
 * since (its `P gaveway` field still names the node), and drops the field; else 0, and the will is
 * not published: the client logged in, here or on another node, within the delay
 * [MQTT-3.1.3-9].
 */
export const GIVEN_WAY_WILL_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
if redis.call('HGET', GAVEWAY, c) ~= me then return 0 end
redis.call('HDEL', GAVEWAY, c)
return 1
`;

/**
 * ARGV: prefix, client id, `since`, then filter and subscription (JSON) pairs. Leaves the
 * subscriptions a client made in a provisional session that gives way for the session that exists
 * (`P pendsub:ID`, `P pendsubs`), for the node holding or loading it to add. Not when that session
 * began (`P born`, Redis's clock) at or after `since`, the time on Redis's clock the provisional
 * session began (the giving node's estimate: Redis's clock at its last heartbeat plus the time
 * its own clock counted since): the client started that session clean (or found none) after the
 * provisional one began, and a new session holds nothing of an older one [MQTT-3.1.2-4].
 * Returns { 1 when left, -1 when that session is newer, 0 when none exists now; its owner or '' }.
 */
export const PEND_SCRIPT = KEYS + `
local c, since = ARGV[2], tonumber(ARGV[3]) or 0
local owner = redis.call('HGET', OWNER, c)
if not owner and redis.call('HEXISTS', SP .. 'sessions', c) == 0 then return { 0, '' } end
local born = redis.call('HGET', BORN, c)
if born and tonumber(born) >= since then return { -1, owner or '' } end
for i = 4, #ARGV, 2 do redis.call('HSET', pendsub(c), ARGV[i], ARGV[i + 1]) end
redis.call('SADD', PENDSUBS, c)
return { 1, owner or '' }
`;

/**
 * ARGV: prefix, client id, then filter and subscription (JSON) pairs: the subscriptions left for
 * the client's session (PEND_SCRIPT) that a node added to it and stored. Drops each that is still
 * the one added (a give-way since may have left another for the same filter); the client's entry
 * in `P pendsubs` with the last. Returns 1.
 */
export const APPLIED_PENDING_SCRIPT = KEYS + `
local c = ARGV[2]
for i = 3, #ARGV, 2 do
  if redis.call('HGET', pendsub(c), ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', pendsub(c), ARGV[i])
  end
end
if redis.call('EXISTS', pendsub(c)) == 0 then redis.call('SREM', PENDSUBS, c) end
return 1
`;

/**
 * ARGV: prefix, node, client id, incarnation, epoch, last `P count` (see REGISTER_SCRIPT). Forgets the session's will (published or discarded
 * by its node), unless another node owns the session now (its will is the new connection's).
 * Returns the node's own counter `P gen:ID`, counted: a will dropped after a snapshot Redis goes
 * back to would come back and be published by the adopter of the session after this node's
 * death, although this node published or discarded it (`rolled_back`, as for a claim).
 * Fails (`AMQTT_FENCED`) when the incarnation was reaped: its sessions were released, and the
 * will of one nobody adopted yet is its adopter's to publish [MQTT-3.1.2-8].
 */
export const DROP_WILL_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
if fenced(me, ARGV[4], ARGV[5], ARGV[6]) then return redis.error_reply(FENCED) end
local owner = redis.call('HGET', OWNER, c)
if owner == me or owner == false then redis.call('HDEL', WILLS, c) end
return count(own_gen(me))
`;

/**
 * ARGV: prefix, client id, node, incarnation, epoch, last `P count` (see REGISTER_SCRIPT). Takes the will of a session nobody owns (its node
 * died and was reaped): returns it and deletes it, so that exactly one node publishes it; '' when
 * there is none or the client is owned again (reconnected elsewhere). Returns { will or '', the
 * node's own counter `P gen:ID` (counted when it took one; else 0) }: a will taken after a
 * snapshot Redis goes back to would come back, and another node publish it again
 * (`rolled_back`, as for a claim). Fails (`AMQTT_FENCED`) when the incarnation was reaped: a
 * node taken for dead leaves the will to a live one.
 */
export const TAKE_WILL_SCRIPT = KEYS + `
local c, me = ARGV[2], ARGV[3]
if fenced(me, ARGV[4], ARGV[5], ARGV[6]) then return redis.error_reply(FENCED) end
if redis.call('HEXISTS', OWNER, c) == 1 then return { '', 0 } end
local will = redis.call('HGET', WILLS, c)
if will == false then return { '', 0 } end
redis.call('HDEL', WILLS, c)
return { will, count(own_gen(me)) }
`;

/**
 * ARGV: prefix, node, client id, '1' when asked again after a run whose answer did not come,
 * incarnation (fails with `AMQTT_FENCED` when it was reaped), epoch, last `P count` (see
 * REGISTER_SCRIPT).
 * Adopts a session nobody owns (its node died or left): makes the node its owner and takes its
 * will, in one step, so that exactly one node adopts it and publishes the will. Returns
 * { 1, will or '', the node's own counter }, or { 0, '', 0 } when the client is owned already
 * (another node adopted it, or it reconnected); asked again, { 1, '', the counter } when the node
 * owns it (that run adopted it: its will went with the answer). The counter `P gen:ID` is
 * counted with an adoption (`rolled_back`, as for a claim): Redis gone back to before it would
 * have the session nobody's, for another node to adopt too, and its will back, published again.
 */
export const ADOPT_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
if fenced(me, ARGV[5], ARGV[6], ARGV[7]) then return redis.error_reply(FENCED) end
local owner = redis.call('HGET', OWNER, c)
if owner == me and ARGV[4] == '1' then return { 1, '', count(own_gen(me)) } end
if owner ~= false then return { 0, '', 0 } end
-- Reads before writes: a script that fails half-way leaves its writes, and a session owned by
-- a node that took it as not adopted would be adopted by nobody.
local will = redis.call('HGET', WILLS, c)
redis.call('HSET', OWNER, c, me)
redis.call('SADD', owned(me), c)
if will ~= false then redis.call('HDEL', WILLS, c) end
return { 1, will or '', count(own_gen(me)) }
`;

/**
 * ARGV: prefix, node, incarnation, stats (JSON: `counters` and `gauges`, name → number). Stores
 * the node's stats in `P stats` when this incarnation is registered (not after its reap or leave,
 * which took its last share into `P departed`: a share after that would be counted again when the
 * node id goes a second time). Returns { 1 when stored (else 0), { stats of each registered node
 * that has some }, { `P departed` as field, value, ... } }, read in the same step: a node's
 * counters are in either, never in both nor in neither.
 */
export const SHARE_STATS_SCRIPT = KEYS + `
local me, inc = ARGV[2], ARGV[3]
local stored = 0
if redis.call('GET', incarnation(me)) == inc and redis.call('SISMEMBER', NODES, me) == 1 then
  redis.call('HSET', P .. 'stats', me, ARGV[4])
  stored = 1
end
local live = {}
for _, n in ipairs(redis.call('SMEMBERS', NODES)) do
  local stats = redis.call('HGET', P .. 'stats', n)
  if stats ~= false then live[#live + 1] = stats end
end
return { stored, live, redis.call('HGETALL', P .. 'departed') }
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

/**
 * ARGV: prefix, node, client id. Gives up ownership if the node still has it; returns 1 if so,
 * else the node owning it now, or 0 when none does. Drops the writer mark of a session the shared
 * store does not hold when it names the node, or when the node still owns the session.
 */
export const RELEASE_SCRIPT = KEYS + `
local me, c = ARGV[2], ARGV[3]
redis.call('SREM', owned(me), c)
local owner = redis.call('HGET', OWNER, c)
-- A session that ended here and was never stored (a clean one) keeps no writer mark: its read as
-- missing marked this node (LOAD_SESSION_SCRIPT). Nor one this node gives back still owning it
-- (a login refused after its claim, before its read): its claim from another node named that node
-- (CLAIM_SCRIPT, for its last writes before the handoff, which land as well with no mark), and
-- the mark, left, would refuse the writes of a node holding the session without owning it yet
-- (a login there while Redis was away, before its claim is made again) as taken by that node.
local mark = redis.call('HGET', WRITER, c)
if mark ~= false and (mark == me or owner == me)
    and redis.call('HEXISTS', SP .. 'sessions', c) == 0 then
  redis.call('HDEL', WRITER, c)
end
if owner == me then
  redis.call('HDEL', OWNER, c)
  redis.call('HDEL', WILLS, c)
  ended(c)
  redis.call('HDEL', SP .. 'handing', c)
  return 1
end
return owner or 0
`;

/**
 * ARGV: prefix, node, client id, the new owner the node hands the session over to, handoff frame.
 * Sends the frame to that node, and to the session's owner too when another node owns it now (a
 * chain of moves: that node claimed it from the new owner before this handoff, and follows the
 * chain to this node when the new owner dies before handing on, `ClusterSessions`). When the node
 * still holds the writer mark of a chain of moves (`P store:handing`), the mark goes to the node
 * after it in the chain (or to the owner when it is the last; to the node it hands over to when
 * nobody owns the session: that node died and was reaped, its adopter not known yet): this node
 * writes nothing more of the session, and a node following the chain, or adopting the session,
 * knows from the mark that it handed over.
 */
export const HAND_OFF_SCRIPT = KEYS + `
local me, c, to, frame = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local owner = redis.call('HGET', OWNER, c)
local chain = redis.call('HGET', HANDING, c)
if chain and redis.call('HGET', WRITER, c) == me then
  local after, seen = false, false
  for n in string.gmatch(chain, '[^\\n]+') do
    if seen then
      after = n
      break
    end
    if n == me then seen = true end
  end
  -- (Owned by nobody: the new owner was reaped before this handoff. The mark left here would
  -- have the session's adopter wait for a handoff made already, until its bound.)
  if not after then after = owner or to end
  redis.call('HSET', WRITER, c, after)
end
redis.call('PUBLISH', P .. 'to:' .. to, frame)
if owner and owner ~= to and owner ~= me then redis.call('PUBLISH', P .. 'to:' .. owner, frame) end
return 0
`;

/**
 * ARGV: prefix, holder node, pass key ('' for none), its stream entry's ms, target stream, frame,
 * keep ms, 1 when the target is a dead stream, the message and group's hop key, the most passes
 * allowed now, the target node, 1 when the holder passes on a message of its own stream (a member's
 * session ended before its PUBLISH was written: its own take of the key, TAKE_SCRIPT's, gives way
 * to the pass). Passes a shared-group message on from the holder's stream (or dead stream) to
 * another node's, once per pass key: the key (entry id, frame index, group) goes into
 * `P passed:HOLDER` in the same step, so that a node rescuing a dead holder's stream does not pass
 * on again what the holder passed already. `P hops:KEY` counts the message's passes for the group
 * cluster-wide (a bound against passing it back and forth). Keys older than keep ms go. A target
 * stream whose node is not registered (reaped, unknown to this node yet) gets the dead stream's
 * lifetime: the XADD recreated it, and nobody would read or delete it. Returns 1
 * if passed, 0 if passed already, -1 if it was passed the most times allowed now (not passed).
 */
export const PASS_SCRIPT = KEYS + `
local passed = P .. 'passed:' .. ARGV[2]
if ARGV[3] ~= '' then
  local score = redis.call('ZSCORE', passed, ARGV[3])
  -- Passed already, or taken for a delivery that may have begun; not the holder's own take of a
  -- message it never sent (a take's score has a half) [MQTT-4.8.2-5].
  if score and not (ARGV[12] == '1' and tonumber(score) % 1 ~= 0) then return 0 end
end
local hops = P .. 'hops:' .. ARGV[9]
if tonumber(redis.call('GET', hops) or '0') >= tonumber(ARGV[10]) then return -1 end
redis.call('INCR', hops)
redis.call('PEXPIRE', hops, ARGV[7])
if ARGV[3] ~= '' then
  redis.call('ZADD', passed, ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', passed, '-inf', '(' .. (tonumber(ARGV[4]) - tonumber(ARGV[7])))
  redis.call('PEXPIRE', passed, ARGV[7])
end
redis.call('XADD', ARGV[5], '*', 'f', ARGV[6])
if ARGV[8] == '1' or redis.call('SISMEMBER', NODES, ARGV[11]) == 0 then
  redis.call('PEXPIRE', ARGV[5], 600000)
end
return 1
`;

/**
 * ARGV: prefix, node, incarnation, epoch, last `P count` (as the fenced scripts'), keep ms, then
 * pairs of (stream entry ms, key). Takes for a delivery on the
 * node shared-group messages published at QoS 2 that it read from its stream, before their first
 * PUBLISH is written to a member: each key (entry id, frame index, group, as `PASS_SCRIPT`'s)
 * goes into `P passed:NODE` unless it is there, so that a node rescuing the stream after the
 * node's death, whose passes go by that set, does not pass on a message whose delivery may have
 * begun [MQTT-4.8.2-5], and passes on one never sent (MQTT 5.0 on shared subscriptions: SHOULD
 * go to another member). Keys older than keep ms go, as in `PASS_SCRIPT`. The member `~` says
 * the node takes (a release before this one did not: what it sent is not marked). Returns per pair 1
 * when taken, 0 when the key was there: a rescue passed it on already (the node was taken for
 * dead), it must not be sent. Returns -1, taking nothing, when the incarnation was reaped
 * (fenced): its rescuer passes on what it did not take, and may not have read the entries yet,
 * so that a take reaching Redis first would keep a message from a pass while the node drops the
 * member's session unwritten.
 */
export const TAKE_SCRIPT = KEYS + `
if fenced(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return -1 end
local passed = P .. 'passed:' .. ARGV[2]
local out = {}
for i = 7, #ARGV, 2 do
  -- A take's score is its entry's ms and a half (a pass's, a whole ms): a take asked again after
  -- its answer was lost finds its own key, taken.
  local score = redis.call('ZSCORE', passed, ARGV[i + 1])
  if not score then
    redis.call('ZADD', passed, ARGV[i] .. '.5', ARGV[i + 1])
    out[#out + 1] = 1
  elseif tonumber(score) % 1 ~= 0 then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
redis.call('ZREMRANGEBYSCORE', passed, '-inf', '(' .. (tonumber(ARGV[7]) - tonumber(ARGV[6])))
redis.call('ZADD', passed, '+inf', '~')
redis.call('PEXPIRE', passed, ARGV[6])
return out
`;

/**
 * ARGV: prefix, node, incarnation, epoch, last \`P count\` (as the fenced scripts'), then keys the
 * node took (\`TAKE_SCRIPT\`) for entries it trimmed from its stream: they leave
 * \`P passed:NODE\`, unless the incarnation was reaped (fenced): its stream is then its
 * rescuer's dead stream, which the trim did not reach, and a rescue that reads one of those entries
 * again must find its key taken [MQTT-4.8.2-5]. Returns how many went, -1 when fenced (none).
 */
export const UNTAKE_SCRIPT = KEYS + `
if fenced(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return -1 end
local passed = P .. 'passed:' .. ARGV[2]
local n = 0
-- By the thousand: unpack's stack is bounded.
for from = 6, #ARGV, 1000 do
  n = n + redis.call('ZREM', passed, unpack(ARGV, from, math.min(from + 999, #ARGV)))
end
return n
`;

/**
 * ARGV: prefix, node, entry id. Makes the node read its stream in the consumer group `r` from
 * the entry after `id` (the last one it routed): moved there. The group's last id, which Redis
 * moves as it answers each XREADGROUP, is then how far the node can have read: a node rescuing
 * its stream after its death knows that nothing past it was delivered here. A stream without the
 * group is not the one the node read (Redis lost it, or it was moved away and made again by a
 * writer): nothing in it was read, and its ids may be below `id` (a server whose clock is
 * behind, promoted without the data): the group is made at its start, and 2 returned (the node
 * reads it from there). Does nothing and returns 0 when the node is not registered (reaped, or
 * Redis lost its data): a stream made then would be nobody's; it reads after it registered
 * again. Returns 1 when moved.
 */
export const READ_FROM_SCRIPT = KEYS + `
local me, id = ARGV[2], ARGV[3]
if redis.call('SISMEMBER', NODES, me) == 0 then return 0 end
local s = P .. 's:' .. me
local made = redis.pcall('XGROUP', 'CREATE', s, 'r', '0', 'MKSTREAM')
if type(made) == 'table' and made.err then
  redis.call('XGROUP', 'SETID', s, 'r', id)
  return 1
end
return 2
`;

/**
 * ARGV: prefix, node, entry id. Acknowledges in the node's group `r` what is pending there
 * before entry `id` (excluded), at most 1000 entries a call: the node holds none of them
 * (`ClusterBus.holdEntry`), so they are left over, from an XACK that failed (Redis away) or that
 * Redis lost (it went back to older data). Left pending, they would stay until the node leaves,
 * and a rescue of its stream would pass their shared QoS 1 messages on again. Returns how many
 * were acknowledged (0 without the stream or the group).
 */
export const ACK_STALE_SCRIPT = KEYS + `
local s = P .. 's:' .. ARGV[2]
local pending = redis.pcall('XPENDING', s, 'r', '-', '(' .. ARGV[3], 1000)
if type(pending) ~= 'table' or pending.err or #pending == 0 then return 0 end
local ids = {}
for i, p in ipairs(pending) do ids[i] = p[1] end
return redis.call('XACK', s, 'r', unpack(ids))
`;
