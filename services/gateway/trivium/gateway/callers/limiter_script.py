"""The limiter's one Lua script: settle finished requests, then admit (or refuse) one.

KEYS[1], KEYS[2]: the key's spend of this UTC day and month (micro-USD). Then one triple per
bucket (a key, or a key on one feature): request log (zset member -> ms), token log (zset),
token amounts (hash member -> tokens, and `_total`). Every KEYS entry carries the key's
hash tag, so one script touches one Redis Cluster slot.

ARGV[1]: JSON {window, member, reserve, bday, bmonth, dttl, mttl,
               settle: [{m, t, c, b: [bucket base index, ...]}],
               admit: [{k: bucket base index, rpm, tpm}] or absent}
(-1 for a limit not set). Time is the Redis server's (`TIME`), so replicas' clocks never
disagree about a window. Sliding-window logs are exact: in any `window` milliseconds a
bucket admits at most `rpm` requests and reserves at most `tpm` tokens, whichever replica
asks. Reply: {'ok', day spend, month spend, per admitted bucket: requests remaining,
requests reset ms, tokens remaining, tokens reset ms}, {'budget', 'day'|'month', day spend,
month spend}, {'rate', bucket, 'requests'|'tokens', reset ms} or {'settled'}. The spends
(micro-USD, this request's own not yet settled) are read only when a budget is set, else 0.
"""

from __future__ import annotations

__all__ = ("LIMIT_SCRIPT",)

LIMIT_SCRIPT = """
redis.replicate_commands()
local a = cjson.decode(ARGV[1])
local clock = redis.call('TIME')
local now, window = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000), a.window
local function expire_tokens(tok, amt)
  local old = redis.call('ZRANGEBYSCORE', tok, '-inf', now - window)
  if #old == 0 then return end
  local freed = 0
  for _, m in ipairs(old) do
    local v = redis.call('HGET', amt, m)
    if v then freed = freed + tonumber(v) end
    redis.call('HDEL', amt, m)
  end
  redis.call('ZREMRANGEBYSCORE', tok, '-inf', now - window)
  redis.call('HINCRBY', amt, '_total', -freed)
end
local function oldest_reset(log)
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return math.max(tonumber(first[2]) + window - now, 0)
end
for _, s in ipairs(a.settle) do
  for _, b in ipairs(s.b) do
    local amt = KEYS[b + 2]
    local reserved = redis.call('HGET', amt, s.m)
    if reserved then
      redis.call('HINCRBY', amt, '_total', s.t - tonumber(reserved))
      redis.call('HSET', amt, s.m, s.t)
    end
  end
  if s.c > 0 then
    redis.call('INCRBY', KEYS[1], s.c)
    redis.call('EXPIRE', KEYS[1], a.dttl)
    redis.call('INCRBY', KEYS[2], s.c)
    redis.call('EXPIRE', KEYS[2], a.mttl)
  end
end
if not a.admit then return {'settled'} end
local dspent, mspent = 0, 0
if a.bday >= 0 or a.bmonth >= 0 then
  dspent = tonumber(redis.call('GET', KEYS[1]) or '0')
  mspent = tonumber(redis.call('GET', KEYS[2]) or '0')
end
if a.bday >= 0 and dspent >= a.bday then return {'budget', 'day', dspent, mspent} end
if a.bmonth >= 0 and mspent >= a.bmonth then return {'budget', 'month', dspent, mspent} end
local seen = {}
for i, b in ipairs(a.admit) do
  local req, tok, amt = KEYS[b.k], KEYS[b.k + 1], KEYS[b.k + 2]
  local count, used = 0, 0
  if b.rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', req, '-inf', now - window)
    count = redis.call('ZCARD', req)
    if count >= b.rpm then return {'rate', i, 'requests', oldest_reset(req)} end
  end
  if b.tpm >= 0 then
    expire_tokens(tok, amt)
    used = tonumber(redis.call('HGET', amt, '_total') or '0')
    if used > 0 and used + math.min(a.reserve, b.tpm) > b.tpm then
      return {'rate', i, 'tokens', oldest_reset(tok)}
    end
  end
  seen[i] = {count, used}
end
local reply = {'ok', dspent, mspent}
for i, b in ipairs(a.admit) do
  local req, tok, amt = KEYS[b.k], KEYS[b.k + 1], KEYS[b.k + 2]
  local rrem, rreset, trem, treset = -1, 0, -1, 0
  if b.rpm >= 0 then
    redis.call('ZADD', req, now, a.member)
    redis.call('PEXPIRE', req, window)
    rrem = b.rpm - seen[i][1] - 1
    rreset = oldest_reset(req)
  end
  if b.tpm >= 0 then
    local reserve = math.min(a.reserve, b.tpm)
    redis.call('ZADD', tok, now, a.member)
    redis.call('HSET', amt, a.member, reserve)
    redis.call('HINCRBY', amt, '_total', reserve)
    redis.call('PEXPIRE', tok, window * 2)
    redis.call('PEXPIRE', amt, window * 2)
    trem = b.tpm - seen[i][2] - reserve
    treset = oldest_reset(tok)
  end
  table.insert(reply, rrem)
  table.insert(reply, rreset)
  table.insert(reply, trem)
  table.insert(reply, treset)
end
return reply
"""
