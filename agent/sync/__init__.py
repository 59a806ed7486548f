"""Kiosk → central sync over MQTT: the outbox, telemetry, status and commands."""
