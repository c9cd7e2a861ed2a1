/**
 * The Lua scripts of the Redis store. A script runs atomically in Redis, so a commit (all
 * batches of one event-loop turn) is seen whole or not at all by every other client, and the
 * conditional rules of the store contract (ignore writes for a missing session or message,
 * reference counts, messages unreferenced at the end of a batch) run next to the data.
 *
 * Keys under the prefix `P` (built inside the scripts, so the store needs one Redis, not a Redis
 * Cluster; a hash-tag prefix such as `{amqtt}:` keeps every key in one slot):
 *
 * | key           | type | content                                                      |
 * | ------------- | ---- | ------------------------------------------------------------ |
 * | `P sessions`  | hash | client id → session record (JSON)                            |
 * | `P sub:ID`    | hash | filter → subscription record (JSON)                          |
 * | `P out:ID`    | hash | seq → `state|qos|packetId|messageId`                         |
 * | `P in:ID`     | set  | inbound QoS 2 packet ids                                     |
 * | `P msg`       | hash | message id → message record (binary, `record_codec.ts`)      |
 * | `P ref`       | hash | message id → number of outbound entries referencing it       |
 * | `P retained`  | hash | topic → message record (binary)                              |
 * | `P counters`  | hash | name → number as text                                        |
 * | `P msgid`     | text | the last message id reserved by a node (`reserveMessageIds`), |
 * |               |      | raised by every write to the writer's highest id (`mx`)      |
 * | `P rewrite:T` | list | a rewrite's operations, staged until applied (`rewrite`)     |
 * | `P epoch`     | text | a random token set by the first store to open on this Redis:  |
 * |               |      | gone or changed after, Redis lost its data (`EPOCH_SCRIPT`)   |
 * | `P reads`   | text | the last number given to a read in parts (`READ_SESSION_LUA`) |
 * | `P reading`  | hash | client id → the token of the read in parts of its entries, in  |
 * |               |      | place, by a reader that is not its writer: deleted by every   |
 * |               |      | write of those entries (the read then fails: the session      |
 * |               |      | changed), replaced by the session's next such read, deleted   |
 * |               |      | by its reader at the end; the hash expires `READ_MARK_TTL_S`  |
 * |               |      | after the last read's part (a reader that died)               |
 * | `P writer`    | hash | client id → the node that last wrote its session record (a    |
 * |               |      | cluster's stores, `wn`), or read it (or deleted it, `ds`) as  |
 * |               |      | its owner: what `de` may delete, what `tg` leaves to its      |
 * |               |      | owner, and whose other nodes' ordinary writes `wo` refuses    |
 * | `P handing`   | hash | client id → the nodes a chain of moves passed the session     |
 * |               |      | through that its owner waits for (the bus's `CLAIM_SCRIPT`):  |
 * |               |      | each takes the writer mark when it reads (`LOAD_SESSION_SCRIPT`)|
 * |               |      | unless a node after it in the chain has it                    |
 *
 * **Fencing.** A cluster node's writes start with `fi` (its incarnation key in the cluster's keys
 * and its incarnation): when the key names another incarnation (the node was reaped, maybe while
 * only paused, and its sessions adopted by other nodes), the script returns 0 and applies nothing.
 * A node adopting (or claiming) a session runs its claim after the reap, and loads the session
 * after the claim: every write of the reaped node before the reap is in what it loads, and every
 * write after it is refused. One token per node rather than one per session: a live handover lets
 * the old owner write the session after the new owner's claim (what it read until its fence
 * answers, see `ClusterSessions.takenOver`), which the new owner waits for before it loads;
 * only a node taken for dead must write nothing more. A missing key fences as well while the
 * cluster's epoch key (`fi`'s third argument) holds the epoch the node registered under (its
 * fourth): the `reaped` mark expired while the node was paused for longer; with the epoch gone or
 * changed, Redis lost its data, and a missing key fences nothing (the node registers the same
 * incarnation again); nor while the cluster's `P count` (fifth) is below the last value the node
 * got (sixth): Redis went back to data older than the node's registration, which the bus's next
 * registration or heartbeat script makes a data loss (`_bus_scripts.ts`, `rolled_back`).
 * A run that passes the fence INCRs the node's own counter (`fi`'s seventh argument, the bus's
 * `P gen:ID`, '' for none; the eighth, the last value the node got) and answers its value: the node remembers it, so that a write
 * acknowledged after a snapshot Redis goes back to leaves the counter lower than the node's
 * last, which its next heartbeat finds.
 * That leaves, after a data loss, the ordinary writes of a node cut off
 * meanwhile to a session another node took: `wo` (the ownership hash, the node), in every write
 * of a cluster's store but a rewrite, refuses the operations on a session whose writer is
 * another node while the hash does not name this one, and the script returns those sessions
 * (client id, writer): the node lets go of them. A live handover's old owner is still the writer
 * (the new owner reads, and so becomes the writer, only after the handoff), and a session
 * nobody wrote yet (no mark) is written.
 *
 * @module
 */

