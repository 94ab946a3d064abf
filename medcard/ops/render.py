"""How the operators' commands look in a terminal (rich).

Everything shown comes from events, and an event's text is whatever someone typed into an
API (a unit's name, a delivery's error...): its control and format characters are shown as
escapes (``\x1b``), never sent to the terminal, where an ESC sequence would recolour or
retitle it, move the cursor or hide lines. Rich passes them through as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .dlq import DeadLetter, ReplayReport
from .lag import GroupLag
from .story import CardReport
from .views import EventLine, type_name

SERVICE_COLOURS = {"identity": "cyan", "clock": "bright_black", "cards": "magenta", "bank": "green",
                   "notifications": "yellow"}
ALERT_NAMES = ("Lost", "Declined", "Locked", "Fraud", "Failed", "Cancelled", "Held")


UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                    r"\ufff9-\ufffb]")
"""C0 and C1 controls, DEL, and the invisible format characters (bidirectional overrides,
zero-width and line/paragraph separators)."""


def printable(value: object) -> str:
    """``value`` as text for a terminal: each unsafe character as a visible escape."""
    return UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}",
                      str(value))


def json_line(value: Any) -> str:
    """One JSON document on one line, non-ASCII text kept readable but every unsafe character
    escaped (``json`` escapes C0 controls only)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def short_time(iso: str | None) -> str:
    return printable((iso or "?").replace("T", " ")[:23])


def event_text(line: EventLine) -> Text:
    """time  service  Type  subject  key facts: one line, coloured by service."""
    if line.envelope is None:
        return Text(printable(f"{line.topic}/{line.partition}@{line.offset} unreadable: {line.error}"), style="red")
    colour = SERVICE_COLOURS.get(line.service or "", "white")
    alert = any(word in (line.name or "") for word in ALERT_NAMES)
    text = Text()
    text.append(short_time(line.time), style="dim")
    text.append(f"  {printable(line.service or '?'):<13}", style=colour)
    text.append(f" {printable(line.name or line.type or '?'):<28}", style=f"bold {'red' if alert else colour}")
    text.append(f" {printable(line.subject or '-'):<19}", style="bold")
    if line.person and line.person != line.subject:
        text.append(f" person={printable(line.person)}", style="dim")
    text.append(f" {printable(line.summary)}")
    return text


def story_table(report: CardReport) -> Table:
    holder = printable(report.holder or "an unknown person")
    table = Table(title=escape(f"card {printable(report.card_number)}, held by {holder}"))
    for col in ("time", "service", "event", "about", "facts"):
        table.add_column(col, overflow="fold")
    for item in report.events:
        ev = item.event
        colour = SERVICE_COLOURS.get(ev.service or "", "white")
        table.add_row(short_time(ev.time), Text(printable(ev.service or "?"), style=colour),
                      Text(printable(ev.name or "?"), style="bold"),
                      item.about if item.about == "card" else Text(f"holder ({printable(ev.subject)})", style="dim"),
                      escape(printable(ev.summary)))
    return table


def states_table(report: CardReport) -> Table:
    table = Table(title="state held by each service now")
    for col in ("service", "status", "card state", "facts"):
        table.add_column(col, overflow="fold")
    for s in report.states:
        shown = s.card_state
        facts = " ".join(f"{k}={v}" for k, v in s.facts.items() if v not in (None, ""))
        style = "green" if s.status == "ok" else "yellow" if s.status in ("n/a", "not found") else "red"
        table.add_row(s.service, Text(printable(s.status), style=style), escape(printable(shown or "-")),
                      escape(printable(facts)))
    return table


def lag_table(groups: list[GroupLag]) -> Table:
    table = Table(title="consumer lag")
    for col in ("service", "group", "topic", "partition", "committed", "end", "lag"):
        table.add_column(col, justify="right" if col in ("partition", "committed", "end", "lag") else "left")
    for group in groups:
        if not group.partitions:
            table.add_row(group.service, group.group, Text("no committed offsets", style="dim"), "", "", "", "")
        for row in group.partitions:
            style = "red" if row.lag else "green"
            table.add_row(group.service, group.group, row.topic, str(row.partition),
                          "-" if row.committed is None else str(row.committed), str(row.end),
                          Text(str(row.lag), style=style))
    return table


def dlq_table(letters: list[DeadLetter]) -> Table:
    table = Table(title="dead letters")
    for col in ("dlq topic", "ref", "time", "service", "original", "type", "reason", "replayed"):
        table.add_column(col, overflow="fold")
    for d in letters:
        original = f"{d.topic}/{d.partition}@{d.offset}" if d.topic else "?"
        table.add_row(*(escape(printable(v)) for v in (d.dlq_topic, d.ref)), short_time(d.time),
                      *(escape(printable(v)) for v in (d.service or "?", original, type_name(d.type) or "?")),
                      Text(printable(d.reason or "?"), style="red"), escape(printable(d.replayed or "")))
    return table


def replay_lines(report: ReplayReport) -> list[Text]:
    lines = [Text(printable(f"replayed {d.ref} to {d.topic}/{d.partition}"), style="green") for d in report.replayed]
    lines += [Text(printable(f"skipped {ref}: {why}"), style="yellow") for ref, why in report.skipped.items()]
    return lines or [Text(printable(f"{report.dlq_topic} holds no dead letter"), style="dim")]
