"""Default local ports: the same on the local stack and in docker-compose.yml."""

SERVICE_PORTS: dict[str, int] = {"identity": 8101, "cards": 8102, "bank": 8103, "notifications": 8104}
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
MONGO_PORT = 27027
CONSOLE_PORT = 8105
