"""Synthetic clips with known motion, and the measures of a flow answer against them.

Shared by tests/test_flow_quality.py and bench/flow-quality/run.sh. Needs numpy and cv2 (Debian's
python3-opencv, OpenCV 4.6: the library the worker links).

A clip is a still from the samples folder (resized to 640x480) as a static background, with flat
areas painted in (sky, wall: no texture, where Lucas-Kanade is ill-posed), three or four textured
patches cut from the other stills moving over it at constant sub-pixel velocities (0.5 to 6 px per
frame, rendered as band-limited sub-pixel shifts), then per frame: a slight global flicker (gain and
offset), Gaussian sensor noise (sigma 1.5 to 3 grey levels, the same in the three channels so the
grey image has exactly that sigma) and MJPEG compression (OpenCV's own encoder, quality 70 to 85).
Everything is drawn from fixed seeds: the same clips on every machine.

The truth is kept per frame pair t (frame t to frame t + 1, 0-based) at every grid point:
  dx, dy     true motion (that of the topmost object covering the point at frame t, else 0)
  interior   the point's 15x15 window lies inside one object at frames t and t + 1 (>= 8 px from
             its edges): the motion there is unambiguous
  static     the point is >= 32 px from every object at frames t and t + 1: any vector is false
  true_max   the largest true motion of a grid point covered by an object, per pair
The worker's `bench --dump-vectors` line for frame f (1-based) holds the flow from frame f - 2 to
frame f - 1 (0-based), i.e. pair t = f - 2.
"""
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

VERSION = 4  # bump when the clips change: cached copies are rebuilt
WIDTH, HEIGHT = 640, 480
FRAMES = 40
GRID = 16
THRESHOLD = 1.2
LK = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01))
STATIC_DISTANCE = 32
INTERIOR_MARGIN = 8
FB_LIMIT = 0.5  # px: a vector tracked back landing farther than this from its start fails
RECALL_TOLERANCE = 1.0  # px: a moving point counts as found when reported this close to the truth
RECALL_MIN_SPEED = 2.0

# Each clip: background still, flat areas (x, y, w, h, grey level), noise sigma, JPEG quality,
# objects (source still, crop x, y, w, h, start x, y, velocity vx, vy).
CLIPS = [
    dict(name="rubberwhale", background="rubberwhale1.png", flat=[(0, 0, 640, 96, 205), (470, 300, 170, 180, 90)],
         sigma=1.5, quality=85, seed=11,
         objects=[("graf1.png", 120, 100, 112, 96, 40, 130, 2.37, 0.61),
                  ("graf3.png", 400, 300, 96, 96, 420, 30, -1.73, 2.21),
                  ("box.png", 60, 40, 128, 112, 150, 330, 4.14, -1.28),
                  ("graf1.png", 520, 380, 80, 80, 560, 200, -0.58, 0.27)]),
    dict(name="graf", background="graf1.png", flat=[(0, 380, 300, 100, 60), (420, 0, 220, 130, 180)],
         sigma=2.0, quality=80, seed=12,
         objects=[("rubberwhale1.png", 200, 120, 120, 104, 20, 40, 5.62, 1.15),
                  ("box.png", 150, 60, 112, 112, 470, 200, -2.84, 1.93),
                  ("rubberwhale1.png", 40, 200, 96, 96, 160, 330, 3.05, -2.46)]),
    dict(name="box", background="box.png", flat=[(0, 0, 220, 480, 128)],
         sigma=2.5, quality=75, seed=13,
         objects=[("graf3.png", 200, 200, 104, 120, 30, 40, 1.12, 5.31),
                  ("rubberwhale1.png", 300, 150, 112, 96, 300, 80, 2.53, 0.0),
                  ("graf1.png", 300, 420, 96, 88, 520, 360, -3.91, -2.08),
                  ("rubberwhale1.png", 440, 60, 80, 80, 380, 300, 0.0, -0.93)]),
    dict(name="graf3", background="graf3.png", flat=[(250, 180, 200, 140, 150), (0, 420, 640, 60, 40)],
         sigma=3.0, quality=70, seed=14,
         objects=[("box.png", 100, 30, 120, 110, 60, 60, 2.08, 2.96),
                  ("rubberwhale1.png", 380, 230, 104, 96, 500, 60, -4.77, 1.41),
                  ("graf1.png", 40, 420, 112, 100, 330, 300, 0.74, -2.19)]),
]


