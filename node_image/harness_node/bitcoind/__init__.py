"""A real bitcoind as a harness member: launched, supervised and observed through its RPC."""
