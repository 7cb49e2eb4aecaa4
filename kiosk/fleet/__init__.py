"""Fleet telemetry: the kiosk's side of a city's MQTT broker (topics, the outbox publisher)."""
