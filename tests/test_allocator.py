"""The jobs' malloc settings (beirflow/models/allocator.py) take effect: glibc ignores a misspelt one silently."""

from __future__ import annotations

import glob
import os
import platform
import subprocess
import sys

import pytest

from beirflow.models.allocator import GLIBC_TUNABLES

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="GLIBC_TUNABLES is read by glibc only")

# A layer's worth of activations, as torch allocates and frees them batch after batch: three blocks
# of 12 MB, freed together. Prints the page faults of 20 rounds after the first.
BATCHES = """
import resource
import numpy as np

def batch():
    blocks = [np.ones(3 << 20, dtype=np.float32) for _ in range(3)]
    return sum(float(block[-1]) for block in blocks)

batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_ROUND = 3 * (12 << 20) // 4096


def environment(tunables: str | None) -> dict[str, str]:
    variables = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
    return variables if tunables is None else variables | {"GLIBC_TUNABLES": tunables}


def page_faults(tunables: str | None) -> int:
    result = subprocess.run(
        [sys.executable, "-c", BATCHES], env=environment(tunables), capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_freed_batches_are_kept_instead_of_faulted_in_again() -> None:
    assert page_faults(None) > PAGES_PER_ROUND  # glibc's defaults: handed back and faulted in again
    assert page_faults(GLIBC_TUNABLES) < PAGES_PER_ROUND // 10


def test_glibc_reads_every_tunable_as_written() -> None:
    loaders = glob.glob("/lib64/ld-linux-*.so.*") + glob.glob("/lib/*/ld-linux-*.so.*")
    if not loaders:
        pytest.skip("no glibc dynamic loader found to list the tunables")
    listing = subprocess.run(
        [loaders[0], "--list-tunables"], env=environment(GLIBC_TUNABLES), capture_output=True, text=True, check=True
    ).stdout
    read = dict(line.split(": ")[0:2] for line in listing.splitlines() if ": " in line)
    for setting in GLIBC_TUNABLES.split(":"):
        name, value = setting.split("=")
        assert int(read[name].split()[0], 16) == int(value), (name, read.get(name))
