"""Side-by-side timing: candidates run interleaved, so machine noise hits them alike; report ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per call of each candidate, and its peak accelerator memory in MiB (0 on CPU)."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    peaks: dict[str, float] = dict.fromkeys(candidates, 0.0)
    for _ in range(repeats):
        for name, run in candidates.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            if device.type == "cuda":
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device) / 2**20)
    return {name: statistics.median(values) for name, values in times.items()}, peaks
