"""Signed release bundles and their side-by-side install on the kiosk (issue #15 items 1, 2)."""