/** Operation codes of the apply script, with the number of arguments after each. */
export const OPS = {
  putSession: "ps", // clientId, record
  deleteSession: "ds", // clientId
  putSubscription: "pb", // clientId, filter, record
  deleteSubscription: "db", // clientId, filter
  putMessage: "pm", // id, record
  queueOutbound: "qo", // clientId, seq, messageId, qos, packetId or ""
  sendOutbound: "so", // clientId, seq, packetId
  pubrelOutbound: "pr", // clientId, seq
  deleteOutbound: "do", // clientId, seq
  putInbound: "pi", // clientId, packetId
  deleteInbound: "di", // clientId, packetId
  putRetained: "pt", // topic, record
  deleteRetained: "dt", // topic
  setCounter: "sc", // name, value
  clear: "cl",
  endBatch: "eb",
  idFloor: "mx", // id: `P msgid` is raised to it (never lowered)
  deleteEnded: "de", // clientId, owner hash key or "", node: see the apply script
  writer: "wn", // node: the session records put next are this node's (`P writer`)
  unlessTaken: "tg", // clientId, owner hash key, node: see the apply script
  epoch: "ep", // token: the write fails, changing nothing, unless `P epoch` holds it (first op)
  fence: "fi", // incarnation key, incarnation, epoch key, epoch, gen key, gen, node's gen key, its last value: first, refuses the run if reaped
  writerOrOwner: "wo", // owner hash key ("": off), node: later session ops refused to others
} as const;

/**
 * Lua defining `count(key, floor)`: INCRs the counter `key` and returns its value. A counter gone
 * (deleted, or evicted by an `allkeys-*` maxmemory policy: INCR made it 1) starts again at
 * Redis's clock in microseconds, above every value it gave before (scripts run far fewer than a
 * million times a second), and above `floor`, the last value the calling node got of it (a clock
 * set back between two such starts, on a replica promoted, say, would start it below; another
 * node's value may still be above it then), so that no node's last value is above it: a counter
 * gone is no sign of Redis gone back to older data (`_bus_scripts.ts`, `rolled_back`), and
 * counting it from 1 would make it one for every node that got more before. The cluster's
 * `P count` and each node's `P gen:ID` (the bus's scripts, and `fi` here).
 */
export const COUNT_LUA = `
local function count(key, floor)
  local v = redis.call('INCR', key)
  if v ~= 1 then return v end
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local above = (tonumber(floor) or 0) + 1
  if above > us then us = above end
  redis.call('SET', key, string.format('%.0f', us))
  return us
end
`;

/** The error a write or reservation fails with when `P epoch` is gone or changed. */
export const DATA_LOST = "amqtt store: Redis lost its data";

const KEYS = `
local P = ARGV[1]
local SESS = P .. 'sessions'
local MSG = P .. 'msg'
local REF = P .. 'ref'
local RET = P .. 'retained'
local CNT = P .. 'counters'
local WRITER = P .. 'writer'
local function subk(c) return P .. 'sub:' .. c end
local function outk(c) return P .. 'out:' .. c end
local function ink(c) return P .. 'in:' .. c end
`;

