"""The bank's rules, as pure functions ``decide(state) -> Decision``: accounts follow the
cards' lifecycle, contributions are credited at month end, card passwords, balance
inquiries and receipt stamps. POS authorisation lives in ``authorisation.py``."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Literal

from shared.domain import Conflict, Forbidden, Invalid, Locked, NotFound
from shared.events import (
    AccountMovedToCard,
    AccountOpened,
    BalanceInquired,
    BankStamped,
    CardPasswordChanged,
    CardPasswordLocked,
    CardPasswordReset,
    CardPasswordSet,
    ContributionHeld,
    CardBlocked,
    EventData,
    MerchantRegistered,
    MonthlyTransfer,
)
from shared.events.bank import BalanceChannel, MerchantKind, PasswordChannel
from shared.domain import Decision

from .model import Account, CardState, Contribution, LedgerEntry, Merchant, Receipt, Stamp

Decide = Callable[[Account | None], Decision[Account]]
HELD_REASON = "no personal account yet: held until the person's first card is issued"


def account_id_for(person_id: str) -> str:
    """The personal medical account number: one per person, stable across replays."""
    return f"PMA-{person_id}"


def _copy(state: Account | None, person_id: str) -> Account:
    return state.clone() if state else Account(person_id=person_id)


# --- the rules' refusals --------------------------------------------------------------

class CardStopped(Conflict):
    """The card is lost or cancelled: its password can no longer be managed."""


class NotCurrentCard(Conflict):
    """A replaced card: the password belongs to the account's current card."""


class PasswordAlreadySet(Conflict):
    """A card's first password is set once; later it is changed or reset."""


class PasswordNotSet(Conflict):
    """The card password was never set (setting it activates the card)."""


class PasswordLocked(Locked):
    """Too many wrong tries in a row lock the card password until a teller resets it."""


class PasswordChangedMeanwhile(Conflict):
    """The password was changed since it was checked: the request is sent again."""


class WrongPassword(Forbidden):
    """The old password given to change it is wrong."""


class IdNotReceived(Conflict):
    """The bank has no ID digest of the person yet (their register entry has not arrived)."""


class IdCardMismatch(Forbidden):
    """The ID card shown at the counter is not the cardholder's."""


class IdNumberRequired(Invalid):
    """At the counter a teller acts on the holder's ID card."""


class IdNumberNotExpected(Invalid):
    """Only a teller at the counter gives the ID number."""


class SamePassword(Invalid):
    """A new password must differ from the old one."""


class ChannelNotOpen(Forbidden):
    """The channel is not open to the asker's role."""


class AlreadyStamped(Conflict):
    """A replacement receipt is stamped once."""


class MerchantExists(Conflict):
    """A merchant is registered once."""


class ShopNotDesignated(Invalid):
    """Only hospitals and pharmacies can be designated."""


def _open(state: Account | None) -> Account:
    if state is None or state.account_id is None:
        raise NotFound("no personal medical account is open for this person")
    return state


# --- projections of identity and cards events ---------------------------------------

def register_person(person_id: str, name: str, id_number_digest: str) -> Decide:
    """Remember the name and ID digest a teller checks the ID card against."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        acc.name, acc.id_number_digest = name, id_number_digest
        return Decision(acc)
    return decide


def record_contribution(person_id: str, contribution_id: str, month: str, amount_fen: int) -> Decide:
    """A paid contribution waits for the month end; without an account it is held."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        if any(c.contribution_id == contribution_id for c in acc.contributions):
            return Decision(None)
        acc.contributions.append(Contribution(contribution_id=contribution_id, month=month, amount_fen=amount_fen))
        if acc.account_id is not None:
            return Decision(acc)
        held = ContributionHeld(person_id=person_id, contribution_id=contribution_id, month=month,
                                amount_fen=amount_fen, reason=HELD_REASON)
        return Decision(acc, [held])
    return decide


