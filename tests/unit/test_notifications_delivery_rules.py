"""A message's delivery state, retries and outcome events; webhook types and signatures; the
rules' named guards (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.notifications.compose import draft_for
from services.notifications.domain import (
    EmptyReplayRange,
    Message,
    NotFailed,
    ReplayTooLong,
    UnknownEventTypes,
    await_contact,
    backoff,
    check_known_event_types,
    check_only_failed_resent,
    check_replay_range,
    check_replay_size,
    contact_arrived,
    create_message,
    event_type_index,
    message_id,
    normalise_event_types,
    record_failure,
    record_sent,
    resend_failed,
    stamp,
    subscribed,
)
from services.notifications.signing import new_secret, secret_key, signature, signed_headers
from shared.domain import Conflict, Invalid, NotFound
from shared.events import CardLost, NotificationFailed, NotificationSent, new_event

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LOST = new_event(
    CardLost(person_id="P1", card_number="6216610000000012345", channel="online", voucher="V1",
             business_date=date(2026, 1, 5)),
    source="/medcard/cards", partitionkey="P1", sequence=2, correlationid="corr-1",
)


def pending() -> Message:
    draft = draft_for(LOST.data)
    assert draft is not None
    message = create_message(draft, LOST, NOW)(None).state
    assert message is not None
    return message


def fail(message: Message, error: str = "gateway down", max_attempts: int = 3) -> Message:
    decision = record_failure(now=NOW, channel="sms-simulator", error=error, max_attempts=max_attempts,
                              base=2.0, cap=60.0)(message)
    assert decision.state is not None
    return decision.state


def test_one_cause_and_template_always_give_the_same_message_id_and_others_differ() -> None:
    assert message_id(LOST.id, "card_lost") == message_id(LOST.id, "card_lost")
    assert message_id(LOST.id, "card_lost") != message_id(LOST.id, "fraud_alert")
    assert message_id(LOST.id, "card_lost") != message_id("another-event", "card_lost")


def test_a_new_message_is_pending_and_due_now_and_an_existing_one_is_left_alone() -> None:
    message = pending()
    assert (message.status, message.attempts, message.next_attempt_at) == ("pending", 0, NOW)
    assert message.message_id == message_id(LOST.id, "card_lost")
    assert (message.cause_event_id, message.correlation_id) == (LOST.id, "corr-1")
    sent = record_sent(now=NOW, channel="sms", language="zh", text="t", mobile="13800138000")(message).state
    draft = draft_for(LOST.data)
    assert draft is not None
    again = create_message(draft, LOST, NOW + timedelta(hours=1))(sent)
    assert again.state == sent and again.events == []


def test_a_sent_message_records_its_text_and_publishes_notification_sent_once() -> None:
    decision = record_sent(now=NOW, channel="sms-simulator", language="en", text="hello", mobile="13800138000")(
        pending())
    assert decision.state is not None and decision.state.status == "sent"
    assert (decision.state.attempts, decision.state.text, decision.state.sent_at) == (1, "hello", NOW)
    [event] = decision.events
    assert isinstance(event, NotificationSent)
    assert (event.template, event.card_number, event.cause_event_id) == ("card_lost", "6216610000000012345", LOST.id)
    repeat = record_sent(now=NOW, channel="sms-simulator", language="en", text="hello", mobile="1")(decision.state)
    assert repeat.events == [] and repeat.state == decision.state


def test_a_failed_attempt_is_retried_later_with_growing_delays_then_fails_for_good_visibly() -> None:
    first = fail(pending())
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "gateway down")
    assert first.next_attempt_at == NOW + timedelta(seconds=2)
    second = fail(first)
    assert second.next_attempt_at == NOW + timedelta(seconds=4)
    decision = record_failure(now=NOW, channel="sms-simulator", error="still down", max_attempts=3, base=2.0,
                              cap=60.0)(second)
    assert decision.state is not None
    assert (decision.state.status, decision.state.attempts, decision.state.next_attempt_at) == ("failed", 3, None)
    [event] = decision.events
    assert isinstance(event, NotificationFailed)
    assert (event.attempts, event.error, event.message_id) == (3, "still down", decision.state.message_id)


def failed_for_good() -> Message:
    return fail(fail(fail(pending())))


def test_an_operator_resends_a_failed_message_due_now_with_its_attempts_reset_and_the_resend_in_its_history() -> None:
    failed = failed_for_good()
    assert [(c.status, c.note) for c in failed.history] == [("failed", "gateway down")]
    later = NOW + timedelta(hours=2)
    decision = resend_failed(failed.message_id, now=later, by="op-wang")(failed)
    assert decision.events == []
    resent = decision.state
    assert resent is not None
    assert (resent.status, resent.attempts, resent.next_attempt_at, resent.last_error) == ("pending", 0, later, None)
    change = resent.history[-1]
    assert (change.at, change.status, change.by) == (later, "pending", "op-wang")
    assert change.note == "resent after 3 failed attempts; last error: gateway down"
    # It is tried afresh: the full number of attempts before it fails again.
    assert fail(fail(resent)).status == "pending" and fail(fail(fail(resent))).status == "failed"


def test_only_a_failed_message_can_be_resent_and_an_unknown_one_is_not_found() -> None:
    with pytest.raises(NotFound, match="no message M1"):
        resend_failed("M1", now=NOW, by="op")(None)
    sent = record_sent(now=NOW, channel="sms", language="zh", text="t", mobile="13800138000")(pending()).state
    for message, status in [(pending(), "pending"), (fail(pending()), "pending"), (sent, "sent")]:
        with pytest.raises(Conflict, match=f"is {status}: only a failed message can be resent"):
            resend_failed("M1", now=NOW, by="op")(message)


def test_a_message_without_contact_details_waits_without_spending_an_attempt_until_they_arrive() -> None:
    waiting = await_contact(now=NOW)(pending()).state
    assert waiting is not None
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == ("awaiting_contact", 0, None)
    # Neither a late outcome of an attempt nor a resend touches a waiting message.
    assert record_failure(now=NOW, channel="c", error="e", max_attempts=1, base=1, cap=1)(waiting).state == waiting
    assert record_sent(now=NOW, channel="c", language="zh", text="t", mobile="1")(waiting).state == waiting
    with pytest.raises(Conflict):
        resend_failed(waiting.message_id, now=NOW, by="op")(waiting)
    later = NOW + timedelta(minutes=5)
    due = contact_arrived(now=later)(waiting).state
    assert due is not None and (due.status, due.next_attempt_at, due.attempts) == ("pending", later, 0)
    assert [c.status for c in due.history] == ["awaiting_contact", "pending"]
    # Arriving details change nothing for a message that was not waiting.
    assert contact_arrived(now=later)(due).state == due
    assert await_contact(now=later)(failed_for_good()).state == failed_for_good()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 1.0, 10.0).total_seconds() for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_stamps_sort_like_the_instants_they_stand_for() -> None:
    instants = [NOW, NOW + timedelta(microseconds=1), NOW + timedelta(seconds=1), NOW + timedelta(days=400)]
    assert sorted(stamp(i) for i in reversed(instants)) == [stamp(i) for i in instants]


def test_webhook_event_types_accept_type_strings_and_names_and_reject_unknown_ones() -> None:
    index = event_type_index(["cn.medcard.cards.CardLost.v1", "cn.medcard.cards.CardLost.v2",
                              "cn.medcard.bank.MonthlyTransfer.v1"])
    assert normalise_event_types(["CardLost"], index) == ["cn.medcard.cards.CardLost.v1",
                                                          "cn.medcard.cards.CardLost.v2"]
    assert normalise_event_types(["cn.medcard.bank.MonthlyTransfer.v1"], index) == [
        "cn.medcard.bank.MonthlyTransfer.v1"]
    with pytest.raises(Invalid, match="unknown event types: CardStolen"):
        normalise_event_types(["CardLost", "CardStolen"], index)
    assert subscribed([], "cn.medcard.clock.MonthEnded.v1")
    assert not subscribed(["cn.medcard.cards.CardLost.v1"], "cn.medcard.clock.MonthEnded.v1")


def test_signatures_match_the_standard_webhooks_reference_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    headers = signed_headers(secret, "evt-1", 1700000000, b"{}")
    assert headers["webhook-id"] == "evt-1" and headers["webhook-timestamp"] == "1700000000"
    assert headers["content-type"].startswith("application/cloudevents+json")


def test_generated_secrets_are_fresh_and_malformed_ones_are_refused() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(secret_key(a)) == 24
    for bad, reason in [("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with"), ("whsec_%%%", "base64"),
                        ("whsec_c2hvcnQ=", "16 to 64 bytes")]:
        with pytest.raises(ValueError, match=reason):
            secret_key(bad)


def test_a_message_tells_its_causes_business_date_else_the_clocks() -> None:
    """Issue 17: an SMS gave only the real instant it was sent, beside simulated business dates."""
    from services.notifications.domain import business_date_of
    from shared.events import CardIssued

    clock_date = date(2026, 3, 2)
    assert business_date_of(LOST, clock_date) == date(2026, 1, 5)
    handed_out = new_event(CardIssued(person_id="P1", card_number="6216610000000067890", agent_bank="BOC",
                                      replaces="6216610000000012345"),
                           source="/medcard/cards", partitionkey="P1", sequence=3, correlationid="corr-1")
    assert business_date_of(handed_out, clock_date) == clock_date
    draft = draft_for(handed_out.data)
    assert draft is not None
    message = create_message(draft, handed_out, NOW, business_date_of(handed_out, clock_date))(None).state
    assert message is not None and message.business_date == clock_date


def test_the_recipient_view_follows_each_card_event_in_the_shared_vocabulary() -> None:
    from services.notifications.projections import card_state_after
    from shared.events import CardActivated, CardCancelled, CardIssued

    card = "6216610000000012345"
    assert [card_state_after(e) for e in (
        CardIssued(person_id="P1", card_number=card, agent_bank="BOC"),
        CardActivated(person_id="P1", card_number=card),
        LOST.data,
        CardCancelled(person_id="P1", card_number=card, reason="replaced"),
    )] == ["pending_activation", "active", "lost", "cancelled"]


# The rules, each a named guard refusing with its own error (the message and code the API
# has always answered with) and admitting the rest.
@pytest.mark.parametrize("status", ["pending", "awaiting_contact", "sent"])
def test_only_a_failed_message_is_resent(status: str) -> None:
    refused = pending().model_copy(update={"status": status})
    with pytest.raises(NotFailed, match=f"message {refused.message_id} is {status}: only a failed message") as err:
        check_only_failed_resent(refused)
    assert isinstance(err.value, Conflict) and err.value.code == "conflict"
    check_only_failed_resent(failed_for_good())


def test_a_webhook_names_only_event_types_of_the_catalogue() -> None:
    index = event_type_index(["cn.medcard.cards.CardLost.v1", "cn.medcard.bank.MonthlyTransfer.v1"])
    with pytest.raises(UnknownEventTypes, match="unknown event types: CardStolen, x; see /asyncapi.json") as err:
        check_known_event_types(["CardLost", "CardStolen", "x"], index)
    assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_known_event_types(["CardLost", "cn.medcard.bank.MonthlyTransfer.v1"], index)
    check_known_event_types([], index)  # every type


def test_a_replay_range_is_not_empty() -> None:
    for until in (NOW, NOW - timedelta(seconds=1)):
        with pytest.raises(EmptyReplayRange, match="the replay range is empty: 'since' must be before 'until'") as err:
            check_replay_range(NOW, until)
        assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_replay_range(NOW, NOW + timedelta(microseconds=1))


def test_a_replay_queues_at_most_its_limit_of_events() -> None:
    with pytest.raises(ReplayTooLong, match="more than 10000 events in that range; replay a shorter one") as err:
        check_replay_size(10_001, 10_000)
    assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_replay_size(10_000, 10_000)
    check_replay_size(0, 10_000)
