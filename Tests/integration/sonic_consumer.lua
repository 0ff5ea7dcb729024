-- sonic_consumer.lua: the consumer side of SONiC's producer/consumer state table protocol, the way
-- orchagent reads APPL_DB PORT_TABLE (see docs/sonic-contract.md, "the consumer's pop"). The integration tests run
-- it to play orchagent.
--
-- KEYS[1]  key set               PORT_TABLE_KEY_SET
-- KEYS[2]  final-hash prefix     PORT_TABLE:
-- KEYS[3]  delete set            PORT_TABLE_DEL_SET
-- ARGV[1]  the most keys to take in one call
-- ARGV[2]  what turns a final-hash name into its temporary hash name ("_")
--
-- For every key taken from the key set: if the key is in the delete set, its final hash is removed first;
-- then the temporary hash is merged into the final hash (fields not in the temporary hash stay) and the
-- temporary hash is removed. The reply has one {key, {f1, v1, ...}} pair per key taken; an empty field list
-- means the producer asked for a delete.

local limit = tonumber(ARGV[1])
local taken = redis.call('SPOP', KEYS[1], limit)
local reply = {}

for i = 1, #taken do
    local key = taken[i]
    local final_name = KEYS[2] .. key
    local temporary_name = ARGV[2] .. final_name

    if redis.call('SREM', KEYS[3], key) > 0 then
        redis.call('DEL', final_name)
    end

    local pairs_list = redis.call('HGETALL', temporary_name)
    local n = #pairs_list
    local at = 1
    while at < n do
        -- HSET in slices so a very wide hash does not exceed Lua's unpack limit.
        local last = math.min(at + 199, n)
        local slice = {}
        for j = at, last do
            slice[#slice + 1] = pairs_list[j]
        end
        redis.call('HSET', final_name, unpack(slice))
        at = last + 1
    end
    redis.call('DEL', temporary_name)

    reply[#reply + 1] = {key, pairs_list}
end

return reply