def issue_card(person_id: str, card_number: str, replaces: str | None, at: datetime) -> Decide:
    """A first card opens the account; a later one takes the account and its balance over,
    and the card it replaces stops working at once."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        if acc.has_card(card_number):
            return Decision(None)
        acc.cards.append(CardState(number=card_number))
        old = replaces or acc.current_card
        blocked = _block(acc, old, "cancelled", at) if old and acc.has_card(old) else []
        acc.current_card = card_number
        if acc.account_id is None:
            acc.account_id = account_id_for(person_id)
            return Decision(acc, [*blocked, AccountOpened(person_id=person_id, account_id=acc.account_id,
                                                          card_number=card_number)])
        acc.pin_hash, acc.pin_failures, acc.pin_locked = None, 0, False  # a new card needs its own password
        moved = AccountMovedToCard(person_id=person_id, account_id=acc.account_id, old_card_number=old or "",
                                   new_card_number=card_number, balance_fen=acc.balance_fen)
        return Decision(acc, [*blocked, moved])
    return decide


def block_card(person_id: str, card_number: str, status: Literal["lost", "cancelled"], at: datetime) -> Decide:
    """Apply a loss report or a cancellation at once (a lost card replaced is cancelled)."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        if not acc.has_card(card_number):
            acc.cards.append(CardState(number=card_number))
        return Decision(acc, _block(acc, card_number, status, at))
    return decide


def note_loss(person_id: str, card_number: str, at: datetime) -> Decide:
    """The nightly policy: a loss report is kept until the business day ends (the card still
    works meanwhile); a repeat, or a card already stopped, changes nothing."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        if not acc.has_card(card_number):
            acc.cards.append(CardState(number=card_number))
        card = acc.card(card_number)
        if card.reported_lost or card.status != "active" or card.loss_pending_since is not None:
            return Decision(acc)
        card.loss_pending_since = at
        return Decision(acc)
    return decide


def apply_pending_losses(at: datetime) -> Decide:
    """The business day ended: every loss report kept for it is applied (CardBlocked each)."""
    def decide(state: Account | None) -> Decision[Account]:
        if state is None:
            return Decision(None)
        acc = _copy(state, state.person_id)
        events: list[EventData] = []
        for card in list(acc.cards):
            if card.loss_pending_since is not None:
                events += _block(acc, card.number, "lost", at)
        return Decision(acc, events)
    return decide


def _block(acc: Account, card_number: str, status: Literal["lost", "cancelled"], at: datetime) -> list[EventData]:
    """Stop a card, moving only forward (active -> lost -> cancelled); a loss is remembered
    for good (``reported_lost``). Returns CardBlocked when the card was usable."""
    card = acc.card(card_number)
    card.loss_pending_since = None  # a kept report is applied now, or overtaken by a stop
    events: list[EventData] = []
    if card.status == "active":
        card.blocked_at = at
        events.append(CardBlocked(person_id=acc.person_id, card_number=card_number, reason=status, blocked_at=at))
    if status == "lost":
        card.reported_lost = True
    if card.status != "cancelled":
        card.status = status
    return events


def remember_receipt(person_id: str, card_number: str, receipt_number: str, requested_on: date) -> Decide:
    """Know a replacement receipt the agency issued, so a teller can stamp it."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _copy(state, person_id)
        if any(r.receipt_number == receipt_number for r in acc.receipts):
            return Decision(None)
        acc.receipts.append(Receipt(receipt_number=receipt_number, card_number=card_number,
                                    requested_on=requested_on))
        return Decision(acc)
    return decide


# --- monthly transfer ----------------------------------------------------------------

def due_contributions(contributions: list[Contribution], month: str) -> list[Contribution]:
    """Uncredited contributions for ``month`` or earlier, oldest first."""
    return sorted((c for c in contributions if not c.credited and c.month <= month),
                  key=lambda c: (c.month, c.contribution_id))


def archive_cut(closing_date: date) -> date:
    """At a month end, the postings dated before the closing month leave the account
    document for the ledger archive (the month's own stay, with its transfer)."""
    return closing_date.replace(day=1)


