"""Vault benchmarks: every figure against its baseline, measured in the same run.

    python3 bench/vault_bench.py [--size-mb 200] [--big-gb 1] [--repeat 5] [--json FILE]

1. encrypted write vs plain write of the same bytes (durable: with fsync; and
   page cache only), and the size overhead;
2. ``doorbell encrypt``/``decrypt`` vs the ``age`` CLI, as whole processes;
3. reading 64 bytes at the start, middle and end of a big clip.

Runs are interleaved (the order alternates each repetition) and medians are
reported: page-cache write speed on a VM swings with memory state.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cryptography

from doorbell import vault

MiB = 1 << 20
ROWS: list[dict] = []


def row(name: str, base: float, ours: float, ratio: float, goal: str, met: bool, unit: str = "s"):
    ROWS.append(
        {
            "benchmark": name,
            "baseline": base,
            "ours": ours,
            "ratio": ratio,
            "goal": goal,
            "met": met,
            "unit": unit,
        }
    )


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{value:.4g}"


def medians(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    """Run each callable ``repeat`` times, interleaved, alternating order; medians."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for i in range(repeat):
        for name in names if i % 2 == 0 else reversed(names):
            times[name].append(runs[name]())
    return {name: statistics.median(values) for name, values in times.items()}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- 1. encrypted write vs plain write ------------------------------------


def bench_write(work: Path, data: bytes, recipients: list, repeat: int) -> None:
    view = memoryview(data)
    plain_path, ours_path = work / "plain.bin", work / "ours.age"

    def plain(sync: bool) -> float:
        plain_path.unlink(missing_ok=True)
        start = time.perf_counter()
        with open(plain_path, "wb", buffering=0) as out:
            for i in range(0, len(view), MiB):
                out.write(view[i : i + MiB])
            if sync:
                os.fsync(out.fileno())
        return time.perf_counter() - start

    def ours(sync: bool) -> float:
        ours_path.unlink(missing_ok=True)
        start = time.perf_counter()
        writer = vault.create(ours_path, recipients, durable=sync)
        for i in range(0, len(view), MiB):
            writer.write(view[i : i + MiB])
        writer.close()
        return time.perf_counter() - start

    size_mb = len(data) // MiB
    for label, sync in (("durable (fsync)", True), ("page cache", False)):
        got = medians({"plain": lambda s=sync: plain(s), "ours": lambda s=sync: ours(s)}, repeat)
        ratio = got["ours"] / got["plain"]
        row(
            f"write {size_mb} MB, {label}",
            got["plain"],
            got["ours"],
            ratio,
            "<= 1.05",
            ratio <= 1.05,
        )
    size_ratio = ours_path.stat().st_size / len(data)
    row(
        f"file size, {size_mb} MB",
        len(data),
        ours_path.stat().st_size,
        size_ratio,
        "<= 1.001",
        size_ratio <= 1.001,
        "B",
    )
    plain_path.unlink(missing_ok=True)
    ours_path.unlink(missing_ok=True)


# -- 2. our CLI vs the age CLI ---------------------------------------------


def doorbell_command() -> list[str]:
    """The ``doorbell`` script installed beside this Python, as an owner runs it."""
    script = Path(sys.executable).with_name("doorbell")
    return [str(script)] if script.exists() else [sys.executable, "-m", "doorbell"]


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def race(age_cmd: list, our_cmd: list, outputs: list[Path], repeat: int) -> dict[str, float]:
    """Median wall time of each command as a whole process, outputs removed before each run."""

    def once(cmd: list) -> float:
        for path in outputs:
            path.unlink(missing_ok=True)
        return run(cmd)

    return medians({"age": partial(once, age_cmd), "ours": partial(once, our_cmd)}, repeat)


def faster_row(name: str, got: dict[str, float]) -> None:
    ratio = got["age"] / got["ours"]
    row(name, got["age"], got["ours"], ratio, ">= 1.2", ratio >= 1.2)


