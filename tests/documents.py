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
