"""manage.py run_graph: create or update a graph from a file, run it, follow it, print."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from graphs.models import Graph, GraphVersion

from .documents import greeting

pytestmark = pytest.mark.integration


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("run_graph", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_run_graph_creates_runs_and_prints_outputs(user, worker, tmp_path):
    path = tmp_path / "greeting.json"
    path.write_text(json.dumps(greeting()))
    out, err = run_cli(str(path), "--input", "who=Ada", "--user", user.username)
    assert json.loads(out) == {"greeting": ["Hello Ada!"]}
    assert "3/3" in err and "node" in err  # the progress bar reached every node
    # The same file again: the same graph, no new version; a changed file: version 2.
    run_cli(str(path), "--input", 'who="Bob"', "--user", user.username)
    changed = greeting()
    changed["nodes"][1]["input_default"]["format"] = "Hi {{ name }}"
    path.write_text(json.dumps(changed))
    out, _ = run_cli(str(path), "--user", user.username)
    assert json.loads(out) == {"greeting": ["Hi world"]}
    assert Graph.objects.filter(owner=user).count() == 1
    assert GraphVersion.objects.filter(graph__owner=user).count() == 2


def test_watch_follows_an_existing_run(api, user, worker):
    from .conftest import run_graph

    record = run_graph(api, greeting(), {"who": "Cy"})
    out, _ = run_cli("--watch", record["id"], "--user", user.username)
    assert json.loads(out) == {"greeting": ["Hello Cy!"]}


def test_bad_files_and_inputs_are_clear_errors(user, worker, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "nodes": [{"id": "a", "block": "nope"}]}))
    with pytest.raises(CommandError, match="unknown block 'nope'"):
        run_cli(str(bad), "--user", user.username)
    with pytest.raises(CommandError, match="cannot read"):
        run_cli(str(tmp_path / "missing.json"), "--user", user.username)
    with pytest.raises(CommandError, match="KEY=VALUE"):
        good = tmp_path / "g.json"
        good.write_text(json.dumps(greeting()))
        run_cli(str(good), "--input", "novalue", "--user", user.username)
    with pytest.raises(CommandError, match="no user"):
        run_cli(str(bad), "--user", "nobody-at-all")


def test_the_progress_bar_counts_the_graphs_nodes_and_problems_read_plainly(user, worker, tmp_path):
    from pathlib import Path

    fan = Path(__file__).resolve().parent.parent / "docs" / "examples" / "fan_out.json"
    out, err = run_cli(str(fan), "--user", user.username)
    assert len(json.loads(out)["cards"]) == 4
    assert "4/4" in err and "executions=10" in err  # 4 nodes; the template ran 4 times
    bad = tmp_path / "bad.json"
    document = greeting()
    document["nodes"][1]["input_default"]["format"] = "Hi {{ nobody }}"
    bad.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="  - node id greet, pin format: template variable"):
        run_cli(str(bad), "--user", user.username)
    with pytest.raises(SystemExit, match="no run not-a-run"):
        run_cli("--watch", "not-a-run", "--user", user.username)
