"""POS authorisation: one pure decision per swipe, answered with an ISO 8583-style
response code. Checks run in the order of this table; the first that fails answers.

| code | reason                                   | when                                                   |
|------|------------------------------------------|--------------------------------------------------------|
| 14   | invalid card number                      | the card is unknown to the bank (nothing is recorded)  |
| 41   | lost card, pick up                       | the card was reported lost (even if since replaced);   |
|      |                                          | also raises a fraud alert                              |
| 43   | card cancelled, pick up                  | the card was replaced or closed                        |
| 03   | invalid merchant                         | the terminal's merchant is not registered              |
| 58   | transaction not permitted to terminal    | the merchant is not a designated hospital or pharmacy  |
| 57   | transaction not permitted to cardholder  | cash withdrawal or transfer                            |
| 62   | restricted card: password not set        | the card's password was never set                      |
| 75   | allowable number of PIN tries exceeded   | the N-th wrong PIN in a row, and every try after it    |
|      |                                          | until a teller resets the password                     |
| 55   | incorrect PIN                            | a wrong PIN (counts towards the lock)                  |
| 51   | insufficient funds                       | the amount is above the balance                        |
| 00   | approved                                 | the purchase is debited at once                        |

A correct PIN clears the run of wrong ones. Every refusal but "14" publishes
PurchaseDeclined; an approval publishes PurchaseAuthorised.

A terminal that got no answer sends the same authorisation again. Each one carries the
terminal's transaction id, and the account keeps its answer for ``REPEAT_WINDOW`` in time and
in business days (``pos_answers``, written in the same single-document write as the debit): a
repeat is answered exactly as the first time and changes nothing, whichever replica takes it
and after any restart; the same id for another card, amount or kind is refused with a 409.

A balance inquiry at the POS (``inquire``) passes the same checks but 57 and 51: it
needs the card password like a purchase, a wrong one counts towards the same lock, and
an inquiry on a lost card raises the same fraud alert. An answered inquiry publishes
BalanceInquired (channel pos); a refused one publishes only what it caused (the fraud
alert, the password lock), as no purchase was declined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.domain import Conflict, Forbidden
from shared.events import BalanceInquired, EventData, FraudAlertRaised, PurchaseAuthorised, PurchaseDeclined
from shared.events.bank import PosKind
from shared.domain import Decision

from .domain import Decide, PasswordChangedMeanwhile, count_wrong_pin
from .model import Account, CardState, LedgerEntry, Merchant, PosAnswerRecord

APPROVED = "00"
REASONS: dict[str, str] = {
    "00": "approved",
    "03": "invalid merchant: the terminal's merchant is not registered with the bank",
    "14": "invalid card number: no such card at this bank",
    "41": "lost card, pick up",
    "43": "card cancelled, pick up",
    "51": "insufficient funds",
    "55": "incorrect PIN",
    "57": "transaction not permitted to cardholder: the card buys medicine only, no cash or transfer",
    "58": "transaction not permitted to terminal: the merchant is not a designated hospital or pharmacy",
    "62": "restricted card: the card password has not been set",
    "75": "allowable number of PIN tries exceeded: a teller must reset the password",
}
REPEAT_WINDOW = timedelta(days=1)
"""How long an answered authorisation is kept for a resend of the same transaction."""


class TransactionReused(Conflict):
    """A terminal's transaction id names one request (card, amount, kind)."""


class NotThisTerminal(Forbidden):
    """A terminal speaks only for its own merchant."""


@dataclass(frozen=True, kw_only=True)
class Swipe:
    """What a terminal sends, before the bank dates it with its business date."""

    card_number: str
    merchant_id: str
    amount_fen: int
    kind: PosKind
    authorisation_id: str
    at: datetime
    transaction_id: str | None = None
    """The terminal's own number of the transaction (authorisations; not balance inquiries)."""

    def dated(self, business_date: date) -> PosRequest:
        return PosRequest(**vars(self), business_date=business_date)


@dataclass(frozen=True, kw_only=True)
class PosRequest(Swipe):
    """A swipe dated with the bank's business date: what the rules decide."""

    business_date: date

    @property
    def key(self) -> str:
        return f"{self.merchant_id}/{self.transaction_id}"

    @property
    def asked(self) -> str:
        """What a repeat must ask again: card, amount and kind (the PIN is not kept)."""
        return f"{self.card_number}|{self.amount_fen}|{self.kind}"


@dataclass(frozen=True)
class PosAnswer:
    authorisation_id: str
    approved: bool
    response_code: str
    reason: str
    balance_after_fen: int | None = None


def answer(request: PosRequest, code: str, balance_after_fen: int | None = None) -> PosAnswer:
    return PosAnswer(request.authorisation_id, code == APPROVED, code, REASONS[code], balance_after_fen)


