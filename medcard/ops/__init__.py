"""Operators' tools: follow the event streams, tell one card's story, watch consumer lag,
deal with dead letters. Everything here reads Kafka with its own group-less consumers,
so it never moves the services' committed offsets."""
