"""Lua scripts: each registry write is one atomic step on the Redis server.

Every write appends its audit entry and publishes its invalidation event inside
the same script, so a change, its audit record and its notification cannot part.
"""

from __future__ import annotations

__all__ = ("PROMOTE", "PUBLISH", "RESOLVE", "ROLLBACK")

# KEYS: versions, hashes, audit, names
# ARGV: sha256, stored-record JSON, actor, ts, name, channel
PUBLISH = """
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {0, tonumber(existing)} end
local version = redis.call('HLEN', KEYS[1]) + 1
redis.call('HSET', KEYS[1], version, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], version)
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('RPUSH', KEYS[3], cjson.encode({ts=tonumber(ARGV[4]), actor=ARGV[3],
  action='publish', version=version}))
redis.call('PUBLISH', ARGV[6], cjson.encode({name=ARGV[5], action='publish', version=version}))
return {1, version}
"""

# KEYS: versions, labels, label stack, audit
# ARGV: label, version, expected ('' = any, '0' = label absent), actor, ts, name, channel
PROMOTE = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return {'no_version'} end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[3] ~= '' and (current or '0') ~= ARGV[3] then return {'conflict', current or '0'} end
if current == ARGV[2] then return {'unchanged', current} end
if current then redis.call('RPUSH', KEYS[3], current) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local entry = {ts=tonumber(ARGV[5]), actor=ARGV[4], action='promote', label=ARGV[1],
  to=tonumber(ARGV[2])}
if current then entry['from'] = tonumber(current) end
redis.call('RPUSH', KEYS[4], cjson.encode(entry))
redis.call('PUBLISH', ARGV[7], cjson.encode({name=ARGV[6], action='promote', label=ARGV[1]}))
return {'ok', current or '0'}
"""

# KEYS: labels, label stack, audit
# ARGV: label, expected ('' = any), actor, ts, name, channel
ROLLBACK = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {'no_label'} end
if ARGV[2] ~= '' and current ~= ARGV[2] then return {'conflict', current} end
local previous = redis.call('RPOP', KEYS[2])
if not previous then return {'no_history', current} end
redis.call('HSET', KEYS[1], ARGV[1], previous)
redis.call('RPUSH', KEYS[3], cjson.encode({ts=tonumber(ARGV[4]), actor=ARGV[3],
  action='rollback', label=ARGV[1], from=tonumber(current), to=tonumber(previous)}))
redis.call('PUBLISH', ARGV[6], cjson.encode({name=ARGV[5], action='rollback', label=ARGV[1]}))
return {'ok', current, previous}
"""

# KEYS: versions, labels
# ARGV: version ('' to resolve the label), label
RESOLVE = """
local version = ARGV[1]
if version == '' then
  version = redis.call('HGET', KEYS[2], ARGV[2])
  if not version then
    if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_artifact'} end
    return {'no_label'}
  end
end
local record = redis.call('HGET', KEYS[1], version)
if not record then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_artifact'} end
  return {'no_version'}
end
return {'ok', version, record}
"""
