"""orchagent's part of the APPL_DB PORT_TABLE protocol, as a supervisord program (test_container.py).

Like orchagent's ConsumerStateTable on PORT_TABLE: SUBSCRIBE to the table's channel first, then pop what the
producer queued before that, then pop again after every message, each pop with the real consumer script
(sonic_consumer.lua, next to this file), which moves each temporary hash into its final hash
`PORT_TABLE:<key>`. Every key taken is appended as one JSON line to the --record file. It only reads the table:
making the host interfaces, as orchagent has SAI do, is left to the test. SIGTERM ends it with status 0.

Usage: orchagent_standin.py --database-config database_config.json --record FILE
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import redis

CONSUMER_LUA = (Path(__file__).with_name("sonic_consumer.lua")).read_text()
TABLE = b"PORT_TABLE"


def appl_db(database_config: Path) -> redis.Redis:
    """APPL_DB as SONiC's database_config.json describes it (its instance's unix socket and its id)."""
    document = json.loads(database_config.read_text())
    database = document["DATABASES"]["APPL_DB"]
    instance = document["INSTANCES"][database["instance"]]
    return redis.Redis(unix_socket_path=instance["unix_socket_path"], db=int(database["id"]), socket_timeout=None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-config", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    client = appl_db(args.database_config)
    db = client.connection_pool.connection_kwargs["db"]
    pubsub = client.pubsub()
    pubsub.subscribe(TABLE + b"_CHANNEL@%d" % db)
    print(f"orchagent stand-in: consuming APPL_DB {TABLE.decode()} (db {db})", flush=True)

    def pop():
        while True:
            reply = client.eval(CONSUMER_LUA, 3, TABLE + b"_KEY_SET", TABLE + b":", TABLE + b"_DEL_SET", 128, b"_")
            if not reply:
                return
            with args.record.open("a") as record:
                for key, flat in reply:
                    fields = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
                    record.write(json.dumps({"key": key.decode(), "fields": fields}) + "\n")
                    print(f"orchagent stand-in: {key.decode()} {'SET' if fields else 'DEL'} {fields}", flush=True)

    for message in pubsub.listen():
        if message["type"] in ("subscribe", "message"):
            pop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
