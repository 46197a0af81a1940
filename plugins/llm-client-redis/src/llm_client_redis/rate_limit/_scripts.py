"""The Lua scripts that change a shared budget, kept as data: ``reserve``, ``settle``,
``cancel``, ``sync`` and ``peek``, each the common prelude (read the schedule; push, fold,
replay and save it) followed by its own body. Redis runs each one atomically, on its own clock;
:data:`SCRIPTS` maps the names the limiter runs them by to their sources, and the keys and hash
fields they use are described in :mod:`._layout`."""

from __future__ import annotations

__all__ = ["CANCEL", "PEEK", "RESERVE", "SCRIPTS", "SETTLE", "SYNC"]

# Times are microseconds; rates are per microsecond. ARGV[1] is a clock override for tests
# ("" means the server's clock). A missing hash is a full bucket.
#
# KEYS[3] lists the schedule's pending entries in the order they were made, each
# "kind seq m_t m_r d_t d_r": replaying one is ``tat = max(tat, m) + d`` per dimension. Kind
# 'r' is a reservation (m = its slot, d = its amount over the rate), 'c' a charge at the end
# of the schedule, 'f' a floor from a header (a pause). The hash keeps the base ``bt``/``br``
# (the schedule with everything before the list applied), the latest folded slot ``bl``, and
# the end of the schedule ``tt``/``tr``/``last``: always the base replayed through the list.
# Entries leave the head of the list once nothing can undo them (a reservation whose slot has
# come; any other entry ahead of the first pending reservation).
#
# Replaying is max-plus: from a base b the list ends at max(b + S, R), where S is the sum of
# its d and R = max over entries j of (m_j + d_j + the d after j). With P_j the running sum of
# d up to and including j (``pt`` at the end of the list, ``qt`` at its base), R = P_end +
# max_j (m_j + d_j - P_j). Those keys never change, so a sorted set per dimension (KEYS[4],
# KEYS[5]) keeps them and a refund, which lowers the base, finds the new end in O(log n).
_PRELUDE = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local s = redis.call('HMGET', KEYS[1], 'tt', 'tr', 'last', 'seq', 'bt', 'br', 'bl', 'pt', 'pr',
  'qt', 'qr')
