-- Plays orchagent's side of SONiC's producer/consumer protocol for APPL_DB PORT_TABLE, for the demo:
-- KEYS = key set, final-hash prefix, delete set; ARGV = batch size, temporary-hash prefix ("_").
-- For up to ARGV[1] keys popped from the key set: a key in the delete set loses its final hash first; then the
-- temporary hash's fields are merged into the final hash and the temporary hash is deleted.
-- Returns the names consumed.
local consumed = {}
local keys = redis.call('SPOP', KEYS[1], ARGV[1])
for _, key in ipairs(keys) do
    if redis.call('SREM', KEYS[3], key) == 1 then
        redis.call('DEL', KEYS[2] .. key)
    end
    local temporary = ARGV[2] .. KEYS[2] .. key
    local fields = redis.call('HGETALL', temporary)
    if #fields > 0 then
        redis.call('HSET', KEYS[2] .. key, unpack(fields))
    end
    redis.call('DEL', temporary)
    table.insert(consumed, key)
end
return consumed
