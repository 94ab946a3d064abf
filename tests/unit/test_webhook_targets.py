"""Where webhooks may go (no server-side request forgery) and what a given signing secret must be (pure)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket

import pytest
from pydantic import ValidationError

from services.notifications.config import NotificationSettings
from services.notifications.schemas import WebhookCreate
from services.notifications.signing import check_new_secret, new_secret
from services.notifications.targets import RefusedTarget, check_url, parse_networks, pinned, refusal

LOOPBACK = parse_networks("127.0.0.0/8, ::1")


def created_url(url: str) -> str:
    """The URL as a subscription stores it (pydantic's normal form: numeric hosts become dotted quads)."""
    return str(WebhookCreate(url=url).url)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hooks",
    "http://172.16.3.4/", "http://192.168.1.1/",
    "http://localhost:27027/", "http://LOCALHOST./x", "http://api.localhost/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",
    "http://[fd00:ec2::254]/", "http://[fe80::1]/",
    "http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://127.1:27027/",
    "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/", "http://240.0.0.1/",
    "http://user:pw@claims.example.org/", "http://user@claims.example.org/",
    "http://metadata.google.internal/computeMetadata/v1/",
])
def test_internal_targets_and_credentials_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget):
        check_url(created_url(url), ())


def test_public_targets_pass_and_an_allow_listed_network_lets_a_local_receiver_in() -> None:
    for url in ("https://claims.example.org/hooks/medcard", "http://93.184.216.34:8080/x", "http://[2606:4700::1]/"):
        check_url(created_url(url), ())
    check_url(created_url("http://127.0.0.1:8999/hooks"), LOOPBACK)
    check_url(created_url("http://localhost:8999/hooks"), LOOPBACK)
    check_url(created_url("http://[::1]:8999/hooks"), LOOPBACK)
    with pytest.raises(RefusedTarget):  # allowing loopback does not allow the metadata service
        check_url(created_url("http://169.254.169.254/"), LOOPBACK)


def test_each_refusal_says_what_kind_of_address_it_is() -> None:
    assert refusal("169.254.169.254", ()) == "169.254.169.254 is a link-local (cloud metadata) address"
    assert refusal("::ffff:10.1.2.3", ()) == "::ffff:10.1.2.3 is a private address"
    assert refusal("127.0.0.1", ()) == "127.0.0.1 is a loopback address"
    assert refusal("8.8.8.8", ()) is None
    assert refusal("::ffff:127.0.0.1", LOOPBACK) is None


async def test_a_delivery_connects_to_the_checked_address_with_the_host_kept_for_host_and_tls() -> None:
    target = await pinned("https://127.0.0.1:8443/hooks?x=1", LOOPBACK)
    assert str(target.url) == "https://127.0.0.1:8443/hooks?x=1"
    assert target.headers == {"Host": "127.0.0.1:8443"} and target.extensions == {"sni_hostname": "127.0.0.1"}
    named = await pinned("http://localhost:8999/hooks", LOOPBACK)
    assert (named.url.host, named.headers["Host"]) == ("127.0.0.1", "localhost:8999")
    with pytest.raises(RefusedTarget, match="loopback"):  # resolved at send time, then checked
        await pinned("http://localhost:8999/hooks", ())


async def test_a_name_that_resolves_to_an_internal_address_is_refused_at_send_time() -> None:
    # A numeric name the system resolver reads without the network (a URL stored before normalisation).
    with pytest.raises(RefusedTarget, match="resolves to 127.0.0.1 is a loopback address"):
        await pinned("http://0x7f.0.0.1/hooks", ())


async def test_a_name_is_looked_up_once_and_the_request_goes_to_the_address_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: a resolver that answers a public address, then loopback."""
    answers = iter(["93.184.216.34", "127.0.0.1"])
    lookups: list[str] = []

    async def resolver(_: object, host: str, port: int, **__: object) -> list[tuple[object, ...]]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
    monkeypatch.setattr(asyncio.get_running_loop().__class__, "getaddrinfo", resolver)
    target = await pinned("https://rebind.example.org/hooks", ())
    assert lookups == ["rebind.example.org"]
    assert (target.url.host, target.headers["Host"]) == ("93.184.216.34", "rebind.example.org")
    assert target.extensions == {"sni_hostname": "rebind.example.org"}
    with pytest.raises(RefusedTarget, match="rebind.example.org resolves to 127.0.0.1"):
        await pinned("https://rebind.example.org/hooks", ())


def test_the_allow_list_setting_is_parsed_and_a_bad_network_refused() -> None:
    settings = NotificationSettings(webhook_allowed_networks="127.0.0.0/8, ::1")
    assert settings.allowed_networks == LOOPBACK
    assert NotificationSettings().allowed_networks == ()
    with pytest.raises(ValidationError, match="not an IP network"):
        NotificationSettings(webhook_allowed_networks="127.0.0.0/8, intranet")


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@pytest.mark.parametrize(("key", "why"), [
    (secrets.token_bytes(16), "at least 24"),
    (secrets.token_bytes(23), "at least 24"),
    (b"a" * 40, "random"),
    (b"correct horse battery staple", "random"),
    (bytes(24), "random"),
])
def test_a_given_signing_secret_needs_24_random_bytes(key: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_new_secret(whsec(key))
    with pytest.raises(ValidationError):
        WebhookCreate(url="https://claims.example.org/h", secret=whsec(key))  # type: ignore[arg-type]


def test_generated_and_random_given_secrets_pass() -> None:
    for secret in (new_secret(), whsec(secrets.token_bytes(24)), whsec(secrets.token_bytes(64))):
        assert check_new_secret(secret) == secret
