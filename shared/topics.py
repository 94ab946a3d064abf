"""The topic registry: one topic per owning service, keyed by aggregate id."""

from __future__ import annotations

from dataclasses import dataclass

RETENTION_FOREVER_MS = -1


@dataclass(frozen=True)
class Topic:
    service: str
    partitions: int
    description: str
    retention_ms: int = RETENTION_FOREVER_MS
    producer: str | None = None
    """The service that publishes to the topic when it is not the one the topic is named after."""

    @property
    def produced_by(self) -> str:
        return self.producer or self.service

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.service}"

    def dlq(self, namespace: str) -> str:
        return f"{self.name(namespace)}.dlq"


TOPICS: dict[str, Topic] = {
    "identity": Topic("identity", 4,
                      "Insured units, persons, online accounts, staff, contributions; key: person or unit id"),
    "clock": Topic("clock", 1, "The business clock: dates advanced and months ended; key: 'clock'",
                   producer="identity"),
    "cards": Topic("cards", 4, "Card lifecycle, loss reports and replacement; key: person id (the cardholder)"),
    "bank": Topic("bank", 4,
                  "Accounts, passwords, POS authorisations, stamps, monthly transfers; key: person or merchant id"),
    "notifications": Topic("notifications", 4,
                           "Deliveries to cardholders; key: message id (each message is its own aggregate)"),
}


def topic_for_service(service: str, namespace: str) -> str:
    return TOPICS[service].name(namespace)


def all_topic_names(namespace: str, *, with_dlq: bool = True) -> list[str]:
    names = [t.name(namespace) for t in TOPICS.values()]
    if with_dlq:
        names += [t.dlq(namespace) for t in TOPICS.values()]
    return names


def partitions_of(topic_name: str, namespace: str) -> int:
    """Partition count of a registry topic (or its dead-letter topic) by its full name."""
    service = topic_name.removeprefix(f"{namespace}.").removesuffix(".dlq")
    return TOPICS[service].partitions
