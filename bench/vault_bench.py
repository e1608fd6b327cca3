"""Vault benchmarks: every figure against its baseline, measured in the same run.

    python3 bench/vault_bench.py [--size-mb 200] [--big-gb 1] [--repeat 5] [--dir D] [--json FILE]

1. encrypted write vs plain write of the same bytes from memory (durable: with
   fsync; and page cache only), and the size overhead;
2. ``doorbell encrypt``/``decrypt`` vs the ``age`` CLI as whole processes
   (start-up included), for an empty file, 1 MiB, 20 MiB and --size-mb MiB;
3. reading 64 bytes at the start, middle and end of a --big-gb GiB clip,
   in-process and through ``doorbell decrypt --offset --length``.

Baseline and ours are interleaved (the order alternates each repetition), each
output is deleted right after its run, and medians are reported: page-cache
write speed on a VM swings with memory state.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cryptography

from doorbell import vault

MiB = 1 << 20
ROWS: list[dict] = []


def add_row(name, base, ours, ratio, goal, met, unit="s", samples=None):
    ROWS.append(
        dict(benchmark=name, baseline=base, ours=ours, ratio=ratio, goal=goal, met=met, unit=unit)
        | ({"samples": samples} if samples else {})
    )


def fmt(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value:,.0f} B"
    if value >= 0.9995:
        return f"{value:.3g} s"
    if value >= 0.0009995:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def interleaved(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Each callable ``repeat`` times, interleaved, the order reversed every other round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for i in range(repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(runs[name]())
    return times


def unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# -- 1. encrypted write vs plain write ------------------------------------


def bench_write(work: Path, data: bytes, recipients: list, repeat: int) -> None:
    view = memoryview(data)
    plain_path, ours_path = work / "plain.bin", work / "ours.age"
    sizes: list[int] = []

    def plain(durable: bool) -> float:
        start = time.perf_counter()
        with open(plain_path, "wb", buffering=0) as out:
            for i in range(0, len(view), MiB):
                out.write(view[i : i + MiB])
            if durable:
                os.fsync(out.fileno())
        elapsed = time.perf_counter() - start
        unlink(plain_path)
        return elapsed

    def ours(durable: bool) -> float:
        start = time.perf_counter()
        # durable is the default: fsyncs while writing and before the rename
        writer = (
            vault.create(ours_path, recipients)
            if durable
            else vault.create(ours_path, recipients, durable=False)
        )
        for i in range(0, len(view), MiB):
            writer.write(view[i : i + MiB])
        writer.close()
        elapsed = time.perf_counter() - start
        sizes.append(ours_path.stat().st_size)
        unlink(ours_path)
        return elapsed

    mib = len(data) // MiB
    for label, durable in (("durable (fsync)", True), ("page cache", False)):
        got = interleaved(
            {"plain": lambda d=durable: plain(d), "ours": lambda d=durable: ours(d)}, repeat
        )
        base, mine = statistics.median(got["plain"]), statistics.median(got["ours"])
        ratio = mine / base
        add_row(
            f"write {mib} MiB, {label}", base, mine, ratio, "<= 1.05", ratio <= 1.05, samples=got
        )
    size_ratio = max(sizes) / len(data)
    add_row(
        f"file size, {mib} MiB",
        len(data),
        max(sizes),
        size_ratio,
        "<= 1.001",
        size_ratio <= 1.001,
        "B",
    )


# -- 2. our CLI vs the age CLI ---------------------------------------------


def doorbell_command() -> tuple[list[str], str]:
    """The installed console script of the Python running this, else the one on PATH, else -m."""
    beside = str(Path(sys.executable).with_name("doorbell"))
    on_path = shutil.which("doorbell")
    if os.access(beside, os.X_OK):
        note = (
            f"; PATH has {on_path}"
            if on_path and os.path.realpath(on_path) != os.path.realpath(beside)
            else ""
        )
        return [beside], f"{beside} (console script beside {sys.executable}{note})"
    if on_path:
        return [on_path], f"{on_path} (console script from PATH)"
    return [
        sys.executable,
        "-m",
        "doorbell",
    ], f"{sys.executable} -m doorbell (no console script found)"


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def race(age_cmd: list[str], our_cmd: list[str], out: str, repeat: int) -> dict[str, list[float]]:
    def once(cmd: list[str]) -> float:
        unlink(out)
        elapsed = run(cmd)
        unlink(out)
        return elapsed

    return interleaved({"age": lambda: once(age_cmd), "ours": lambda: once(our_cmd)}, repeat)


def faster_row(name: str, got: dict[str, list[float]], goal: bool = True) -> None:
    base, mine = statistics.median(got["age"]), statistics.median(got["ours"])
    ratio = base / mine
    met = ratio >= 1.2 if goal else None
    add_row(name, base, mine, ratio, ">= 1.2" if goal else "(none)", met, samples=got)


def same(path: Path, expected: Path) -> bool:
    """age -o makes no file for an empty plaintext."""
    return (path.read_bytes() if path.exists() else b"") == expected.read_bytes()


def bench_cli(work, age, ours, recipient, id_file, data, sizes_mib, repeat) -> None:
    plain, enc, out, check = (work / n for n in ("in.bin", "in.age", "out", "check"))
    for size_mib in sizes_mib:
        with open(plain, "wb") as f:
            f.write(data[: size_mib * MiB])
        unlink(enc)
        subprocess.run([age, "-r", recipient, "-o", enc, plain], check=True)
        label = "start-up: encrypt empty file, CLI" if not size_mib else f"{size_mib} MiB"

        age_enc = [age, "-r", recipient, "-o", out, plain]
        our_enc = [*ours, "encrypt", "-r", recipient, "-o", out, plain]
        # untimed first runs: check the round trip (and leave any bytecode cache written)
        run(our_enc)
        subprocess.run([age, "-d", "-i", id_file, "-o", check, out], check=True)
        assert same(check, plain), f"{size_mib} MiB: our encryption does not decrypt to the input"
        unlink(out, check)
        run(age_enc)
        unlink(out)
        got = race(age_enc, our_enc, out, repeat)
        faster_row(label if not size_mib else f"encrypt {label}, CLI", got, goal=bool(size_mib))
        if not size_mib:
            continue

        age_dec = [age, "-d", "-i", id_file, "-o", out, enc]
        our_dec = [*ours, "decrypt", "-i", id_file, "-o", out, enc]
        run(our_dec)
        assert same(out, plain), f"{size_mib} MiB: our decryption of age's file differs"
        unlink(out)
        run(age_dec)
        assert same(out, plain), f"{size_mib} MiB: age's decryption differs"
        unlink(out)
        got = race(age_dec, our_dec, out, repeat)
        faster_row(f"decrypt {label}, CLI", got)
    unlink(plain, enc, out, check)


# -- 3. random access --------------------------------------------------------


def bench_random_access(work, ours, identity, id_file, big: int, repeat: int) -> None:
    path = work / "big.mp4.age"
    block = os.urandom(8 * MiB)
    count = max(1, big // len(block))
    writer = vault.create(path, [identity.recipient], durable=False)
    for _ in range(count):
        writer.write(block)
    writer.close()
    size = count * len(block)
    offsets = {"start": 0, "middle": size // 2, "end": size - 64}
    expect = {k: (block * 2)[o % len(block) :][:64] for k, o in offsets.items()}

    def read_at(where: str) -> float:
        start = time.perf_counter()
        clip = vault.open_file(path, [identity])
        clip.seek(offsets[where])
        got = clip.read(64)
        clip.close()
        elapsed = time.perf_counter() - start
        assert got == expect[where], f"in-process read at the {where} differs"
        return elapsed

    def cli_at(where: str) -> float:
        cmd = [
            *ours,
            "decrypt",
            "-i",
            id_file,
            "--offset",
            str(offsets[where]),
            "--length",
            "64",
            path,
        ]
        start = time.perf_counter()
        got = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
        elapsed = time.perf_counter() - start
        assert got == expect[where], f"CLI read at the {where} differs"
        return elapsed

    for where in offsets:  # untimed: warm the page cache (and bytecode) for every place alike
        read_at(where)
        cli_at(where)
    inproc = interleaved({w: lambda w=w: read_at(w) for w in offsets}, max(50, repeat))
    cli = interleaved({w: lambda w=w: cli_at(w) for w in offsets}, repeat)
    gib = f"{size / (1 << 30):.3g} GiB"
    for label, got in (("in-process", inproc), ("CLI", cli)):
        base = statistics.median(got["start"])
        for where in ("middle", "end"):
            mine = statistics.median(got[where])
            ratio = mine / base
            add_row(
                f"read 64 B of {gib}: {where} vs start, {label}",
                base,
                mine,
                ratio,
                "~1.0 (<= 1.25)",
                ratio <= 1.25,
                samples={"start": got["start"], where: got[where]},
            )
    unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="MiB for write and CLI runs")
    parser.add_argument("--big-gb", type=float, default=1.0, help="GiB of the random-access clip")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--dir", default="/var/tmp", help="a fresh folder is made (and removed) in D"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()

    age = shutil.which("age")
    if not age:
        sys.exit("the age CLI is not on PATH")
    ours, ours_note = doorbell_command()
    age_version = subprocess.run(
        [age, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "age": f"{age} {age_version}",
        "doorbell": ours_note,
    }
    print(
        f"# {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"cryptography {machine['cryptography']}, age {age_version} ({age})\n# ours: {ours_note}",
        flush=True,
    )
    identity = vault.X25519Identity.generate()
    recipient = str(identity.recipient)
    work = Path(tempfile.mkdtemp(prefix="doorbell-bench-", dir=args.dir))
    print(f"# files in {work} (removed at the end)", flush=True)
    try:
        id_file = work / "identity.txt"
        with open(id_file, "w") as f:
            f.write(f"# public key: {recipient}\n{identity.secret()}\n")
        data = os.urandom(args.size_mb * MiB)
        bench_write(work, data, [identity.recipient], args.repeat)
        sizes = sorted({0, 1, 20, args.size_mb})
        bench_cli(work, age, ours, recipient, id_file, data, sizes, args.repeat)
        del data
        bench_random_access(
            work, ours, identity, id_file, int(args.big_gb * (1 << 30)), args.repeat
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = ("benchmark", "baseline", "ours", "ratio", "goal", "met?")
    lines = [
        (
            r["benchmark"],
            fmt(r["baseline"], r["unit"]),
            fmt(r["ours"], r["unit"]),
            f"{r['ratio']:.5f}" if r["unit"] == "B" else f"{r['ratio']:.3f}",
            r["goal"],
            "-" if r["met"] is None else "yes" if r["met"] else "no",
        )
        for r in ROWS
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    for cells in [header, tuple("-" * w for w in widths), *lines]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
    print(
        "# baseline: plain write (rows 1-2), plaintext size (3), age CLI (CLI rows), read at the "
        "start (read rows). ratio: ours/baseline, except CLI rows: age/ours (above 1 = ours faster)."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": vars(args), "rows": ROWS}, f, indent=2)


if __name__ == "__main__":
    main()
