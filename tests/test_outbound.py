"""The outbound guard (outbound/): which addresses a request may reach, that it connects to
exactly the address it checked, redirects, and the response size cap. Local servers on
loopback record what reaches them; the resolver is stubbed at `socket.getaddrinfo`, the
function every resolution in the process goes through, not in the transport under test."""

import ipaddress
import socket

import pytest
from django.test import override_settings

from blocks.base import BlockError, RunContext, TransientBlockError
from blocks.llm import caller
from blocks.registry import get_block
from outbound import DestinationRefused, Policy, ResponseTooLarge, client

PUBLIC = "93.184.215.14"  # a globally routable address (nothing here can reach it)


def http(url, secrets=(), **inputs):
    ctx = RunContext(1, "run", "node", 1, secrets=tuple(secrets))
    return list(get_block("http_request").execute({"url": url, **inputs}, ctx))


# --- the policy: plain functions ----------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("100.64.0.1", "non-global"),  # carrier-grade NAT (and some clouds' metadata)
        ("192.0.0.171", "non-global"),
        ("198.18.0.1", "non-global"),  # benchmarking
        ("2001:db8::1", "non-global"),  # documentation
        ("192.88.99.1", "address-embedding"),  # 6to4 relay anycast: is_global says True
        ("2002:7f00:1::1", "address-embedding"),  # 6to4 of 127.0.0.1: is_global says True
        ("64:ff9b::a00:1", "address-embedding"),  # NAT64 of 10.0.0.1: is_global says True
        ("64:ff9b:1::a00:1", "address-embedding"),
        ("2001::1", "address-embedding"),  # Teredo
        ("::127.0.0.1", "address-embedding"),  # IPv4-compatible: is_global says True
        ("224.0.1.1", "multicast"),  # is_global says True
        ("ff0e::1", "multicast"),
        ("0.0.0.0", "reserved"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_only_globally_routable_addresses_are_allowed(address, reason):
    assert Policy().refusal(ipaddress.ip_address(address)) == reason


def test_operators_open_loopback_private_ranges_networks_and_hosts():
    loopback, private = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.7")
    assert Policy(allow_loopback=True).refusal(loopback) is None
    assert Policy(allow_private=True).refusal(private) is None
    assert Policy(allow_private=True).refusal(ipaddress.ip_address("100.64.0.1"))
    opened = Policy(networks=(ipaddress.ip_network("10.0.0.0/29"),))
    assert opened.refusal(private) is None
    assert opened.refusal(ipaddress.ip_address("10.0.0.9")) == "private"
    named = Policy(hosts=frozenset({"models.internal"}))
    named.check("models.internal", [private])  # allowed by name, whatever it resolves to
    with pytest.raises(DestinationRefused, match="private"):
        named.check("other.internal", [private])


def test_a_name_with_one_internal_address_is_refused_whole():
    with pytest.raises(DestinationRefused, match="loopback"):
        Policy().check("mixed.test", [ipaddress.ip_address(PUBLIC), ipaddress.ip_address("::1")])


# --- connections go to the address that was checked --------------------------------------


@pytest.fixture
def rebinding_resolver(monkeypatch):
    """DNS that answers a public address for `rebind.test` first and 127.0.0.1 after (a
    rebinding attack), and resolves every other name as usual. Returns the calls."""
    real, calls = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        answer = PUBLIC if len(calls) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@override_settings(OUTBOUND_ALLOW_LOOPBACK=False)
def test_a_rebinding_name_never_reaches_loopback(recorder, rebinding_resolver):
    base, seen = recorder()
    port = base.rsplit(":", 1)[1]
    with pytest.raises((BlockError, TransientBlockError)):
        http(f"http://rebind.test:{port}/", timeout=1)
    assert seen == []  # the loopback server was never reached
    assert rebinding_resolver == ["rebind.test"]  # resolved once: the checked answer is used


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True, OUTBOUND_ALLOW_PRIVATE=False)
def test_a_redirect_hop_into_a_refused_network_is_refused(recorder):
    base, seen = recorder()
    with pytest.raises(BlockError, match="private"):
        http(f"{base}/redirect-to/http://10.0.0.1/inside")
    assert len(seen) == 1  # the first hop only


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_responses_are_capped_while_they_stream_in(recorder):
    base, _ = recorder()
    with client(timeout=5, max_response_bytes=100_000) as c, pytest.raises(ResponseTooLarge):
        c.get(f"{base}/big")
    with client(timeout=5, max_response_bytes=5) as c, pytest.raises(ResponseTooLarge):
        c.get(f"{base}/ok")  # declared length over the cap: refused before reading
    with client(timeout=5, max_response_bytes=100) as c:
        assert c.get(f"{base}/ok").json() == {"you_sent": ""}


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_a_credential_header_never_follows_a_redirect_to_another_origin(recorder):
    first, first_seen = recorder()
    second, second_seen = recorder()  # another port: another origin
    secret = "tok-5f1e9a77c3"
    out = http(
        f"{first}/redirect-to/{second}/landing",
        secrets=[secret],
        headers={
            "X-Auth-Token": secret,  # any name: its value came from a credential
            "Private-Token": f"prefix {secret}",
            "Authorization": "Basic by-name",
            "X-Trace": "plain",
        },
    )
    assert out == [("response", {"you_sent": ""})]
    assert first_seen[0]["headers"]["x-auth-token"] == secret
    landed = second_seen[0]["headers"]
    assert landed.get("x-trace") == "plain"
    assert not {"x-auth-token", "private-token", "authorization"} & set(landed)
    assert secret not in repr(landed)


# --- language-model endpoints -----------------------------------------------------------


def llm(base_url, credentials=None):
    ctx = RunContext(1, "run", "node", 1)
    return caller(ctx, provider="openai", model="m", credentials=credentials,
                  base_url=base_url, timeout=5)  # fmt: skip


def test_a_users_base_url_needs_the_users_own_key(recorder):
    base, seen = recorder()
    with pytest.raises(BlockError, match="must bring its own API key"):
        llm(f"{base}/v1")
    assert seen == []


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_a_redirecting_llm_endpoint_is_not_followed(recorder):
    target, target_seen = recorder()
    endpoint, seen = recorder()
    chat = llm(f"{endpoint}/redirect-to/{target}/v1", credentials="sk-own-key")
    with pytest.raises(BlockError, match="307"):
        chat.call([{"role": "user", "content": "hi"}], system="", max_tokens=5, temperature=0)
    assert len(seen) == 1 and seen[0]["headers"]["authorization"] == "Bearer sk-own-key"
    assert target_seen == []


@override_settings(OUTBOUND_ALLOW_LOOPBACK=False)
def test_a_users_llm_endpoint_inside_the_network_is_refused_not_retried(recorder):
    base, seen = recorder()
    chat = llm(f"{base}/v1", credentials="sk-own-key")
    with pytest.raises(BlockError, match="loopback") as raised:
        chat.call([{"role": "user", "content": "hi"}], system="", max_tokens=5, temperature=0)
    assert not isinstance(raised.value, TransientBlockError)
    assert seen == []
