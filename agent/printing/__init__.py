"""Printed tickets: the layout, the print service that follows the event log, and its web routes."""
