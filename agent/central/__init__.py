"""Central side: the event ingest (end-to-end acknowledgements) and the fleet monitor."""
