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
NOTES: list[str] = []


def add_row(name, base, ours, ratio, goal, met, unit="s", samples=None):
    ROWS.append(
        dict(benchmark=name, baseline=base, ours=ours, ratio=ratio, goal=goal, met=met, unit=unit)
        | ({"samples": samples} if samples else {})
    )


def fmt(value: float, unit: str = "s") -> str:
    """Bytes in full; seconds in s, ms or µs with 3 significant digits."""
    if unit == "B":
        return f"{value:,.0f} B"
    scale, name = next(
        (s, n)
        for s, n in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"))
        if value >= s * 0.9995 or n == "µs"
    )
    return f"{value / scale:#.3g}".rstrip(".") + f" {name}"


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


def bench_write(work: Path, view: memoryview, recipients: list, repeat: int) -> None:
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
        kwargs = {} if durable else {"durable": False}
        writer = vault.create(ours_path, recipients, **kwargs)
        for i in range(0, len(view), MiB):
            writer.write(view[i : i + MiB])
        writer.close()
        elapsed = time.perf_counter() - start
        sizes.append(ours_path.stat().st_size)
        unlink(ours_path)
        return elapsed

    mib = len(view) // MiB
    for label, d in (("durable (fsync)", True), ("page cache", False)):
        got = interleaved({"plain": lambda d=d: plain(d), "ours": lambda d=d: ours(d)}, repeat)
        base, mine = statistics.median(got["plain"]), statistics.median(got["ours"])
        ratio = mine / base
        add_row(f"write {mib} MiB, {label}", base, mine, ratio, "<= 1.05", ratio <= 1.05, "s", got)
    ratio = max(sizes) / len(view)
    add_row(f"file size, {mib} MiB", len(view), max(sizes), ratio, "<= 1.001", ratio <= 1.001, "B")


# -- 2. our CLI vs the age CLI ---------------------------------------------


def doorbell_command() -> tuple[list[str], str]:
    """The console script of the Python running this, else the one on PATH, else -m.

    Beside sys.executable first: on PATH there may be a pyenv shim (a bash script
    that runs ``pyenv exec``, over 100 ms a start), which is not what we measure.
    """
    beside = str(Path(sys.executable).with_name("doorbell"))
    on_path = shutil.which("doorbell")
    if os.access(beside, os.X_OK):
        other = on_path and os.path.realpath(on_path) != os.path.realpath(beside)
        return [beside], beside + (f" (PATH has {on_path}, not used)" if other else "")
    if on_path:
        return [on_path], f"{on_path} (from PATH)"
    return [sys.executable, "-m", "doorbell"], f"{sys.executable} -m doorbell (no script found)"


def run(cmd: list) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def race(age_cmd: list, our_cmd: list, out: Path, repeat: int) -> dict[str, list[float]]:
    def once(cmd: list) -> float:
        unlink(out)
        elapsed = run(cmd)
        unlink(out)
        return elapsed

    return interleaved({"age": lambda: once(age_cmd), "ours": lambda: once(our_cmd)}, repeat)


def faster_row(name: str, got: dict[str, list[float]], goal: bool = True) -> None:
    base, mine = statistics.median(got["age"]), statistics.median(got["ours"])
    met = base / mine >= 1.2 if goal else None
    add_row(name, base, mine, base / mine, ">= 1.2" if goal else "(none)", met, "s", got)


def same(path: Path, expected: Path) -> bool:
    """Equal contents (age -o makes no file for an empty plaintext)."""
    return (path.read_bytes() if path.exists() else b"") == expected.read_bytes()