def move_archived(acc: Account, archived: Collection[str], cut: date) -> None:
    """Take out of ``acc`` its postings dated before ``cut`` whose references are in
    ``archived`` (written to the ledger archive before this decision), adding them to the
    archived totals. A posting not known to be archived stays, so every posting is always
    in the account or in the archive, and counted once by the totals."""
    kept: list[LedgerEntry] = []
    for entry in acc.ledger:
        if entry.business_date < cut and entry.reference in archived:
            if entry.kind == "credit":
                acc.archived_credits_fen += entry.amount_fen
            else:
                acc.archived_debits_fen += entry.amount_fen
        else:
            kept.append(entry)
    if len(kept) != len(acc.ledger):
        acc.ledger = kept
        acc.archived_before = max(acc.archived_before or cut, cut)


def credit_month_end(month: str, closing_date: date, at: datetime,
                     archived: Collection[str] = frozenset()) -> Decide:
    """At a month end, credit each due contribution once: one MonthlyTransfer each. The
    postings in ``archived`` (references the month end wrote to the ledger archive) dated
    before the closing month leave the account in the same write, and so do the credited
    contributions: each stays in the ledger as its credit posting (reference = contribution
    id), and a repeat of its ContributionPaid is known by the account's sequence mark of
    identity's events. Kept, they grew every account by a contribution a month, past the
    2 KB from which PostgreSQL compresses the document at each write and read (DocumentDB)."""
    cut = archive_cut(closing_date)

    def decide(state: Account | None) -> Decision[Account]:
        if state is None or state.account_id is None or not due_contributions(state.contributions, month):
            return Decision(None)
        acc = state.clone()
        account_id, card_number = state.account_id, acc.current_card or ""
        events: list[EventData] = []
        for contribution in due_contributions(acc.contributions, month):
            contribution.credited = True
            acc.balance_fen += contribution.amount_fen
            acc.ledger.append(LedgerEntry(
                reference=contribution.contribution_id, kind="credit", amount_fen=contribution.amount_fen,
                business_date=closing_date, recorded_at=at, card_number=card_number,
                description=f"Monthly transfer, personal account share for {contribution.month}"))
            events.append(MonthlyTransfer(
                person_id=acc.person_id, account_id=account_id, card_number=card_number,
                month=contribution.month, contribution_id=contribution.contribution_id,
                amount_fen=contribution.amount_fen, balance_after_fen=acc.balance_fen))
        acc.contributions = [c for c in acc.contributions if not c.credited]
        move_archived(acc, archived, cut)
        return Decision(acc, events)
    return decide


# --- card password -------------------------------------------------------------------

def _usable_card(acc: Account, card_number: str) -> CardState:
    card = acc.card(card_number)
    check_card_active(card)
    check_current_card(acc, card_number)
    return card


def check_card_active(card: CardState) -> None:
    """A lost or cancelled card's password can no longer be managed."""
    if card.status != "active":
        raise CardStopped(f"card {card.number} is {card.status}; its password can no longer be managed")


def check_current_card(acc: Account, card_number: str) -> None:
    """The password belongs to the account's current card, not to one it replaced."""
    if acc.current_card != card_number:
        raise NotCurrentCard(f"card {card_number} is no longer the account's current card")


def check_password_not_set(acc: Account) -> None:
    """A first password is set once: later it is changed with the old one, or reset."""
    if acc.pin_hash is not None:
        raise PasswordAlreadySet(
            "the card password is already set: change it with the old one, or have a teller reset it")


def check_password_set(acc: Account) -> None:
    """A password is changed only once it was set."""
    if acc.pin_hash is None:
        raise PasswordNotSet("the card password is not set yet: set it first")


def check_password_not_locked(acc: Account) -> None:
    """A locked password is not changed: a teller resets it."""
    if acc.pin_locked:
        raise PasswordLocked("the card password is locked after too many wrong tries: a teller must reset it")


def check_password_unchanged(acc: Account, verified_hash: str) -> None:
    """The password the caller verified is still the account's (else it changed meanwhile)."""
    if acc.pin_hash != verified_hash:
        raise PasswordChangedMeanwhile("the card password changed meanwhile: try again")


def check_password_resettable(acc: Account, card_number: str) -> None:
    """A password never set is set, not reset: setting it is what activates the card."""
    if acc.pin_hash is None:
        raise PasswordNotSet(f"the card password was never set: set it (PUT /v1/cards/{card_number}/password), "
                             "which activates the card")


