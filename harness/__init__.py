"""harness: a chaos testbed for Bitcoin-style peer-to-peer networks."""

__version__ = "0.1.0"