def bench_cli(work, age, ours, recipient, id_file, data, sizes_mib, repeat) -> None:
    plain, enc, out, check = (work / n for n in ("in.bin", "in.age", "out", "check"))
    for mib in sizes_mib:
        plain.write_bytes(data[: mib * MiB])
        unlink(enc)
        subprocess.run([age, "-r", recipient, "-o", enc, plain], check=True)

        age_enc = [age, "-r", recipient, "-o", out, plain]
        our_enc = [*ours, "encrypt", "-r", recipient, "-o", out, plain]
        # untimed first runs: the round trip is checked (and bytecode caches are warm)
        run(our_enc)
        subprocess.run([age, "-d", "-i", id_file, "-o", check, out], check=True)
        assert same(check, plain), f"{mib} MiB: our encryption does not decrypt to the input"
        unlink(out, check)
        run(age_enc)
        got = race(age_enc, our_enc, out, repeat)
        if not mib:
            faster_row("start-up: encrypt empty file, CLI", got, goal=False)
            runs = {f: lambda f=f: run([sys.executable, f, "-c", "pass"]) for f in ("-S", "-I")}
            bare = {f: fmt(statistics.median(t)) for f, t in interleaved(runs, repeat).items()}
            NOTES.append(
                f"# start-up: python3 -S -c pass {bare['-S']} (no site-packages), "
                f"python3 -I -c pass {bare['-I']} (site-packages .pth files run), "
                f"doorbell encrypt of an empty file {fmt(statistics.median(got['ours']))}"
            )
            continue
        faster_row(f"encrypt {mib} MiB, CLI", got)

        age_dec = [age, "-d", "-i", id_file, "-o", out, enc]
        our_dec = [*ours, "decrypt", "-i", id_file, "-o", out, enc]
        run(our_dec)
        assert same(out, plain), f"{mib} MiB: our decryption of age's file differs"
        run(age_dec)
        assert same(out, plain), f"{mib} MiB: age's decryption differs"
        faster_row(f"decrypt {mib} MiB, CLI", race(age_dec, our_dec, out, repeat))
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
        cmd = [*ours, "decrypt", "-i", id_file, "--offset", str(offsets[where]), "--length", "64"]
        start = time.perf_counter()
        got = subprocess.run([*cmd, path], check=True, stdout=subprocess.PIPE).stdout
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
            name = f"read 64 B of {gib}: {where} vs start, {label}"
            samples = {"start": got["start"], where: got[where]}
            add_row(name, base, mine, ratio, "~1.0 (<= 1.25)", ratio <= 1.25, "s", samples)
    unlink(path)


def print_table() -> None:
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
        "# baseline: plain write, plaintext size, age CLI, or a read at the start. "
        "ratio: ours/baseline, except the CLI rows: age/ours (above 1 = ours faster)."
    )
    print("\n".join(NOTES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    age_version = subprocess.run([age, "--version"], capture_output=True, text=True, check=True)
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "age": f"{age_version.stdout.strip()} ({age})",
        "doorbell": ours_note,
    }
    print(
        f"# {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"cryptography {machine['cryptography']}, age {machine['age']}\n# ours: {ours_note}",
        flush=True,
    )
    # As pip installs it: bytecode compiled once, not at every start (this machine
    # sets PYTHONDONTWRITEBYTECODE, so warm-up runs would not write it).
    package = str(Path(vault.__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
    identity = vault.X25519Identity.generate()
    recipient = str(identity.recipient)
    work = Path(tempfile.mkdtemp(prefix="doorbell-bench-", dir=args.dir))
    print(f"# files in {work} (removed at the end)", flush=True)
    try:
        id_file = work / "identity.txt"
        id_file.write_text(f"# public key: {recipient}\n{identity.secret()}\n")
        data = os.urandom(max(args.size_mb, 20) * MiB)
        bench_write(work, memoryview(data)[: args.size_mb * MiB], [identity.recipient], args.repeat)
        sizes = sorted({0, 1, 20, args.size_mb})
        bench_cli(work, age, ours, recipient, id_file, data, sizes, args.repeat)
        del data
        big = int(args.big_gb * (1 << 30))
        bench_random_access(work, ours, identity, id_file, big, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table()
    if args.json:
        results = {"machine": machine, "args": vars(args), "rows": ROWS, "notes": NOTES}
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
