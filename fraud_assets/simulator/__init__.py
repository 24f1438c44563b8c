"""Source-system simulator: the Fraud Detection Handbook's generative process, plus what real feeds
carry (issuer BINs, merchants with MCC/country/currency/time zone, channels with 3-D Secure, FX),
label delays and a messy-feed injector, written as a landing zone (docs/landing-zone.md).

    from fraud_assets.simulator import SimConfig, generate_world, simulate
    world = generate_world(SimConfig(profile="handbook", days=30))   # in memory
    summary = simulate(data_dir, SimConfig(profile="realistic"))     # landing zone + ground truth

`python -m fraud_assets.simulator --help` for the command line.
"""

from fraud_assets.simulator.config import DEFAULT_RATES, DEFECT_OUTCOMES, DEFECT_UNITS, SimConfig
from fraud_assets.simulator.landing import append_days, simulate
from fraud_assets.simulator.world import World, generate_world

__all__ = [
    "DEFAULT_RATES",
    "DEFECT_OUTCOMES",
    "DEFECT_UNITS",
    "SimConfig",
    "World",
    "append_days",
    "generate_world",
    "simulate",
]
