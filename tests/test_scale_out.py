"""Scale-out across hosts: two network namespaces, a worker in each, one graph on both.

Opt-in (AGENTGRAPH_NETNS_TEST=1, or `make scale-out` for the script itself): it changes the
machine's network configuration while it runs (namespaces, veth pairs, addresses), which a
test suite on someone's workstation must not do unasked; and in this sandbox it cuts the
session that runs it."""

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT, child_database_url

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    os.environ.get("AGENTGRAPH_NETNS_TEST") != "1",
    reason="opt-in: set AGENTGRAPH_NETNS_TEST=1 (it reconfigures the host's network)",
)
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("socat"),
    reason="creating network namespaces needs root, ip and socat",
)
def test_two_hosts_share_one_graph(transactional_db):
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale_out", "400"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("result correct: True; node executions on every host: True") == 2
    assert "2 host(s)" in result.stdout
    assert "worker@ag-host1" in result.stdout and "worker@ag-host2" in result.stdout
