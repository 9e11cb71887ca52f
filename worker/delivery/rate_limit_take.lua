-- Take one message's worth of every limit of a profile, or say how long to wait.
-- KEYS: one hash per limit. ARGV[1] = now (seconds); then per limit 4 values:
-- window seconds, bucket seconds, limit, cost. Returns "0" when taken, else the
-- seconds to wait (a string: Lua numbers would come back truncated).
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
    local base = 1 + (i - 1) * 4
    local window = tonumber(ARGV[base + 1])
    local bucket = tonumber(ARGV[base + 2])
    local limit = tonumber(ARGV[base + 3])
    local cost = tonumber(ARGV[base + 4])
    -- A bucket counts until its newest possible event is older than the window.
    local oldest = math.floor((now - window) / bucket)
    local fields = redis.call('HGETALL', KEYS[i])
    local total = 0
    local live = {}
    for j = 1, #fields, 2 do
        local b = tonumber(fields[j])
        if b < oldest then
            redis.call('HDEL', KEYS[i], fields[j])
        else
            total = total + tonumber(fields[j + 1])
            table.insert(live, {b, tonumber(fields[j + 1])})
        end
    end
    if total + cost > limit then
        table.sort(live, function(x, y) return x[1] < y[1] end)
        local need = total + cost - limit
        local freed = 0
        local until_free = window
        for _, entry in ipairs(live) do
            freed = freed + entry[2]
            if freed >= need then
                until_free = (entry[1] + 1) * bucket + window - now
                break
            end
        end
        if until_free > wait then wait = until_free end
    end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
    local base = 1 + (i - 1) * 4
    local window = tonumber(ARGV[base + 1])
    local bucket = tonumber(ARGV[base + 2])
    redis.call('HINCRBY', KEYS[i], math.floor(now / bucket), tonumber(ARGV[base + 4]))
    redis.call('EXPIRE', KEYS[i], math.ceil(window + bucket))
end
return "0"
