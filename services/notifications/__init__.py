"""The notifications service: messages to cardholders and webhooks for external systems."""
