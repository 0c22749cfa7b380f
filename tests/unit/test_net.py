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
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:4700::1111"))


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
