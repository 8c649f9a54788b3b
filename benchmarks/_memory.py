"""Peak memory of a stretch of work in this process: the GPU's allocator, or the CPU's RSS.

On Linux the kernel's peak resident set (``VmHWM``) can be reset to the current RSS by
writing 5 to ``/proc/self/clear_refs``, so the peak of one stretch of work is measured
exactly, whatever the process did before. Elsewhere the growth of ``ru_maxrss`` is used,
which reads 0 when an earlier step of the process peaked higher.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _vm_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``, then ``peak.mib``: the peak above the start.

    CUDA: ``torch.cuda.max_memory_allocated`` over the block. CPU: the peak RSS over the
    block minus the RSS at its start, in MiB.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.mib = float("nan")
        self.method = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        try:
            _CLEAR_REFS.write_text("5")
            self._start = _vm_kib("VmRSS")
            self.method = "peak RSS (VmHWM reset at the start)"
        except OSError:
            self._start = None
        if self._start is None:
            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.method = "ru_maxrss growth"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._start
            self.mib = peak / 2**20
        elif self.method.startswith("peak RSS"):
            self.mib = ((_vm_kib("VmHWM") or 0) - self._start) / 1024
        else:
            self.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start) / 1024
