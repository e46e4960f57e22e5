"""SSRF rules for destinations, and event filters (pure parts)."""

from __future__ import annotations

import ipaddress

import pytest

from heslock.ras.services.webhooks import filters, urls


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/x#frag",
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://192.168.0.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://100.64.0.1/x",
        "https://0.0.0.0/x",
        "https:///x",
        "https://hooks.example.com/a b",
        "https://hooks.example.com:99999/x",
        "",
    ],
)
def test_refused_without_loopback_setting(url: str) -> None:
    with pytest.raises(urls.DestinationRefused):
        urls.check(url, allow_insecure_loopback=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "https://localhost/x", "http://[::1]:9/x"]
)
def test_loopback_allowed_only_with_the_setting(url: str) -> None:
    dest = urls.check(url, allow_insecure_loopback=True)
    assert dest.loopback_allowed


@pytest.mark.parametrize("url", ["http://10.0.0.1/x", "http://hooks.example.com/x"])
def test_setting_does_not_open_other_http(url: str) -> None:
    with pytest.raises(urls.DestinationRefused):
        urls.check(url, allow_insecure_loopback=True)


def test_public_https_accepted_and_targeted_by_address() -> None:
    dest = urls.check("https://Hooks.Example.com:8443/in?x=1", allow_insecure_loopback=False)
    assert (dest.host, dest.port, dest.scheme) == ("hooks.example.com", 8443, "https")
    assert dest.host_header == "hooks.example.com:8443"
    target = dest.target(ipaddress.ip_address("203.0.113.7"))
    assert target == "https://203.0.113.7:8443/in?x=1"
    assert dest.target(ipaddress.ip_address("2001:db8::7")).startswith(
        "https://[2001:db8::7]:8443/"
    )


async def test_resolve_refuses_a_loopback_destination_when_not_allowed() -> None:
    dest = urls.Destination("https://x.test/", "https", "127.0.0.1", 443, False)
    with pytest.raises(urls.DestinationRefused, match="non-public"):
        await urls.resolve(dest)


@pytest.mark.parametrize(
    ("kind", "wanted", "expected"),
    [
        ("lock.door", ["lock.door"], True),
        ("lock.door", ["lock.*"], True),
        ("lock.door", ["*"], True),
        ("lock.door", ["command.*"], False),
        ("lockx.door", ["lock.*"], False),
        ("command.ok", ["command.ok", "lock.*"], True),
    ],
)
def test_matches(kind: str, wanted: list[str], expected: bool) -> None:
    assert filters.matches(kind, wanted) is expected


@pytest.mark.parametrize("bad", [[], ["LOCK.door"], ["lock.**"], ["a b"], ["x" * 60], ["*x"]])
def test_bad_filters(bad: list[str]) -> None:
    with pytest.raises(filters.FilterError):
        filters.normalise(bad)


def test_normalise_sorts_and_dedupes() -> None:
    assert filters.normalise(["lock.*", "command.ok", "lock.*"]) == ["command.ok", "lock.*"]