// The operations of `A` (the prefix, then operations, see {@linkcode OPS}), applied in order.
const APPLY_OPS = `
local function parse(e)
  return string.match(e, '^(%a+)|(%d)|(%d*)|(%d*)$')
end
local function release(mid)
  if mid == nil or mid == '' then return end
  if redis.call('HEXISTS', REF, mid) == 0 then return end
  local n = redis.call('HINCRBY', REF, mid, -1)
  if n <= 0 then
    redis.call('HDEL', MSG, mid)
    redis.call('HDEL', REF, mid)
  end
end
local function hasSession(c) return redis.call('HEXISTS', SESS, c) == 1 end
-- A read in parts of the session's entries in place by a reader that is not its writer
-- (\`P reading\`, READ_SESSION_LUA): every write of those entries ends it (the reader's next part
-- fails: the session changed since its read began). One EXISTS a run while no such read is under
-- way (nearly always), then one HDEL per entry written.
local reading = redis.call('EXISTS', P .. 'reading') == 1
local function touched(c)
  if reading then redis.call('HDEL', P .. 'reading', c) end
end
local function deleteSession(c)
  if hasSession(c) then
    for _, e in ipairs(redis.call('HVALS', outk(c))) do
      local s, q, p, m = parse(e)
      release(m)
    end
    redis.call('DEL', subk(c), outk(c), ink(c))
    redis.call('HDEL', SESS, c)
    redis.call('HDEL', WRITER, c)
    touched(c)
  end
end

local candidates = {}
local writer = false
-- The node's own counter once \`fi\` counted the run (false while not).
local counted = false
-- Sessions whose operations are skipped (\`tg\`; false while none), and how many arguments each
-- session op takes.
local skip = false
local SESSION_OPS = { ps = 3, ds = 2, pb = 4, db = 3, qo = 6, so = 4, pr = 3, ['do'] = 3,
  pi = 3, di = 3 }
-- \`wo\`: the ownership hash and this node (false while off). A session whose writer is another
-- node, which the hash does not name this node the owner of, is another node's: its operations
-- are refused, and the session returned with its writer. Asked once per session and run.
local ownKey, me = false, false
-- The ownership hash of the last \`wo\` that named one (kept while a load-time expiry turns the
-- check off), for \`ds\`.
local held = false
local verdict = {}
local refused = {}
local function refuses(c)
  local v = verdict[c]
  if v == nil then
    v = false
    local w = redis.call('HGET', WRITER, c)
    if w ~= false and w ~= me and redis.call('HGET', ownKey, c) ~= me then
      v = true
      refused[#refused + 1] = c
      refused[#refused + 1] = w
    end
    verdict[c] = v
  end
  return v
end
local i = 2
local n = #A
while i <= n do
  local op = A[i]
  local args = SESSION_OPS[op]
  if args ~= nil and ((skip and skip[A[i+1]]) or (ownKey and refuses(A[i+1]))) then
    i = i + args
  elseif op == 'wo' then
    -- After a data loss, the incarnation fence lets through the writes of a node cut off
    -- meanwhile; the session another node took since (it read it as its owner, or wrote it) is
    -- that node's. A live handover's old owner is still the writer (the new owner reads after
    -- the handoff): its last writes go through.
    ownKey, me = A[i+1], A[i+2]
    if ownKey == '' then ownKey = false else held = ownKey end
    i = i + 3
  elseif op == 'tg' then
    -- A session a rewrite replaces: left as it is when another node owns it and wrote it since
    -- (it took the session over while this node was away, without a handoff: Redis lost the
    -- ownership with its data); one that only claimed it waits for this node's state.
    local c, key, me = A[i+1], A[i+2], A[i+3]
    local owner = redis.call('HGET', key, c)
    if owner ~= false and owner ~= me and redis.call('HGET', WRITER, c) == owner then
      skip = skip or {}
      skip[c] = true
    end
    i = i + 4
  elseif op == 'ps' then
    redis.call('HSET', SESS, A[i+1], A[i+2])
    if writer then redis.call('HSET', WRITER, A[i+1], writer) end
    i = i + 3
  elseif op == 'wn' then
    writer = A[i+1]; i = i + 2
  elseif op == 'ds' then
    -- Deleted by the node the ownership hash names (a clean start discarding it [MQTT-3.1.2-6],
    -- an expiry): the session it holds in its place, not stored, stays its own, as one it read
    -- as missing (LOAD_SESSION_SCRIPT), until its release drops the mark (the bus's
    -- RELEASE_SCRIPT). Without a mark, the writes of a node cut off while Redis lost its data,
    -- or its rewrite (\`tg\`), would put the discarded session back.
    local c = A[i+1]
    local had = hasSession(c)
    deleteSession(c)
    if had and writer and held and redis.call('HGET', held, c) == writer then
      redis.call('HSET', WRITER, c, writer)
    end
    i = i + 2
  elseif op == 'fi' then
    -- First in a run, before any write: the whole run is refused (see the module doc).
    -- A key gone fences too while the cluster's epoch (A[i+3]) is the node's (A[i+4]): the
    -- 'reaped' mark expired while the node was paused; else Redis lost its data. Not while the
    -- cluster's 'P count' (A[i+5]) is below the last value the node got (A[i+6]): Redis went back
    -- to data older than the node's registration (the bus's next script makes it a data loss).
    local current = redis.call('GET', A[i+1])
    if current ~= false and current ~= A[i+2] then return 0 end
    -- Nor while the node's own counter (A[i+7]) is gone too and the node got one (A[i+8], 0 when
    -- its last script was answered longer ago than a reaped mark lives): Redis went back to data
    -- older than its registration, which idle nodes' scripts hid from 'P count'.
    if current == false and A[i+3] ~= '' and A[i+4] ~= ''
        and redis.call('GET', A[i+3]) == A[i+4]
        and (A[i+5] == '' or tonumber(redis.call('GET', A[i+5]) or '0') >= tonumber(A[i+6]))
        and (A[i+7] == '' or (tonumber(A[i+8]) or 0) == 0 or redis.call('EXISTS', A[i+7]) == 1) then
      return 0
    end
    -- Counted in the node's own 'P gen:ID' (see the module doc): answered with the run.
    if A[i+7] ~= '' then counted = count(A[i+7], A[i+8]) end
    i = i + 9
  elseif op == 'de' then
    -- A session that ended on the writer while its deletion could not be written: deleted
    -- when no other node owns it (the cluster's ownership hash), or when this node wrote the
    -- record stored last: another node that claimed it meanwhile waits for this node's
    -- handoff, and must not get back a session that ended [MQTT-3.1.2-6]; one that wrote the
    -- session since (it resumed it or made a new one) keeps it.
    local c, key, me = A[i+1], A[i+2], A[i+3]
    local owner = false
    if key ~= '' then owner = redis.call('HGET', key, c) end
    if owner == false or owner == me or redis.call('HGET', WRITER, c) == me then
      deleteSession(c)
    end
    i = i + 4
  elseif op == 'pb' then
    if hasSession(A[i+1]) then redis.call('HSET', subk(A[i+1]), A[i+2], A[i+3]) end
    i = i + 4
  elseif op == 'db' then
    redis.call('HDEL', subk(A[i+1]), A[i+2]); i = i + 3
  elseif op == 'pm' then
    local id = A[i+1]
    redis.call('HSET', MSG, id, A[i+2])
    if redis.call('HEXISTS', REF, id) == 0 then redis.call('HSET', REF, id, 0) end
    candidates[#candidates + 1] = id
    i = i + 3
  elseif op == 'qo' then
    local c, seq, mid, qos, pid = A[i+1], A[i+2], A[i+3], A[i+4], A[i+5]
    if hasSession(c) and redis.call('HEXISTS', REF, mid) == 1
        and redis.call('HEXISTS', outk(c), seq) == 0 then
      redis.call('HINCRBY', REF, mid, 1)
      local state = 'publish'
      if pid == '' then state = 'queued' end
      redis.call('HSET', outk(c), seq, state .. '|' .. qos .. '|' .. pid .. '|' .. mid)
      touched(c)
    end
    i = i + 6
  elseif op == 'so' then
    local c, seq = A[i+1], A[i+2]
    local e = redis.call('HGET', outk(c), seq)
    if e then
      local s, q, p, m = parse(e)
      if s ~= 'pubrel' and q ~= '0' then
        redis.call('HSET', outk(c), seq, 'publish|' .. q .. '|' .. A[i+3] .. '|' .. m)
        touched(c)
      end
    end
    i = i + 4
  elseif op == 'pr' then
    local c, seq = A[i+1], A[i+2]
    local e = redis.call('HGET', outk(c), seq)
    if e then
      local s, q, p, m = parse(e)
      if s == 'publish' and q == '2' then
        release(m)
        redis.call('HSET', outk(c), seq, 'pubrel|2|' .. p .. '|')
        touched(c)
      end
    end
    i = i + 3
  elseif op == 'do' then
    local c, seq = A[i+1], A[i+2]
    local e = redis.call('HGET', outk(c), seq)
    if e then
      local s, q, p, m = parse(e)
      release(m)
      redis.call('HDEL', outk(c), seq)
      touched(c)
    end
    i = i + 3
  elseif op == 'pi' then
    if hasSession(A[i+1]) then redis.call('SADD', ink(A[i+1]), A[i+2]) end
    i = i + 3
  elseif op == 'di' then
    redis.call('SREM', ink(A[i+1]), A[i+2]); i = i + 3
  elseif op == 'pt' then
    redis.call('HSET', RET, A[i+1], A[i+2]); i = i + 3
  elseif op == 'dt' then
    redis.call('HDEL', RET, A[i+1]); i = i + 2
  elseif op == 'sc' then
    redis.call('HSET', CNT, A[i+1], A[i+2]); i = i + 3
  elseif op == 'cl' then
    for _, c in ipairs(redis.call('HKEYS', SESS)) do
      redis.call('DEL', subk(c), outk(c), ink(c))
    end
    redis.call('DEL', SESS, MSG, REF, RET, WRITER, P .. 'handing', P .. 'reading')
    candidates = {}
    i = i + 1
  elseif op == 'mx' then
    -- The highest id the writer reserved or wrote: a Redis that lost its data (restarted
    -- without persistence) would otherwise hand out those ids again (RESERVE_SCRIPT).
    local floor = tonumber(A[i+1])
    if tonumber(redis.call('GET', P .. 'msgid') or '0') < floor then
      redis.call('SET', P .. 'msgid', A[i+1])
    end
    i = i + 2
  elseif op == 'ep' then
    -- First in every write: one made for the data of a Redis that lost it since (restarted
    -- empty) changes nothing (RedisStore.renewIds).
    if redis.call('GET', P .. 'epoch') ~= A[i+1] then
      return redis.error_reply('${DATA_LOST}')
    end
    i = i + 2
  elseif op == 'eb' then
    for _, id in ipairs(candidates) do
      if redis.call('HGET', REF, id) == '0' then
        redis.call('HDEL', MSG, id)
        redis.call('HDEL', REF, id)
      end
    end
    candidates = {}
    i = i + 1
  else
    return redis.error_reply('amqtt store: unknown operation ' .. tostring(op))
  end
end
if counted then
  local out = { counted }
  for _, v in ipairs(refused) do out[#out + 1] = v end
  return out
end
if #refused > 0 then return refused end
return 1
`;