if not s[1] then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
local tt = tonumber(s[1]) or now
local tr = tonumber(s[2]) or now
local last = tonumber(s[3]) or now
local seq = tonumber(s[4]) or 0
local bt = tonumber(s[5]) or tt
local br = tonumber(s[6]) or tr
local bl = tonumber(s[7]) or last
local pt, pr = tonumber(s[8]) or 0, tonumber(s[9]) or 0
local qt, qr = tonumber(s[10]) or 0, tonumber(s[11]) or 0
local n = redis.call('LLEN', KEYS[3])
local function num(x) return string.format('%.17g', x) end
local function parse(e)
  local k, q, mt, mr, dt, dr = string.match(e, '^(%a) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  return k, q, tonumber(mt), tonumber(mr), tonumber(dt), tonumber(dr)
end
local function add(e, k, q, mt, mr, dt, dr)
  tt = math.max(tt, mt) + dt
  tr = math.max(tr, mr) + dr
  pt, pr = pt + dt, pr + dr
  redis.call('ZADD', KEYS[4], num(mt + dt - pt), q)
  redis.call('ZADD', KEYS[5], num(mr + dr - pr), q)
  if k == 'r' then last = mt end
  redis.call('RPUSH', KEYS[3], e)
  n = n + 1
end
local function push(k, mt, mr, dt, dr)
  if n == 0 and (k ~= 'r' or mt <= now) then  -- nothing could undo it: straight to the base
    tt = math.max(tt, mt) + dt
    tr = math.max(tr, mr) + dr
    if k == 'r' then last = mt end
    bt, br, bl = tt, tr, last
    return
  end
  local e = k .. ' ' .. seq .. ' ' .. num(mt) .. ' ' .. num(mr) .. ' ' .. num(dt) .. ' ' .. num(dr)
  add(e, parse(e))
end
local function fold()
  if n == 0 then return end
  while n > 0 do
    local e = redis.call('LINDEX', KEYS[3], 0)
    local k, q, mt, mr, dt, dr = parse(e)
    if k == 'r' and mt > now then break end
    bt = math.max(bt, mt) + dt
    br = math.max(br, mr) + dr
    qt, qr = qt + dt, qr + dr
    if k == 'r' then bl = mt end
    redis.call('LPOP', KEYS[3])
    redis.call('ZREM', KEYS[4], q)
    redis.call('ZREM', KEYS[5], q)
    n = n - 1
  end
  if n == 0 then
    bt, br, bl, pt, pr, qt, qr = tt, tr, last, 0, 0, 0, 0
    redis.call('DEL', KEYS[4], KEYS[5])
  end
end
local function ends()  -- the end of the schedule from the base, in O(log n)
  local t, r = bt + (pt - qt), br + (pr - qr)
  local kt = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  local kr = redis.call('ZREVRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if kt[2] then t = math.max(t, pt + tonumber(kt[2])) end
  if kr[2] then r = math.max(r, pr + tonumber(kr[2])) end
  tt, tr = t, r
end
local function drop(seqs)  -- replays the list without these reservations: O(n)
  local all, found = redis.call('LRANGE', KEYS[3], 0, -1), 0
  for _, e in ipairs(all) do
    local k, q = parse(e)
    if k == 'r' and seqs[q] then found = found + 1 end
  end
  if found == 0 then return 0 end
  redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
  tt, tr, last, pt, pr, qt, qr, n = bt, br, bl, 0, 0, 0, 0, 0
  for _, e in ipairs(all) do
    local k, q, mt, mr, dt, dr = parse(e)
    if not (k == 'r' and seqs[q]) then add(e, k, q, mt, mr, dt, dr) end
  end
  return found
end
local function save(ct, rt, cr, rr)
  fold()
  redis.call('HSET', KEYS[1], 'tt', num(tt), 'tr', num(tr), 'last', num(last), 'seq', seq)
  if n > 0 then
    redis.call('HSET', KEYS[1], 'bt', num(bt), 'br', num(br), 'bl', num(bl), 'pt', num(pt),
      'pr', num(pr), 'qt', num(qt), 'qr', num(qr))
  elseif s[5] then  -- nothing pending: the base is the end, and the sums start again at 0
    redis.call('HDEL', KEYS[1], 'bt', 'br', 'bl', 'pt', 'pr', 'qt', 'qr')
  end
  local idle = math.max(tt - now + ct / rt, tr - now + cr / rr, 0)
  local ttl = math.ceil(idle / 1000) + 60000
  redis.call('PEXPIRE', KEYS[1], ttl)
  if n > 0 then
    for i = 3, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
local function levels(ct, rt, cr, rr)
  return num(ct - rt * math.max(0, tt - now)), num(cr - rr * math.max(0, tr - now))
end
"""

# ARGV: now, tokens, requests, cap_t, rate_t, cap_r, rate_r, member
RESERVE = (
    _PRELUDE
    + """
local a_t, a_r = tonumber(ARGV[2]), tonumber(ARGV[3])
local ct, rt, cr, rr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local at = math.max(now, last,
  tt - (ct - math.min(a_t, ct)) / rt,
  tr - (cr - math.min(a_r, cr)) / rr)
seq = seq + 1
push('r', at, at, a_t / rt, a_r / rr)
save(ct, rt, cr, rr)
redis.call('ZADD', KEYS[2], now, ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000000)
redis.call('PEXPIRE', KEYS[2], 120000)
local lt, lr = levels(ct, rt, cr, rr)
return {num(at), num(now), seq, redis.call('ZCARD', KEYS[2]), lt, lr}
"""
)

# ARGV: now, credit_t, credit_r (negative: a charge), cap_t, rate_t, cap_r, rate_r.
# A refund lands now, ahead of every reservation still waiting: it lifts the base (never
# above a full bucket at this instant) and the schedule is replayed from there, so what it
# frees reaches the end of the schedule only as far as the waiting reservations leave room
# (a bucket that fills up before a waiting slot absorbs it). Reserved slots never move. A
# charge is debt at the end of the schedule, recorded as an entry so a replay keeps it.
# Returns when it took effect, now, the levels and what was really credited (or charged).
SETTLE = (
    _PRELUDE
    + """
local ct, rt, cr, rr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local d_t, d_r = tonumber(ARGV[2]), tonumber(ARGV[3])
fold()
local function refund(base, d, rate)
  if d <= 0 or base <= now then return base, 0 end
  local lifted = math.max(base - d / rate, now)
  return lifted, (base - lifted) * rate
end
local gt, gr = 0, 0
bt, gt = refund(bt, d_t, rt)
br, gr = refund(br, d_r, rr)
local f = now
if gt > 0 or gr > 0 then ends() end
seq = seq + 1
if d_t < 0 or d_r < 0 then
  f = math.max(now, last)
  push('c', d_t < 0 and now or -1, d_r < 0 and now or -1, math.max(0, -d_t) / rt,
    math.max(0, -d_r) / rr)
  if d_t < 0 then gt = d_t end
  if d_r < 0 then gr = d_r end
end
save(ct, rt, cr, rr)
local lt, lr = levels(ct, rt, cr, rr)
return {num(f), num(now), lt, lr, num(gt), num(gr)}
"""
)

# ARGV: now, cap_t, rate_t, cap_r, rate_r, then the seqs of the reservations to give back.
# Each one still waiting leaves the schedule as if it had never been made: the rest is
# replayed without it (no other slot moves). Returns how many were found.
CANCEL = (
    _PRELUDE
    + """
fold()
local seqs = {}
for i = 6, #ARGV do seqs[ARGV[i]] = true end
local found = drop(seqs)
if found > 0 then seq = seq + 1 end
save(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return found
"""
)

# ARGV: now, pause_t, pause_r (us), remaining_t, remaining_r ('' = none), cap_t, rate_t,
# cap_r, rate_r, server limit_t, server limit_r ('' = none: keep what is stored)
SYNC = (
    _PRELUDE
    + """
local ct, rt, cr, rr = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ft, fr = tt, tr
if ARGV[10] ~= nil and ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'lt', ARGV[10]) end
if ARGV[11] ~= nil and ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'lr', ARGV[11]) end
if ARGV[2] ~= '' then tt = math.max(tt, now + ct / rt + tonumber(ARGV[2])) end
if ARGV[3] ~= '' then tr = math.max(tr, now + cr / rr + tonumber(ARGV[3])) end
if ARGV[4] ~= '' then tt = math.max(tt, now + (ct - math.min(tonumber(ARGV[4]), ct)) / rt) end
if ARGV[5] ~= '' then tr = math.max(tr, now + (cr - math.min(tonumber(ARGV[5]), cr)) / rr) end
seq = seq + 1
if tt ~= ft or tr ~= fr then  -- a floor the schedule keeps, whatever is given back later
  push('f', tt ~= ft and tt or -1, tr ~= fr and tr or -1, 0, 0)
end
save(ct, rt, cr, rr)
local lt, lr = levels(ct, rt, cr, rr)
return {lt, lr}
"""
)

# ARGV: now, cap_t, rate_t, cap_r, rate_r
PEEK = (
    _PRELUDE
    + """
local lt, lr = levels(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local sl = redis.call('HMGET', KEYS[1], 'lt', 'lr')
return {lt, lr, num(now), num(last), sl[1] or '', sl[2] or ''}
"""
)

#: The scripts by the name the limiter runs them by (registered in this order).
SCRIPTS: dict[str, str] = {
    "reserve": RESERVE,
    "settle": SETTLE,
    "cancel": CANCEL,
    "sync": SYNC,
    "peek": PEEK,
}
