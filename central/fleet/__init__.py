"""Central's fleet: kiosks' latest status and telemetry, a bounded series, stored alerts, commands."""