/**
 * ARGV: prefix, then operations (see {@linkcode OPS}); each batch ends with `eb`. Returns 1, or 0
 * when refused by `fi` (nothing applied), or, when `wo` refused the operations of sessions (the
 * rest applied), those sessions flat: client id, its writer, …; when `fi` counted the run in the
 * node's own counter, { its value, the refused sessions flat… } instead of 1 or the sessions.
 */
export const APPLY_SCRIPT = KEYS + COUNT_LUA + `
local A = ARGV
` + APPLY_OPS;

/**
 * ARGV: prefix, token. Applies the operations staged by `RPUSH` in the list `P rewrite:TOKEN`
 * (a rewrite sent in pieces, `RedisStore.rewrite`) and deletes the list, atomically: until this
 * runs, nothing of the rewrite is seen. Fails when the list is gone (expired). Returns as
 * {@linkcode APPLY_SCRIPT}.
 */
export const APPLY_STAGED_SCRIPT = KEYS + COUNT_LUA + `
local staged = P .. 'rewrite:' .. ARGV[2]
local A = redis.call('LRANGE', staged, 0, -1)
if #A == 0 then return redis.error_reply('amqtt store: the staged rewrite is gone') end
redis.call('DEL', staged)
table.insert(A, 1, P)
` + APPLY_OPS;