def repeated(account: Account | None, request: PosRequest) -> PosAnswer | None:
    """The answer already given to this transaction of this terminal's merchant, if any; a
    transaction id already used for another card, amount or kind is a 409."""
    if account is None or request.transaction_id is None:
        return None
    for record in account.pos_answers:
        if record.key == request.key:
            if record.request != request.asked:
                raise TransactionReused(f"transaction {request.transaction_id} of merchant {request.merchant_id} was "
                               "already answered for another card, amount or kind: number each transaction anew")
            return PosAnswer(record.authorisation_id, record.approved, record.response_code, record.reason,
                             record.balance_after_fen)
    return None


def remember(acc: Account, request: PosRequest, said: PosAnswer) -> PosAnswer:
    """Keep ``said`` for a repeat of the transaction; forget those older than ``REPEAT_WINDOW``,
    by the clock or by the business date (a business day that ends early, as in a simulation
    whose days last minutes, still ends the window: what an account keeps stays small)."""
    if request.transaction_id is not None:
        oldest_date = request.business_date - REPEAT_WINDOW
        kept = [r for r in acc.pos_answers if r.answered_at > request.at - REPEAT_WINDOW
                and (r.business_date is None or r.business_date >= oldest_date)]
        acc.pos_answers = [*kept, PosAnswerRecord(
            key=request.key, request=request.asked, authorisation_id=said.authorisation_id, approved=said.approved,
            response_code=said.response_code, reason=said.reason, balance_after_fen=said.balance_after_fen,
            answered_at=request.at, business_date=request.business_date)]
    return said


def check_own_terminal(role: str, sub: str, merchant_id: str) -> None:
    """A terminal speaks only for its own merchant (an operator for any)."""
    if role == "merchant" and sub != merchant_id:
        raise NotThisTerminal(f"this terminal belongs to merchant {sub}, not {merchant_id}")


# The screening rules, in the order of the table above: each the refusal's code, or None.

def check_card_known(account: Account | None, card_number: str) -> str | None:
    """14: the bank knows the card."""
    return None if account is not None and account.has_card(card_number) else "14"


def check_card_not_lost(card: CardState) -> str | None:
    """41: a card reported lost never works again (even once replaced)."""
    return "41" if card.reported_lost else None


def check_card_not_cancelled(account: Account, card: CardState) -> str | None:
    """43: a cancelled or replaced card does not work."""
    return "43" if card.status == "cancelled" or account.current_card != card.number else None


def check_merchant_registered(merchant: Merchant | None) -> str | None:
    """03: the terminal's merchant is registered."""
    return "03" if merchant is None else None


def check_designated_merchant(merchant: Merchant) -> str | None:
    """58: only a designated hospital or pharmacy takes the card."""
    return None if merchant.designated else "58"


def check_medical_use(kind: PosKind) -> str | None:
    """57: the card buys medicine (and tells its balance); no cash, no transfer."""
    return None if kind in ("purchase", "balance_inquiry") else "57"


def check_pin_set(account: Account) -> str | None:
    """62: a card whose password was never set is not yet active."""
    return "62" if account.pin_hash is None else None


def check_pin_tries_left(account: Account) -> str | None:
    """75: a password locked by wrong tries refuses every try until a teller resets it."""
    return "75" if account.pin_locked else None


def check_balance_sufficient(account: Account, amount_fen: int) -> str | None:
    """51: a purchase is at most the balance."""
    return "51" if amount_fen > account.balance_fen else None


def screen(account: Account | None, request: PosRequest, merchant: Merchant | None) -> str | None:
    """The refusal due before the PIN is looked at, if any."""
    if (code := check_card_known(account, request.card_number)) is not None:
        return code
    assert account is not None
    card = account.card(request.card_number)
    if (code := check_card_not_lost(card) or check_card_not_cancelled(account, card)
            or check_merchant_registered(merchant)) is not None:
        return code
    assert merchant is not None
    return (check_designated_merchant(merchant) or check_medical_use(request.kind) or check_pin_set(account)
            or check_pin_tries_left(account))


