import { createHash } from 'node:crypto';

/** A Lua script with the SHA-1 digest that EVALSHA names it by. */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
  /**
   * Whether a call may go out as the probe of a stalled connection (see AvailabilityGate).
   * False for the override reads an operation makes before its own script: waiting out a
   * probe there would spend the operation's time, which then ends `unknown` rather than in
   * the insurance store; the operation's own script probes instead.
   */
  readonly probes: boolean;
}

/** The error reply of a counter script that was sent a stale overrides version. */
export const STALE_OVERRIDES_REPLY = 'QUOTAKIT_STALE_OVERRIDES';

function script(name: string, source: string, probes = true): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex'), probes };
}

/**
 * Shared by the counter scripts (read, consume, consume-one, record, settle). KEYS[1] is the
 * shard's reservation expiry index (a ZSET of reservation record keys scored by expiresAt), then
 * come the counters (then, in the general scripts, the operation's own record). ARGV[1] is the
 * engine clock's `now`: the only time the scripts know, so that injected clocks expire windows
 * and reservations as a real one would; Redis's own TTLs (PEXPIRE durations from `now`, never
 * absolute times) only collect garbage. ARGV[2] is '1' to read the override count (beside the
 * index: only asked when both share a slot).
 */
const HEAD = `
local now = ARGV[1] + 0
local INF = 1 / 0
local EXACT = 9007199254740992
-- Expired reservations returned per call at most: a backlog drains over the next calls
-- instead of blocking Redis in one.
local SWEEP_LIMIT = 100
`;

/**
 * ARGV[2] other than '0' and '1' is `=` and the overrides version the engine planned with:
 * when the store's differs (another engine set or removed an override since), nothing is done
 * and the error reply tells the engine to list the overrides again and plan again. Checked
 * before anything is written. The version sits beside the reservation index in KEYS[1]
 * ('{prefix}:rx' -> '{prefix}:ov'), in the same slot when the store is not sharded (the only
 * case in which a version is sent).
 */
const VERSION_CHECK = `
if ARGV[2] ~= '0' and ARGV[2] ~= '1' then
  if '=' .. (redis.call('GET', string.sub(KEYS[1], 1, -3) .. 'ov') or '0') ~= ARGV[2] then
    return redis.error_reply('${STALE_OVERRIDES_REPLY}')
  end
end
`;

/**
 * A counter is a hash { v = value, e = expiresAt (absent: never), h = 1 once a reservation has
 * held an amount in it (see {@link CONSUME_ONE_SCRIPT}) }. Values are kept as strings of 17
 * significant digits, which give back exactly the double that was stored (Redis writes a Lua
 * number passed to a command that way, or shorter and as exact), and leave Lua as integers
 * when they are whole (exact below 2^53) or as those strings otherwise: Redis would truncate a
 * Lua number to an integer. So 0.1 + 0.2 stays 0.30000000000000004, as in MemoryStore.
 */
const HELPERS = `
local function fmt(x)
  return string.format('%.17g', x)
end

-- statuses.ts fitsWithin: a tolerance keeps 0.1 + 0.2 within a limit of 0.3.
local function fits(total, limit)
  return total <= limit + 1e-9 * math.max(limit, 1)
end

-- Value and expiry of a live counter; nil when absent or expired by the request's now.
local function lookup(key)
  local f = redis.call('HMGET', key, 'v', 'e')
  if not f[1] then return nil, nil end
  local e = INF
  if f[2] then e = tonumber(f[2]) end
  if e <= now then return nil, nil end
  return tonumber(f[1]), e
end

local function setExpiry(key, e)
  if e == INF then
    redis.call('HDEL', key, 'e')
    redis.call('PERSIST', key)
  else
    redis.call('HSET', key, 'e', fmt(e))
    redis.call('PEXPIRE', key, math.max(1, math.ceil(e - now)))
  end
end

-- MemoryStore#add: an absent counter starts at a positive amount, a value never goes below 0,
-- an expiry only ever moves later. The amount and ttl come as the client sent them ('' ttl:
-- keep the counter forever), so that whole amounts add inside Redis (HINCRBY): printing a Lua
-- number for HSET takes longer than the rest of an addition.
local function add(key, v, e, amountText, ttlText)
  local amount = tonumber(amountText)
  if amount == 0 then return end
  local expiresAt = INF
  local ttl = tonumber(ttlText)
  if ttl then expiresAt = now + ttl end
  if v == nil then
    if amount > 0 then
      redis.call('HSET', key, 'v', fmt(amount))
      setExpiry(key, expiresAt)
    end
    return
  end
  local total = v + amount
  if amount > 0 and total < EXACT and v % 1 == 0 and amount % 1 == 0 then
    redis.call('HINCRBY', key, 'v', amountText)
  else
    redis.call('HSET', key, 'v', fmt(math.max(0, total)))
  end
  if expiresAt > e then setExpiry(key, expiresAt) end
end

-- Returns a held reservation's amounts (to counters still live) and forgets it.
local function giveBack(held)
  local raw = redis.call('GET', held)
  if not raw then return false end
  redis.call('DEL', held)
  local amounts = cjson.decode(raw)
  for i = 1, #amounts, 2 do
    local v = lookup(amounts[i])
    if v ~= nil then
      redis.call('HSET', amounts[i], 'v', fmt(math.max(0, v - tonumber(amounts[i + 1]))))
    end
  end
  return true
end
`;