/**
 * ARGV: prefix. Returns, read atomically: the sessions hash (flat), for each session in that
 * order its subscriptions (flat), outbound entries (flat) and inbound ids, then the messages,
 * retained messages and counters (flat).
 */
export const LOAD_SCRIPT = KEYS + `
local sessions = redis.call('HGETALL', SESS)
local per = {}
for j = 1, #sessions, 2 do
  local c = sessions[j]
  per[#per + 1] = {
    redis.call('HGETALL', subk(c)),
    redis.call('HGETALL', outk(c)),
    redis.call('SMEMBERS', ink(c)),
  }
end
return { sessions, per, redis.call('HGETALL', MSG), redis.call('HGETALL', RET),
  redis.call('HGETALL', CNT) }
`;

/**
 * ARGV: prefix, token. Returns `P epoch`, set to `token` first when it is not set: at the first
 * store's open on a Redis, or after Redis lost its data.
 */
export const EPOCH_SCRIPT = `
local key = ARGV[1] .. 'epoch'
local epoch = redis.call('GET', key)
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', key, epoch)
end
return epoch
`;

/**
 * ARGV: prefix, count, floor, epoch, renew. Reserves `count` message ids: adds `count` to the
 * counter `P msgid` (which starts at the highest stored id) and returns the new value (the last
 * id of the block) and `P epoch`. The block starts above `floor`, the highest id the caller
 * reserved or wrote before. Unless `renew` is `1`, fails when `P epoch` is not `epoch` (Redis lost
 * its data: the caller still holds ids another node may be given); with it, `P epoch` is set to
 * `epoch` when not set, and the caller gives every message it holds a new id from this block
 * (`RedisStore.renewIds`).
 */
export const RESERVE_SCRIPT = KEYS + `
local epoch = redis.call('GET', P .. 'epoch')
if ARGV[5] == '1' then
  if not epoch then
    epoch = ARGV[4]
    redis.call('SET', P .. 'epoch', epoch)
  end
elseif epoch ~= ARGV[4] then
  return redis.error_reply('${DATA_LOST}')
end
local key = P .. 'msgid'
local current = tonumber(redis.call('GET', key) or '-1')
if current < 0 then
  -- First reservation: start above the ids already stored.
  current = 0
  for _, id in ipairs(redis.call('HKEYS', MSG)) do
    local n = tonumber(id)
    if n > current then current = n end
  end
end
local floor = tonumber(ARGV[3] or '0')
if current < floor then current = floor end
current = current + tonumber(ARGV[2])
redis.call('SET', key, current)
return { current, epoch }
`;

