"""The outbound address policy: classification, rules, and checks that resolve through a stub."""
from __future__ import annotations

from tests.loopback_guard import loopback_only  # noqa: F401  (autouse: loopback connections only)

import ipaddress

import pytest

from sfapi.netpolicy import AddressPolicy, AddressRefused, NameNotResolved, Rule, StubResolver, check_host, classify


@pytest.mark.parametrize("address, category", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "reserved"), ("192.0.2.1", "private"), ("255.255.255.255", "reserved"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::1", "loopback"),
    ("93.184.216.34", None), ("2606:4700::1111", None), ("8.8.8.8", None),
])
def test_classify(address: str, category: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == category


@pytest.mark.parametrize("text", ["", "*.", "exa mple.com", "10.0.0.0/33", "a..b", "ünï.example"])
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Rule.parse(text)


async def _check(policy: AddressPolicy, host: str, table: dict[str, str] | None = None) -> str:
    return str(await check_host(host, 80, policy, StubResolver(table)))


@pytest.mark.parametrize("host, table, allow, deny, want", [
    # special ranges refused by default, by address and by name
    ("127.0.0.1", None, [], [], "loopback"),
    ("[::1]", None, [], [], "loopback"),
    ("intranet.test", {"intranet.test": "10.9.8.7"}, [], [], "private"),
    ("meta.test", {"meta.test": "169.254.169.254"}, [], [], "metadata"),
    # a name with one bad address among good ones is refused
    ("mixed.test", {"mixed.test": ["93.184.216.34", "127.0.0.1"]}, [], [], "loopback"),
    # public addresses pass; the address returned is the checked one
    ("photos.test", {"photos.test": "93.184.216.34"}, [], [], "93.184.216.34"),
    # allow by network, by name, by suffix
    ("cam.test", {"cam.test": "10.1.2.3"}, ["10.1.0.0/16"], [], "10.1.2.3"),
    ("cam.test", {"cam.test": "10.1.2.3"}, ["cam.test"], [], "10.1.2.3"),
    ("a.cams.test", {"a.cams.test": "10.1.2.3"}, ["*.cams.test"], [], "10.1.2.3"),
    # allow does not stretch to other private addresses
    ("cam.test", {"cam.test": "10.2.0.1"}, ["10.1.0.0/16"], [], "private"),
    # deny refuses public addresses; allow wins over deny
    ("photos.test", {"photos.test": "93.184.216.34"}, [], ["93.184.0.0/16"], "denied"),
    ("127.0.0.1", None, ["127.0.0.1"], ["*"], "127.0.0.1"),
    # the metadata address stays refused even where link-local would be
    ("169.254.169.254", None, [], [], "metadata"),
])
async def test_check_host(host, table, allow, deny, want: str) -> None:
    policy = AddressPolicy(allow, deny)
    if want[0].isdigit():
        assert await _check(policy, host.strip("[]"), table) == want
    else:
        with pytest.raises(AddressRefused) as err:
            await _check(policy, host.strip("[]"), table)
        assert err.value.reason == want


async def test_deny_all_refuses_names_before_any_lookup() -> None:
    stub = StubResolver({"photos.test": "93.184.216.34"})
    with pytest.raises(AddressRefused):
        await check_host("photos.test", 80, AddressPolicy(deny=["*"]), stub)
    assert stub.lookups == []


async def test_unknown_names_do_not_resolve() -> None:
    with pytest.raises(NameNotResolved):
        await check_host("nowhere.test", 80, AddressPolicy(), StubResolver())


def test_permit_categories() -> None:
    policy = AddressPolicy(permit=["private"])
    assert policy.address_refusal("x", ipaddress.ip_address("10.0.0.1")) is None
    assert policy.address_refusal("x", ipaddress.ip_address("127.0.0.1")) == "loopback"
    with pytest.raises(ValueError):
        AddressPolicy(permit=["intranet"])
