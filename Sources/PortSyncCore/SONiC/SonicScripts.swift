/// The Lua scripts portsyncd loads into Redis, written from the protocol described in `docs/sonic-contract.md`.
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

    /// `conditionalStateSet` for several ports in one script call, in order: the writer's form (one script call per
    /// batch instead of one per port; what lands in Redis is the same, port by port).
    ///
    /// No KEYS (the keys are made from their prefixes, like the `SELECT`s this makes the script single-instance
    /// only, as SONiC's databases are). ARGV = APPL_DB id, STATE_DB id, the APPL_DB key prefix (`PORT_TABLE:`),
    /// the STATE_DB key prefix (`PORT_TABLE|`), then four per port: name, `netdev_oper_status`, `admin_status`,
    /// `mtu`. The APPL_DB hashes are all checked first (the script writes nothing there, so the answers are those
    /// each port would get in turn); each present port gets one `HSET` of `state ok netdev_oper_status … admin_status
    /// … mtu …`, in `PortOperState.stateFields` order (`pcall`: one port's error leaves the others).
    ///
    /// It returns an array: first one character per port, in order, `1` (written), `0` (no APPL_DB entry,
    /// nothing written) or `E` (Redis refused that port's `HSET`), then the error of each `E`, in order. One string
    /// instead of one reply per port keeps the reply small on both sides.
    public static let conditionalStateSetBatch = """
        local appl, state = ARGV[3], ARGV[4]
        local count = (#ARGV - 4) / 4
        redis.call('SELECT', ARGV[1])
        local present = {}
        for i = 1, count do
            present[i] = redis.call('EXISTS', appl .. ARGV[4 * i + 1])
        end
        redis.call('SELECT', ARGV[2])
        local outcomes = {}
        local results = {''}
        for i = 1, count do
            if present[i] == 0 then
                outcomes[i] = '0'
            else
                local at = 4 * i + 1
                local reply = redis.pcall('HSET', state .. ARGV[at], 'state', 'ok',
                    'netdev_oper_status', ARGV[at + 1], 'admin_status', ARGV[at + 2], 'mtu', ARGV[at + 3])
                if type(reply) == 'table' and reply.err then
                    outcomes[i] = 'E'
                    results[#results + 1] = reply
                else
                    outcomes[i] = '1'
                end
            end
        end
        results[1] = table.concat(outcomes)
        return results
        """

    /// The `EVALSHA` name of `conditionalStateSetBatch`: its SHA-1, as `SCRIPT LOAD` answers it.
    public static let conditionalStateSetBatchSHA = SHA1.hex(Array(conditionalStateSetBatch.utf8))
}
