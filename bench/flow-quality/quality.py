#!/usr/bin/python3
"""The flow's quality side by side (bench/flow-quality/run.sh runs it): on the ground-truth clips of
tests/flowtruth.py and on real footage, for OpenCV plain, OpenCV with a forward-backward check, the
worker's --exact path, its fast path unfiltered (--no-filter) and filtered (the default), and each
check of the filter alone (--filter-checks NAME).
  quality.py WORKER SAMPLES OUT_DIR [--real vtest.avi,tree.avi] [--real-frames N] [--checks a,b,...]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "tests"))
import flowtruth as ft  # noqa: E402


def worker(binary, source, dump, *extra, frames=None):
    cmd = [binary, "bench", str(source), "--dump-vectors", str(dump), *extra]
    if frames:
        cmd += ["--frames", str(frames)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def python_variant(greys, fb):
    t0 = time.perf_counter()
    a = ft.opencv_flow(greys, forward_backward=fb)
    return a, (time.perf_counter() - t0) / max(len(greys), 1) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("worker")
    ap.add_argument("samples")
    ap.add_argument("out")
    ap.add_argument("--real", default="vtest.avi,tree.avi")
    ap.add_argument("--real-frames", type=int, default=300)
    ap.add_argument("--checks", default="texture,convergence,residual,forward_backward,neighbours")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = ft.make_clips(a.samples, out / "clips")
    variants = [("opencv", None), ("opencv+fb", None), ("exact", ["--exact"]), ("fast", ["--no-filter"]),
                ("fast+filter", []), ("fast+filter, BGR grey", ["--grey-from-bgr"])]
    variants += [(f"only {c}", ["--filter-checks", c]) for c in a.checks.split(",") if c]
    rows = []
    greys = {name: ft.read_grey(path) for name, path, _ in clips}
    for vname, extra in variants:
        scores, ms = [], []
        for name, path, truth in clips:
            if extra is None:
                ans, t = python_variant(greys[name], vname == "opencv+fb")
            else:
                r = worker(a.worker, path, out / f"{name}.{vname.replace(' ', '_')}.jsonl", *extra)
                ans, t = ft.load_dump(out / f"{name}.{vname.replace(' ', '_')}.jsonl"), r["stages"]["flow_ms"]
            scores.append(ft.score(truth, ans))
            ms.append(t)
        p = ft.pooled(scores)
        rows.append((vname, p, sum(ms) / len(ms)))
    print("ground-truth clips (%d clips x %d frames, 640x480, grid 16, threshold 1.2)" % (len(clips), ft.FRAMES))
    print(f"{'variant':<24}{'false/frame':>12}{'recall':>9}{'rel.':>7}{'EPE px':>8}{'max err px':>11}{'ms/frame':>10}")
    base = rows[0][1]["recall"]
    for vname, p, t in rows:
        print(f"{vname:<24}{p['false_per_frame']:>12.2f}{p['recall']:>9.4f}{p['recall'] / base:>7.3f}"
              f"{p['epe']:>8.4f}{p['max_err']:>11.2f}{t:>10.2f}")
    for video in [v for v in a.real.split(",") if v]:
        src = Path(a.samples) / video
        g = ft.read_grey(src)[:a.real_frames]
        print(f"\n{video} ({len(g)} frames): vectors/frame, share failing the forward-backward check "
              f"(cv2, {ft.FB_LIMIT} px), magnitude_max median / p95 px, ms/frame")
        for vname, extra in variants:
            if extra is None:
                ans, t = python_variant(g, vname == "opencv+fb")
            else:
                dump = out / f"{video}.{vname.replace(' ', '_')}.jsonl"
                r = worker(a.worker, src, dump, *extra, frames=len(g))
                ans, t = ft.load_dump(dump), r["stages"]["flow_ms"]
            fails, total = ft.forward_backward_failures(g, ans)
            mx = sorted(m for _v, m in ans.values() if m is not None)
            med = statistics.median(mx) if mx else 0
            p95 = mx[int(0.95 * (len(mx) - 1))] if mx else 0
            print(f"{vname:<24}{total / max(len(ans), 1):>8.1f}{100 * fails / max(total, 1):>8.1f}%"
                  f"{med:>9.2f}{p95:>9.2f}{t:>9.2f}")


if __name__ == "__main__":
    main()
