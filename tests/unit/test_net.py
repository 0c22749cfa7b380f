import ipaddress

import pytest

from atelier.net import UrlNotAllowed, check_url, is_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "0.0.0.0",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        # IPv4 carried inside IPv6, judged by the IPv4 address (issue 11):
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254 (cloud metadata)
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:3f57:fefe",  # Teredo; client 192.168.1.1 (obfuscated)
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "::7f00:1",  # IPv4-compatible (deprecated) 127.0.0.1
        "fec0::1",  # site-local (deprecated)
        "192.88.99.1",  # 6to4 relay anycast (deprecated)
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:4700::1111"))
    assert is_public(ipaddress.ip_address("2002:5db8:d822::1"))  # 6to4 of 93.184.216.34


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/",
        "https://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "ftp://example.com/x",
        "http://user:pw@127.0.0.1/",
        "http:///nohost",
        "http://10.0.0.1:99999/",
    ],
)
async def test_refused_urls(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await check_url(url, field="image")
    assert caught.value.problem()["errors"][0]["field"] == "image"


async def test_allowlist_opens_exceptions() -> None:
    assert await check_url("http://127.0.0.1:9/hook", field="url", allowlist=["127.0.0.0/8"])
    assert await check_url("http://localhost:9/hook", field="url", allowlist=["localhost"])
