"""Step logs (the stdout/stderr Dagster captures) on the data volume: `$FRAUD_DATA_DIR/compute_logs`.

The instance's yaml for processes apart names this class instead of a path (fraud_assets/cli/dagster_home.py)
because a run worker builds its instance from the configuration of the process that launched the run (the
daemon), not from its own dagster.yaml: a path written there would be the daemon's. Resolved here, in each
process that writes or reads logs, the directory follows that process's own FRAUD_DATA_DIR, so the code
server's run workers and the webserver meet on the volume wherever each mounts it.
"""

from __future__ import annotations

from dagster import Field

from fraud_assets.lib import settings
from fraud_assets.lib.dagster_compat import LocalComputeLogManager

STEP_LOGS_DIR = "compute_logs"


class DataVolumeComputeLogManager(LocalComputeLogManager):
    def __init__(self, polling_timeout: float | None = None, inst_data=None) -> None:
        base_dir = str(settings.data_dir() / STEP_LOGS_DIR)
        super().__init__(base_dir, polling_timeout=polling_timeout, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {"polling_timeout": Field(float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> DataVolumeComputeLogManager:
        return cls(inst_data=inst_data, **config_value)
