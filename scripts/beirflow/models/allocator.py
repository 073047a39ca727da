"""glibc's malloc settings for the workflow's jobs: freed memory is kept for the next batch.

PyTorch on a CPU takes every activation tensor from malloc and frees it when the layer is done. With
glibc's defaults, blocks of a few MB are handed back to the kernel when freed (munmap, or a trim
of the heap's top) and the next batch faults them in again, 4 KB at a time, zeroed by the kernel.
Encoding 600 SciFact abstracts with MiniLM on one thread (``bench/allocator.py``, medians of 3):
1.5 million page faults and 44.0 CPU-seconds with glibc's defaults, 74,000 and 40.1 (0.91x) with
these settings, the same vectors, at a peak of 776 MB instead of 721 (on two threads 0.91x too, the
same peak).

* ``mmap_threshold``: blocks up to 32 MB (glibc's ceiling for it) come from the heap, not from a
  mapping of their own that is unmapped on free;
* ``trim_threshold``: up to 1 GB of free memory at the heap's top stays with the process;
* ``top_pad``: the heap grows 256 MB at a time (address space; pages count only once touched).

glibc reads them when a process starts, so the workflow sets them in the jobs' environment
(``workflow/rules/common.smk``); a ``GLIBC_TUNABLES`` of the user's own is left as it is. Other C
libraries (macOS, musl) ignore the variable. glibc also ignores a misspelt tunable without a word,
which is why a test checks that these take effect.
"""

from __future__ import annotations

GLIBC_TUNABLES = ":".join(
    (
        f"glibc.malloc.mmap_threshold={32 << 20}",
        f"glibc.malloc.trim_threshold={1 << 30}",
        f"glibc.malloc.top_pad={256 << 20}",
    )
)
