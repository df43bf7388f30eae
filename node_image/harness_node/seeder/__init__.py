"""The private DNS seeder role: a sipa/bitcoin-seeder style crawler, an authoritative DNS server for
the seed zone, and answer modes from honest to malicious, switchable at runtime (service.py)."""

from .config import SeederConfig, SeederConfigError
from .modes import MODES, ModeError
from .service import Seeder, main_from_args, run_seeder

__all__ = ["MODES", "ModeError", "Seeder", "SeederConfig", "SeederConfigError", "main_from_args", "run_seeder"]