/**
 * The most bytes of message bodies one script run answers, for all the sessions it reads (the
 * reads of concurrent logins batched into one call share it): the rest of the sessions' messages
 * is named in groups of at most as many bytes (a larger message alone), which the reader fetches
 * after it (`RedisStore.readRest`, one HMGET per group on the store's connection). A long queue
 * of large messages (1,000 of 64 KB, within the default `max_queued_messages` and
 * `max_packet_size`) read whole was one reply on the bus's command connection that a heartbeat
 * waited behind for over a second (`bench/claim_read_delay.ts`), and one script that held up
 * Redis as long; 16 concurrent logins of sessions over 1 MB, one part each, a reply of 16 MB.
 */
export const READ_PART_BYTES = 1024 * 1024;

/**
 * The most outbound entries one script run reads, for all the sessions it reads: a session with
 * more than are left is not read whole, its entries are read where they are (`P out:ID`) after
 * it, {@linkcode READ_ENTRIES_SCRIPT} a part at a time. A queue of 100,000 entries read in one
 * script held Redis about 0.5 to 1 s (every node's heartbeats and bus behind it); 4,096 (four
 * sessions at the default `max_queued_messages`) take about 20 ms.
 */
export const READ_PART_ENTRIES = 4096;

/**
 * How long the marks of reads in parts by readers that are not the session's writer
 * (`P reading`) are kept after the last part of any such read, seconds: the mark of a reader that
 * died mid-read goes then (a read slower than that between two of its parts fails).
 */
export const READ_MARK_TTL_S = 600;

/**
 * One session's rows as a session read answers them (Lua, defining `readSession(SP, c, inPlace)`,
 * `SP` the store's prefix, `inPlace` whether the reader is the session's writer): the session record (or false), its subscriptions (flat), outbound entries
 * (flat), inbound ids, the messages its outbound entries reference (flat: id, record, …) within
 * what is left of the run's {@linkcode READ_PART_BYTES}, and the ids of the others in groups
 * (read after, by the node that read it). A session with more entries than are left of the run's
 * {@linkcode READ_PART_ENTRIES} answers none of them, nor messages: a seventh row names where its
 * entries are read from (always the session's own `P out:ID`: read in place, never copied),
 * their number, the client id, then 1 when the reader is the session's writer (nobody else writes
 * it meanwhile), else 0 and the token of the read's mark (`P reading`: a reader that is not the
 * writer, or a store outside a cluster), for {@linkcode READ_ENTRIES_SCRIPT}.
 * One implementation for {@linkcode LOAD_SESSION_SCRIPT} and the cluster's claim with its read
 * (`CLAIM_SCRIPT` of the bus), which marks the writer itself (`markWriter(SP, c, node)`), reads
 * a session's subscriptions alone before its claim (`readSubscribed(SP, c)`), and answers the
 * rows of none (`NOT_READ`) for a session it does not read. `readBodies(SP, out, check)` is the
 * messages' part of a read, for the entries `out` (flat); `check(seq, entry)` is called for a
 * message gone (none: left out, as gone in one atomic read).
 */
