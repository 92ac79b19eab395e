"""FALCON: its losses, the relation solver run between steps, and SCAN / SCAN-C."""
