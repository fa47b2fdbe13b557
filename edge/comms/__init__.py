"""MQTT: topic names, wire schema, the publisher and Home Assistant discovery.

The pipeline never calls paho: the daemon turns pipeline results into wire
models (``schema``) and hands them to a ``Publisher``.
"""