def grid(w=WIDTH, h=HEIGHT, step=GRID):
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def _still(samples, name, size=None):
    img = cv2.imread(str(Path(samples) / name), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {name} in {samples}"
    if size is not None:
        img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
    return img.astype(np.float32)


def _rects(spec, t):
    """Each object's rectangle (x, y, w, h) at frame t: sub-pixel top-left corner."""
    out = []
    for _src, _cx, _cy, w, h, x0, y0, vx, vy in spec["objects"]:
        out.append((x0 + vx * t, y0 + vy * t, w, h))
    return out


def _shift(patch, fx, fy, pad=16):
    """The patch moved by a fraction of a pixel (0 <= fx, fy < 1) as an ideal band-limited camera
    would see it (a phase ramp in the Fourier domain): interpolation would blur the texture by an
    amount that changes with the fraction, which Lucas-Kanade reads as motion error."""
    p = cv2.copyMakeBorder(patch, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    h, w = p.shape[:2]
    ramp = np.exp(-2j * np.pi * (np.fft.fftfreq(w)[None, :] * fx + np.fft.fftfreq(h)[:, None] * fy))
    out = np.empty_like(p)
    for c in range(p.shape[2]):
        out[..., c] = np.real(np.fft.ifft2(np.fft.fft2(p[..., c]) * ramp))
    return out[pad:-pad, pad:-pad]


def render_clip(samples, spec, path, frames=FRAMES):
    rng = np.random.default_rng(spec["seed"])
    bg = _still(samples, spec["background"], (WIDTH, HEIGHT))
    for x, y, w, h, level in spec["flat"]:
        bg[y:y + h, x:x + w] = level
    patches = []
    for src, cx, cy, w, h, *_ in spec["objects"]:
        img = _still(samples, src)
        patch = img[cy:cy + h, cx:cx + w]
        assert patch.shape[:2] == (h, w), f"crop outside {src}"
        patches.append(patch)
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25,
                             (WIDTH, HEIGHT), [cv2.VIDEOWRITER_PROP_QUALITY, spec["quality"]])
    assert writer.isOpened(), "OpenCV's MJPEG writer is not available"
    phase = rng.uniform(0, 2 * math.pi)
    for t in range(frames):
        frame = bg.copy()
        for patch, (x, y, w, h) in zip(patches, _rects(spec, t)):
            ix, iy = math.floor(x), math.floor(y)
            moved = _shift(patch, x - ix, y - iy)
            layer = np.zeros_like(frame)
            x0, y0, x1, y1 = max(ix, 0), max(iy, 0), min(ix + w, WIDTH), min(iy + h, HEIGHT)
            if x1 <= x0 or y1 <= y0:
                continue
            layer[y0:y1, x0:x1] = moved[y0 - iy:y1 - iy, x0 - ix:x1 - ix]
            # Coverage: fractional along the patch's edges (anti-aliased), 1 inside.
            mask = cv2.warpAffine(np.ones(patch.shape[:2], np.float32), np.float32([[1, 0, x], [0, 1, y]]),
                                  (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
            frame = frame * (1 - mask) + layer * mask
        # Slight flicker: about 0.4% gain, slowly varying, plus jitter and a fraction of a grey level.
        gain = 1 + 0.004 * math.sin(2 * math.pi * t / 11 + phase) + rng.normal(0, 0.0015)
        offset = rng.normal(0, 0.3)
        noise = rng.normal(0, spec["sigma"], (HEIGHT, WIDTH, 1)).astype(np.float32)
        frame = frame * gain + offset + noise
        writer.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    writer.release()


def truth_for(spec, frames=FRAMES):
    pts = grid()
    n = len(pts)
    pairs = frames - 1
    dx = np.zeros((pairs, n), np.float32)
    dy = np.zeros((pairs, n), np.float32)
    interior = np.zeros((pairs, n), bool)
    static = np.zeros((pairs, n), bool)
    true_max = np.zeros(pairs, np.float32)
    px, py = pts[:, 0], pts[:, 1]
    for t in range(pairs):
        a, b = _rects(spec, t), _rects(spec, t + 1)
        near = np.full(n, np.inf)
        owner = np.full(n, -1)
        for k, ((x, y, w, h), (x1, y1, _, _)) in enumerate(zip(a, b)):
            for (rx, ry) in ((x, y), (x1, y1)):
                ddx = np.maximum(np.maximum(rx - px, px - (rx + w)), 0)
                ddy = np.maximum(np.maximum(ry - py, py - (ry + h)), 0)
                near = np.minimum(near, np.hypot(ddx, ddy))
            inside = (px >= x) & (px < x + w) & (py >= y) & (py < y + h)
            owner[inside] = k  # later objects are drawn on top
        for k, (x, y, w, h) in enumerate(a):
            vx, vy = spec["objects"][k][7], spec["objects"][k][8]
            mine = owner == k
            dx[t, mine] = vx
            dy[t, mine] = vy
            x1, y1 = x + vx, y + vy
            m = INTERIOR_MARGIN
            inner = mine
            for (rx, ry) in ((x, y), (x1, y1)):
                inner = inner & (px - rx >= m) & (rx + w - px >= m + 1) & (py - ry >= m) & (ry + h - py >= m + 1)
            # Not under another object's edge either.
            for j, (ox, oy, ow, oh) in enumerate(a):
                if j != k:
                    inner = inner & ~((px > ox - m) & (px < ox + ow + m) & (py > oy - m) & (py < oy + oh + m))
            interior[t] |= inner
        static[t] = near >= STATIC_DISTANCE
        covered = owner >= 0
        true_max[t] = float(np.hypot(dx[t, covered], dy[t, covered]).max()) if covered.any() else 0.0
    return dict(points=pts, dx=dx, dy=dy, interior=interior, static=static, true_max=true_max)


def make_clips(samples, out_dir, frames=FRAMES):
    """Renders the clips into out_dir (kept between runs while VERSION and the frame count are the
    same) and returns [(name, clip path, truth)]."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = []
    for spec in CLIPS:
        path = out_dir / f"{spec['name']}-v{VERSION}-{frames}.avi"
        if not path.exists():
            tmp = path.with_suffix(".tmp.avi")
            render_clip(samples, spec, tmp, frames)
            os.replace(tmp, path)
        result.append((spec["name"], path, truth_for(spec, frames)))
    return result


def read_grey(path):
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    return out


def load_dump(path):
    """A worker dump as {pair t: (vectors {(x, y): (dx, dy)}, magnitude_max or None)}."""
    out = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            t = d["frame"] - 2
            if t < 0:
                continue
            out[t] = ({(v[0], v[1]): (v[2], v[3]) for v in d["vectors"]}, d.get("magnitude_max"))
    return out


def opencv_flow(greys, forward_backward=False, threshold=THRESHOLD, fb_limit=FB_LIMIT):
    """Plain cv2.calcOpticalFlowPyrLK on the grid (the worker's parameters), optionally keeping only
    the vectors that pass a forward-backward check; the same shape as load_dump's answer, where
    magnitude_max is over every kept tracked point."""
    cv2.setNumThreads(1)
    h, w = greys[0].shape
    p0 = grid(w, h).reshape(-1, 1, 2)
    out = {}
    for t in range(len(greys) - 1):
        p1, st, _ = cv2.calcOpticalFlowPyrLK(greys[t], greys[t + 1], p0, None, **LK)
        ok = st.ravel() == 1
        d = (p1 - p0).reshape(-1, 2)
        if forward_backward:
            back, st2, _ = cv2.calcOpticalFlowPyrLK(greys[t + 1], greys[t], p1, None, **LK)
            err = np.hypot(*(back - p0).reshape(-1, 2).T)
            ok &= (st2.ravel() == 1) & (err <= fb_limit)
        mag = np.hypot(d[:, 0], d[:, 1])
        vecs = {}
        for i in np.flatnonzero(ok & (mag > threshold)):
            vecs[(float(p0[i, 0, 0]), float(p0[i, 0, 1]))] = (float(d[i, 0]), float(d[i, 1]))
        out[t] = (vecs, float(mag[ok].max()) if ok.any() else 0.0)
    return out


def forward_backward_failures(greys, answer, fb_limit=FB_LIMIT):
    """How many reported vectors fail a forward-backward check computed here with cv2: each reported
    endpoint is tracked back from frame t + 1 to frame t; it fails when it is lost or lands farther
    than fb_limit px from its grid point. Returns (failures, vectors)."""
    fails = total = 0
    for t, (vecs, _mx) in answer.items():
        if not vecs or t + 1 >= len(greys):
            continue
        starts = np.float32([k for k in vecs]).reshape(-1, 1, 2)
        ends = np.float32([(k[0] + v[0], k[1] + v[1]) for k, v in vecs.items()]).reshape(-1, 1, 2)
        back, st, _ = cv2.calcOpticalFlowPyrLK(greys[t + 1], greys[t], ends, None, **LK)
        err = np.hypot(*(back - starts).reshape(-1, 2).T)
        fails += int(((st.ravel() != 1) | (err > fb_limit)).sum())
        total += len(vecs)
    return fails, total


def score(truth, answer):
    """The quality measures of one answer on one clip, as sums (so clips can be pooled):
    false (reported vectors at static points), pairs, moving (interior points with true speed >= 2),
    found (those reported within 1 px), epe_sum / epe_n (endpoint error of found points... of all
    reported interior moving points), max_err_sum (|magnitude_max - true max| per pair)."""
    pts = truth["points"]
    index = {(float(x), float(y)): i for i, (x, y) in enumerate(pts)}
    s = dict(false=0, pairs=0, moving=0, found=0, epe_sum=0.0, epe_n=0, max_err_sum=0.0, max_n=0)
    for t in range(truth["dx"].shape[0]):
        vecs, mx = answer.get(t, ({}, 0.0))
        s["pairs"] += 1
        tdx, tdy = truth["dx"][t], truth["dy"][t]
        for key, (dx, dy) in vecs.items():
            i = index.get(key)
            if i is None:
                continue
            if truth["static"][t, i]:
                s["false"] += 1
        speed = np.hypot(tdx, tdy)
        for i in np.flatnonzero(truth["interior"][t] & (speed >= RECALL_MIN_SPEED)):
            s["moving"] += 1
            v = vecs.get((float(pts[i, 0]), float(pts[i, 1])))
            if v is None:
                continue
            e = math.hypot(v[0] - tdx[i], v[1] - tdy[i])
            if e <= RECALL_TOLERANCE:
                s["found"] += 1
                s["epe_sum"] += e
                s["epe_n"] += 1
        if mx is not None:
            s["max_err_sum"] += abs(mx - float(truth["true_max"][t]))
            s["max_n"] += 1
    return s


def pooled(scores):
    tot = {}
    for s in scores:
        for k, v in s.items():
            tot[k] = tot.get(k, 0) + v
    return dict(
        false_per_frame=tot["false"] / max(tot["pairs"], 1),
        recall=tot["found"] / max(tot["moving"], 1),
        epe=tot["epe_sum"] / max(tot["epe_n"], 1),
        max_err=tot["max_err_sum"] / max(tot["max_n"], 1),
        moving=tot["moving"],
    )


def run_worker(worker, source, dump, *extra, frames=None):
    """`vectorflow-worker bench SOURCE --dump-vectors DUMP ...`: its JSON summary and its dump."""
    import subprocess
    cmd = [str(worker), "bench", str(source), "--dump-vectors", str(dump), *extra]
    if frames:
        cmd += ["--frames", str(frames)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr}")
    return json.loads(r.stdout), load_dump(dump)


def real_footage(worker, samples, out, video, frames, *extra):
    """The worker's answer on real footage, judged by cv2 here: the share of reported vectors that
    fail a forward-backward check, and the per-frame magnitude_max."""
    greys = read_grey(Path(samples) / video)[:frames]
    summary, answer = run_worker(worker, Path(samples) / video, Path(out) / f"{video}.jsonl", *extra,
                                 frames=len(greys))
    fails, total = forward_backward_failures(greys, answer)
    maxima = sorted(m for _v, m in answer.values() if m is not None)
    return dict(frames=len(greys), vectors=total, fb_failures=fails, fb_share=fails / max(total, 1),
                max_median=float(np.median(maxima)) if maxima else 0.0,
                max_p95=float(maxima[int(0.95 * (len(maxima) - 1))]) if maxima else 0.0,
                rejected=sum(summary["rejected"].values()), summary=summary)


def main(argv):
    """`flowtruth.py quality WORKER SAMPLES OUT [worker flags...]`: the worker's answer on the clips
    and on vtest.avi (200 frames) next to plain OpenCV's, as one JSON object (for the tests, whose
    Python may have no cv2)."""
    cmd, worker, samples, out, *extra = argv
    assert cmd == "quality", "usage: flowtruth.py quality WORKER SAMPLES OUT [worker flags...]"
    out = Path(out)
    clips = make_clips(samples, out / "clips")
    mine, plain, summaries = [], [], []
    for name, path, truth in clips:
        summary, answer = run_worker(worker, path, out / f"{name}.jsonl", *extra)
        summaries.append(summary)
        mine.append(score(truth, answer))
        plain.append(score(truth, opencv_flow(read_grey(path))))
    result = dict(worker=pooled(mine), opencv=pooled(plain), per_clip=[pooled([s]) for s in mine],
                  summaries=summaries, vtest=real_footage(worker, samples, out, "vtest.avi", 200, *extra))
    print(json.dumps(result))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
