"""What an operator's one-line summary shows: the ids a case is followed by, never the
person's name, mobile or ID number."""

from __future__ import annotations

from datetime import date

from medcard.ops.views import EventView
from shared.events import CardIssued, CardLost, EventData, PersonRegistered, new_event


def summary_of(data: EventData) -> str:
    envelope = new_event(data, source="/medcard/test", partitionkey="P1", sequence=1,
                         correlationid="c1").model_dump(mode="json")
    return EventView("t", 0, 0, 0, envelope).summary()


def test_a_replacement_card_shows_the_card_it_replaces() -> None:
    shown = summary_of(CardIssued(person_id="P1", card_number="6216610000000000002", agent_bank="BOC",
                                  replaces="6216610000000000001"))
    assert "replaces=6216610000000000001" in shown and "agent_bank=BOC" in shown
    assert "card_number=" not in shown  # it is the line's subject


def test_a_registration_shows_no_personal_data() -> None:
    shown = summary_of(PersonRegistered(person_id="P1", name="Wang Fang", id_number_masked="110***********002X",
                                        id_number_digest="d" * 64, mobile="13800138000", unit_id="U1"))
    for personal in ("Wang Fang", "110***", "13800138000", "d" * 64):
        assert personal not in shown
    assert "unit_id=U1" in shown


def test_a_loss_shows_its_voucher_and_channel() -> None:
    shown = summary_of(CardLost(person_id="P1", card_number="6216610000000000001", channel="online",
                                voucher="V7", business_date=date(2026, 3, 2)))
    assert "channel=online" in shown and "voucher=V7" in shown


def test_what_reaches_the_terminal_has_its_control_characters_escaped() -> None:
    import io

    from rich.console import Console

    from medcard.ops.render import event_text, json_line, printable, story_table
    from medcard.ops.story import CardReport, StoryEvent

    hostile = "Hongxing\x1b]0;owned\x07\x1b[31m\x9b2J\u202e\u200b"
    assert printable(hostile) == "Hongxing\\x1b]0;owned\\x07\\x1b[31m\\x9b2J\\u202e\\u200b"
    assert printable("王芳 Wang-Fang") == "王芳 Wang-Fang"
    assert json_line({"name": hostile, "zh": "王芳"}) == (
        '{"name":"Hongxing\\u001b]0;owned\\u0007\\u001b[31m\\u009b2J\\u202e\\u200b","zh":"王芳"}')
    envelope = new_event(CardIssued(person_id="P1", card_number="6216610000000000002", agent_bank=hostile),
                         source="/medcard/test", partitionkey="P1", sequence=1, correlationid="c1",
                         subject="6216610000000000002").model_dump(mode="json")
    line = EventView("t", 0, 0, 0, envelope).line()
    report = CardReport(card_number="6216610000000000002", holder=hostile, states=[], disagreements=[],
                        events=[StoryEvent(about="card", event=line)])
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=400)
    console.print(event_text(line))
    console.print(story_table(report))
    shown = screen.getvalue()
    assert not any(ch in shown for ch in "\x07\x9b\u202e\u200b") and "]0;owned" in shown
    assert "\x1b]" not in shown and "\x1b[31m\\x9b" not in shown  # rich's own colours aside, no ESC of the event
