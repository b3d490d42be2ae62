"""Throughput and memory of the CT slice pipeline: cached tf.data vs naive per-slice decoding.

    python benchmarks/bench_ct_pipeline.py                 # 24 phantom volumes, 512x512
    python benchmarks/bench_ct_pipeline.py --volumes 12 --naive-slices 10

Steps (each measurement in its own subprocess, so peak memory is that of the measured work):
1. generate a phantom of ``--volumes`` volumes (512x512x40, MSD layout) and a copy of its first
   quarter (hard links) to see whether memory grows with the number of volumes;
2. build the preprocessing cache at 512x512 (one decode per volume) and time it;
3. cached: ``--steps`` batches of ``data.test(batch)`` (every slice, no augmentation, repeated),
   on the full cache and on the quarter one; also the augmented training pipeline, for reference;
4. naive: per requested slice, ``nibabel.load(path).get_fdata()[..., z]`` and the window, as a
   loader without a cache does (random slices, no reuse between them).
Prints slices/s, the speed-up and the peak resident memory (ru_maxrss) of each process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def cpu_seconds() -> float:
    """CPU time of this process, all threads: on a shared machine, less noisy than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_cached(args) -> dict:
    from data.ct import CTDataConfig, prepare_ct_data

    cfg = CTDataConfig(data_dir=args.data, image_size=args.size, cache_dir=args.cache, verbose=False,
                       augment=args.augment, test_fraction=0.5, val_fraction=0.1)
    data = prepare_ct_data(cfg)
    ds = data.train(args.batch) if args.augment else data.test(args.batch, all_slices=True)
    for _ in ds.take(2):  # warm-up: tracing, thread pools
        pass
    rss_before = peak_rss_mb()
    n, start, cpu = 0, time.perf_counter(), cpu_seconds()
    for x, _ in ds.repeat().take(args.steps):  # the same number of batches whatever the cache size
        n += int(x.shape[0])
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"slices": n, "seconds": seconds, "slices_per_s": n / seconds, "cpu_s": cpu,
            "peak_rss_mb_before_loop": rss_before, "peak_rss_mb": peak_rss_mb(), "cache_slices": len(data.cache)}


def worker_naive(args) -> dict:
    import nibabel as nib
    import numpy as np

    from data.msd import list_msd_cases
    from data.window import apply_window

    cases = list_msd_cases(args.data)
    rng = np.random.default_rng(0)
    n, start, cpu = 0, time.perf_counter(), cpu_seconds()
    for _ in range(args.naive_slices):
        case = cases[int(rng.integers(len(cases)))]
        z = int(rng.integers(40))
        image = nib.load(str(case.image)).get_fdata()[:, :, z]  # decodes the whole .nii.gz
        label = np.asarray(nib.load(str(case.label)).dataobj)[:, :, z]
        _ = apply_window(image, (-1000, 400)), label == 1
        n += 1
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"slices": n, "seconds": seconds, "slices_per_s": n / seconds, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}


def run_worker(mode: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=24, help="phantom volumes (512x512x40 each) (default: 24)")
    parser.add_argument("--size", type=int, default=512, help="slice size fed to the model (default: 512)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default: 32)")
    parser.add_argument("--steps", type=int, default=45, help="batches read by each cached measurement (default: 45)")
    parser.add_argument("--naive-slices", type=int, default=20, help="slices read the naive way (default: 20)")
    parser.add_argument("--workdir", default=None, help="phantom and cache folder (default: a new temp folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--augment", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker_cached(args) if args.worker == "cached" else worker_naive(args)
        print(json.dumps(result))
        return

    from data.ct import CTDataConfig, prepare_ct_data
    from data.msd import list_msd_cases
    from data.phantom import PhantomSpec, make_lung_phantom

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ct_"))
    full = work / f"phantom{args.volumes}"
    if not (full / "phantom.json").is_file():
        start = time.perf_counter()
        make_lung_phantom(full, PhantomSpec(n_volumes=args.volumes))
        print(f"phantom: {args.volumes} volumes of 512x512x40 generated in {time.perf_counter() - start:.1f} s")
    n_small = max(args.volumes // 4, 4)
    quarter = work / f"phantom{n_small}"
    if not (quarter / "dataset.json").is_file():  # first quarter of the volumes, hard-linked
        meta = json.loads((full / "dataset.json").read_text())
        meta["training"] = meta["training"][:n_small]
        for sub in ("imagesTr", "labelsTr"):
            (quarter / sub).mkdir(parents=True, exist_ok=True)
        for entry in meta["training"]:
            for key in ("image", "label"):
                target = quarter / entry[key]
                if not target.exists():
                    os.link(full / entry[key], target)
        (quarter / "dataset.json").write_text(json.dumps(meta))

    cache = work / "cache"
    for data_dir in (quarter, full):
        start = time.perf_counter()
        data = prepare_ct_data(CTDataConfig(data_dir=str(data_dir), image_size=args.size, cache_dir=str(cache),
                                            verbose=False, test_fraction=0.5, val_fraction=0.1))
        print(f"cache: {len(list_msd_cases(data_dir))} volumes, {len(data.cache)} slices at {args.size}x{args.size}: "
              f"ready in {time.perf_counter() - start:.1f} s (built once, then reused)")

    load_before = os.getloadavg()[0]
    common = {"data": full, "cache": cache, "size": args.size, "batch": args.batch, "steps": args.steps}
    cached = run_worker("cached", **common)
    cached_small = run_worker("cached", **{**common, "data": quarter})
    augmented = run_worker("cached", **{**common, "augment": 1, "steps": max(args.steps // 6, 2)})
    naive = run_worker("naive", data=full, naive_slices=args.naive_slices)

    print(f"\nCT slice pipeline at {args.size}x{args.size}, batch {args.batch}, {os.cpu_count()} CPU cores "
          "(shared machine: other jobs may have run at the same time)")
    print(f"load average before the measurements: {load_before:.1f} (1 min)")
    print("| pipeline | slices | wall s | slices/s (wall) | CPU s | slices per CPU-second | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [
        (f"cached tf.data, test slices, {args.volumes} volumes", cached),
        (f"cached tf.data, test slices, {n_small} volumes", cached_small),
        (f"cached tf.data, training with augmentation, {args.volumes} volumes", augmented),
        ("naive nibabel decode per slice", naive),
    ]
    for name, r in rows:
        print(f"| {name} | {r['slices']} | {r['seconds']:.2f} | {r['slices_per_s']:.1f} | {r['cpu_s']:.2f} | "
              f"{r['slices'] / max(r['cpu_s'], 1e-9):.1f} | {r['peak_rss_mb']:.0f} |")
    speedup = cached["slices_per_s"] / naive["slices_per_s"]
    per_cpu = (cached["slices"] / cached["cpu_s"]) / (naive["slices"] / naive["cpu_s"])
    print(f"\nspeed-up of the cached pipeline over naive decoding: {speedup:.0f}x wall, {per_cpu:.0f}x per CPU-second "
          f"(target >= 100x); cached: {cached['slices_per_s']:.0f} slices/s wall (target >= 1000); "
          f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"peak RSS with {n_small} vs {args.volumes} volumes in the cache: "
          f"{cached_small['peak_rss_mb']:.0f} MB vs {cached['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