export const READ_SESSION_LUA = `
local bodiesLeft, entriesLeft = ${READ_PART_BYTES}, ${READ_PART_ENTRIES}
local function readBodies(SP, out, check)
  local msgs, rest = {}, {}
  local group, grouped = nil, 0
  for j = 2, #out, 2 do
    local m = string.match(out[j], '|(%d*)$')
    if m ~= nil and m ~= '' then
      if group == nil and bodiesLeft > 0 then
        -- Within the part, as a session read whole: the body (false for a message gone: none).
        -- A session under the part costs what it did before the parts, one HGET per message.
        local body = redis.call('HGET', SP .. 'msg', m)
        if body and #body <= bodiesLeft then
          bodiesLeft = bodiesLeft - #body
          msgs[#msgs + 1] = m
          msgs[#msgs + 1] = body
        elseif body then
          group, grouped = { m }, #body
          rest[1] = group
        elseif check then
          check(out[j - 1], out[j])
        end
      else
        -- Past the part (every later message): its size only (0 for one gone: none).
        local size = redis.call('HSTRLEN', SP .. 'msg', m)
        if size > 0 then
          if group == nil or grouped + size > ${READ_PART_BYTES} then
            group, grouped = {}, 0
            rest[#rest + 1] = group
          end
          group[#group + 1] = m
          grouped = grouped + size
        elseif check then
          check(out[j - 1], out[j])
        end
      end
    end
  end
  return msgs, rest
end
local function readSession(SP, c, inPlace)
  local record = redis.call('HGET', SP .. 'sessions', c)
  if not record then return { false, {}, {}, {}, {}, {} } end
  local outKey = SP .. 'out:' .. c
  local count = redis.call('HLEN', outKey)
  local subs, inbound = redis.call('HGETALL', SP .. 'sub:' .. c), redis.call('SMEMBERS', SP .. 'in:' .. c)
  if count > entriesLeft then
    -- Too many entries for what is left of the run: read where they are after it, a part at a
    -- time (READ_ENTRIES_SCRIPT), never copied (a COPY was one O(entries) step: 100,000 entries
    -- held Redis 40 to 190 ms for everyone, 1,000,000 entries 0.4 to 2 s).
    entriesLeft = 0
    if inPlace then
      -- Read by its owner and writer (its claim, or its read as the owner, marked it): no other
      -- node writes the session from here (\`wo\`), and its own node restores it only once
      -- read, so its entries stay as they are between the parts (each part checks the writer).
      return { record, subs, {}, inbound, {}, {}, { outKey, count, c, 1 } }
    end
    -- A reader that is not the writer (or a store outside a cluster): the session may be written
    -- between the parts. Marked as read from now (\`P reading\`): every write of its entries
    -- deletes the mark, and each part checks it, so the parts together are the entries as they
    -- are now (the view of a read whole) or the read fails. The token is unique even with the
    -- counter gone (evicted, or Redis restarted empty): Redis's clock beside it. A mark left by
    -- an earlier reader is replaced (that reader, if still reading, fails at its next part).
    local t = redis.call('TIME')
    local token = redis.call('INCR', SP .. 'reads') .. ':' .. t[1] .. '.' .. t[2]
    redis.call('HSET', SP .. 'reading', c, token)
    redis.call('EXPIRE', SP .. 'reading', ${READ_MARK_TTL_S})
    return { record, subs, {}, inbound, {}, {}, { outKey, count, c, 0, token } }
  end
  entriesLeft = entriesLeft - count
  local out = redis.call('HGETALL', outKey)
  local msgs, rest = readBodies(SP, out, nil)
  return { record, subs, out, inbound, msgs, rest }
end
-- The rows of a stored session with subscriptions, its record and subscriptions only (false for
-- one not stored or without any).
local function readSubscribed(SP, c)
  local record = redis.call('HGET', SP .. 'sessions', c)
  if not record or redis.call('EXISTS', SP .. 'sub:' .. c) == 0 then return false end
  return { record, redis.call('HGETALL', SP .. 'sub:' .. c), {}, {}, {} }
end
local NOT_READ = { false, {}, {}, {}, {} }
local function markWriter(SP, c, node) redis.call('HSET', SP .. 'writer', c, node) end
-- \`P handing\`: client id → the nodes a chain of moves passed the session through that its owner
-- waits for (each claimed it from the one before, none read it yet), in their claims' order.
-- Read by its owner, the session is that node's: the chain is over.
local function ownerRead(SP, c, node)
  markWriter(SP, c, node)
  redis.call('HDEL', SP .. 'handing', c)
end
-- Whether \`node\` is in the chain of moves the session's owner waits for (see \`ownerRead\`) and
-- the writer mark is not with a node after it there: the mark goes along the chain, never back.
-- A node that reads late (its takeover stopped waiting for it at \`maxWait\` and handed on
-- without it, or it was paused) must not take the mark from the next node, which read after its
-- handoff and writes what it hands on in turn.
local function handing(SP, c, node)
  local chain = redis.call('HGET', SP .. 'handing', c)
  if not chain then return false end
  local writer = redis.call('HGET', SP .. 'writer', c)
  -- (A node listed twice, claimed again while still listed: its last place, the writer's first.)
  local i, mine, writes = 0, false, false
  for n in string.gmatch(chain, '[^\\n]+') do
    i = i + 1
    if n == node then mine = i end
    if n == writer and not writes then writes = i end
  end
  return mine ~= false and (writes == false or writes < mine)
end
`;

