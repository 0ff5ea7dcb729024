"""Schema-driven fuzzing: schemathesis reads the OpenAPI document the daemon serves and sends generated requests,
valid and invalid, to every operation but the two event streams. No answer may be a server error, break the
document's own schemas, status codes or content types, accept invalid input or an undeclared method, and the
daemon must still be alive afterwards."""
import json
import subprocess
import sys
import time

from test_http import Api
from test_http_flood import ARTIFACTS

TOKEN = "fuzz-token"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(rig):
    daemon = rig.cold_start(["Ethernet0", "Ethernet4"], config={"http": {"port": 0, "bearer_token": TOKEN}})
    api = Api(rig, daemon, token=TOKEN)
    rig.add_synced_ports(["Ethernet0", "Ethernet4"])
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "schemathesis.junit.xml"
    argv = rig.ns.exec_argv(
        sys.executable, "-m", "schemathesis.cli", "run", f"http://127.0.0.1:{api.port}/v1/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
                    "unsupported_method,ignored_auth",
        "--exclude-path", "/v1/sse/events", "--exclude-path", "/v1/ws/events",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "40", "--max-time", "60", "--seed", "20240611", "--workers", "2",
        "--request-timeout", "10", "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(report),
    )
    started = time.monotonic()
    # In the rig's directory: schemathesis keeps a cache of what failed where it runs.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=rig.tmp)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    print(output[-6000:])
    (ARTIFACTS / "schemathesis.txt").write_text(output)
    summary = {"exit_code": result.returncode, "seconds": round(elapsed, 1), "daemon_alive": daemon.alive}
    (ARTIFACTS / "schemathesis.json").write_text(json.dumps(summary) + "\n")
    assert daemon.alive, "the daemon died under schemathesis"
    assert result.returncode == 0, output[-6000:]
    assert api.get("/v1/health/live")[0] == 200