def bench_cli(
    work: Path, identity: vault.X25519Identity, sizes_mb: list[float], repeat: int
) -> None:
    ours = doorbell_command()
    recipient = str(identity.recipient)
    id_file = work / "identity.txt"
    id_file.write_text(f"# public key: {recipient}\n{identity.secret()}\n")
    block = os.urandom(8 * MiB)
    plain, enc, out_a, out_b = (work / n for n in ("in.bin", "in.age", "out.a", "out.b"))
    for size_mb in sizes_mb:
        size = int(size_mb * MiB)
        plain.write_bytes((block * (size // len(block) + 1))[:size])
        subprocess.run(["age", "-r", recipient, "-o", enc, plain], check=True)
        label = f"{size_mb:g} MB" if size else "empty file (start-up)"

        our_encrypt = [*ours, "encrypt", "-r", recipient, "-o", out_b, plain]
        got = race(
            ["age", "-r", recipient, "-o", out_a, plain], our_encrypt, [out_a, out_b], repeat
        )
        out_b.unlink(missing_ok=True)
        run(our_encrypt)
        check = subprocess.run(["age", "-d", "-i", id_file, out_b], check=True, capture_output=True)
        assert check.stdout == plain.read_bytes(), "our encryption did not round-trip through age"
        faster_row(f"encrypt {label}, CLI vs age", got)

        our_decrypt = [*ours, "decrypt", "-i", id_file, "-o", out_b, enc]
        got = race(
            ["age", "-d", "-i", id_file, "-o", out_a, enc], our_decrypt, [out_a, out_b], repeat
        )
        out_b.unlink(missing_ok=True)
        run(our_decrypt)
        assert out_b.read_bytes() == plain.read_bytes(), "our decryption of age's file differs"
        faster_row(f"decrypt {label}, CLI vs age", got)
    for path in (plain, enc, out_a, out_b):
        path.unlink(missing_ok=True)


# -- 3. random access --------------------------------------------------------


def bench_random_access(work: Path, identity: vault.X25519Identity, big: int, repeat: int) -> None:
    path = work / "big.mp4.age"
    block = memoryview(os.urandom(8 * MiB))
    writer = vault.create(path, [identity.recipient], durable=False)
    for _ in range(big // len(block)):
        writer.write(block)
    writer.close()
    id_file = work / "identity.txt"
    id_file.write_text(identity.secret() + "\n")
    size = big // len(block) * len(block)
    offsets = {"start": 0, "middle": size // 2, "end": size - 64}

    def read_at(offset: int) -> float:
        start = time.perf_counter()
        with vault.open_file(path, [identity]) as clip:
            clip.seek(offset)
            assert len(clip.read(64)) == 64
        return time.perf_counter() - start

    for offset in offsets.values():
        read_at(offset)  # warm the page cache for every place alike
    inproc = medians({k: lambda o=o: read_at(o) for k, o in offsets.items()}, 51)
    cli = medians(
        {
            k: lambda o=o: run(
                [
                    *doorbell_command(),
                    "decrypt",
                    "-i",
                    id_file,
                    "--offset",
                    str(o),
                    "--length",
                    "64",
                    path,
                ]
            )
            for k, o in offsets.items()
        },
        repeat,
    )
    gib = f"{size / (1 << 30):.3g} GiB"
    for where in ("middle", "end"):
        for label, got in (("in-process", inproc), ("CLI", cli)):
            ratio = got[where] / got["start"]
            row(
                f"read 64 B at the {where} vs start of {gib}, {label}",
                got["start"],
                got[where],
                ratio,
                "about 1.0 (not slower)",
                ratio <= 1.25,
            )
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--big-gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp", help="where the test files go (not a tmpfs)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    age_version = subprocess.run(
        ["age", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, age {age_version}; ours: {' '.join(doorbell_command())}"
    )
    # As installed by pip: bytecode compiled once, not at every start.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(vault.__file__).parents[1])], check=True
    )
    identity = vault.X25519Identity.generate()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="doorbell-bench-") as tmp:
        work = Path(tmp)
        bench_write(work, os.urandom(args.size_mb * MiB), [identity.recipient], args.repeat)
        bench_cli(work, identity, [0, 1, 20, args.size_mb], args.repeat)
        bench_random_access(work, identity, int(args.big_gb * (1 << 30)), args.repeat)

    header = ("benchmark", "baseline", "ours", "ratio", "goal", "met?")
    lines = [
        (
            r["benchmark"],
            fmt(r["baseline"], r["unit"]),
            fmt(r["ours"], r["unit"]),
            f"{r['ratio']:.3f}",
            r["goal"],
            "yes" if r["met"] else "no",
        )
        for r in ROWS
    ]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    for cells in [header, tuple("-" * w for w in widths), *lines]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(ROWS, indent=2))


if __name__ == "__main__":
    main()