/**
 * ARGV: prefix, where a read named a session's entries (the session's own `P out:ID`, see
 * {@linkcode READ_SESSION_LUA}), the cursor (`0` first), the client id, the reading node (a read
 * by the writer fails once it is no longer the writer), and the read's token (`P reading`, for a
 * reader that is not the writer; '' for the writer). Returns the next cursor (`0`: done), about
 * {@linkcode READ_PART_ENTRIES} entries (flat, `HSCAN`: one may come again), and their messages
 * as a read answers them (up to {@linkcode READ_PART_BYTES}, the others' ids in groups). Fails
 * when the session's entries may have changed since the read began: the writer is another node,
 * or the read's mark is gone (a write of the entries deleted it, the session's next read replaced
 * it, it expired, or Redis lost its data); and for a message gone whose entry the session no
 * longer holds as read (a message gone with its entry still there is left out, as a read whole
 * leaves it). The last part deletes the read's mark.
 */
export const READ_ENTRIES_SCRIPT = READ_SESSION_LUA + `
local SP, key, cursor, c, me, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] or ''
if key ~= SP .. 'out:' .. c then
  return redis.error_reply('amqtt store: a session read in parts names entries not its own')
end
if token == '' then
  -- By the writer: it must still be the session's writer (a node that took it for dead adopted
  -- it meanwhile, say, and its writes may have changed it between the parts).
  if redis.call('HGET', SP .. 'writer', c) ~= me then
    return redis.error_reply('amqtt store: the session read in parts changed hands since its read')
  end
elseif redis.call('HGET', SP .. 'reading', c) ~= token then
  return redis.error_reply('amqtt store: the session read in parts changed since its read began')
else
  redis.call('EXPIRE', SP .. 'reading', ${READ_MARK_TTL_S})
end
local scanned = redis.call('HSCAN', key, cursor, 'COUNT', ${READ_PART_ENTRIES})
local changed = false
local msgs, rest = readBodies(SP, scanned[2], function(seq, entry)
  if redis.call('HGET', key, seq) ~= entry then changed = seq end
end)
if changed then
  return redis.error_reply('amqtt store: outbound entry ' .. changed .. ' of the session changed since its read')
end
-- Read to its end: the mark is of no use any more.
if scanned[1] == '0' and token ~= '' then redis.call('HDEL', SP .. 'reading', c) end
return { scanned[1], scanned[2], msgs, rest }
`;

/**
 * ARGV: prefix, client id, token. Deletes the mark of a read in parts (`P reading`, see
 * {@linkcode READ_SESSION_LUA}) that its reader gives up (it failed, or nobody reads its rows),
 * unless another read's mark replaced it.
 */
export const READ_DONE_SCRIPT = `
local key = ARGV[1] .. 'reading'
if redis.call('HGET', key, ARGV[2]) == ARGV[3] then redis.call('HDEL', key, ARGV[2]) end
return 1
`;

/**
 * ARGV: prefix, the cluster's ownership hash key or "", the reading node, then client ids (the
 * reads of concurrent logins in one call). Returns per client id, read atomically, the rows of
 * {@linkcode READ_SESSION_LUA}. A record read by the node the
 * ownership hash names is that node's from then on (`P writer`): it writes its changes on top of
 * what it read, so a rewrite of another node (`tg`) must not replace it, even before its first
 * write (else the rows would be mixed), and a stale writer mark (a node since dead, or one that
 * ended the session before this node took it) is replaced. A record missing is marked the same
 * way when the hash names the reader or nobody (the new session the reader starts is its own).
 */
export const LOAD_SESSION_SCRIPT = READ_SESSION_LUA + `
local sessions = {}
local P, key, me = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local c = ARGV[i]
  -- Read by the writer when this node is (or becomes, below) the writer; else marked.
  local owner = key ~= '' and redis.call('HGET', key, c)
  local writes = key ~= '' and (owner == me or (owner ~= false and handing(P, c, me)))
  local rows = readSession(P, c, writes)
  if key ~= '' then
    -- A record read by the owner is its from here; one read as missing by its owner, or with no
    -- owner (the reader's claim gone meanwhile), too: the new session the node starts is its own before
    -- its first write (after a data loss, another node's rewrite or writes of an old copy must
    -- not land under it). Not when another node owns it: that node hands it over (and the claim
    -- names it the writer until then). The release of a session never stored drops the mark (the
    -- bus's RELEASE_SCRIPT).
    if owner == me or (not rows[1] and owner == false) then
      ownerRead(P, c, me)
    elseif owner ~= false and handing(P, c, me) then
      -- A node of a chain of moves (A to B, then C claimed it from B before A's handoff came):
      -- it reads after the node before it handed over, and its writes until it hands over in
      -- turn (what it kept for the session meanwhile) are the session's.
      markWriter(P, c, me)
    end
  end
  sessions[#sessions + 1] = rows
end
return sessions
`;
