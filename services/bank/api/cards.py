"""A card's password (set, change, teller reset) and its balance by channel."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends, Request

from shared.auth import CurrentPrincipal, require_roles
from shared.domain import Forbidden, Invalid, Locked
from shared.errors import errors
from shared.events.bank import PasswordChannel
from shared.ids import id_digest
from shared.security import hash_secret_async, verify_secret_async
from shared.service import correlation_id

from .. import domain
from ..model import Account
from ..schemas import BalancePublic, PasswordChange, PasswordPublic, PasswordReset, PasswordSet
from ..deps import BankDep
from .common import AskedChannel, CardNumberPath, card_account, channel_for

router = APIRouter(prefix="/v1/cards", tags=["cards"], responses=errors(401, 403, 404, 409, 422))
holder_or_teller = [Depends(require_roles("cardholder", "teller"))]


def password_view(account: Account | None, card_number: str) -> PasswordPublic:
    assert account is not None
    return PasswordPublic(card_number=card_number, password_set=account.pin_hash is not None,
                          locked=account.pin_locked)


@router.put("/{card_number}/password", dependencies=holder_or_teller)
async def set_password(card_number: CardNumberPath, body: PasswordSet, principal: CurrentPrincipal,
                       bank: BankDep, request: Request) -> PasswordPublic:
    """Set a new card's password, before its first use: the holder logged in, or a teller on
    the holder's ID card (``id_number``; 403 when it is someone else's)."""
    account = await card_account(bank, principal, card_number)
    channel = cast(PasswordChannel, channel_for(principal, body.channel))
    presented = None
    if principal.role == "teller":
        if body.id_number is None:
            raise Invalid("body.id_number: a teller sets a card's first password on the holder's ID card")
        presented = id_digest(bank.runtime.settings.id_digest_key, body.id_number)
    elif body.id_number is not None:
        raise Invalid("body.id_number: only a teller at the counter gives the ID number")
    decide = domain.set_pin(card_number, await hash_secret_async(body.pin), channel, presented)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id(request))
    return password_view(outcome.state, card_number)


@router.post("/{card_number}/password/change", dependencies=holder_or_teller, responses=errors(423))
async def change_password(card_number: CardNumberPath, body: PasswordChange, principal: CurrentPrincipal,
                          bank: BankDep, request: Request) -> PasswordPublic:
    """Change the card password with the old one (phone, counter or online); a wrong old one
    counts towards the lock, like a wrong PIN at the POS. At the counter a teller checks the
    holder's ID card first (id_number)."""
    account = await card_account(bank, principal, card_number)
    channel = cast(PasswordChannel, channel_for(principal, body.channel))
    if body.new_pin == body.old_pin:
        raise Invalid("the new password must differ from the old one")
    if principal.role == "teller" and body.id_number is None:
        raise Invalid("at the counter the holder shows the ID card: id_number is required")
    if body.id_number is not None:
        domain.check_id_card(account, id_digest(bank.runtime.settings.id_digest_key, body.id_number))
    checked = account.pin_hash or ""
    if checked and not account.pin_locked and not await verify_secret_async(checked, body.old_pin):
        counted = domain.wrong_pin(card_number, checked, bank.runtime.settings.pin_max_failures)
        locked = await bank.accounts.execute(account.person_id, counted, correlation_id=correlation_id(request))
        if locked.result:
            raise Locked("the old password is wrong, and too many wrong tries lock the card password: "
                         "a teller must reset it")
        raise Forbidden("the old password is wrong")
    decide = domain.change_pin(card_number, checked, await hash_secret_async(body.new_pin), channel)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id(request))
    return password_view(outcome.state, card_number)


@router.post("/{card_number}/password/reset", dependencies=[Depends(require_roles("teller"))])
async def reset_password(card_number: CardNumberPath, body: PasswordReset, bank: BankDep,
                         request: Request) -> PasswordPublic:
    """Reset a forgotten or locked password at the counter, on the holder's ID card."""
    account = await bank.account_of_card(card_number)
    digest = id_digest(bank.runtime.settings.id_digest_key, body.id_number)
    decide = domain.reset_pin(card_number, digest, await hash_secret_async(body.new_pin))
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id(request))
    return password_view(outcome.state, card_number)


@router.get("/{card_number}/balance", dependencies=[Depends(require_roles("cardholder", "teller"))])
async def card_balance(card_number: CardNumberPath, principal: CurrentPrincipal, bank: BankDep, request: Request,
                       channel: AskedChannel | None = None) -> BalancePublic:
    """Tell a card's balance to its holder (online, phone) or a teller (counter); the channel is
    recorded. At a POS the balance is asked with the card password: POST /v1/pos/balance-inquiries."""
    account = await card_account(bank, principal, card_number)
    used = channel_for(principal, channel)
    decide = domain.inquire_balance(card_number, used)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id(request))
    return BalancePublic(card_number=card_number, balance_fen=outcome.result, channel=used)
