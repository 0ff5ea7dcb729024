/// The Lua scripts portsyncd loads into Redis, written from the protocol described in `ARCHITECTURE.md`.
public enum SonicScripts {
    /// APPL_DB producer set, with the KEYS/ARGV layout of SONiC's `ProducerStateTable::set`:
    /// KEYS = channel, key set, temporary hash × n; ARGV = message, key, f1, v1, … fn, vn.
    /// It adds the key to the key set, writes every field into the temporary hash in one HSET, and publishes only
    /// when the key was not in the set yet (a consumer that has not popped it will find it anyway).
    public static let producerSet = """
        local added = redis.call('SADD', KEYS[2], ARGV[2])
        if #ARGV > 2 then
            redis.call('HSET', KEYS[3], unpack(ARGV, 3))
        end
        if added > 0 then
            redis.call('PUBLISH', KEYS[1], ARGV[1])
        end
        return nil
        """

    /// STATE_DB port update of statement 18 in one round trip, whatever database the connection has selected:
    /// KEYS = APPL_DB final hash, STATE_DB hash; ARGV = APPL_DB id, STATE_DB id, f1, v1, …
    /// It returns 0 without writing if the APPL_DB hash does not exist; otherwise it writes every field in one
    /// HSET (one keyspace event for STATE_DB subscribers) and returns 1. A `SELECT` inside a script does not
    /// change the caller's database (Redis ≥ 2.8.12).
    public static let conditionalStateSet = """
        redis.call('SELECT', ARGV[1])
        local present = redis.call('EXISTS', KEYS[1])
        if present == 0 then
            return 0
        end
        redis.call('SELECT', ARGV[2])
        redis.call('HSET', KEYS[2], unpack(ARGV, 3))
        return 1
        """
}
