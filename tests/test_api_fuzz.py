"""Schemathesis against the running edge's own OpenAPI (`/openapi.json`): hundreds of generated requests to
every `/api/` route (odd charger ids, huge and negative numbers, wrong types, missing fields), each answered
without a server error. Run as the `st` command, as an outside tool would, with the local token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ST = Path(sys.executable).parent / "st"


def test_no_generated_request_gets_a_server_error(edge_factory, tmp_path):
    edge = edge_factory({})
    out = subprocess.run(
        [str(ST), "run", f"http://127.0.0.1:{edge.web_port}/openapi.json", "-H", f"Authorization: Bearer {edge.token}",
         "--checks", "not_a_server_error", "--exclude-path", "/api/events", "--max-examples", "25", "--seed", "7",
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "40"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = out.stdout[-3000:]
    assert out.returncode == 0, report
    assert "ST101" not in out.stdout and " passed" in out.stdout, report
    tested = [line for line in out.stdout.splitlines() if "Tested:" in line]
    assert tested and int(tested[0].split()[-1]) >= 30, f"every route was tried: {tested}"
    assert "Traceback" not in edge.log(), "and the edge logged no crash"
