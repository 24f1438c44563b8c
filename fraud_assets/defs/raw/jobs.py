"""What a landed file runs, named once: the landing sensor and `make pipeline` launch these jobs."""

from collections.abc import Sequence

import dagster as dg

from fraud_assets.lib.runs import LANDING_PRIORITY, PRIORITY_TAG

RAW_AUTHORIZATIONS = dg.AssetKey(["raw", "authorizations"])
CHAMPION = dg.AssetKey(["models", "champion"])
CLEANED_TRANSACTIONS = dg.AssetKey(["cleaned", "transactions"])

# The day's own steps (authorisations and the step that cleans them); every other raw and cleaned asset
# is an input a day reads: reference snapshots, FX rates, labels, and the file register in front of all.
_DAY_STEPS = dg.AssetSelection.assets(
    RAW_AUTHORIZATIONS, CLEANED_TRANSACTIONS
).required_multi_asset_neighbors()
INPUTS = dg.AssetSelection.groups("raw", "cleaned") - _DAY_STEPS

LANDED_DAY = dg.AssetSelection.groups("raw", "cleaned", "features", "scoring")
# Until a champion exists a landed day stops at its features; automation scores the days once one is.
UNSCORED_DAY = LANDED_DAY - dg.AssetSelection.groups("scoring")

# `tags`, not `run_tags`: sensors and schedules tag their runs with either, but the UI's launchpad
# pre-fills only the job's `tags`, so a day launched by hand would otherwise run at the default priority.
landed_day_job = dg.define_asset_job(
    "landed_day",
    selection=LANDED_DAY,
    tags={PRIORITY_TAG: LANDING_PRIORITY},
    description=(
        "A landed day (or a range of consecutive days, in one pass): the file register, the inputs the day "
        "reads (reference snapshots, FX rates, chargebacks -> labels), its authorisations -> cleaned "
        "transactions -> features -> scores and the alert queue. Labels are judged after the day is "
        "cleaned and before its features. Until a champion exists the run stops at the features and "
        "automation scores the days once one is appointed."
    ),
)

landed_inputs_job = dg.define_asset_job(
    "landed_inputs",
    selection=INPUTS,
    tags={PRIORITY_TAG: LANDING_PRIORITY},
    description=(
        "Inputs that landed without authorisations: reference snapshots, FX rates and chargebacks through "
        "the file register to cleaned/terminals, cards, fx_rates and labels."
    ),
)

RAW_JOBS = [landed_day_job, landed_inputs_job]


def _keys(*names: str) -> tuple[dg.AssetKey, ...]:
    return tuple(dg.AssetKey.from_user_string(n) for n in names)


# What each input source's files feed, up to the cleaned layer. A landed day's run leaves out the assets of
# a source that sent nothing since they were last built (raw/sensors.py); cleaned/labels always runs (it
# judges the day's transactions), and so does the file register.
SOURCE_INPUTS: dict[str, tuple[dg.AssetKey, ...]] = {
    "cardholders": _keys("raw/cardholders", "cleaned/cards"),
    "merchants": _keys("raw/merchants", "cleaned/terminals"),
    "fx_rates": _keys("raw/fx_rates", "cleaned/fx_rates"),
    "chargebacks": _keys("raw/chargebacks"),
}


def landed_day_selection(
    instance: dg.DagsterInstance, graph, unchanged: Sequence[str] = ()
) -> list[dg.AssetKey] | None:
    """The assets of a landed day's run: the whole job once a champion exists (None), else the job
    without scoring; without the inputs of the `unchanged` sources either way."""
    scored = instance.get_latest_materialization_event(CHAMPION) is not None
    if scored and not unchanged:
        return None
    left_out = {k for source in unchanged for k in SOURCE_INPUTS[source]}
    keys = (LANDED_DAY if scored else UNSCORED_DAY).resolve(graph) - left_out
    return sorted(keys, key=lambda k: k.to_user_string())
