"""What the bank's routers share: the context dependency, card-number paths, channels."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from shared.auth import Principal, ensure_owner_or_staff
from shared.domain import Forbidden
from shared.events.bank import BalanceChannel, PasswordChannel

from ..deps import Bank, unknown_card
from ..model import Account

AskedChannel = PasswordChannel
"""The channels a balance is asked through without the card password: online, phone,
counter (the POS asks with it: POST /v1/pos/balance-inquiries)."""
CardNumberPath = Annotated[str, Path(pattern=r"^[0-9]{12,19}$")]
CHANNELS: dict[str, tuple[BalanceChannel, ...]] = {"cardholder": ("online", "phone"), "teller": ("counter",)}
"""Channels open to each role; the first is the default (the POS channel is
POST /v1/pos/balance-inquiries, with the card password)."""


def channel_for(principal: Principal, requested: BalanceChannel | None) -> BalanceChannel:
    """The channel a request comes through: the role's default, or one open to the role (403)."""
    allowed = CHANNELS.get(principal.role, ())
    if requested is None and allowed:
        return allowed[0]
    if requested not in allowed:
        raise Forbidden(f"channel {requested} is not open to role {principal.role}; use {', '.join(allowed)}")
    return requested


async def card_account(bank: Bank, principal: Principal, card_number: str) -> Account:
    """The card's account, for its holder or a teller (another person's card is not found)."""
    account = await bank.account_of_card(card_number)
    ensure_owner_or_staff(principal, account.person_id, "teller", conceal=unknown_card(card_number))
    return account
