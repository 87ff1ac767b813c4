-- One llm-ratelimit policy decision, atomically, on Redis time: a Redis Functions library
-- (Redis 7.0 or later). This file is the library's body; the loader (src/conn/mod.rs) puts the
-- `#!lua name=...` line before it and the registration of `policy` after it, both named after the
-- body's SHA1, so processes running different versions of this code never replace each other's
-- library. What a library defines (the helpers, the formats) is built once, when it is loaded,
-- not on every call as a script's body would be.
--
-- Called as FCALL <function> <numkeys> keys... args...:
-- keys[1]  the budget's state (a string, below)                      {prefix:name:key}:state
-- keys[2]  the concurrency lease set (:slots); sent only when the policy has a concurrency limit
-- keys[k], keys[k + 1]  each sliding log's entries by time and by running total (:t<i>, :c<i>),
--          in the order of the limits; sent only for the limits that are sliding logs
-- args[1]  the operation: acquire | acquires | start | adjust | cancel | release | status |
--          correct | pause | paused
-- args[2]  the layout, packed, the same for every call under one policy: the concurrency max (0:
--          none), the lease of a concurrency slot (ms), the number of sliding logs; then each
--          limit: kind (1 gcra, 2 leaky bucket, 3 sliding log, 4 fixed window), tick (us per time
--          unit), scale (scaled units per tick), emission (scaled units per unit), capacity
--          (scaled). Window limits use tick 1, scale = the window in us, emission 1, capacity =
--          the limit.
-- args[3]  the operation's own numbers, packed (see each operation)
-- args[4]  the permit id, for the operations that take one
-- Reply: packed numbers, the first a status (0 done, 2 rate limited, 3 no concurrency slot,
--          4 too large, 5 later than the deadline).
--
-- Packed: little-endian IEEE doubles (struct 'd'). Every number handled here is an integer below
-- 2^53, so doubles hold it exactly: the client chooses tick, scale and emission so that capacity
-- stays far below that bound. Numbers travel and rest packed because converting them to and from
-- decimal text (strtod, snprintf) costs more than the rest of a decision. Times are microseconds
-- of Redis TIME (never the clients' clocks); each limit counts in its own ticks. Every value
-- returned is an exact integer; waits are rounded up, never down.
--
-- State: packed numbers, then the layout it was kept under (args[2] at the time), which is written
-- once and left in place while it does not change. The numbers: the format (1), horizon (us: the
-- latest reservation), paused (us: nothing is granted before it), seq (grants so far), expiry (ms:
-- when the key expires); then per limit b (backlog, scaled, as of l), l (tick of the last grant),
-- g (units granted, less refunds of the latest grant; for a sliding log, the expiry of its keys,
-- in ms).
--
-- In the code, X holds them all as numbers: X[1] the format, X[2] horizon, X[3] paused, X[4] seq,
-- X[5] expiry, limit i's from so = 5 + 3(i - 1) (X[so + 1] b, l, X[so + 3] g); then the layout
-- from LB: X[LB + 1] concurrency max, lease, X[LB + 3] sliding logs, limit i's from
-- lo = LB + 3 + 5(i - 1) (X[lo + 1] kind, tick, scale, emission, X[lo + 5] capacity). LK[i] is the
-- index in keys of sliding log i's first key.
--
-- The cost of a decision is mostly fixed by Redis (the call, TIME, GET, the write); of the rest,
-- every C function called, every table read and every string made counts. Hence locals over
-- repeated table reads, helpers defined once in the library that take what they use as
-- parameters, and no string built per call that can be avoided. Numbers passed
-- to redis.call become text in Redis: exactly (they are integers below 2^53), but Redis 7.2+
-- writes those ending in 8 or more zeros in exponent form. That is fine wherever Redis reads a
-- double (scores, ZINCRBY), so those are passed as numbers; members, and the integers of PEXPIRE
-- and SET PX, are formatted with '%d'.

-- F[n]: the struct format of n numbers, built once (cutting one to length on every call costs a
-- C call and a string).
local F = {[0] = '<'}
do
  local f = '<'
  for n = 1, 82 do
    f = f .. 'd'
    F[n] = f
  end
end

-- The library functions a call uses, held as upvalues: cheaper than a global and a field read
-- each time. A library's load sees no global but `redis`, so they are taken on the first call.
local spack, sunpack, sfind, sformat, floor, max, min, tunpack, tconcat, rcall, rpcall

local function ceil_div(x, y)
  if x <= 0 then return 0 end
  local q = floor(x / y)
  while q * y < x do q = q + 1 end
  while q > 0 and (q - 1) * y >= x do q = q - 1 end
  return q
end

-- Live concurrency leases (expired ones are dropped: their holders are gone).
local function leases_in_use(keys, now)
  rcall('ZREMRANGEBYSCORE', keys[2], '-inf', sformat('(%d', floor(now / 1000)))
  return rcall('ZCARD', keys[2])
end

-- Takes `count` concurrency slots for permit `id`, if that keeps the leases within `max`.
local function take_slots(keys, now, id, count, lease_ms, max)
  if leases_in_use(keys, now) + count > max then return false end
  local until_ms = floor(now / 1000) + lease_ms
  for k = 1, count do rcall('ZADD', keys[2], until_ms, id .. ':' .. k) end
  rcall('PEXPIRE', keys[2], sformat('%d', lease_ms + 60000))
  return true
end

-- Writes the state back: its numbers only, unless the layout must be written too or the key's
-- expiry must move. The key is kept until the state is fully replenished (then forgetting it
-- loses nothing) plus 30 to 60 seconds: its expiry moves only when less than 30 s would be left.
-- `full` (us) is when the limits are replenished, if the caller knows it. (Expiries need no
-- exactness: the margin absorbs any rounding.)
local function save(keys, X, D, ns, now, layout, whole, full)
  local horizon, paused = X[2], X[3]
  if not full then
    full = 0
    local lo, so = ns + 4, 5
    for _ = 1, D do
      local kind, scale = X[lo + 1], X[lo + 3]
      local f
      if kind == 3 then f = horizon + scale
      elseif kind == 4 then f = (X[so + 2] + 1) * scale
      else f = (X[so + 2] + X[so + 1] / scale + 1) * X[lo + 2] end
      if f > full then full = f end
      lo, so = lo + 5, so + 3
    end
  end
  if horizon > full then full = horizon end
  if paused > full then full = paused end
  if now > full then full = now end
  local needed = full / 1000 + 30001
  local moved = X[5] < needed
  if moved then X[5] = floor(needed) + 30000 end
  local numbers = spack(F[1 + ns], tunpack(X, 1, 1 + ns))
  if moved then
    rcall('SET', keys[1], numbers .. layout, 'PX', sformat('%d', X[5] - floor(now / 1000)))
  elseif whole then
    rcall('SET', keys[1], numbers .. layout, 'KEEPTTL')
  else
    rcall('SETRANGE', keys[1], 0, numbers)
  end
end

-- Sliding logs: entries by time (score = us) and by running total (score = units granted up to
-- and including the entry); a log's b is the running total of its last entry, its l that of the
-- last one dropped.

-- Running total of the entries of log i (at lo, so) that have left the window ending at x.
local function log_left(keys, X, LK, i, lo, so, x)
  local last = rcall('ZREVRANGEBYSCORE', keys[LK[i]], x - X[lo + 3], '-inf', 'LIMIT', 0, 1)
  if #last == 0 then return X[so + 2] end
  return tonumber(rcall('ZSCORE', keys[LK[i] + 1], last[1]))
end

-- Drops the entries no decision can need again (time never runs back past now). `gone` is
-- log_left at now, if the caller has it.
local function log_expire(keys, X, LK, i, lo, so, now, gone)
  gone = gone or log_left(keys, X, LK, i, lo, so, now)
  if gone > X[so + 2] then
    rcall('ZREMRANGEBYSCORE', keys[LK[i]], '-inf', now - X[lo + 3])
    rcall('ZREMRANGEBYSCORE', keys[LK[i] + 1], '-inf', gone)
    X[so + 2] = gone
    -- An emptied log is deleted; added to again, it has no expiry until given one.
    if gone >= X[so + 1] then X[so + 3] = 0 end
  end
end

-- Gives the log's keys an expiry that lets an entry made at x (us) leave the window first
-- (plus 30 to 60 seconds, moved only when less than 30 s would be left).
local function log_keep(keys, X, LK, i, lo, so, now, x)
  local needed = (x + X[lo + 3]) / 1000 + 30001
  if X[so + 3] < needed then
    X[so + 3] = floor(needed) + 30000
    local px = sformat('%d', X[so + 3] - floor(now / 1000))
    rcall('PEXPIRE', keys[LK[i]], px)
    rcall('PEXPIRE', keys[LK[i] + 1], px)
  end
end

-- Changes the units entry `member` holds by delta (it and every later running total).
local function log_shift(keys, X, LK, i, so, member, delta)
  local ck = keys[LK[i] + 1]
  local cum = rcall('ZSCORE', ck, member)
  if not cum then return false end
  if delta ~= 0 then
    local later = rcall('ZRANGEBYSCORE', ck, cum, '+inf')
    for _, e in ipairs(later) do rcall('ZINCRBY', ck, delta, e) end
    X[so + 1] = X[so + 1] + delta
  end
  return true
end

-- One acquire (operation 'acquire') on the state X, at `now`: its numbers are A[a + 1] on, its
-- permit id `id`. Returns its reply, packed, and, if it was granted, when the limits it charged
-- are replenished (us); a refusal changes nothing. Leaves X as the grant made it, for the caller
-- to save.
local function acquire(keys, X, D, LB, LK, now, A, a, id)
  local horizon, paused, seq, conc_max = X[2], X[3], X[4], X[LB + 1]
  local mode, slots = A[a + 1], A[a + 3]
  local at = now
  if horizon > at then at = horizon end
  if paused > at then at = paused end
  local limiting = 0
  local left_now = LK and {} -- each log's log_left at now, when computed here
  local lo, so = LB + 3, 5
  for i = 1, D do
    local kind, scale, emission, cap, amount = X[lo + 1], X[lo + 3], X[lo + 4], X[lo + 5], A[a + 3 + i]
    if amount * emission > cap then return spack('<ddddd', 4, now, i, amount, cap / emission) end
    local e = at
    if kind <= 2 then
      -- The earliest tick at which the amount fits: the backlog then, drained since the last
      -- grant (never before it), must leave room (a leaky bucket's must be empty).
      local tick, b, l = X[lo + 2], X[so + 1], X[so + 2]
      local x = at
      if tick ~= 1 then x = ceil_div(at, tick) end
      if x < l then x = l end
      local need = b - (x - l) * scale
      if need < 0 then need = 0 end
      if kind == 1 then need = need + amount * emission - cap end
      if need > 0 then e = (x + ceil_div(need, scale)) * tick elseif x * tick > at then e = x * tick end
    elseif kind == 4 then
      local w = floor(at / scale)
      if w == X[so + 2] and X[so + 1] + amount > cap then e = (w + 1) * scale end
    else
      -- The earliest instant at which the amount fits the log.
      local b = X[so + 1]
      local left = log_left(keys, X, LK, i, lo, so, at)
      if at == now then left_now[i] = left end
      if b - left + amount > cap then
        local first = rcall('ZRANGEBYSCORE', keys[LK[i] + 1], b + amount - cap, '+inf', 'LIMIT', 0, 1)
        local leaves = tonumber(rcall('ZSCORE', keys[LK[i]], first[1])) + scale
        if leaves > at then e = leaves end
      end
    end
    if e > at then at = e; limiting = i end
    lo, so = lo + 5, so + 3
  end
  if conc_max > 0 and slots > conc_max then return spack('<ddddd', 4, now, 0, slots, conc_max) end
  if mode == 0 and at > now then return spack('<dddd', 2, now, at - now, limiting) end
  if mode == 2 and at > now + A[a + 2] then return spack('<dddd', 5, now, at - now, limiting) end
  local started = 0
  if mode == 0 and conc_max > 0 then
    if not take_slots(keys, now, id, slots, X[LB + 2], conc_max) then return spack('<dd', 3, now) end
    started = 1
  end
  seq = seq + 1
  local reply = {0, now, at, seq, horizon, started}
  local full = at
  lo, so = LB + 3, 5
  for i = 1, D do
    local kind, scale, amount, b, l = X[lo + 1], X[lo + 3], A[a + 3 + i], X[so + 1], X[so + 2]
    local r = 3 + 3 * i
    if kind <= 2 then
      reply[r + 1], reply[r + 2] = b, l
      local tick = X[lo + 2]
      local x = at
      if tick ~= 1 then x = ceil_div(at, tick) end
      if x > l then
        b = b - (x - l) * scale
        if b < 0 then b = 0 end
        l = x
        X[so + 2] = x
      end
      b = b + amount * X[lo + 4]
      X[so + 1] = b
      local g = X[so + 3] + amount
      X[so + 3] = g
      reply[r + 3] = g
      -- Replenished once the backlog has drained (to the tick: see save).
      local f = (l + b / scale + 1) * tick
      if f > full then full = f end
    elseif kind == 4 then
      local w = floor(at / scale)
      reply[r + 1], reply[r + 2], reply[r + 3] = b, l, w
      if w ~= l then b = 0; X[so + 2] = w end
      X[so + 1] = b + amount
      if (w + 1) * scale > full then full = (w + 1) * scale end
    else
      log_expire(keys, X, LK, i, lo, so, now, left_now[i])
      reply[r + 1], reply[r + 2], reply[r + 3] = X[so + 1], X[so + 2], seq
      local member = sformat('%d', seq)
      X[so + 1] = X[so + 1] + amount
      rcall('ZADD', keys[LK[i]], at, member)
      rcall('ZADD', keys[LK[i] + 1], X[so + 1], member)
      log_keep(keys, X, LK, i, lo, so, now, at)
      if at + scale > full then full = at + scale end
    end
    lo, so = lo + 5, so + 3
  end
  X[2], X[4] = at, seq
  return spack(F[6 + 3 * D], tunpack(reply, 1, 6 + 3 * D)), full
end

-- One decision (the operation args[1]) on the budget whose keys are `keys`.
local function policy(keys, args)
  if not spack then
    spack, sunpack, sfind, sformat = struct.pack, struct.unpack, string.find, string.format
    floor, max, min, tunpack, tconcat = math.floor, math.max, math.min, unpack, table.concat
    rcall, rpcall = redis.call, redis.pcall
  end
  local op = args[1]
  local layout = args[2]
  local D = (#layout / 8 - 3) / 5
  local m = 3 + 5 * D -- numbers in the layout
  local ns = 4 + 3 * D -- numbers in the state after its format
  local LB = 1 + ns
  local A
  local na = #args[3] / 8
  if na <= 82 then
    A = {sunpack(F[na], args[3])}
  else
    -- Coalesced acquires carry more numbers than one format holds: unpacked 80 at a time.
    A = {}
    local k, pos = 0, 1
    while k < na do
      local c = min(80, na - k)
      local part = {sunpack(F[c], args[3], pos)}
      for j = 1, c do A[k + j] = part[j] end
      k, pos = k + c, part[c + 1]
    end
  end

  local t = rcall('TIME')
  local now = t[1] * 1000000 + t[2]

  if op == 'start' then
    -- args[3]: slots. args[4]: permit id.
    local conc_max, lease_ms = sunpack('<dd', layout)
    if not take_slots(keys, now, args[4], A[1], lease_ms, conc_max) then return spack('<dd', 3, now) end
    return spack('<dd', 0, now)
  end

  if op == 'release' then
    -- args[3]: slots. args[4]: permit id.
    for k = 1, A[1] do rcall('ZREM', keys[2], args[4] .. ':' .. k) end
    return spack('<dd', 0, now)
  end

  -- The state, read once.
  local X
  local whole = true -- whether the write must replace the whole string (layout included)
  local old -- per limit, the quota {tick, scale, emission, cap} its state was kept under, if known
  local raw = rpcall('GET', keys[1])
  if type(raw) == 'string' and #raw == 8 * (1 + ns) + #layout
      and sfind(raw, layout, 8 * (1 + ns) + 1, true) == 8 * (1 + ns) + 1 then
    -- Kept under this very layout: nothing to convert.
    X = {sunpack(F[1 + ns + m], raw)}
    if X[1] ~= 1 then return redis.error_reply('llm-ratelimit: unknown state format') end
    whole = false
  else
    X = {1}
    local L = {sunpack(F[m], layout)}
    for j = 1, m do X[LB + j] = L[j] end
    if type(raw) == 'string' then
      -- Kept under another layout: a quota, a kind or the number of limits changed. The old
      -- layout's size follows from the state's: 1 + (4 + 3 d) + (3 + 5 d) numbers.
      local od = (#raw / 8 - 8) / 8
      if not (od >= 1 and od <= 8 and od == floor(od)) or sunpack('<d', raw) ~= 1 then
        return redis.error_reply('llm-ratelimit: unknown state format')
      end
      local P = {sunpack(F[8 + 8 * od], raw)}
      X[2], X[3], X[4], X[5] = P[2], P[3], P[4], P[5]
      old = {}
      for i = 1, D do
        local so, plo = 5 + 3 * (i - 1), 8 + 3 * od + 5 * (i - 1)
        if i <= od then
          X[so + 1], X[so + 2], X[so + 3] = P[so + 1], P[so + 2], P[so + 3]
          old[i] = {P[plo + 2], P[plo + 3], P[plo + 4], P[plo + 5]}
          -- A sliding log's g is its keys' expiry, any other's a count: neither carries over.
          if (P[plo + 1] == 3) ~= (X[LB + 4 + 5 * (i - 1)] == 3) then X[so + 3] = 0 end
        else
          X[so + 1], X[so + 2], X[so + 3] = 0, 0, 0
        end
      end
    elseif raw then
      -- A hash: the state of an earlier version of this script (fields h, p, seq; b<i>, l<i>,
      -- g<i>, and q<i> = 'tick:scale:emission:cap'). Read it; the next write replaces it.
      local fields = rcall('HGETALL', keys[1])
      local h = {}
      for j = 1, #fields, 2 do h[fields[j]] = fields[j + 1] end
      X[2], X[3] = tonumber(h['h'] or '0'), tonumber(h['p'] or '0')
      X[4], X[5] = tonumber(h['seq'] or '0'), 0
      old = {}
      for i = 1, D do
        local so = 5 + 3 * (i - 1)
        X[so + 1] = tonumber(h['b' .. i] or '0')
        X[so + 2] = tonumber(h['l' .. i] or '0')
        X[so + 3] = tonumber(h['g' .. i] or '0')
        local q1, q2, q3, q4 = string.match(h['q' .. i] or '', '^(%d+):(%d+):(%d+):(%d+)$')
        if q1 then old[i] = {tonumber(q1), tonumber(q2), tonumber(q3), tonumber(q4)} end
      end
    else
      for k = 2, 1 + ns do X[k] = 0 end
    end
  end

  -- Limits whose quota changed since their state was written.
  if old then
    for i = 1, D do
      local q = old[i]
      local lo, so = LB + 3 + 5 * (i - 1), 5 + 3 * (i - 1)
      local kind, tick, scale, emission = X[lo + 1], X[lo + 2], X[lo + 3], X[lo + 4]
      if q and (q[1] ~= tick or q[2] ~= scale or q[3] ~= emission or q[4] ~= X[lo + 5]) then
        if kind == 4 then
          -- A fixed window whose length changed: re-align on now; its count carries over.
          X[so + 2] = floor(now / scale)
        elseif kind <= 2 then
          -- Keep the units still owed, re-expressed in the new scale (rounded up: a change never
          -- hands out a fresh burst).
          local b, l = X[so + 1], X[so + 2]
          local owed_now = max(0, b - max(0, floor(now / q[1]) - l) * q[2])
          X[so + 1] = math.ceil(owed_now / q[3] * emission)
          X[so + 2] = floor(now / tick)
        end
      end
    end
  end

  local horizon, paused, seq = X[2], X[3], X[4]
  local conc_max = X[LB + 1]

  -- Sliding logs: entries by time (score = us) and by running total (score = units granted up to
  -- and including the entry); a log's b is the running total of its last entry, its l that of the
  -- last one dropped. LK[i]: the index in keys of log i's first key (for a policy that has logs).
  local LK
  if X[LB + 3] > 0 then
    LK = {}
    local k = conc_max > 0 and 3 or 2
    for i = 1, D do
      if X[LB + 4 + 5 * (i - 1)] == 3 then LK[i] = k; k = k + 2 end
    end
  end

  if op == 'acquire' then
    -- args[3]: mode (0 try now, 1 reserve, 2 reserve unless later than the deadline), deadline in
    -- us from now (mode 2), slots, then each limit's amount. args[4]: permit id.
    -- Reply: 0, now, the instant granted, the grant's seq, the horizon before it, whether its
    -- concurrency slots were taken (1) or not (0); then each limit's b and l before the grant and
    -- the grant's mark (the count of units granted, the window, or the log entry).
    local r, full = acquire(keys, X, D, LB, LK, now, A, 0, args[4])
    if full then save(keys, X, D, ns, now, layout, whole, full) end
    return r
  end

  if op == 'acquires' then
    -- Several acquires of this process, coalesced: args[3]: their count n, then each one's numbers
    -- (as acquire's args[3]: 3 + D each); args[3 + j]: acquire j's permit id (with a concurrency
    -- limit). Applied one after another in this order, each exactly as a call of acquire made at
    -- this instant after the ones before it; the state is written once. Reply: for each, the
    -- count of numbers in its reply, then its reply.
    local out, last, k = {}, nil, 3 + D
    for j = 1, A[1] do
      local r, full = acquire(keys, X, D, LB, LK, now, A, 1 + (j - 1) * k, args[3 + j])
      -- Two pieces rather than one joined string: table.concat joins them all once.
      out[2 * j - 1], out[2 * j] = spack('<d', #r / 8), r
      if full and (not last or full > last) then last = full end
    end
    if last then save(keys, X, D, ns, now, layout, whole, last) end
    return tconcat(out)
  end

  if op == 'correct' then
    -- args[3]: the limit (1-based); units, positive to charge, negative to credit.
    local i, units = A[1], A[2]
    if not (i >= 1 and i <= D and i == floor(i)) then
      return redis.error_reply('llm-ratelimit: no limit ' .. tostring(i))
    end
    local lo, so = LB + 3 + 5 * (i - 1), 5 + 3 * (i - 1)
    local kind, tick, scale, emission = X[lo + 1], X[lo + 2], X[lo + 3], X[lo + 4]
    local x = max(now, horizon)
    if units > 0 then
      if kind == 3 then
        -- Added at instant x, outside any reservation.
        log_expire(keys, X, LK, i, lo, so, now)
        X[so + 1] = X[so + 1] + units
        local member = sformat('c%d:%d', x, X[so + 1])
        rcall('ZADD', keys[LK[i]], x, member)
        rcall('ZADD', keys[LK[i] + 1], X[so + 1], member)
        log_keep(keys, X, LK, i, lo, so, now, x)
      elseif kind == 4 then
        local w = floor(x / scale)
        if w ~= X[so + 2] then X[so + 1] = 0; X[so + 2] = w end
        X[so + 1] = X[so + 1] + units
      else
        local at = ceil_div(x, tick)
        local back = X[so + 1]
        if at > X[so + 2] then
          back = max(0, back - (at - X[so + 2]) * scale)
          X[so + 2] = at
        end
        X[so + 1] = back + units * emission
        X[so + 3] = X[so + 3] + units
      end
    elseif units < 0 then
      if kind == 3 then
        -- Takes the units off the newest live entries (each keeps its place: an emptied entry
        -- holds zero units until it expires, so tickets still find theirs).
        local ck = keys[LK[i] + 1]
        local left = log_left(keys, X, LK, i, lo, so, x)
        local live = rcall('ZREVRANGEBYSCORE', ck, '+inf', sformat('(%d', left), 'WITHSCORES')
        local rest = -units
        local removed = {}
        local count = #live / 2
        for j = 1, count do
          if rest <= 0 then break end
          local cum = tonumber(live[2 * j])
          local below = left
          if j < count then below = tonumber(live[2 * j + 2]) end
          local r = min(cum - below, rest)
          removed[j] = r
          rest = rest - r
        end
        -- An entry's running total drops by what was taken from it and from every older entry.
        local older = 0
        for j = #removed, 1, -1 do
          older = older + removed[j]
          if older > 0 then rcall('ZINCRBY', ck, -older, live[2 * j - 1]) end
        end
        X[so + 1] = X[so + 1] - older
      elseif kind == 4 then
        X[so + 1] = max(0, X[so + 1] + units)
      else
        -- Back to at most empty as of the latest grant (whatever is before it stays as it was).
        X[so + 1] = max(0, X[so + 1] + units * emission)
      end
    end
    save(keys, X, D, ns, now, layout, whole)
    return spack('<dd', 0, now)
  end

  if op == 'pause' then
    -- args[3]: microseconds from now. A pause is extended, never shortened. Reply: 0, now, the
    -- microseconds left.
    if now + A[1] > paused then X[3] = now + A[1] end
    save(keys, X, D, ns, now, layout, whole)
    return spack('<ddd', 0, now, X[3] - now)
  end

  if op == 'paused' then
    -- Reply: 0, now, the microseconds until the pause ends (0 when there is none).
    return spack('<ddd', 0, now, max(0, paused - now))
  end

  if op == 'adjust' then
    -- args[3], for each limit: the units its ticket holds, the units it should hold, the ticket's
    -- mark. Reply: 0, now, then each limit's mark from now on. Refunds never hand out capacity
    -- twice: had the request cost less from the start, the backlog would be max(b - refund, what
    -- grants made after it built), bounded by all of those placed at the latest grant. Charges
    -- always add.
    local reply = {0, now}
    for i = 1, D do
      local lo, so, a = LB + 3 + 5 * (i - 1), 5 + 3 * (i - 1), 3 * (i - 1)
      local kind, emission = X[lo + 1], X[lo + 4]
      local held, want, mark = A[a + 1], A[a + 2], A[a + 3]
      if kind == 3 then
        -- Units still in the window change; an entry that has left no longer counts.
        log_shift(keys, X, LK, i, so, sformat('%d', mark), want - held)
      elseif kind == 4 then
        if mark == X[so + 2] then X[so + 1] = max(0, X[so + 1] - held + want) end
      elseif want < held then
        local since = X[so + 3] - mark
        local floor_b = since * emission
        local b = X[so + 1] - (held - want) * emission
        if b < floor_b then b = floor_b end
        if b < X[so + 1] then X[so + 1] = b end
        if since == 0 then
          X[so + 3] = X[so + 3] - (held - want)
          mark = X[so + 3]
        end
      elseif want > held then
        X[so + 1] = X[so + 1] + (want - held) * emission
        X[so + 3] = X[so + 3] + (want - held)
      end
      reply[2 + i] = mark
    end
    save(keys, X, D, ns, now, layout, whole)
    return spack(F[2 + D], tunpack(reply, 1, 2 + D))
  end

  if op == 'cancel' then
    -- args[3]: the reservation's seq, the horizon before it, its instant, the slots it holds; then
    -- each limit: units held, mark, backlog before, last tick before. args[4]: permit id.
    local rseq, prev_h, at = A[1], A[2], A[3]
    local latest = rseq == seq and horizon == at
    for i = 1, D do
      local lo, so, a = LB + 3 + 5 * (i - 1), 5 + 3 * (i - 1), 4 + 4 * (i - 1)
      local kind, emission = X[lo + 1], X[lo + 4]
      local held, mark, b0, l0 = A[a + 1], A[a + 2], A[a + 3], A[a + 4]
      if kind == 3 then
        local member = sformat('%d', mark)
        local ck = keys[LK[i] + 1]
        if latest and tonumber(rcall('ZSCORE', ck, member) or '-1') == X[so + 1] then
          rcall('ZREM', keys[LK[i]], member); rcall('ZREM', ck, member)
          X[so + 1] = X[so + 1] - held
        else
          log_shift(keys, X, LK, i, so, member, -held)
        end
      elseif kind == 4 then
        if latest and X[so + 2] ~= l0 and X[so + 1] == held and mark == X[so + 2] then
          X[so + 1], X[so + 2] = b0, l0
        elseif mark == X[so + 2] then
          X[so + 1] = max(0, X[so + 1] - held)
        end
      elseif latest and X[so + 3] == mark then
        -- The most recent grant everywhere: restore the state exactly as it was before it.
        X[so + 1], X[so + 2], X[so + 3] = b0, l0, X[so + 3] - held
      elseif held > 0 then
        local since = X[so + 3] - mark
        local b = X[so + 1] - held * emission
        if b < since * emission then b = since * emission end
        if b < X[so + 1] then X[so + 1] = b end
        if since == 0 then X[so + 3] = X[so + 3] - held end
      end
    end
    if latest then X[2], X[4] = prev_h, seq - 1 end
    for k = 1, A[4] do rcall('ZREM', keys[2], args[4] .. ':' .. k) end
    save(keys, X, D, ns, now, layout, whole)
    return spack('<dd', 0, now)
  end

  if op == 'status' then
    -- Reply: 0, now, horizon, leases in use, then each limit's remaining units and us until fully
    -- replenished.
    local in_use = 0
    if conc_max > 0 then in_use = leases_in_use(keys, now) end
    local reply = {0, now, horizon, in_use}
    for i = 1, D do
      local lo, so = LB + 3 + 5 * (i - 1), 5 + 3 * (i - 1)
      local kind, tick, scale, emission, cap = X[lo + 1], X[lo + 2], X[lo + 3], X[lo + 4], X[lo + 5]
      local rem, reset
      if kind == 3 then
        local used = X[so + 1] - log_left(keys, X, LK, i, lo, so, max(now, horizon))
        rem = max(0, cap - used)
        reset = 0
        if used > 0 then
          local last = rcall('ZREVRANGE', keys[LK[i]], 0, 0, 'WITHSCORES')
          if #last > 0 then reset = max(0, tonumber(last[2]) + scale - now) end
        end
      elseif kind == 4 then
        local used = 0
        if floor(max(now, horizon) / scale) == X[so + 2] then used = X[so + 1] end
        rem = max(0, cap - used)
        reset = 0
        if used > 0 then reset = max(0, (X[so + 2] + 1) * scale - now) end
      else
        -- The backlog at a tick (never earlier than the last grant).
        local b, l, x = X[so + 1], X[so + 2], floor(now / tick)
        local back = b
        if x > l then back = max(0, b - (x - l) * scale) end
        if back >= cap then rem = 0 else rem = floor((cap - back) / emission) end
        reset = max(0, (x + ceil_div(back, scale)) * tick - now)
      end
      if horizon > now then rem = 0 end
      reply[3 + 2 * i] = rem
      reply[4 + 2 * i] = reset
    end
    return spack(F[4 + 2 * D], tunpack(reply, 1, 4 + 2 * D))
  end

  return redis.error_reply('llm-ratelimit: unknown operation ' .. tostring(op))
end
