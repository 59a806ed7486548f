"""Video calls from the kiosk to an officer: signalling over MQTT, media with WebRTC (aiortc)."""
