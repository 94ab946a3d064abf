"""How the operators' commands look in a terminal (rich)."""

from __future__ import annotations

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


def short_time(iso: str | None) -> str:
    return (iso or "?").replace("T", " ")[:23]


def event_text(line: EventLine) -> Text:
    """time  service  Type  subject  key facts: one line, coloured by service."""
    if line.envelope is None:
        return Text(f"{line.topic}/{line.partition}@{line.offset} unreadable: {line.error}", style="red")
    colour = SERVICE_COLOURS.get(line.service or "", "white")
    alert = any(word in (line.name or "") for word in ALERT_NAMES)
    text = Text()
    text.append(short_time(line.time), style="dim")
    text.append(f"  {line.service or '?':<13}", style=colour)
    text.append(f" {line.name or line.type or '?':<28}", style=f"bold {'red' if alert else colour}")
    text.append(f" {line.subject or '-':<19}", style="bold")
    if line.person and line.person != line.subject:
        text.append(f" person={line.person}", style="dim")
    text.append(f" {line.summary}")
    return text


def story_table(report: CardReport) -> Table:
    table = Table(title=f"card {report.card_number}, held by {report.holder or 'an unknown person'}")
    for col in ("time", "service", "event", "about", "facts"):
        table.add_column(col, overflow="fold")
    for item in report.events:
        ev = item.event
        colour = SERVICE_COLOURS.get(ev.service or "", "white")
        table.add_row(short_time(ev.time), Text(ev.service or "?", style=colour), Text(ev.name or "?", style="bold"),
                      item.about if item.about == "card" else Text(f"holder ({ev.subject})", style="dim"),
                      escape(ev.summary))
    return table


def states_table(report: CardReport) -> Table:
    table = Table(title="state held by each service now")
    for col in ("service", "status", "card state", "facts"):
        table.add_column(col, overflow="fold")
    for s in report.states:
        shown = s.card_state
        facts = " ".join(f"{k}={v}" for k, v in s.facts.items() if v not in (None, ""))
        style = "green" if s.status == "ok" else "yellow" if s.status in ("n/a", "not found") else "red"
        table.add_row(s.service, Text(s.status, style=style), shown or "-", escape(facts))
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
        table.add_row(d.dlq_topic, d.ref, short_time(d.time), d.service or "?", original,
                      type_name(d.type) or "?",
                      Text(d.reason or "?", style="red"), d.replayed or "")
    return table


def replay_lines(report: ReplayReport) -> list[Text]:
    lines = [Text(f"replayed {d.ref} to {d.topic}/{d.partition}", style="green") for d in report.replayed]
    lines += [Text(f"skipped {ref}: {why}", style="yellow") for ref, why in report.skipped.items()]
    return lines or [Text(f"{report.dlq_topic} holds no dead letter", style="dim")]
