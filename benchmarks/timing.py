"""Side-by-side timing: candidates run interleaved, so machine noise hits them alike; report ratios."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, as ``trainer=gpu`` trains; nothing on CPU (fp32)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


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


# Host-side events worth counting per step: kernel launches, copies, synchronisations, host reads.
HOST_EVENTS = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaMemcpyAsync",
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "aten::item",
    "aten::_local_scalar_dense",
    "aten::nonzero",
    "aten::pin_memory",
)


def profile_steps(
    run: Callable[[], object], steps: int, device: torch.device, trace: str | None = None, row_limit: int = 25
) -> tuple[str, float]:
    """``torch.profiler`` over ``steps`` calls: the top ops/kernels table (by self device time on CUDA,
    self CPU time otherwise), host events per step, and the device's busy time per step in ms (0 on CPU).

    The counts include one ``cudaDeviceSynchronize`` that ends the profiled region.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    synchronize(device)
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            run()
        synchronize(device)
    averages = profiler.key_averages()
    table = averages.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=row_limit)
    on_device = [event for event in averages if event.device_type == DeviceType.CUDA]
    kernels = sum(event.count for event in on_device if not event.key.startswith(("Memcpy", "Memset")))
    counts = {event.key: event.count for event in averages}
    copies = {event.key: event.count for event in on_device if event.key.startswith("Memcpy")}
    per_step = {name: counts[name] for name in HOST_EVENTS if name in counts} | copies
    summary = ", ".join(f"{name} {count / steps:g}" for name, count in per_step.items())
    busy_ms = sum(event.self_device_time_total for event in on_device) / steps / 1000.0
    if trace:
        profiler.export_chrome_trace(trace)
    lines = [table, f"per step ({steps} profiled): device kernels {kernels / steps:g}; {summary or 'none'}"]
    return "\n".join(lines), busy_ms