def authorise(request: PosRequest, merchant: Merchant | None, *, checked_hash: str | None, pin_ok: bool,
              max_failures: int) -> Decide:
    """Decide one swipe. The caller verified the PIN against ``checked_hash`` (off the
    event loop); if the password changed meanwhile the swipe is refused with a 409. A
    repeat of an answered transaction gets that answer and changes nothing."""
    def decide(state: Account | None) -> Decision[Account]:
        if (first := repeated(state, request)) is not None:
            return Decision(None, [], first)
        acc, events, code = _screened(state, request, merchant, checked_hash, lambda acc, events: _check_pin_and_funds(
            acc, request, pin_ok, max_failures, events))
        if acc is None:
            return Decision(None, [], answer(request, code))
        if code == APPROVED:
            acc.balance_fen -= request.amount_fen
            acc.ledger.append(LedgerEntry(
                reference=request.authorisation_id, kind="debit", amount_fen=request.amount_fen,
                business_date=request.business_date, recorded_at=request.at, card_number=request.card_number,
                description=f"Purchase at {merchant.name if merchant else request.merchant_id}"))
            events.insert(0, PurchaseAuthorised(
                person_id=acc.person_id, card_number=request.card_number,
                authorisation_id=request.authorisation_id, merchant_id=request.merchant_id,
                amount_fen=request.amount_fen, balance_after_fen=acc.balance_fen,
                business_date=request.business_date))
            return Decision(acc, events, remember(acc, request, answer(request, code, acc.balance_fen)))
        events.insert(0, PurchaseDeclined(
            person_id=acc.person_id, card_number=request.card_number, authorisation_id=request.authorisation_id,
            merchant_id=request.merchant_id, amount_fen=request.amount_fen, kind=request.kind,
            reason_code=code, reason=REASONS[code], business_date=request.business_date))
        if code == "41":
            events.append(_fraud_alert(acc, request))
        return Decision(acc, events, remember(acc, request, answer(request, code)))
    return decide


def inquire(request: PosRequest, merchant: Merchant | None, *, checked_hash: str | None, pin_ok: bool,
            max_failures: int) -> Decide:
    """Decide a balance inquiry at a POS (``request.kind`` balance_inquiry, amount 0): the
    answer carries the balance when approved. Same PIN rules and 409 as ``authorise``."""
    def decide(state: Account | None) -> Decision[Account]:
        acc, events, code = _screened(state, request, merchant, checked_hash, lambda acc, events: _check_pin(
            acc, request, pin_ok, max_failures, events) or APPROVED)
        if acc is None or state is None:
            return Decision(None, [], answer(request, code))
        if code == APPROVED:
            events.append(BalanceInquired(person_id=acc.person_id, card_number=request.card_number, channel="pos",
                                          balance_fen=acc.balance_fen))
            return Decision(acc, events, answer(request, code, acc.balance_fen))
        if code == "41":
            events.append(_fraud_alert(acc, request))
        changed = acc.pin_failures != state.pin_failures or acc.pin_locked != state.pin_locked
        return Decision(acc if changed or events else None, events, answer(request, code))
    return decide


def _screened(state: Account | None, request: PosRequest, merchant: Merchant | None, checked_hash: str | None,
              check: Callable[[Account, list[EventData]], str]) -> tuple[Account | None, list[EventData], str]:
    """What a purchase and an inquiry share: screen the card and the request, then, if
    nothing refused it, ``check`` the password (and funds) on a copy of the account.
    Returns that copy (None for an unknown card), the events so far and the code. A
    password changed since the caller verified it is a 409: the terminal sends again."""
    code = screen(state, request, merchant)
    if state is None or code == "14":
        return None, [], "14"
    acc = working_copy(state)
    events: list[EventData] = []
    if code is None:
        if acc.pin_hash != checked_hash:
            raise PasswordChangedMeanwhile("the card password changed during this request: send it again")
        code = check(acc, events)
    return acc, events, code


def working_copy(state: Account) -> Account:
    """A copy of ``state`` that a decision here may change without touching ``state``: its
    own scalar fields and its own ``ledger`` list (appended to); ``pos_answers`` is replaced,
    never changed in place, and nothing here changes the cards, contributions, receipts or
    an existing entry. (A deep copy of the whole account cost more than the rest of the
    authorisation together.)"""
    return state.model_copy(update={"ledger": [*state.ledger]})


def _fraud_alert(acc: Account, request: PosRequest) -> FraudAlertRaised:
    return FraudAlertRaised(
        person_id=acc.person_id, card_number=request.card_number, authorisation_id=request.authorisation_id,
        merchant_id=request.merchant_id, amount_fen=request.amount_fen, attempted_at=request.at, kind=request.kind)


def _check_pin(acc: Account, request: PosRequest, pin_ok: bool, max_failures: int,
               events: list[EventData]) -> str | None:
    """A right PIN clears the run of wrong ones (None); a wrong one counts towards the lock."""
    if pin_ok:
        acc.pin_failures = 0
        return None
    return "75" if count_wrong_pin(acc, request.card_number, max_failures, events) else "55"


def _check_pin_and_funds(acc: Account, request: PosRequest, pin_ok: bool, max_failures: int,
                         events: list[EventData]) -> str:
    """The PIN counts towards the lock; with the right one, the balance decides."""
    refused = _check_pin(acc, request, pin_ok, max_failures, events)
    if refused:
        return refused
    return check_balance_sufficient(acc, request.amount_fen) or APPROVED
