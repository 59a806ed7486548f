"""The agent's local HTTP side: the kiosk touch screen, the display board, counter consoles and the JSON API.

`server.run_web` serves them from the agent's event loop; live updates follow the event log
(`agent.store.feed.EventFeed`), so every screen sees exactly what the log holds, in order.
"""
