"""Graph documents used across the tests."""


def greeting():
    return {
        "name": "Greeting",
        "nodes": [
            {"id": "who", "block": "input", "input_default": {"name": "who", "value": "world"}},
            {
                "id": "greet",
                "block": "text_template",
                "input_default": {"format": "Hello {{ name }}!"},
            },
            {"id": "out", "block": "output", "input_default": {"name": "greeting"}},
        ],
        "links": [
            {
                "source_id": "who",
                "source_name": "result",
                "sink_id": "greet",
                "sink_name": "values_#_name",
            },
            {"source_id": "greet", "source_name": "output", "sink_id": "out", "sink_name": "value"},
        ],
    }


def link(source, source_name, sink, sink_name, **extra):
    return {
        "source_id": source,
        "source_name": source_name,
        "sink_id": sink,
        "sink_name": sink_name,
        **extra,
    }


def node(node_id, block, **defaults):
    return {"id": node_id, "block": block, "input_default": defaults}


def sleep_chain(name, *, first_seconds=0.0, length=3):
    """s0 → s1 → … → out: sleeps handing "v" on, the first one sleeping `first_seconds`;
    the run's output `done` is ["v"]."""
    nodes = [node("s0", "sleep", seconds=first_seconds, value="v")]
    nodes += [node(f"s{i}", "sleep", seconds=0) for i in range(1, length)]
    links = [link(f"s{i}", "output", f"s{i + 1}", "value") for i in range(length - 1)]
    links.append(link(f"s{length - 1}", "output", "out", "value"))
    return {"name": name, "nodes": [*nodes, node("out", "output", name="done")], "links": links}
