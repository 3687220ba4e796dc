"""The live stream's protocol fuzzed against the real ASGI server: every action with every
hostile value where an id belongs (a deterministic sweep), then generated messages (any
JSON where an action or an id belongs, text that is not JSON, binary frames, nesting up to
and past the parser's limit), a few per connection. Every message gets exactly one answer
and the socket stays open: a ping afterwards gets its pong."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from accounts.services import token_issue

pytestmark = pytest.mark.integration

ANSWERS = {"error", "pong", "unsubscribed", "subscribed", "snapshot"}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()  # NaN and infinities too: Python's json reads them
    | st.text()
    | st.sampled_from(["\x00", "²", "\uff11", "00000000-0000-0000-0000-000000000000"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Depths around the JSON parser's limit (about 990 here) are where handling code breaks.
depths = st.sampled_from([2, 100, 500, 900, 950, 980, 1_000, 3_000]) | st.integers(1, 3_000)
nested = depths.map(lambda n: "[" * n + "]" * n)
known_actions = st.sampled_from(["subscribe", "unsubscribe", "ping", "", "SUBSCRIBE"])


def as_text(value) -> str:
    return value if isinstance(value, str) and value.startswith("[") else json.dumps(value)


envelopes = st.builds(
    lambda action, key, value: (
        '{"action": ' + json.dumps(action) + ', "' + key + '": ' + as_text(value) + "}"
    ),
    known_actions | known_actions | json_values,
    st.sampled_from(["execution_id", "graph_id", "other"]),
    json_values | nested,
)
frames = st.one_of(
    envelopes,
    envelopes,
    json_values.map(json.dumps),
    st.text(max_size=200),
    nested,
    st.binary(max_size=200),
)


@pytest.mark.django_db(transaction=True)
def test_no_message_drops_the_socket_or_goes_unanswered(asgi_server, user):
    key = token_issue(user=user)[0]
    url = f"ws://{asgi_server}/ws/executions/"

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(frames, min_size=1, max_size=4))
    def conversation(messages):
        with connect(url, additional_headers={"Authorization": f"Token {key}"}) as ws:
            for message in messages:
                ws.send(message)
                answer = json.loads(ws.recv(timeout=10))
                assert answer["type"] in ANSWERS, (message[:200], answer)
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "pong"

    conversation()


HOSTILE_IDS = [
    None, True, 0, -1, 10**400, 1.5, float("nan"), float("inf"), "", "\x00", "²", "\uff11",
    "x" * 100_000, [], {}, {"a": 1}, ["00000000-0000-0000-0000-000000000000"],
]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_every_action_answers_every_hostile_id(asgi_server, user):
    key = token_issue(user=user)[0]
    messages = [
        json.dumps({"action": action, name: value})
        for action in ("subscribe", "unsubscribe", "ping", "other")
        for name in ("execution_id", "graph_id")
        for value in HOSTILE_IDS
    ]
    messages += [
        f'{{"action": "{action}", "{name}": {"[" * depth + "]" * depth}}}'
        for action in ("subscribe", "unsubscribe", "other")
        for name in ("execution_id", "graph_id")
        for depth in (10, 500, 900, 960, 990, 5_000)
    ]
    with connect(
        f"ws://{asgi_server}/ws/executions/", additional_headers={"Authorization": f"Token {key}"}
    ) as ws:
        for message in messages:
            ws.send(message)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["type"] in ANSWERS, (message[:200], answer)
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
