-- One llm-ratelimit policy decision, atomically, on Redis time.
--
-- KEYS[1]  the policy's state hash        {prefix:name}:state
-- KEYS[2]  the concurrency lease set      {prefix:name}:slots
-- ARGV[1]  the operation: acquire | start | adjust | cancel | release | status | correct |
--          pause | paused
-- ARGV[2]  the number of rate limits, D
-- ARGV[3 .. 3 + 5D - 1]  each limit: kind (1 gcra, 2 leaky bucket), tick (us per time unit),
--          scale (scaled units per tick), emission (scaled units per unit), capacity (scaled).
--          Window limits (3 sliding log, 4 fixed window) use tick 1, scale = the window in us,
--          emission 1, capacity = the limit.
-- KEYS[1 + 2i], KEYS[2 + 2i]  limit i's log, by time and by running total (sliding log only).
-- Then the operation's own arguments (see each branch).
--
-- Every number handled here is an integer below 2^53, so Lua's doubles hold it exactly: the
-- client chooses tick, scale and emission so that capacity stays far below that bound. Times are
-- microseconds from Redis TIME (never the clients' clocks); each limit counts in its own ticks.
-- Every value returned is an exact integer; waits are rounded up, never down.

-- Field names, built once (string concatenation per call is a large share of a call's cost).
local FB = {'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8'}
local FL = {'l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8'}
local FG = {'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7', 'g8'}
local FQ = {'q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8'}

local op = ARGV[1]
local D = tonumber(ARGV[2])
local st = KEYS[1]
local slots_key = KEYS[2]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local dims = {}
for i = 1, D do
  local o = 3 + (i - 1) * 5
  dims[i] = {
    kind = tonumber(ARGV[o]), tick = tonumber(ARGV[o + 1]), scale = tonumber(ARGV[o + 2]),
    emission = tonumber(ARGV[o + 3]), cap = tonumber(ARGV[o + 4]),
  }
end
local a = 3 + D * 5 -- index of the operation's first own argument

-- Integers to strings exactly (Lua's default number formatting keeps only 14 digits).
local function S(x) return string.format('%d', x) end

local function ceil_div(x, y)
  if x <= 0 then return 0 end
  local q = math.floor(x / y)
  while q * y < x do q = q + 1 end
  while q > 0 and (q - 1) * y >= x do q = q - 1 end
  return q
end

-- State, read once. Per limit i: b (backlog, scaled, as of l), l (tick of the last grant),
-- g (units granted, less refunds of the latest grant), sig (the quota it was kept under).
local raw = redis.call('HGETALL', st)
local h = {}
for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
local horizon = tonumber(h['h'] or '0')
local paused = tonumber(h['p'] or '0') -- nothing is granted before this instant (us)
local seq = tonumber(h['seq'] or '0')
for i, d in ipairs(dims) do
  d.b = tonumber(h[FB[i]] or '0')
  d.l = tonumber(h[FL[i]] or '0')
  d.g = tonumber(h[FG[i]] or '0')
  local sig = S(d.tick) .. ':' .. S(d.scale) .. ':' .. S(d.emission) .. ':' .. S(d.cap)
  local old = h[FQ[i]]
  if old and old ~= sig and d.kind == 4 then
    -- A fixed window whose length changed: re-align on now; its count carries over.
    d.l = math.floor(now / d.scale)
  elseif old and old ~= sig and d.kind <= 2 then
    -- The quota changed: keep the units still owed, re-expressed in the new scale (rounded up:
    -- a change never hands out a fresh burst).
    local o1, o2, o3 = string.match(old, '^(%d+):(%d+):(%d+):')
    local otick, oscale, oemission = tonumber(o1), tonumber(o2), tonumber(o3)
    local owed_now = math.max(0, d.b - math.max(0, math.floor(now / otick) - d.l) * oscale)
    d.b = math.ceil(owed_now / oemission * d.emission)
    d.l = math.floor(now / d.tick)
  end
  d.sig = sig
end

-- Sliding log: entries by time (score = us) and by running total (score = units granted up to
-- and including the entry); d.b is the running total of the last entry, d.l of the last dropped.
local function log_keys(i) return KEYS[1 + 2 * i], KEYS[2 + 2 * i] end

-- Running total of the entries that have left the window ending at t.
local function log_left(i, d, t)
  local tk, ck = log_keys(i)
  local last = redis.call('ZREVRANGEBYSCORE', tk, S(t - d.scale), '-inf', 'LIMIT', 0, 1)
  if #last == 0 then return d.l end
  return tonumber(redis.call('ZSCORE', ck, last[1]))
end

-- Earliest us >= x at which n units fit sliding log i.
local function log_earliest(i, d, n, x)
  if d.b - log_left(i, d, x) + n <= d.cap then return x end
  local tk, ck = log_keys(i)
  local first = redis.call('ZRANGEBYSCORE', ck, S(d.b + n - d.cap), '+inf', 'LIMIT', 0, 1)
  local leaves = tonumber(redis.call('ZSCORE', tk, first[1])) + d.scale
  if leaves > x then return leaves end
  return x
end

-- Drops the entries no decision can need again (time never runs back past now).
local function log_expire(i, d)
  local tk, ck = log_keys(i)
  local gone = log_left(i, d, now)
  if gone > d.l then
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', S(now - d.scale))
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', S(gone))
    d.l = gone
  end
end

-- Changes the units entry `member` of log i holds by delta (it and every later running total).
local function log_shift(i, d, member, delta)
  local tk, ck = log_keys(i)
  local cum = redis.call('ZSCORE', ck, member)
  if not cum then return false end
  if delta ~= 0 then
    local later = redis.call('ZRANGEBYSCORE', ck, cum, '+inf')
    for _, m in ipairs(later) do redis.call('ZINCRBY', ck, S(delta), m) end
    d.b = d.b + delta
  end
  return true
end

-- Backlog of limit d at tick x (never earlier than its last grant).
local function backlog_at(d, x)
  local dt = x - d.l
  if dt <= 0 then return d.b end
  local drained = dt * d.scale
  if drained >= d.b then return 0 end
  return d.b - drained
end

-- Fixed window: d.b is the count of window d.l.
local function fixed_count(d, t)
  if math.floor(t / d.scale) == d.l then return d.b end
  return 0
end

-- Earliest tick >= x at which n units fit limit d.
local function earliest(d, n, x)
  if x < d.l then x = d.l end
  local back = backlog_at(d, x)
  local need
  if d.kind == 2 then need = back else need = back + n * d.emission - d.cap end
  if need <= 0 then return x end
  return x + ceil_div(need, d.scale)
end

local function save()
  local args = {'h', S(horizon), 'seq', S(seq), 'p', S(paused)}
  local ttl = 0
  for i, d in ipairs(dims) do
    table.insert(args, FB[i]); table.insert(args, S(d.b))
    table.insert(args, FL[i]); table.insert(args, S(d.l))
    table.insert(args, FG[i]); table.insert(args, S(d.g))
    table.insert(args, FQ[i]); table.insert(args, d.sig)
    -- Keep the state until it is fully replenished (then forgetting it loses nothing).
    local full
    if d.kind == 3 then full = horizon + d.scale
    elseif d.kind == 4 then full = (d.l + 1) * d.scale
    else full = (d.l + ceil_div(d.b, d.scale)) * d.tick end
    if full - now > ttl then ttl = full - now end
  end
  if horizon - now > ttl then ttl = horizon - now end
  if paused - now > ttl then ttl = paused - now end
  redis.call('HSET', st, unpack(args))
  redis.call('PEXPIRE', st, S(ceil_div(ttl, 1000) + 60000))
end

local function remaining(d, x)
  local back = backlog_at(d, x)
  if back >= d.cap then return 0 end
  return math.floor((d.cap - back) / d.emission)
end

-- Live concurrency leases (expired ones are dropped: their holders are gone).
local function leases_in_use()
  redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', '(' .. S(math.floor(now / 1000)))
  return redis.call('ZCARD', slots_key)
end

local function lease(id, count, lease_ms)
  local until_ms = math.floor(now / 1000) + lease_ms
  for k = 1, count do redis.call('ZADD', slots_key, S(until_ms), id .. ':' .. k) end
  redis.call('PEXPIRE', slots_key, S(lease_ms + 60000))
end

if op == 'acquire' then
  -- ARGV[a]: mode (0 try now, 1 reserve, 2 reserve unless later than the deadline)
  -- ARGV[a+1]: deadline in us from now (mode 2); ARGV[a+2]: concurrency max (0: none)
  -- ARGV[a+3]: slots; ARGV[a+4]: lease ms; ARGV[a+5]: permit id; then each limit's amount.
  local mode = tonumber(ARGV[a])
  local deadline = now + tonumber(ARGV[a + 1])
  local conc_max = tonumber(ARGV[a + 2])
  local slots = tonumber(ARGV[a + 3])
  local lease_ms = tonumber(ARGV[a + 4])
  local permit = ARGV[a + 5]
  local from = math.max(now, horizon, paused)
  local at = from
  local limiting = 0
  for i, d in ipairs(dims) do
    d.n = tonumber(ARGV[a + 5 + i])
    if d.n * d.emission > d.cap then
      return {4, now, i, d.n, d.cap / d.emission}
    end
  end
  if conc_max > 0 and slots > conc_max then return {4, now, 0, slots, conc_max} end
  for i, d in ipairs(dims) do
    local e
    if d.kind == 3 then
      e = log_earliest(i, d, d.n, at)
    elseif d.kind == 4 then
      if fixed_count(d, at) + d.n <= d.cap then e = at else e = (math.floor(at / d.scale) + 1) * d.scale end
    else
      e = earliest(d, d.n, ceil_div(at, d.tick)) * d.tick
    end
    if e > at then at = e; limiting = i end
  end
  if mode == 0 and at > now then return {2, now, at - now, limiting} end
  if mode == 2 and at > deadline then return {5, now, at - now, limiting} end
  local started = 0
  if mode == 0 and conc_max > 0 then
    if leases_in_use() + slots > conc_max then return {3, now} end
    lease(permit, slots, lease_ms)
    started = 1
  end
  local reply = {0, now, at, seq + 1, horizon, started}
  for i, d in ipairs(dims) do
    table.insert(reply, d.b); table.insert(reply, d.l)
    if d.kind == 3 then
      log_expire(i, d)
      reply[#reply - 1] = d.b; reply[#reply] = d.l
      local tk, ck = log_keys(i)
      d.b = d.b + d.n
      redis.call('ZADD', tk, S(at), S(seq + 1))
      redis.call('ZADD', ck, S(d.b), S(seq + 1))
      redis.call('PEXPIRE', tk, S(ceil_div(at - now + d.scale, 1000) + 60000))
      redis.call('PEXPIRE', ck, S(ceil_div(at - now + d.scale, 1000) + 60000))
      table.insert(reply, seq + 1); table.insert(reply, at)
    elseif d.kind == 4 then
      local w = math.floor(at / d.scale)
      if w ~= d.l then d.b = 0; d.l = w end
      d.b = d.b + d.n
      table.insert(reply, w); table.insert(reply, at)
    else
      local x = ceil_div(at, d.tick)
      d.b = backlog_at(d, x) + d.n * d.emission
      d.l = math.max(d.l, x)
      d.g = d.g + d.n
      table.insert(reply, d.g); table.insert(reply, d.l)
    end
  end
  horizon = at
  seq = seq + 1
  save()
  return reply
end

-- Adds n units to sliding log i at instant x, outside any reservation (a charge).
local function log_charge(i, d, n, x)
  local tk, ck = log_keys(i)
  log_expire(i, d)
  d.b = d.b + n
  local member = 'c' .. S(x) .. ':' .. S(d.b)
  redis.call('ZADD', tk, S(x), member)
  redis.call('ZADD', ck, S(d.b), member)
  redis.call('PEXPIRE', tk, S(ceil_div(x - now + d.scale, 1000) + 60000))
  redis.call('PEXPIRE', ck, S(ceil_div(x - now + d.scale, 1000) + 60000))
end

-- Takes n units off the newest live entries of sliding log i (each keeps its place: an emptied
-- entry holds zero units until it expires, so tickets still find theirs).
local function log_credit(i, d, n)
  local tk, ck = log_keys(i)
  local left = log_left(i, d, math.max(now, horizon))
  local live = redis.call('ZREVRANGEBYSCORE', ck, '+inf', '(' .. S(left), 'WITHSCORES')
  local rest = n
  local removed = {}
  local count = #live / 2
  for j = 1, count do
    if rest <= 0 then break end
    local cum = tonumber(live[2 * j])
    local below = left
    if j < count then below = tonumber(live[2 * j + 2]) end
    local r = math.min(cum - below, rest)
    removed[j] = r
    rest = rest - r
  end
  -- An entry's running total drops by what was taken from it and from every older entry.
  local older = 0
  for j = #removed, 1, -1 do
    older = older + removed[j]
    if older > 0 then redis.call('ZINCRBY', ck, S(-older), live[2 * j - 1]) end
  end
  d.b = d.b - older
end

if op == 'correct' then
  -- ARGV[a]: the limit (1-based); ARGV[a+1]: units, positive to charge, negative to credit.
  local i = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local d = dims[i]
  if not d then return redis.error_reply('llm-ratelimit: no limit ' .. tostring(ARGV[a])) end
  local x = math.max(now, horizon)
  if n > 0 then
    if d.kind == 3 then
      log_charge(i, d, n, x)
    elseif d.kind == 4 then
      local w = math.floor(x / d.scale)
      if w ~= d.l then d.b = 0; d.l = w end
      d.b = d.b + n
    else
      local tick = ceil_div(x, d.tick)
      d.b = backlog_at(d, tick) + n * d.emission
      d.l = math.max(d.l, tick)
      d.g = d.g + n
    end
  elseif n < 0 then
    if d.kind == 3 then
      log_credit(i, d, -n)
    elseif d.kind == 4 then
      d.b = math.max(0, d.b - (-n))
    else
      -- Back to at most empty as of the latest grant (whatever is before it stays as it was).
      d.b = math.max(0, d.b - (-n) * d.emission)
    end
  end
  save()
  return {0, now}
end

if op == 'pause' then
  -- ARGV[a]: microseconds from now. A pause is extended, never shortened.
  local untl = now + tonumber(ARGV[a])
  if untl > paused then paused = untl end
  save()
  return {0, now, paused - now}
end

if op == 'paused' then
  -- Microseconds until the pause ends (0 when there is none).
  return {0, now, math.max(0, paused - now)}
end

if op == 'start' then
  -- ARGV[a]: concurrency max; ARGV[a+1]: slots; ARGV[a+2]: lease ms; ARGV[a+3]: permit id
  if leases_in_use() + tonumber(ARGV[a + 1]) > tonumber(ARGV[a]) then return {3, now} end
  lease(ARGV[a + 3], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
  return {0, now}
end

if op == 'release' then
  -- ARGV[a]: permit id; ARGV[a+1]: slots
  for k = 1, tonumber(ARGV[a + 1]) do redis.call('ZREM', slots_key, ARGV[a] .. ':' .. k) end
  return {0, now}
end

if op == 'adjust' then
  -- Each limit: the units its ticket holds, the units it should hold, the ticket's mark.
  -- Refunds never hand out capacity twice: had the request cost less from the start, the backlog
  -- would be max(b - refund, what grants made after it built), bounded by all of those placed at
  -- the latest grant. Charges always add.
  local reply = {0, now}
  for i, d in ipairs(dims) do
    local o = a + (i - 1) * 3
    local held, want, mark = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
    if d.kind == 3 then
      -- Units still in the window change; an entry that has left no longer counts.
      log_shift(i, d, S(mark), want - held)
    elseif d.kind == 4 then
      if mark == d.l then d.b = math.max(0, d.b - held + want) end
    elseif want < held then
      local since = d.g - mark
      local floor_b = since * d.emission
      local b = d.b - (held - want) * d.emission
      if b < floor_b then b = floor_b end
      if b < d.b then d.b = b end
      if since == 0 then
        d.g = d.g - (held - want)
        mark = d.g
      end
    elseif want > held then
      d.b = d.b + (want - held) * d.emission
      d.g = d.g + (want - held)
    end
    table.insert(reply, mark)
  end
  save()
  return reply
end

if op == 'cancel' then
  -- ARGV[a]: the reservation's seq; ARGV[a+1]: the horizon before it; ARGV[a+2]: its instant;
  -- ARGV[a+3]: permit id; ARGV[a+4]: slots held; then each limit: units held, mark, backlog
  -- before, last tick before.
  local rseq, prev_h, at = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local latest = rseq == seq and horizon == at
  for i, d in ipairs(dims) do
    local o = a + 5 + (i - 1) * 4
    local held, mark, b0, l0 = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
    if d.kind == 3 then
      local tk, ck = log_keys(i)
      if latest and tonumber(redis.call('ZSCORE', ck, S(mark)) or '-1') == d.b then
        redis.call('ZREM', tk, S(mark)); redis.call('ZREM', ck, S(mark))
        d.b = d.b - held
      else
        log_shift(i, d, S(mark), -held)
      end
    elseif d.kind == 4 then
      if latest and d.l ~= l0 and d.b == held and mark == d.l then
        d.b, d.l = b0, l0
      elseif mark == d.l then
        d.b = math.max(0, d.b - held)
      end
    elseif latest and d.g == mark then
      -- The most recent grant everywhere: restore the state exactly as it was before it.
      d.b, d.l, d.g = b0, l0, d.g - held
    elseif held > 0 then
      local since = d.g - mark
      local b = d.b - held * d.emission
      if b < since * d.emission then b = since * d.emission end
      if b < d.b then d.b = b end
      if since == 0 then d.g = d.g - held end
    end
  end
  if latest then
    horizon = prev_h
    seq = seq - 1
  end
  for k = 1, tonumber(ARGV[a + 4]) do redis.call('ZREM', slots_key, ARGV[a + 3] .. ':' .. k) end
  save()
  return {0, now}
end

if op == 'status' then
  -- ARGV[a]: concurrency max (0: none). Reply: now, horizon, leases in use, then each limit's
  -- remaining units and us until fully replenished.
  local in_use = 0
  if tonumber(ARGV[a]) > 0 then in_use = leases_in_use() end
  local reply = {0, now, horizon, in_use}
  for i, d in ipairs(dims) do
    local rem, reset
    if d.kind == 3 then
      local t0 = math.max(now, horizon)
      local used = d.b - log_left(i, d, t0)
      rem = math.max(0, d.cap - used)
      reset = 0
      if used > 0 then
        local tk = log_keys(i)
        local last = redis.call('ZREVRANGE', tk, 0, 0, 'WITHSCORES')
        if #last > 0 then reset = math.max(0, tonumber(last[2]) + d.scale - now) end
      end
    elseif d.kind == 4 then
      local used = fixed_count(d, math.max(now, horizon))
      rem = math.max(0, d.cap - used)
      reset = 0
      if used > 0 then reset = math.max(0, (d.l + 1) * d.scale - now) end
    else
      local x = math.max(math.floor(now / d.tick), d.l)
      rem = remaining(d, x)
      local back = backlog_at(d, math.floor(now / d.tick))
      reset = math.max(0, (math.floor(now / d.tick) + ceil_div(back, d.scale)) * d.tick - now)
    end
    if horizon > now then rem = 0 end
    table.insert(reply, rem)
    table.insert(reply, reset)
  end
  return reply
end

return redis.error_reply('llm-ratelimit: unknown operation ' .. tostring(op))
