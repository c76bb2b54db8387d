"""Benchmark: TFRecord reading and conversion to HDF5 (records/s, peak memory).

Writes synthetic Objects-Room-shaped and CLEVR-with-masks-shaped GZIP TFRecords with
:func:`lom_pyro.data.tfrecord.write_tfrecord` (the real feature layout: one 1-byte
bytes_list entry per pixel value), at two file sizes each, then measures in a fresh
child process per run (so peak RSS belongs to that run alone):

* ``read``: :func:`~lom_pyro.data.tfrecord.iter_examples` + decoding every feature the
  converter uses, CRCs verified; ``read-nocrc`` the same with ``verify=False``;
* ``convert``: the full converter (decode, crop/resize for CLEVR, HDF5 write);
* ``tfrecord-pypi``: the ``tfrecord`` package's loader decoding the same features, only
  when it is importable (it needs ``protobuf``).

Peak memory is the child's peak RSS during the run (VmHWM, reset after the imports)
minus its RSS after the imports. Prints a table and
writes ``benchmarks/results/convert.json``.

    python benchmarks/convert.py            # 500/2000 Objects Room, 100/300 CLEVR records
    python benchmarks/convert.py --quick    # 100/400 and 15/60, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "convert.json"


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so it covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- synthetic files


def _boxes(rng: np.random.Generator, k: int, h: int, w: int) -> np.ndarray:
    """A label map (h, w) in [0, k): background 0 plus k-1 random rectangles."""
    labels = np.zeros((h, w), np.int64)
    for j in range(1, k):
        t, l = rng.integers(0, h - 8), rng.integers(0, w - 8)
        labels[t : t + rng.integers(4, h // 3), l : l + rng.integers(4, w // 3)] = j
    return labels


def _image(rng: np.random.Generator, labels: np.ndarray, k: int) -> np.ndarray:
    """Flat colours per label plus mild noise: compresses like a rendering, not like noise."""
    colours = rng.integers(0, 256, (k, 3))
    noise = rng.integers(-6, 7, (*labels.shape, 3))
    return np.clip(colours[labels] + noise, 0, 255).astype(np.uint8)


def objects_room_records(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        labels = _boxes(rng, 7, 64, 64)
        mask = (np.arange(7)[:, None, None] == labels).astype(np.uint8) * 255
        yield {"image": _image(rng, labels, 7), "mask": mask[..., None]}


def clevr_records(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        objects = int(rng.integers(3, 11))
        labels = _boxes(rng, objects + 1, 240, 320)
        mask = (np.arange(11)[:, None, None] == labels).astype(np.uint8) * 255
        vis = (np.arange(11) <= objects).astype(np.float32)
        codes = lambda hi, vis=vis: (rng.integers(1, hi + 1, 11) * vis).astype(np.uint8)  # noqa: E731
        yield {
            "image": _image(rng, labels, objects + 1), "mask": mask[..., None],
            "x": rng.normal(size=11).astype(np.float32), "y": rng.normal(size=11).astype(np.float32),
            "z": rng.normal(size=11).astype(np.float32), "rotation": rng.uniform(0, 360, 11).astype(np.float32),
            "pixel_coords": rng.normal(size=(11, 3)).astype(np.float32),
            "size": codes(2), "material": codes(2), "shape": codes(3), "color": codes(8), "visibility": vis,
        }  # fmt: skip


# ----------------------------------------------------------------------------- child runs

_FEATURES = {
    "objects_room": {"image": "uint8", "mask": "uint8"},
    "clevr": {"image": "uint8", "mask": "uint8", "visibility": "float32", "x": "float32", "y": "float32",
              "z": "float32", "rotation": "float32", "size": "uint8", "material": "uint8", "shape": "uint8",
              "color": "uint8"},
}  # fmt: skip


def child(mode: str, kind: str, path: str, workdir: str) -> dict:
    from lom_pyro.data import tfrecord
    from lom_pyro.data.convert import convert_clevr6, convert_objects_room

    np.zeros(1)  # numpy and friends are imported and warmed before the baseline
    base = _status_mib("VmRSS")
    exact_peak = _reset_peak()
    t0 = time.perf_counter()
    n, payload = 0, 0
    if mode in ("read", "read-nocrc"):
        for _, feats in tfrecord.iter_examples(path, verify=mode == "read"):
            for name, dtype in _FEATURES[kind].items():
                payload += (feats[name].uint8() if dtype == "uint8" else feats[name].float32()).nbytes
            n += 1
    elif mode == "convert":
        dst = os.path.join(workdir, f"{kind}-{os.getpid()}.h5")
        if kind == "objects_room":
            s = convert_objects_room(path, dst, progress=False)
        else:
            s = convert_clevr6(path, dst, size=96, progress=False)
        n = s.records_read
        payload = os.path.getsize(dst)
        os.remove(dst)
    elif mode == "tfrecord-pypi":
        from tfrecord.reader import tfrecord_loader

        description = {k: ("byte" if v == "uint8" else "float") for k, v in _FEATURES[kind].items()}
        for ex in tfrecord_loader(path, None, description, compression_type="gzip"):
            for name, dtype in _FEATURES[kind].items():
                v = ex[name]
                payload += (np.asarray(v).view(np.uint8) if dtype == "uint8" else np.asarray(v)).nbytes
            n += 1
    elapsed = time.perf_counter() - t0
    # VmHWM after the reset is the peak of this run alone; ru_maxrss (the fallback) includes imports
    peak = _status_mib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"records": n, "seconds": elapsed, "records_per_s": n / elapsed, "rss_after_imports_mib": base,
            "peak_rss_mib": peak, "peak_minus_base_mib": peak - base, "peak_is_exact": exact_peak,
            "decoded_or_written_bytes": payload, "crc32c": tfrecord.CRC32C_IMPLEMENTATION}  # fmt: skip


def run_child(mode: str, kind: str, path: Path, workdir: Path, extra_path: str | None) -> dict | None:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, __file__, "--child", mode, kind, str(path), str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        if mode == "tfrecord-pypi" and "No module named" in proc.stderr:
            return None
        raise RuntimeError(f"child {mode} {kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None, help="where the synthetic files go (default: a temp dir)")
    parser.add_argument(
        "--extra-path", default=None,
        help="a folder prepended to PYTHONPATH in the children (e.g. a pip --target holding google-crc32c, tfrecord)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=4, metavar=("MODE", "KIND", "PATH", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from lom_pyro.data.tfrecord import write_tfrecord

    sizes = ({"objects_room": (100, 400), "clevr": (15, 60)} if args.quick
             else {"objects_room": (500, 2000), "clevr": (100, 300)})
    make = {"objects_room": objects_room_records, "clevr": clevr_records}
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for kind, counts in sizes.items():
            for n in counts:
                path = work / f"{kind}_{n}.tfrecords"
                t0 = time.perf_counter()
                write_tfrecord(path, make[kind](n), gzip=True)
                write_s = time.perf_counter() - t0
                size_mib = path.stat().st_size / 2**20
                print(f"wrote {path.name}: {n} records, {size_mib:.1f} MiB gzip, in {write_s:.1f} s", flush=True)
                configs = [("read", None), ("read-nocrc", None), ("convert", None)]
                if args.extra_path:
                    configs += [("read", args.extra_path), ("convert", args.extra_path),
                                ("tfrecord-pypi", args.extra_path)]
                else:
                    configs += [("tfrecord-pypi", None)]
                for mode, extra in configs:
                    r = run_child(mode, kind, path, work, extra)
                    if r is None:
                        print(f"  {mode}: skipped (tfrecord package not importable)")
                        continue
                    r.update(kind=kind, mode=mode, file_records=n, file_mib=size_mib)
                    rows.append(r)
                    print(
                        f"  {mode:13s} crc={r['crc32c']:13s} {r['records_per_s']:8.1f} rec/s  "
                        f"peak +{r['peak_minus_base_mib']:6.1f} MiB", flush=True,
                    )  # fmt: skip

    print()
    header = (f"| {'dataset':12s} | {'records':>7s} | {'mode':13s} | {'CRC32C':13s} | {'records/s':>9s} "
              f"| {'peak RSS − base (MiB)':>21s} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['kind']:12s} | {r['file_records']:7d} | {r['mode']:13s} | {r['crc32c']:13s} | "
            f"{r['records_per_s']:9.1f} | {r['peak_minus_base_mib']:21.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "quick": args.quick, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
