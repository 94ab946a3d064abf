"""A card's password (set, change, teller reset) and its balance by channel."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shared.errors import errors
from shared.service import correlation_id

from .. import handlers
from ..deps import BankDep, HolderOrTeller, Teller
from ..model import Account
from ..schemas import BalancePublic, PasswordChange, PasswordPublic, PasswordReset, PasswordSet
from .common import AskedChannel, CardNumberPath

router = APIRouter(prefix="/v1/cards", tags=["cards"], responses=errors(401, 403, 404, 409, 422))


def password_view(account: Account | None, card_number: str) -> PasswordPublic:
    assert account is not None
    return PasswordPublic(card_number=card_number, password_set=account.pin_hash is not None,
                          locked=account.pin_locked)


@router.put("/{card_number}/password")
async def set_password(card_number: CardNumberPath, body: PasswordSet, principal: HolderOrTeller,
                       bank: BankDep, request: Request) -> PasswordPublic:
    """Set a new card's password, before its first use: the holder logged in, or a teller on
    the holder's ID card (``id_number``; 403 when it is someone else's)."""
    account = await handlers.set_password(bank, principal, card_number, body, correlation_id(request))
    return password_view(account, card_number)


@router.post("/{card_number}/password/change", responses=errors(423))
async def change_password(card_number: CardNumberPath, body: PasswordChange, principal: HolderOrTeller,
                          bank: BankDep, request: Request) -> PasswordPublic:
    """Change the card password with the old one (phone, counter or online); a wrong old one
    counts towards the lock, like a wrong PIN at the POS. At the counter a teller checks the
    holder's ID card first (id_number)."""
    account = await handlers.change_password(bank, principal, card_number, body, correlation_id(request))
    return password_view(account, card_number)


@router.post("/{card_number}/password/reset")
async def reset_password(card_number: CardNumberPath, body: PasswordReset, _: Teller, bank: BankDep,
                         request: Request) -> PasswordPublic:
    """Reset a forgotten or locked password at the counter, on the holder's ID card."""
    account = await handlers.reset_password(bank, card_number, body, correlation_id(request))
    return password_view(account, card_number)


@router.get("/{card_number}/balance")
async def card_balance(card_number: CardNumberPath, principal: HolderOrTeller, bank: BankDep, request: Request,
                       channel: AskedChannel | None = None) -> BalancePublic:
    """Tell a card's balance to its holder (online, phone) or a teller (counter); the channel is
    recorded. At a POS the balance is asked with the card password: POST /v1/pos/balance-inquiries."""
    balance, used = await handlers.tell_balance(bank, principal, card_number, channel, correlation_id(request))
    return BalancePublic(card_number=card_number, balance_fen=balance, channel=used)
