"""Accuracy of the worker's optical flow (`vectorflow-worker flow`), against ground truth and against
Python's cv2.calcOpticalFlowPyrLK.

Reference computations run under Debian's /usr/bin/python3 with python3-opencv (OpenCV 4.6, the same
library the worker links), in a subprocess: the Python running pytest may have no cv2.
"""
import json
import subprocess
import textwrap

import pytest

REF_PY = "/usr/bin/python3"

# Shared by the helper scripts: the worker's grid and Lucas-Kanade parameters.
COMMON = textwrap.dedent("""
    import json, sys
    import cv2
    import numpy as np
    LK = dict(winSize=(15, 15), maxLevel=2,
              criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01))
    def grid(w, h, step):
        ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
""")

WARP = COMMON + textwrap.dedent("""
    src, dst, a = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    M = np.array(a, np.float64).reshape(2, 3)
    out = cv2.warpAffine(img, M, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT)
    cv2.imwrite(dst, out)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # Texture measure at each pixel: the smaller eigenvalue of the 15x15 structure tensor, the
    # quantity Lucas-Kanade needs to be well conditioned (Shi-Tomasi).
    eig = cv2.cornerMinEigenVal(grey, 15, 3)[8::16, 8::16]  # at the points of a 16 px grid
    print(json.dumps({"w": img.shape[1], "h": img.shape[0], "eig": eig.tolist()}))
""")

EXTRACT = COMMON + textwrap.dedent("""
    video, out, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cap = cv2.VideoCapture(video)
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    for k in range(2):
        ok, f = cap.read()
        assert ok
        cv2.imwrite(f"{out}{k}.png", f)
""")

REFERENCE_FLOW = COMMON + textwrap.dedent("""
    a, b, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cv2.setNumThreads(1)
    g0 = cv2.cvtColor(cv2.imread(a), cv2.COLOR_BGR2GRAY)
    g1 = cv2.cvtColor(cv2.imread(b), cv2.COLOR_BGR2GRAY)
    p0 = grid(g0.shape[1], g0.shape[0], step).reshape(-1, 1, 2)
    p1, st, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, **LK)
    ok = st.ravel() == 1
    p0 = p0.reshape(-1, 2)[ok]; d = p1.reshape(-1, 2)[ok] - p0
    print(json.dumps([[float(x), float(y), float(dx), float(dy)] for (x, y), (dx, dy) in zip(p0, d)]))
""")


