"""Daemon fixtures: the Mosquitto fixtures (`broker`, `persistent_broker`) live in tests/conftest.py."""
