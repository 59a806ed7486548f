"""Central: the city side of ward-kiosk (web console, users, KPIs, reports, public page).

It shares only the wire contract with the kiosk (see `central.contract`) and reads the events that
`kiosk central ingest` stores; it never imports the kiosk's internals.
"""
