"""The rate limits' one exemption: a proof, made with the installation's ID-digest key, that
the caller holds the keys (the simulation driving a running stack). Nothing else passes."""

from __future__ import annotations

import hashlib
import hmac

from shared.guard import EXEMPTION_SECONDS, exemption_holds, exemption_key, exemption_proof
from shared.ids import id_digest

KEY = "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz"
OTHER = "o" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz"
NOW = 1_800_000_000.0


def test_a_proof_made_with_the_key_holds_for_a_few_minutes_either_way() -> None:
    proof = exemption_proof(KEY, NOW)
    assert exemption_holds(KEY, proof, NOW)
    assert exemption_holds(KEY, proof, NOW + EXEMPTION_SECONDS)
    assert exemption_holds(KEY, proof, NOW - EXEMPTION_SECONDS)  # the caller's clock a little ahead
    assert not exemption_holds(KEY, proof, NOW + EXEMPTION_SECONDS + 1)
    assert not exemption_holds(KEY, proof, NOW - EXEMPTION_SECONDS - 1)


def test_a_proof_made_with_another_key_or_changed_or_malformed_does_not_hold() -> None:
    proof = exemption_proof(KEY, NOW)
    moment, mac = proof.split(".")
    assert not exemption_holds(OTHER, proof, NOW)
    assert not exemption_holds(KEY, exemption_proof(OTHER, NOW), NOW)
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    later = str(int(moment) + 1)
    for bad in (f"{moment}.{flipped}", f"{later}.{mac}", mac, moment, f"{moment}.", f".{mac}", "", None,
                f"{moment}.{mac.upper()}", f"-{moment}.{mac}", f"{moment}.{mac}x", f"{moment}.{mac}\u00e9",
                f"{'9' * 40}.{mac}", f"\uff11{moment[1:]}.{mac}"):
        assert not exemption_holds(KEY, bad, NOW), bad
    assert not exemption_holds("", exemption_proof("", NOW), NOW)  # no key, no exemption


def test_the_proof_is_no_id_number_digest_and_no_digest_is_a_proof() -> None:
    """The exemption's key is derived for its purpose alone: the ID-digest key itself never
    signs a proof, so a digest seen anywhere cannot be turned into one."""
    moment = str(int(NOW))
    assert exemption_key(KEY) != KEY.encode()
    digest = id_digest(KEY, moment)
    assert not exemption_holds(KEY, f"{moment}.{digest}", NOW)
    assert not exemption_holds(KEY, f"{moment}.{hmac.new(KEY.encode(), moment.encode(), hashlib.sha256).hexdigest()}",
                               NOW)
