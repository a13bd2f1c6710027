"""Message bus: the MessageBus port and its adapters (in-process, NATS JetStream)."""
