-- Extend a lease we still hold; returns 0 if it had expired (and was taken).
-- KEYS[1] the slots key; ARGV: lease ms, lease id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 1
end
return 0
