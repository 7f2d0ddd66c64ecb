"""URL safety is pure: addresses are checked with an injected resolver, property-tested."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.urls import (
    UnresolvableHost,
    UnsafeURL,
    check_url,
    extract_urls,
    host_matches,
    is_forbidden_ip,
    is_regular_youtube,
    numeric_host,
    rewrite_url,
    split_http_url,
)

PUBLIC = "93.184.216.34"


def public(_: str) -> list[str]:
    return [PUBLIC]


def resolver_to(address: str):
    return lambda _host: [address]


PRIVATE_NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]


@st.composite
def private_ipv4(draw) -> ipaddress.IPv4Address:
    net = ipaddress.ip_network(draw(st.sampled_from(PRIVATE_NETS)))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net.network_address + offset


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/", "http://[fd00::1]/",
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
    "http://0.0.0.0/", "http://localhost/", "http://LOCALHOST./", "http://192.168.1.1:8080/a?b=c",
])
def test_private_and_loopback_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, resolve=public)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x", "gopher://example.com", "javascript:alert(1)",
    "http:///nohost", "http://user:pw@example.com/", "http://exa mple.com/", "http://example.com:99999/",
    "data:text/plain,hi", "-o/tmp/x", "$(id)", "http://example.com/\x00",
])
def test_non_http_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, resolve=public)


def test_a_public_host_passes_and_returns_the_host() -> None:
    assert check_url("https://Example.COM./video?id=1", resolve=public) == "example.com"


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="private"):
        check_url("https://rebind.example/", resolve=resolver_to("10.0.0.7"))
    with pytest.raises(UnsafeURL):  # one bad address among several is enough
        check_url("https://mixed.example/", resolve=lambda _h: [PUBLIC, "127.0.0.1"])


def test_unresolvable_hosts_are_their_own_kind() -> None:
    def fail(_host: str) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(UnresolvableHost):
        check_url("https://nowhere.example/", resolve=fail)
    with pytest.raises(UnresolvableHost):
        check_url("https://empty.example/", resolve=lambda _h: [])


def test_loopback_is_allowed_only_when_asked_and_never_private() -> None:
    assert check_url("http://127.0.0.1:8080/files/sample.mp4", resolve=public, allow_loopback=True)
    assert check_url("http://localhost/", resolve=resolver_to("127.0.0.1"), allow_loopback=True)
    with pytest.raises(UnsafeURL):
        check_url("http://10.0.0.1/", resolve=public, allow_loopback=True)
    with pytest.raises(UnsafeURL):
        check_url("http://169.254.169.254/", resolve=public, allow_loopback=True)


@given(private_ipv4(), st.sampled_from(["dotted", "decimal", "hex", "mapped"]))
def test_property_private_ipv4_refused_in_any_spelling(ip: ipaddress.IPv4Address, spelling: str) -> None:
    host = {
        "dotted": str(ip),
        "decimal": str(int(ip)),
        "hex": hex(int(ip)),
        "mapped": f"[::ffff:{ip}]",
    }[spelling]
    with pytest.raises(UnsafeURL):
        check_url(f"http://{host}/video.mp4", resolve=public)


@given(st.ip_addresses(v=4) | st.ip_addresses(v=6))
def test_property_resolved_addresses_pass_only_when_global(ip) -> None:
    def public_unicast(a) -> bool:
        return a.is_global and not (a.is_multicast or a.is_reserved or a.is_loopback or a.is_link_local)

    url = "https://some-host.example/v"
    mapped = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
    expected_ok = public_unicast(ip) and not getattr(ip, "teredo", None)
    if mapped is not None:
        expected_ok = public_unicast(mapped)
    if expected_ok:
        assert check_url(url, resolve=resolver_to(str(ip))) == "some-host.example"
    else:
        with pytest.raises(UnsafeURL):
            check_url(url, resolve=resolver_to(str(ip)))


@given(st.text(max_size=300))
def test_property_check_url_only_raises_unsafe_url(text: str) -> None:
    try:
        check_url(text, resolve=public)
    except UnsafeURL:
        pass


@given(st.text(max_size=500))
def test_property_extracted_urls_are_http_and_bounded(text: str) -> None:
    urls = extract_urls(text)
    assert len(urls) <= 5
    for url in urls:
        assert url.lower().startswith(("http://", "https://"))
        assert not any(c.isspace() for c in url)


def test_extract_urls_trims_punctuation_and_adds_scheme() -> None:
    text = "look (https://x.com/a/status/1?s=2), and www.tiktok.com/@a/video/1. dup https://x.com/a/status/1?s=2"
    assert extract_urls(text) == ["https://x.com/a/status/1?s=2", "https://www.tiktok.com/@a/video/1"]


def test_host_matches_on_label_boundaries() -> None:
    assert host_matches("www.tiktok.com", ["tiktok.com"])
    assert host_matches("TikTok.com.", ["tiktok.com"])
    assert not host_matches("eviltiktok.com", ["tiktok.com"])
    assert not host_matches("tiktok.com.evil.net", ["tiktok.com"])
    assert not host_matches("tiktok.com", [""])


def test_numeric_host_spellings() -> None:
    assert str(numeric_host("2130706433")) == "127.0.0.1"
    assert str(numeric_host("0x7f.1")) == "127.0.0.1"
    assert str(numeric_host("[::1]")) == "::1"
    assert numeric_host("example.com") is None
    assert numeric_host("deadbeef") is None  # a name made of hex letters is still a name


def test_is_forbidden_ip_basics() -> None:
    assert is_forbidden_ip(ipaddress.ip_address("127.0.0.1"))
    assert not is_forbidden_ip(ipaddress.ip_address("127.0.0.1"), allow_loopback=True)
    assert not is_forbidden_ip(ipaddress.ip_address("8.8.8.8"))
    assert is_forbidden_ip(ipaddress.ip_address("2002:7f00:1::"))  # 6to4 wrapping 127.0.0.1


def test_split_http_url_rejects_bad_ports_and_credentials() -> None:
    assert split_http_url("https://example.com:8443/x").port == 8443
    for url in ("http://example.com:0x10/", "https://a:b@example.com/"):
        with pytest.raises(UnsafeURL):
            split_http_url(url)


@pytest.mark.parametrize(("url", "regular"), [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", True),
    ("https://youtu.be/dQw4w9WgXcQ", True),
    ("https://m.youtube.com/watch?v=x", True),
    ("https://www.youtube.com/shorts/abc123", False),
    ("https://vimeo.com/1", False),
    ("https://notyoutube.com/watch?v=x", False),
    ("file:///youtube.com", False),
])
def test_regular_youtube_detection(url: str, regular: bool) -> None:
    assert is_regular_youtube(url) is regular


def test_rewrite_url_swaps_host_keeps_path() -> None:
    table = {"x.com": "fxtwitter.com", "instagram.com": "ddinstagram.com"}
    assert rewrite_url("https://mobile.x.com/u/status/1?s=20", table) == "https://fxtwitter.com/u/status/1?s=20"
    assert rewrite_url("http://www.instagram.com/reel/abc/", table) == "https://ddinstagram.com/reel/abc/"
    assert rewrite_url("https://notx.com/u", table) is None
    assert rewrite_url("ftp://x.com/u", table) is None


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_property_rewrite_keeps_the_path_and_the_target_host(path: str) -> None:
    url = "https://x.com/" + path.replace(" ", "").replace("#", "").replace("?", "")
    try:
        split_http_url(url)
    except UnsafeURL:
        return
    new = rewrite_url(url, {"x.com": "fxtwitter.com"})
    assert new is not None
    assert split_http_url(new).hostname == "fxtwitter.com"
    assert new.endswith(split_http_url(url).path)
