"""Local, Docker-free infrastructure for aimesh: the `aimesh up | down | status | logs` CLI."""
