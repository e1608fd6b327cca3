"""The service's life under systemd: start to READY=1, SIGTERM to exit, and a full disk.

    .venv/bin/python bench/lifecycle_bench.py [--repeat 5]

Each figure against a baseline in the same run:

- start → READY=1 over a real NOTIFY_SOCKET for `doorbell run` (synthetic camera,
  mock pins), against start → exit of `python -c "import doorbell.service"`
  (the imports alone);
- SIGTERM → exit 0 while a bell clip is being recorded, against SIGTERM → exit
  while idle (the clip's finishing is the difference; systemd allows 5 s), and
  the recording process's peak RSS against the imports' alone;
- a clip cut short by a full disk (a real 8 MB tmpfs; needs root): the time
  from the ENOSPC to the next clip recording, against starting a clip on a disk
  with room, and the bytes the cut clip kept (it ends at its last whole fragment).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def notify_socket(folder: Path) -> tuple[socket.socket, str]:
    path = str(folder / "n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    return sock, path


def wait_for(sock: socket.socket, line: str) -> None:
    while line not in sock.recv(4096).decode().splitlines():
        pass


def start_service(folder: Path, sock_path: str) -> subprocess.Popen:
    config = folder / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{folder / "data"}"\nmin_free_mb = 0\n'
        '[camera]\nbackend = "synthetic"\nwidth = 640\nheight = 360\n'
        '[web]\nlisten = "127.0.0.1:0"\n'
    )
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, GPIOZERO_PIN_FACTORY="mock")
    return subprocess.Popen(
        [sys.executable, "-m", "doorbell", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


IMPORTS = (
    "import resource, doorbell.service;"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"  # KiB on Linux
)


def start_to_ready() -> tuple[float, float, float]:
    """Seconds to import the service alone, to READY=1; the imports' peak RSS in MB."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", IMPORTS], check=True, capture_output=True)
        imports = time.perf_counter() - t0
        imports_rss = int(out.stdout) / 1024
        sock, path = notify_socket(folder)
        t0 = time.perf_counter()
        process = start_service(folder, path)
        wait_for(sock, "READY=1")
        ready = time.perf_counter() - t0
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        sock.close()
    return imports, ready, imports_rss


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def sigterm_to_exit(recording: bool) -> tuple[float, float]:
    """SIGTERM → exit of `doorbell demo`, camera running: idle, or three chunks into a bell clip."""
    sys.path.insert(0, str(ROOT))
    from tests.test_service import demo_recording  # the same steps the tests take

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        folder = Path(tmp)
        passphrase = folder / "pass.txt"
        passphrase.write_text("correct horse battery staple\n")
        process, _ = demo_recording(folder / "data", passphrase, bell=recording)
        rss = peak_rss_mb(process.pid)
        t0 = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        elapsed = time.perf_counter() - t0
        assert code == 0, code
    return elapsed, rss


def full_disk() -> dict | None:
    """The recorder on a real 8 MB tmpfs: ENOSPC → next clip recording, vs a clip start."""
    import numpy as np

    from doorbell import recorder as recorder_module
    from doorbell.codec import H264Encoder
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore, Keyring, Rules
    from doorbell.trigger import Start

    point = Path(tempfile.mkdtemp(dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)], capture_output=True
    )
    if mounted.returncode != 0:
        return None
    try:
        keyring = Keyring.in_data_dir(point)
        keyring.init("bench passphrase", work_factor=10)
        store = ClipStore(point, keyring.recipients, retention=Rules(min_free=0), clock=lambda: 2e6)
        for n in range(6):  # older clips, 1 MB each, for retention to delete
            old = store.new_clip("motion", start=1e6 - 1000 + n)
            old.video.write(os.urandom(1_000_000))
            old.finish(end=1e6 - 990 + n)
        encoder = H264Encoder(320, 240, 15.0)
        rng = np.random.default_rng(1)
        packets = []
        for i in range(45):
            frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            packets += encoder.encode(frame, i / 15)
        info = encoder.stream_info()
        starts: list[float] = []
        cut_at: list[float] = []
        original = recorder_module.Recorder._cut_short

        def timed_cut(self, at):  # ENOSPC seen → the next clip is recording
            cut_at.append(time.perf_counter())
            original(self, at)
            starts.append(time.perf_counter() - cut_at[-1])

        recorder_module.Recorder._cut_short = timed_cut
        rec = Recorder(store, info, pre_roll=1.0, wall_time=lambda t: 1e6 + t)
        rec.add(packets[:1])
        t0 = time.perf_counter()
        rec.apply([Start(at=0.0, since=0.0, trigger="bell")])
        first_start = time.perf_counter() - t0
        offset, fed = 0.0, 0
        while len(starts) < 3 and not rec.disk_full:
            rec.add(type(p)(p.at + offset, p.keyframe, p.data) for p in packets)
            fed += sum(len(p.data) for p in packets)
            offset += 3.0
        rec.stop(offset)
        recorder_module.Recorder._cut_short = original
        cut = rec.finished[0].clip
        store.close()
        return {
            "clip start, room on disk (ms)": first_start * 1000,
            "ENOSPC → next clip recording (ms)": statistics.median(starts) * 1000,
            "cut clip bytes kept": cut.bytes,
        }
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    imports, ready, imports_rss = zip(*(start_to_ready() for _ in range(args.repeat)), strict=True)
    idle, busy, rss = [], [], []
    for _ in range(args.repeat):
        idle.append(sigterm_to_exit(recording=False)[0])
        elapsed, peak = sigterm_to_exit(recording=True)
        busy.append(elapsed)
        rss.append(peak)
    rows = [
        ("start → READY=1 vs imports alone", statistics.median(imports), statistics.median(ready)),
        ("SIGTERM → exit 0: recording vs idle", statistics.median(idle), statistics.median(busy)),
    ]
    print(f"# medians of {args.repeat}; {sys.platform}, {os.cpu_count()} cores")
    print("| benchmark | baseline | ours | ratio |")
    print("| --- | --- | --- | --- |")
    for name, base, ours in rows:
        print(f"| {name} | {base * 1000:.0f} ms | {ours * 1000:.0f} ms | {ours / base:.2f} |")
    print(
        f"| SIGTERM → exit 0 while recording, worst of {args.repeat} | | {max(busy) * 1000:.0f} ms | |"
    )
    base, ours = statistics.median(imports_rss), statistics.median(rss)
    print(
        f"| peak RSS: `doorbell demo` recording 960x540 vs the imports alone "
        f"| {base:.0f} MB | {ours:.0f} MB | {ours / base:.2f} |"
    )
    disk = full_disk()
    if disk is None:
        print("| full disk | skipped: mounting a tmpfs needs root | | |")
    else:
        base = disk["clip start, room on disk (ms)"]
        ours = disk["ENOSPC → next clip recording (ms)"]
        print(
            f"| full disk: ENOSPC → next clip recording vs a clip start | {base:.1f} ms | {ours:.1f} ms | {ours / base:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "full_disk": disk}, indent=2))


if __name__ == "__main__":
    main()
