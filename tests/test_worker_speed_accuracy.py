"""The worker's fast flow path (Lucas-Kanade only where the picture changed), its reliability filter
off (`--no-filter`), against its exact path (Lucas-Kanade on every grid point), frame by frame on real footage (vtest.avi, its 768x576 and
1280x720 H.264 copies, Megamind.avi; 150 frames each): the fast path must find at least
98% of the exact path's vectors above the threshold, each within 0.5 px, and add at most 2% others.
Both paths run through `vectorflow-worker bench --dump-vectors FILE` (one JSON line per frame).
"""
import json
import math
import os
import subprocess

import pytest

from conftest import OUT

FRAMES = 150
THRESHOLD = 1.2


def bench(bin_dir, source, *extra, env=None):
    r = subprocess.run([str(bin_dir / "vectorflow-worker"), "bench", str(source), "--frames", str(FRAMES), *extra],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def load(path, maxima=None):
    """Frame -> {point: vector} of a --dump-vectors file; each frame's magnitude_max into `maxima`."""
    frames = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            frames[d["frame"]] = {(v[0], v[1]): (v[2], v[3]) for v in d["vectors"]}
            if maxima is not None:
                maxima[d["frame"]] = d["magnitude_max"]
    return frames


def agreement(a, b):
    """(vectors of a, those b has within 0.5 px, vectors of b at points a has none), over all frames."""
    total = found = extra = 0
    for frame, va in a.items():
        vb = b[frame]
        for point, (dx, dy) in va.items():
            total += 1
            if point in vb and math.hypot(dx - vb[point][0], dy - vb[point][1]) <= 0.5:
                found += 1
        extra += sum(1 for point in vb if point not in va)
    return total, found, extra


# Surveillance footage (a fixed camera) leaves most of the grid to the gate; a film with camera
# motion (Megamind.avi) leaves little, but the answer must hold there too.
@pytest.mark.parametrize("video,max_lk_share", [("vtest.avi", 0.5), ("vtest.mp4", 0.5), ("vtest720.mp4", 0.5),
                                                ("Megamind.avi", 0.95)])
def test_fast_path_finds_the_exact_paths_vectors(bin_dir, samples, video, max_lk_share):
    out = OUT / "worker-speed"
    out.mkdir(parents=True, exist_ok=True)
    exact_file, fast_file = out / f"{video}.exact.jsonl", out / f"{video}.fast.jsonl"
    exact = bench(bin_dir, samples / video, "--exact", "--dump-vectors", exact_file)
    # Unfiltered: the comparison is of the gate and the tracker; the filter drops exact vectors on purpose.
    # On the exact path's pixels (its grey from OpenCV's BGR frame): the luma plane the shipping path
    # reads differs by a grey level here and there, which moves the untrustworthy vectors the filter
    # exists to drop (test_luma_grey_keeps_the_reported_vectors compares the shipping path on both).
    fast = bench(bin_dir, samples / video, "--no-filter", "--grey-from-bgr", "--dump-vectors", fast_file)
    assert exact["mode"] == "exact" and fast["mode"] == "fast"
    assert not exact["vector_filter"] and not fast["vector_filter"]
    assert exact["frames"] == fast["frames"] == FRAMES
    assert exact["frames_from_decoder"] == fast["frames_from_decoder"] == 0  # both through OpenCV's read
    a, b = load(exact_file), load(fast_file)
    assert set(a) == set(b) == set(range(1, FRAMES + 1)), "one line per frame in both dumps"
    for va in a.values():
        for dx, dy in va.values():
            assert math.hypot(dx, dy) > THRESHOLD - 1e-3  # dumped with 4 decimals
    total, found, extra = agreement(a, b)
    assert total > 25 * FRAMES, f"{video} has moving people: many vectors expected, got {total}"
    assert found >= 0.98 * total, f"fast path found {found}/{total} of the exact vectors"
    assert extra <= 0.02 * total, f"fast path added {extra} vectors to {total}"
    # The gate must actually spare work, or the fast path is only a slower copy of the exact one.
    assert fast["lk_points_per_frame"] < max_lk_share * exact["lk_points_per_frame"], (fast, exact)
    assert fast["vectors_above_threshold"] == sum(len(v) for v in b.values())


def test_exact_flow_from_the_environment_and_decode_only(bin_dir, samples):
    env = dict(os.environ, EXACT_FLOW="true")
    r = bench(bin_dir, samples / "vtest.avi", env=env)
    assert r["mode"] == "exact" and r["lk_points_per_frame"] > 1500  # 48 x 36 grid, first frame has none
    d = bench(bin_dir, samples / "vtest.avi", "--decode-only")
    assert d["mode"] == "decode-only" and d["frames"] == FRAMES
    assert d["vectors_above_threshold"] == 0 and d["stages"]["flow_ms"] == 0


def test_bench_rejects_a_missing_dump_file_name(bin_dir, samples, tmp_path):
    w = str(bin_dir / "vectorflow-worker")
    r = subprocess.run([w, "bench", str(samples / "vtest.avi"), "--frames", "5", "--dump-vectors"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--dump-vectors" in r.stderr
    r = subprocess.run([w, "bench", str(samples / "vtest.avi"), "--frames", "5", "--dump-vectors",
                        str(tmp_path / "missing-dir" / "x.jsonl")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot write" in r.stderr


# The fast path's tracker has an AVX2 and a portable set of kernels (chosen by CPU), and splits its
# points over OpenCV's threads when --vf-threads > 1. All of them must give the very same vectors:
# every step is integer arithmetic or the same float operations in the same order. That holds for
# the shipping path, reliability filter on (the default): its checks run on those vectors. (The
# video decoder also gets --vf-threads threads; its frames are the same either way.)
@pytest.mark.parametrize("video", ["vtest.avi", "vtest720.mp4"])
def test_kernels_and_threads_agree_exactly(bin_dir, samples, video, tmp_path):
    frames = "60"
    runs = {
        "avx2-1": ([], {}),
        "avx2-2": (["--vf-threads", "2"], {}),
        "portable": ([], {"VECTORFLOW_PORTABLE_LK": "1"}),
    }
    dumps = {}
    for name, (extra, env) in runs.items():
        path = tmp_path / f"{name}.jsonl"
        r = subprocess.run([str(bin_dir / "vectorflow-worker"), "bench", str(samples / video), "--frames", frames,
                            "--dump-vectors", str(path), *extra],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, **env))
        assert r.returncode == 0, r.stderr
        dumps[name] = path.read_text()
    assert dumps["avx2-1"].count("\n") == 60
    assert sum(len(json.loads(line)["vectors"]) for line in dumps["avx2-1"].splitlines()) > 500
    assert dumps["avx2-2"] == dumps["avx2-1"], "threads changed the answer"
    assert dumps["portable"] == dumps["avx2-1"], "the portable kernels disagree with the AVX2 ones"


# The shipping path takes its grey image from the decoder's luma plane (no BGR conversion of frames
# nothing draws); --grey-from-bgr gives it OpenCV's BGR frame's grey instead, the exact path's pixels.
# The two differ by a grey level or two in places (the chroma's rounding in the conversion), which
# must not change what the filtered path reports beyond the vectors at its thresholds' edges:
# measured 94-97% of the vectors within 0.5 px, 3-6% others, per-frame magnitude_max equal to
# 0.01-0.07 px in the median frame.
@pytest.mark.parametrize("video", ["vtest.avi", "vtest.mp4", "vtest720.mp4", "Megamind.avi"])
def test_luma_grey_keeps_the_reported_vectors(bin_dir, samples, video, tmp_path):
    luma_file, bgr_file = tmp_path / "luma.jsonl", tmp_path / "bgr.jsonl"
    luma = bench(bin_dir, samples / video, "--dump-vectors", luma_file)
    bgr = bench(bin_dir, samples / video, "--grey-from-bgr", "--dump-vectors", bgr_file)
    assert luma["vector_filter"] and bgr["vector_filter"]
    # Every frame came as the decoder's own picture on the one, through OpenCV's read on the other.
    assert luma["frames_from_decoder"] == FRAMES and bgr["frames_from_decoder"] == 0

    max_a, max_b = {}, {}
    a, b = load(bgr_file, max_a), load(luma_file, max_b)
    assert set(a) == set(b) == set(range(1, FRAMES + 1))
    total, found, extra = agreement(a, b)
    max_diff = [abs(max_a[frame] - max_b[frame]) for frame in a]
    assert total > 10 * FRAMES, f"{video}: too few reported vectors to compare ({total})"
    assert found >= 0.92 * total, f"{video}: the luma grey kept {found}/{total} of the BGR grey's vectors"
    assert extra <= 0.08 * total, f"{video}: the luma grey added {extra} vectors to {total}"
    max_diff.sort()
    assert max_diff[len(max_diff) // 2] <= 0.2, f"{video}: magnitude_max moved by {max_diff[len(max_diff) // 2]} px"
