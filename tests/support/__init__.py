"""Helpers shared by the test suite (processes, ports, local HTTP targets)."""
