"""A workaround for the SLURM executor plugin: a job cancelled on the cluster is seen as failed.

``sacct`` reports a job cancelled with ``scancel`` as ``CANCELLED by <uid>``. The plugin
(snakemake-executor-plugin-slurm 2.8.0) compares each state string exactly against its failure
states (``CANCELLED``, ``FAILED``, ...), finds no match, counts the job as still running and waits
for it forever, with nothing left in ``squeue``. The Snakemake-Profiles status script had the same
bug (its pull request #22). The smallest change: the status query's result, which the plugin reads
from its module-level ``query_job_status``, reports the state's first word. Nothing else of the
plugin is touched; if a future version renames that function, :func:`install` says so and changes
nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

StatusQuery = Callable[..., Awaitable[tuple[dict[str, str] | None, float | None]]]


def normalised_state(state: str) -> str:
    """``CANCELLED by 0`` -> ``CANCELLED``; every other sacct state is one word already."""
    return state.split(" ", 1)[0] if " by " in state else state


def normalising(query: StatusQuery) -> StatusQuery:
    @functools.wraps(query)
    async def query_job_status(*args: Any, **kwargs: Any) -> tuple[dict[str, str] | None, float | None]:
        states, seconds = await query(*args, **kwargs)
        if states is not None:
            states = {job: normalised_state(state) for job, state in states.items()}
        return states, seconds

    query_job_status.beirflow_normalised = True  # type: ignore[attr-defined]
    return query_job_status


def install(plugin: ModuleType) -> bool:
    """Wrap ``plugin.query_job_status`` (the executor's ``snakemake_executor_plugin_slurm``); False if it has none."""
    query = getattr(plugin, "query_job_status", None)
    if query is None:
        return False
    if not getattr(query, "beirflow_normalised", False):
        plugin.query_job_status = normalising(query)  # type: ignore[attr-defined]
    return True


def install_if_present() -> str | None:
    """Install into the SLURM plugin where it is installed; a warning to log where it no longer fits."""
    try:
        import snakemake_executor_plugin_slurm as plugin
    except ImportError:
        return None
    if install(plugin):
        return None
    return (
        "beirflow: the SLURM executor plugin no longer has query_job_status; the workaround for jobs "
        "cancelled with scancel ('CANCELLED by <uid>') is not installed (docs/cluster.md)"
    )
