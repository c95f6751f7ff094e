"""The Lua scripts behind the Redis hot state; each runs atomically in one EVALSHA.

Every script reads Redis' own clock (`TIME`), so replicas with skewed clocks agree on when a breaker
may probe and when a rate window has room.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "ADMIT", "RECORD", "STATE"]

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

# A breaker's decision, shared by ACQUIRE and ADMIT; writes nothing. Returns a refusal reply (or nil),
# whether this call would be the single half-open probe (1) and the failures counted so far.
_DECIDE = """
local function decide(key, recovery)
  local h = redis.call('HMGET', key, 'state', 'failures', 'opened_at', 'probe_until')
  local state = h[1] or 'closed'
  local failures = tonumber(h[2] or '0')
  if state == 'open' then
    local ready = tonumber(h[3]) + recovery
    if now < ready then return {0, 'open', 0, ready - now, failures}, 0, failures end
    return nil, 1, failures
  elseif state == 'half_open' then
    local lease = tonumber(h[4] or '0')
    if now < lease then return {0, 'half_open', 0, lease - now, failures}, 0, failures end
    return nil, 1, failures
  end
  return nil, 0, failures
end
local recovery = tonumber(ARGV[1])
"""

_TAKE_PROBE = "redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + recovery)\n"

ACQUIRE = (
    _NOW
    + _DECIDE
    + """
local refuse, probe, failures = decide(KEYS[1], recovery)
if refuse then return refuse end
if probe == 0 then return {1, 'closed', 0, 0, failures} end
"""
    + _TAKE_PROBE
    + "return {1, 'half_open', 1, 0, failures}\n"
)

ADMIT = (
    _NOW
    + _DECIDE
    + """
-- One tool-call check: the breaker (when ARGV[2] == '1', at KEYS[1]) and every moving window
-- (sorted sets of hit times; window n: ARGV[2 + 2n] = limit, ARGV[3 + 2n] = length in ms). A hit is
-- counted in every window, and a half-open breaker's probe taken, only when all of them allow it.
-- Reply: {breaker allowed, breaker state, probe, breaker wait ms, failures,
--         refusing window (0: none), its wait ms}.
local first, state, probe, failures = 1, 'closed', 0, 0
if ARGV[2] == '1' then
  first = 2
  local refuse
  refuse, probe, failures = decide(KEYS[1], recovery)
  if refuse then return {0, refuse[2], 0, refuse[4], refuse[5], 0, 0} end
  if probe == 1 then state = 'half_open' end
end
local member, worst, worst_wait = ARGV[3], 0, 0
for i = first, #KEYS do
  local n = i - first + 1
  local limit, window = tonumber(ARGV[2 + 2 * n]), tonumber(ARGV[3 + 2 * n])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local wait = window
    if oldest[2] then wait = tonumber(oldest[2]) + window - now end
    if worst == 0 or wait > worst_wait then worst, worst_wait = n, wait end
  end
end
if worst > 0 then return {1, state, 0, 0, failures, worst, worst_wait} end
for i = first, #KEYS do
  local n = i - first + 1
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3 + 2 * n]))
end
if probe == 1 then
"""
    + _TAKE_PROBE
    + """end
return {1, state, probe, 0, failures, 0, 0}
"""
)

RECORD = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '0')
local ok, probe = ARGV[1] == '1', ARGV[2] == '1'
if probe then
  if state ~= 'half_open' then return state end
  if ok then redis.call('DEL', KEYS[1]) return 'closed' end
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 'open'
end
if state ~= 'closed' then return state end
if ok then
  if failures > 0 then redis.call('DEL', KEYS[1]) end
  return 'closed'
end
failures = failures + 1
if failures >= tonumber(ARGV[3]) then
  state = 'open'
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'failures', failures)
else
  redis.call('HSET', KEYS[1], 'failures', failures)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return state
"""
)

STATE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
local state = h[1] or 'closed'
if state == 'open' and now >= tonumber(h[2]) + tonumber(ARGV[1]) then return 'half_open' end
return state
"""
)