def ref(script, *args):
    r = subprocess.run([REF_PY, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def worker_flow(bin_dir, a, b, *extra):
    r = subprocess.run([str(bin_dir / "vectorflow-worker"), "flow", str(a), str(b), *extra],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def have_ref():
    r = subprocess.run([REF_PY, "-c", "import cv2, numpy; print(cv2.__version__)"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("Debian's python3-opencv is needed for the reference computation")
    return r.stdout.strip()


# Known sub-pixel affine motions [a11 a12 tx; a21 a22 ty] mapping a point of image 1 to image 2.
MOTIONS = {
    "shift": [1, 0, 1.37, 0, 1, -0.62],
    "shift-large": [1, 0, -3.25, 0, 1, 2.8],
    "rotate-1deg": [0.99985, -0.017452, 4.1, 0.017452, 0.99985, -3.3],
    "zoom-1pct": [1.01, 0, -2.5, 0, 1.01, -1.9],
}


@pytest.mark.parametrize("image", ["rubberwhale1.png", "graf1.png"])
@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_flow_recovers_known_affine_motion(bin_dir, samples, tmp_path, have_ref, image, motion):
    import numpy as np_  # noqa: F401 - only to fail early with a clear message if numpy is missing
    a = MOTIONS[motion]
    warped = tmp_path / "warped.png"
    info = json.loads(ref(WARP, samples / image, warped, json.dumps(a)))
    out = worker_flow(bin_dir, samples / image, warped, "--grid-size", "16")
    assert out["width"] == info["w"] and out["height"] == info["h"]
    eig = info["eig"]
    margin = 24
    # "Textured" as in Shi-Tomasi's quality level: at least 5% of the best grid point's texture.
    def texture(x, y):
        return eig[(int(y) - 8) // 16][(int(x) - 8) // 16]
    min_eig = 0.05 * max(texture(v[0], v[1]) for v in out["vectors"])
    errors = []
    for x, y, dx, dy in out["vectors"]:
        if not (margin <= x < info["w"] - margin and margin <= y < info["h"] - margin):
            continue
        if texture(x, y) < min_eig:  # flat or one-dimensional patch: LK is ill-posed there
            continue
        ex = a[0] * x + a[1] * y + a[2] - x
        ey = a[3] * x + a[4] * y + a[5] - y
        errors.append(((dx - ex) ** 2 + (dy - ey) ** 2) ** 0.5)
    assert len(errors) >= 100, f"too few textured grid points ({len(errors)})"
    errors.sort()
    mean = sum(errors) / len(errors)
    p95 = errors[int(0.95 * (len(errors) - 1))]
    print(f"{image} {motion}: n={len(errors)} mean EPE={mean:.4f} px p95={p95:.4f} px")
    assert mean < 0.1, f"mean endpoint error {mean:.4f} px"
    assert p95 < 0.25, f"p95 endpoint error {p95:.4f} px"


def test_flow_output_shape_and_grid(bin_dir, samples):
    out = worker_flow(bin_dir, samples / "rubberwhale1.png", samples / "rubberwhale2.png", "--grid-size", "32")
    assert (out["width"], out["height"]) == (584, 388)
    xs = sorted({v[0] for v in out["vectors"]})
    ys = sorted({v[1] for v in out["vectors"]})
    assert xs[0] == 16 and ys[0] == 16
    assert all(b - a == 32 for a, b in zip(xs, xs[1:]))
    # Every grid point is listed when tracked; on this real pair nearly all are.
    assert len(out["vectors"]) >= 0.9 * len(range(16, 584, 32)) * len(range(16, 388, 32))


@pytest.mark.parametrize("first", [100, 400, 700])
def test_vectors_agree_with_python_opencv_on_vtest(bin_dir, samples, tmp_path, have_ref, first):
    ref(EXTRACT, samples / "vtest.avi", tmp_path / "f", first)
    a, b = tmp_path / "f0.png", tmp_path / "f1.png"
    ours = worker_flow(bin_dir, a, b, "--grid-size", "16", "--exact")["vectors"]
    theirs = json.loads(ref(REFERENCE_FLOW, a, b, 16))
    ours_by_point = {(v[0], v[1]): v for v in ours}
    theirs_by_point = {(v[0], v[1]): v for v in theirs}
    # Compare as a count first: pytest's diff of two large sets would take minutes to print.
    only_ours, only_theirs = set(ours_by_point) - set(theirs_by_point), set(theirs_by_point) - set(ours_by_point)
    assert not only_ours and not only_theirs, \
        f"the same grid points must be tracked: {len(only_ours)} only here, {len(only_theirs)} only in cv2"
    worst = max(max(abs(o[2] - t[2]), abs(o[3] - t[3]))
                for o, t in ((ours_by_point[k], theirs_by_point[k]) for k in theirs_by_point))
    assert worst < 1e-3, f"largest difference from cv2.calcOpticalFlowPyrLK: {worst} px"
    moving = sum(1 for v in ours if (v[2] ** 2 + v[3] ** 2) ** 0.5 > 1.2)
    assert moving > 0, "vtest.avi has walking people: some vectors exceed the threshold"


def test_flow_bad_input(bin_dir, samples, tmp_path):
    w = str(bin_dir / "vectorflow-worker")
    r = subprocess.run([w, "flow", str(samples / "rubberwhale1.png")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = subprocess.run([w, "flow", str(tmp_path / "no.png"), str(tmp_path / "no.png")], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot read image" in r.stderr
    r = subprocess.run([w, "flow", "a.png", "b.png", "--grid-size", "abc"], capture_output=True, text=True)
    assert r.returncode == 2 and "GRID_SIZE" in r.stderr