/**
 * Reservations whose ttl has passed by the request's now go back before anything is read: run
 * only when the index exists (EXISTS first: most calls find no index, and it is the cheaper
 * question). Needs {@link HELPERS}.
 */
const SWEEP = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, SWEEP_LIMIT)
for i = 1, #due do
  giveBack(due[i])
  redis.call('ZREM', KEYS[1], due[i])
end
`;

/**
 * The general counter scripts' start. After the counters, when ARGV[3] is not empty, the last
 * key is the operation's own record (a reservation, an idempotency key); (amount, ttl) pairs
 * per counter start at ARGV[4], ttl '' meaning forever.
 */
const PRELUDE = `${HEAD}
${VERSION_CHECK}
local n = #KEYS - 1
local record
if ARGV[3] ~= '' then
  n = n - 1
  record = KEYS[#KEYS]
end
${HELPERS}
if redis.call('EXISTS', KEYS[1]) == 1 then
${SWEEP}
end

local values, expiries = {}, {}
for i = 1, n do
  values[i], expiries[i] = lookup(KEYS[i + 1])
end

-- The reply: flag, override count (-1: not read), then each counter's value before the
-- operation.
local function reply(flag)
  local count = -1
  if ARGV[2] == '1' then
    -- The count sits beside the index: '{prefix}:rx' -> '{prefix}:on'.
    count = tonumber(redis.call('GET', string.sub(KEYS[1], 1, -3) .. 'on') or '0')
  end
  local out = { flag, count }
  for i = 1, n do
    local v = values[i] or 0
    if v % 1 == 0 and v < EXACT and v > -EXACT then out[i + 2] = v else out[i + 2] = fmt(v) end
  end
  return out
end

local function addAll()
  for i = 1, n do
    add(KEYS[i + 1], values[i], expiries[i], ARGV[2 + 2 * i], ARGV[3 + 2 * i])
  end
end
`;

/** ARGV: now, count flag, ''. */
export const READ_SCRIPT = script(
  'read',
  `${PRELUDE}
return reply(0)
`,
);

/**
 * ARGV: now, count flag, hold ttl ('' for none; then the last key is the reservation record),
 * (amount, ttl) per counter, the number of limits, then per limit: counter index, limit,
 * previous index ('' for none) and, with a previous index, its weight. Every limit is checked
 * before anything is written: all or nothing.
 */
export const CONSUME_SCRIPT = script(
  'consume',
  `${PRELUDE}
local at = 5 + 2 * n
for _ = 1, tonumber(ARGV[4 + 2 * n]) do
  local c = tonumber(ARGV[at]) + 1
  local limit = tonumber(ARGV[at + 1])
  local used = values[c] or 0
  if ARGV[at + 2] == '' then
    at = at + 3
  else
    used = used + (values[tonumber(ARGV[at + 2]) + 1] or 0) * tonumber(ARGV[at + 3])
    at = at + 4
  end
  if not fits(used + tonumber(ARGV[2 + 2 * c]), limit) then return reply(0) end
end
addAll()
if record then
  -- The record holds (key, amount) pairs as given, so that returning them subtracts exactly
  -- what was added; it lives as long as its longest-lived counter, so that a sweep finds it
  -- for as long as the amounts it holds can still count.
  local ttl = tonumber(ARGV[3])
  local held, keep = {}, ttl
  for i = 1, n do
    if tonumber(ARGV[2 + 2 * i]) > 0 then
      -- Marks the counter: CONSUME_ONE_SCRIPT then sweeps before reading it.
      redis.call('HSET', KEYS[i + 1], 'h', 1)
      held[#held + 1] = KEYS[i + 1]
      held[#held + 1] = ARGV[2 + 2 * i]
      local counterTtl = tonumber(ARGV[3 + 2 * i])
      if counterTtl == nil then keep = INF elseif counterTtl > keep then keep = counterTtl end
    end
  end
  local before = redis.call('PTTL', KEYS[1])
  if keep == INF then
    redis.call('SET', record, cjson.encode(held))
  else
    redis.call('SET', record, cjson.encode(held), 'PX', math.max(1, math.ceil(keep)))
  end
  redis.call('ZADD', KEYS[1], fmt(now + ttl), record)
  if keep == INF then
    redis.call('PERSIST', KEYS[1])
  elseif before == -2 or (before >= 0 and before < keep) then
    redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(keep)))
  end
end
return reply(1)
`,
);

/**
 * The common consume, for a fraction of {@link CONSUME_SCRIPT}'s work in Redis: one counter, no
 * hold, and limits on that counter's own value only (fixed windows and totals, not a sliding
 * window's previous one). Same counter, same checks, same writes, as if CONSUME_SCRIPT had run;
 * only cheaper, because its hot path makes two calls into Redis (HMGET, HINCRBY), defines no Lua
 * function (each is a new closure per call), builds no table and usually replies with one
 * integer.
 *
 * It sweeps expired reservations only when its counter is marked as having held one (field
 * `h`): no other reservation can have added to the counter, so none can be due back to it.
 * Asking whether the index exists on every call instead cost an eighth of the script's time
 * in Redis with a call at a time. The general scripts still sweep whenever the index exists.
 *
 * KEYS: the reservation index, the counter. ARGV: now, count flag, amount, the time the
 * counter expires by this operation (now + its ttl, as the client prints it; '' for never), the
 * tightest limit on the counter ('' for none: a counter only under shadow rules).
 *
 * A live counter of the current window already carries that very expiry text: the script then
 * compares two strings instead of turning either time into a number (each such conversion is
 * a call to strtod, about a twentieth of the script's time in Redis), and leaves the expiry
 * alone.
 *
 * The reply is the counter's value before the operation when it was admitted and `-value - 1`
 * when it was refused, as long as that value is a whole number below 2^53 - 1 and the override
 * count was not asked; otherwise it is CONSUME_SCRIPT's reply (flag, count, value).
 */
export const CONSUME_ONE_SCRIPT = script(
  'consume',
  `
-- Arithmetic on a numeric string converts it inside Lua's VM, where tonumber() and math.max()
-- are library calls: this script's hot path makes none, which measured a tenth of its time in
-- Redis when called one at a time (with cold caches).
${VERSION_CHECK}
local key = KEYS[2]
local amount = ARGV[3] + 0
local f = redis.call('HMGET', key, 'v', 'e', 'h')
if f[3] then
${HEAD}
${HELPERS}
${SWEEP}
  f = redis.call('HMGET', key, 'v', 'e')
end
local INF = 1 / 0
local EXACT = 9007199254740992

-- HELPERS' lookup, inlined: value 0 and expiry false when absent or expired. \`same\`: the
-- counter expires when this operation would have it expire, which the engine plans after now.
local v, e = 0, false
local same = f[1] and (f[2] == ARGV[4] or (not f[2] and ARGV[4] == ''))
if same then
  v = f[1] + 0
elseif f[1] then
  e = INF
  if f[2] then e = f[2] + 0 end
  if e <= ARGV[1] + 0 then e = false else v = f[1] + 0 end
end

-- HELPERS' fits, inlined.
local admitted = true
local limit = ARGV[5]
if limit ~= '' then
  limit = limit + 0
  local scale = limit
  if scale < 1 then scale = 1 end
  admitted = v + amount <= limit + 1e-9 * scale
end

-- HELPERS' add and setExpiry, inlined.
if admitted and amount ~= 0 then
  if same or e then
    local total = v + amount
    if amount > 0 and total < EXACT and v % 1 == 0 and amount % 1 == 0 then
      -- Whole numbers add inside Redis: a Lua number passed to HSET is first printed with
      -- '%.17g', which took a fifth of this script's time in Redis.
      redis.call('HINCRBY', key, 'v', ARGV[3])
    else
      if total < 0 then total = 0 end
      redis.call('HSET', key, 'v', total)
    end
  elseif amount > 0 then
    redis.call('HSET', key, 'v', amount)
    -- A new counter takes the expiry, whatever it is.
    e = -INF
  end
  if e then
    local expiresAt = INF
    if ARGV[4] ~= '' then expiresAt = ARGV[4] + 0 end
    if expiresAt > e then
      if expiresAt == INF then
        redis.call('HDEL', key, 'e')
        redis.call('PERSIST', key)
      else
        -- The client's own text, so that the next operation in this window finds it \`same\`.
        redis.call('HSET', key, 'e', ARGV[4])
        redis.call('PEXPIRE', key, math.max(1, math.ceil(expiresAt - ARGV[1])))
      end
    end
  end
end

if ARGV[2] ~= '1' and v % 1 == 0 and v < EXACT - 1 then
  if admitted then return v end
  return -v - 1
end
local count = -1
if ARGV[2] == '1' then
  count = tonumber(redis.call('GET', string.sub(KEYS[1], 1, -3) .. 'on') or '0')
end
if v % 1 ~= 0 or v >= EXACT then v = string.format('%.17g', v) end
if admitted then return { 1, count, v } end
return { 0, count, v }
`,
);

/**
 * ARGV: now, count flag, idempotency ttl ('' without a key; else the last key is the key's
 * record), then (amount, ttl) per counter. Flag 1 in the reply: a duplicate, nothing added.
 */
export const RECORD_SCRIPT = script(
  'record',
  `${PRELUDE}
if record then
  local seenUntil = redis.call('GET', record)
  if seenUntil and tonumber(seenUntil) > now then return reply(1) end
  local ttl = tonumber(ARGV[3])
  redis.call('SET', record, fmt(now + ttl), 'PX', math.max(1, math.ceil(ttl)))
end
addAll()
return reply(0)
`,
);

/**
 * ARGV: now, count flag, 'r' (the last key is the reservation record), then (amount, ttl) per
 * counter. Flag 1 in the reply: the reservation was still held (and has been returned).
 */
export const SETTLE_SCRIPT = script(
  'settle',
  `${PRELUDE}
local found = giveBack(record)
redis.call('ZREM', KEYS[1], record)
if found then
  for i = 1, n do
    values[i], expiries[i] = lookup(KEYS[i + 1])
  end
end
addAll()
if found then return reply(1) end
return reply(0)
`,
);

/** KEYS: the claim. ARGV: now, ttl. 1 for the first caller until the ttl passes. */
export const CLAIM_SCRIPT = script(
  'claim',
  `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local claimedUntil = redis.call('GET', KEYS[1])
if claimedUntil and tonumber(claimedUntil) > now then return 0 end
redis.call('SET', KEYS[1], string.format('%.17g', now + ttl), 'PX', math.max(1, math.ceil(ttl)))
return 1
`,
);

/**
 * KEYS: the override count, then one override hash per id (resource -> rules as JSON).
 * Replies with the count and each hash's fields and values.
 */
export const GET_OVERRIDES_SCRIPT = script(
  'get-overrides',
  `
local out = { tonumber(redis.call('GET', KEYS[1]) or '0') }
for i = 2, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
`,
  false,
);

/**
 * KEYS: the override count, the id's override hash, the scope's index of ids, the overrides
 * version (bumped). ARGV: id, resource, rules as JSON. Replies with the new count.
 */
export const SET_OVERRIDE_SCRIPT = script(
  'set-override',
  `
redis.call('INCR', KEYS[4])
if redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
  return redis.call('INCR', KEYS[1])
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
`,
);

/**
 * KEYS: as for set. ARGV: id, resource. Replies with { removed (1 or 0), new count }; the
 * version is bumped when one was removed.
 */
export const REMOVE_OVERRIDE_SCRIPT = script(
  'remove-override',
  `
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then
  return { 0, tonumber(redis.call('GET', KEYS[1]) or '0') }
end
redis.call('INCR', KEYS[4])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
local count = redis.call('DECR', KEYS[1])
if count <= 0 then
  redis.call('DEL', KEYS[1])
  count = 0
end
return { 1, count }
`,
);

/**
 * KEYS: the override count, the overrides version, then pairs of (a scope's index of ids, the
 * key prefix of that scope's override hashes: the hash of an id is that prefix followed by
 * the id). Replies with the count, the version and, per pair, (id, fields and values) pairs:
 * the version of exactly what is listed.
 */
export const LIST_OVERRIDES_SCRIPT = script(
  'list-overrides',
  `
local out = { tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('GET', KEYS[2]) or '0' }
for p = 3, #KEYS, 2 do
  local ids = redis.call('SMEMBERS', KEYS[p])
  local found = {}
  for i = 1, #ids do
    found[#found + 1] = ids[i]
    found[#found + 1] = redis.call('HGETALL', KEYS[p + 1] .. ids[i])
  end
  out[#out + 1] = found
end
return out
`,
  false,
);