def check_id_number_for_first_password(by_teller: bool, id_number_given: bool) -> None:
    """A teller sets a first password on the holder's ID card; the holder online gives none."""
    if by_teller and not id_number_given:
        raise IdNumberRequired("body.id_number: a teller sets a card's first password on the holder's ID card")
    if not by_teller and id_number_given:
        raise IdNumberNotExpected("body.id_number: only a teller at the counter gives the ID number")


def check_id_card_shown(by_teller: bool, id_number_given: bool) -> None:
    """At the counter the holder shows the ID card to change the password."""
    if by_teller and not id_number_given:
        raise IdNumberRequired("at the counter the holder shows the ID card: id_number is required")


def check_new_password_differs(old_pin: str, new_pin: str) -> None:
    """A changed password is a different one."""
    if new_pin == old_pin:
        raise SamePassword("the new password must differ from the old one")


def wrong_old_password(locked: bool) -> WrongPassword | PasswordLocked:
    """The refusal of a wrong old password: locked now, or only wrong."""
    if locked:
        return PasswordLocked("the old password is wrong, and too many wrong tries lock the card password: "
                              "a teller must reset it")
    return WrongPassword("the old password is wrong")


CHANNELS: dict[str, tuple[BalanceChannel, ...]] = {"cardholder": ("online", "phone"), "teller": ("counter",)}
"""Channels open to each role; the first is the default (the POS channel is
POST /v1/pos/balance-inquiries, with the card password)."""


def check_channel_open(role: str, requested: BalanceChannel | None) -> BalanceChannel:
    """The channel a request comes through: the role's default, or one open to the role."""
    allowed = CHANNELS.get(role, ())
    if requested is None and allowed:
        return allowed[0]
    if requested not in allowed:
        raise ChannelNotOpen(f"channel {requested} is not open to role {role}; use {', '.join(allowed)}")
    return requested


def set_pin(card_number: str, pin_hash: str, channel: PasswordChannel, presented_digest: str | None = None) -> Decide:
    """Set the password of a new card, before its first use: by its holder logged in, or at the
    counter on the holder's ID card (``presented_digest``)."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _open(state).model_copy(deep=True)
        _usable_card(acc, card_number)
        if presented_digest is not None:
            check_id_card(acc, presented_digest)
        check_password_not_set(acc)
        acc.pin_hash = pin_hash
        return Decision(acc, [CardPasswordSet(person_id=acc.person_id, card_number=card_number, channel=channel)])
    return decide


def change_pin(card_number: str, verified_hash: str, new_hash: str, channel: PasswordChannel) -> Decide:
    """Change the password; the caller has checked the old one against ``verified_hash``."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _open(state).model_copy(deep=True)
        _usable_card(acc, card_number)
        check_password_set(acc)
        check_password_not_locked(acc)
        check_password_unchanged(acc, verified_hash)
        acc.pin_hash, acc.pin_failures = new_hash, 0
        return Decision(acc, [CardPasswordChanged(person_id=acc.person_id, card_number=card_number,
                                                  channel=channel)])
    return decide


def count_wrong_pin(acc: Account, card_number: str, max_failures: int, events: list[EventData]) -> bool:
    """One more wrong PIN in a row; the ``max_failures``-th locks the password until a
    teller resets it (CardPasswordLocked). Returns whether the password is now locked."""
    acc.pin_failures += 1
    if acc.pin_failures < max_failures:
        return False
    acc.pin_locked = True
    events.append(CardPasswordLocked(person_id=acc.person_id, card_number=card_number, failures=acc.pin_failures))
    return True


def wrong_pin(card_number: str, verified_hash: str, max_failures: int) -> Decide:
    """A wrong old password given to change it counts towards the lock, as at the POS.
    Result: whether the password is locked now."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _open(state).model_copy(deep=True)
        _usable_card(acc, card_number)
        if acc.pin_locked:
            return Decision(None, [], True)
        check_password_unchanged(acc, verified_hash)
        events: list[EventData] = []
        return Decision(acc, events, count_wrong_pin(acc, card_number, max_failures, events))
    return decide


def check_id_card(acc: Account, presented_digest: str) -> None:
    """At the counter the holder shows the ID card: its number must be the cardholder's."""
    if acc.id_number_digest is None:
        raise IdNotReceived("the bank has not yet received this person's register entry; the ID cannot be checked")
    if acc.id_number_digest != presented_digest:
        raise IdCardMismatch("the ID number does not match the cardholder")


