"""Trustworthy motion: the worker reports only vectors that are really there.

Against ground truth (tests/flowtruth.py: synthetic clips with static real backgrounds, sensor
noise, MJPEG compression, flicker, flat areas and textured objects moving at known sub-pixel
speeds) and on real footage (vtest.avi, judged by a forward-backward check computed with cv2).
Everything runs for real: the worker binary (`bench --dump-vectors`), and Debian's
/usr/bin/python3 with python3-opencv for the clips and the reference (the Python running pytest
may have no cv2).
"""
import json
import subprocess
from pathlib import Path

import pytest

from conftest import OUT

REF_PY = "/usr/bin/python3"
FLOWTRUTH = Path(__file__).resolve().parent / "flowtruth.py"


def quality(bin_dir, samples, *extra):
    out = OUT / "flow-quality"
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([REF_PY, str(FLOWTRUTH), "quality", str(bin_dir / "vectorflow-worker"), str(samples), str(out),
                        *extra], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def have_ref():
    r = subprocess.run([REF_PY, "-c", "import cv2, numpy"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("Debian's python3-opencv is needed for the clips and the reference")


@pytest.fixture(scope="module")
def filtered(bin_dir, samples, have_ref):
    return quality(bin_dir, samples)


def test_no_false_vectors_away_from_moving_objects(filtered):
    w = filtered["worker"]
    print(json.dumps(filtered["worker"]), json.dumps(filtered["opencv"]))
    # Plain OpenCV reports a couple of hundred per frame there: the clips are hard enough.
    assert filtered["opencv"]["false_per_frame"] > 50
    assert w["false_per_frame"] <= 0.5, w


def test_moving_objects_are_still_found_accurately(filtered):
    w, cv = filtered["worker"], filtered["opencv"]
    assert w["moving"] == cv["moving"] > 5000
    assert w["recall"] >= 0.97 * cv["recall"], (w, cv)
    assert w["epe"] <= 0.10, w
    assert w["max_err"] <= 2.0, w


def test_the_filter_counts_what_it_rejects(filtered):
    # Every clip has noise in flat areas: the filter rejects vectors in each, and says so.
    assert all(sum(s["rejected"].values()) > 0 for s in filtered["summaries"])
    assert all(s["vector_filter"] and s["stages"]["filter_ms"] > 0 for s in filtered["summaries"])


def test_real_footage_magnitude_max_and_forward_backward(filtered):
    v = filtered["vtest"]
    print(json.dumps(v))
    assert v["vectors"] > 10 * v["frames"], "vtest.avi has walking people: vectors expected"
    assert v["max_median"] <= 15, v
    assert v["fb_share"] < 0.05, v


def test_unfiltered_fast_path_reports_the_noise(bin_dir, samples, have_ref):
    # --no-filter is the seed's answer: the noise is back, and nothing is counted as rejected.
    u = quality(bin_dir, samples, "--no-filter")
    assert u["worker"]["false_per_frame"] > 50
    assert all(sum(s["rejected"].values()) == 0 and not s["vector_filter"] for s in u["summaries"])
    assert u["vtest"]["max_median"] > 30 and u["vtest"]["fb_share"] > 0.3
