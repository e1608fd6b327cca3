"""What /proc says about a process the bench launched: its tree's CPU seconds, its own
peak resident set (VmHWM: Linux carries a parent's high-water mark into a child's
``ru_maxrss``, so that is never used), and runs sampled while they go.

    cpu_s, peak_mb = measure(["doorbell", "replay", "porch.mp4", ...])
    trace = watch(command, output_folder, log, stop_after=130.0)
    trace.per_minute(5.0, 120.0), trace.peak_mb
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = 0.25  # seconds between samples of /proc


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, with what each
    has reaped (cutime, cstime); 0 for a process that has gone."""
    total, todo = 0, [pid]
    while todo:
        here = todo.pop()
        try:
            with open(f"/proc/{here}/stat") as file:
                total += sum(int(v) for v in file.read().rsplit(")", 1)[1].split()[11:15])
            for task in Path(f"/proc/{here}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int) -> float:
    """The peak resident set of ``pid`` itself (VmHWM, MB); 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(command: list[str], log: Path | None = None) -> tuple[float, float]:
    """Run ``command`` to its end (stdout to nowhere, stderr to ``log``): its CPU seconds
    (its own and its children's, from wait4) and its peak RSS in MB (its own VmHWM, read
    every 20 ms until it exits). Exits the bench if it fails."""
    with open(log or os.devnull, "wb") as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    peak = 0.0
    while True:
        peak = max(peak, vm_hwm_mb(child.pid))
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed" + (f" (see {log})" if log else ""))
    return usage.ru_utime + usage.ru_stime, peak


def _bytes_in(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass
class Trace:
    """One run as /proc saw it: (seconds since launch, tree CPU-s, bytes in the output
    folder) samples, and the launched process's peak RSS (MB) and exit status."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    peak_mb: float = 0.0
    status: int | None = None

    def at(self, when: float, column: int) -> float:
        """A column's value ``when`` seconds after launch, interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= when), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= when), default=self.samples[-1])
        if after[0] == before[0]:
            return before[column]
        share = (when - before[0]) / (after[0] - before[0])
        return before[column] + (after[column] - before[column]) * share

    def per_minute(self, start: float, end: float) -> float:
        """CPU-s per minute of wall time from ``start`` to ``end`` seconds after launch."""
        return (self.at(end, 1) - self.at(start, 1)) * 60 / (end - start)


def watch(command: list[str], output: Path, log: Path, stop_after: float | None) -> Trace:
    """Run ``command`` (stdout, stderr to ``log``), sampling it and ``output`` every TICK;
    SIGTERM at ``stop_after`` seconds (None: let it end), SIGKILL 30 s later."""
    trace = Trace()
    with open(log, "wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    launched, stop = time.monotonic(), stop_after
    while True:
        now, hwm, cpu = time.monotonic() - launched, vm_hwm_mb(child.pid), tree_cpu(child.pid)
        if child.poll() is not None:
            break
        trace.peak_mb = max(trace.peak_mb, hwm)
        trace.samples.append((now, cpu, _bytes_in(output)))
        if stop is not None and now >= stop:
            child.send_signal(signal.SIGTERM if now < stop + 30 else signal.SIGKILL)
            stop += 30
        time.sleep(TICK)
    trace.status = child.returncode
    return trace