def reset_pin(card_number: str, presented_digest: str, new_hash: str) -> Decide:
    """A forgotten or locked password, reset by a teller on the holder's ID card. A password
    never set is set, not reset: setting it is what activates the card (CardPasswordSet)."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _open(state).model_copy(deep=True)
        _usable_card(acc, card_number)
        check_id_card(acc, presented_digest)
        check_password_resettable(acc, card_number)
        acc.pin_hash, acc.pin_failures, acc.pin_locked = new_hash, 0, False
        return Decision(acc, [CardPasswordReset(person_id=acc.person_id, card_number=card_number)])
    return decide


# --- balance and stamps --------------------------------------------------------------

def inquire_balance(card_number: str, channel: BalanceChannel) -> Decide:
    """Tell the balance (result) and record the channel asked through: the holder's
    (online, phone) or a teller's (counter). The POS inquiry is ``authorisation.inquire``."""
    def decide(state: Account | None) -> Decision[Account]:
        acc = _open(state)
        acc.card(card_number)
        event = BalanceInquired(person_id=acc.person_id, card_number=card_number, channel=channel,
                                balance_fen=acc.balance_fen)
        return Decision(acc, [event], acc.balance_fen)
    return decide


def stamp_receipt(receipt_number: str, branch: str, seal: str, now: datetime, today: date) -> Decide:
    """Affix the branch's business seal and the processing time; report the loss if the
    card was not reported lost yet. Result: the BankStamped event."""
    def decide(state: Account | None) -> Decision[Account]:
        if state is None:
            raise NotFound(f"replacement receipt {receipt_number} is unknown to the bank")
        acc = state.model_copy(deep=True)
        receipt = acc.receipt(receipt_number)
        check_not_stamped(receipt)
        loss_reported = acc.has_card(receipt.card_number) and acc.card(receipt.card_number).status == "active"
        blocked = _block(acc, receipt.card_number, "lost", now) if loss_reported else []
        receipt.stamp = Stamp(branch=branch, seal=seal, processed_at=now, business_date=today,
                              loss_reported=loss_reported)
        event = BankStamped(person_id=acc.person_id, card_number=receipt.card_number, receipt_number=receipt_number,
                            branch=branch, seal=seal, processed_at=now, business_date=today,
                            loss_reported=loss_reported)
        return Decision(acc, [*blocked, event], event)
    return decide


def check_not_stamped(receipt: Receipt) -> None:
    """A replacement receipt is stamped once."""
    if receipt.stamp is not None:
        raise AlreadyStamped(f"receipt {receipt.receipt_number} was already stamped at "
                             f"{receipt.stamp.processed_at.isoformat()}")


# --- merchants -----------------------------------------------------------------------

def register_merchant(merchant_id: str, name: str, kind: MerchantKind, designated: bool
                      ) -> Callable[[Merchant | None], Decision[Merchant]]:
    """Add a merchant to the registry; only hospitals and pharmacies can be designated."""
    def decide(state: Merchant | None) -> Decision[Merchant]:
        check_new_merchant(state, merchant_id)
        check_designation(kind, designated)
        merchant = Merchant(merchant_id=merchant_id, name=name, kind=kind, designated=designated)
        return Decision(merchant, [MerchantRegistered(**merchant.model_dump())], merchant)
    return decide


def check_new_merchant(state: Merchant | None, merchant_id: str) -> None:
    """A merchant is registered once (and never changed)."""
    if state is not None:
        raise MerchantExists(f"merchant {merchant_id} is already registered")


def check_designation(kind: MerchantKind, designated: bool) -> None:
    """Only hospitals and pharmacies can be designated for the medical insurance card."""
    if designated and kind == "shop":
        raise ShopNotDesignated("only hospitals and pharmacies can be designated for the medical insurance card")
