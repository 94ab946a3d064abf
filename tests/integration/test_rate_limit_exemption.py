"""The rate limits' exemption on a real identity service: only a proof made with the
installation's own keys passes uncounted; a wrong, stale or borrowed proof is limited like
no proof at all (the outside probe meets the limits whatever header it sends)."""

from __future__ import annotations

import time

import pytest

from services.identity.app import create as create_identity
from shared.guard import EXEMPTION_HEADER, EXEMPTION_SECONDS, exemption_proof
from shared.settings import Settings
from tests.helpers import running_service

from .cards_support import id_number, identity_settings

pytestmark = pytest.mark.infra
ANOTHER_INSTALLATION = "another-installation-" + "0123456789abcdefghijklmnopqrstuvwxyz"


async def test_a_wrong_proof_is_still_limited_and_the_installations_own_passes(settings: Settings) -> None:
    config = identity_settings(settings).model_copy(update={
        "rate_limit_per_client": "3/minute", "rate_limit_per_id_number": "2/hour", "uniform_answer_seconds": 0.0})
    now = time.time()
    wrong = {
        "no proof": None,
        "another installation's key": exemption_proof(ANOTHER_INSTALLATION, now),
        "stale": exemption_proof(config.id_digest_key, now - EXEMPTION_SECONDS - 60),
        "from the future": exemption_proof(config.id_digest_key, now + EXEMPTION_SECONDS + 60),
        "the ID-digest key's own HMAC": f"{int(now)}.{'0' * 64}",
        "garbage": "let me through",
    }
    async with running_service(create_identity, config) as identity:
        async def ask(serial: int, proof: str | None) -> int:
            headers = {EXEMPTION_HEADER: proof} if proof is not None else {}
            answer = await identity.post("/v1/accounts/codes", headers=headers,
                                         json={"name": "Wang Fang", "id_number": id_number(serial)})
            return answer.status_code

        # Every request without a valid proof counts against the client's 3 a minute, whatever
        # header it sends: the first three pass, every later one is refused.
        statuses = {label: [await ask(700 + i, proof) for i in range(2)] for label, proof in wrong.items()}
        same_id = [await ask(800, exemption_proof(ANOTHER_INSTALLATION)) for _ in range(3)]
        exempt = [await ask(800, exemption_proof(config.id_digest_key)) for _ in range(10)]
        still_limited = await ask(900, None)

    flat = [s for label in wrong for s in statuses[label]]
    assert flat[:3] == [202, 202, 202] and set(flat[3:]) == {429}, statuses
    assert same_id == [429, 429, 429], same_id
    # The installation's own proof passes every limit, the client's and the ID number's, and is not counted ...
    assert exempt == [202] * 10, exempt
    # ... nor does it lift the limits for anyone else.
    assert still_limited == 429
