"""snaplab: a failure-simulation lab for Azure VM backup snapshot timeouts."""

__version__ = "0.1.0"
