#!/usr/bin/python3
"""The straightforward Python/OpenCV worker loop, as the reference platform ran it, timed per stage.

Run with Debian's /usr/bin/python3 and python3-opencv (OpenCV 4.6, like the Swift worker links).
Prints the same JSON object as `vectorflow-worker bench`.
  python_loop.py SOURCE [--frames N] [--grid-size N] [--threshold X] [--preview] [--jpeg-quality Q] [--threads N]
"""
import argparse
import json
import time

import cv2
import numpy as np

LK = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01))


def grid(w, h, step):
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32).reshape(-1, 1, 2)


def colour(mag, cmax=8.0):
    t = min(1.0, mag / cmax)
    return (0, 255, 510 * t) if t < 0.5 else (0, 510 * (1 - t), 255)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("--frames", type=int, default=1 << 62)
    ap.add_argument("--grid-size", type=int, default=16)
    ap.add_argument("--threshold", type=float, default=1.2)
    ap.add_argument("--preview", action="store_true")
    ap.add_argument("--jpeg-quality", type=int, default=95)  # OpenCV's default
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    cap = cv2.VideoCapture(a.source, cv2.CAP_FFMPEG)
    prev = None
    points = None
    decode = flow = annotate = encode = 0.0
    frames = kept_total = 0
    start = time.perf_counter()
    while frames < a.frames:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        t1 = time.perf_counter()
        decode += t1 - t0
        if not ok:
            break
        frames += 1
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        good = np.empty((0, 4), np.float32)
        if prev is not None:
            if points is None:
                points = grid(grey.shape[1], grey.shape[0], a.grid_size)
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, points, None, **LK)
            ok_ = st.ravel() == 1
            p0 = points.reshape(-1, 2)[ok_]
            d = nxt.reshape(-1, 2)[ok_] - p0
            mag = np.sqrt((d ** 2).sum(axis=1))
            moving = mag > a.threshold
            good = np.hstack([p0[moving], d[moving]])
            count = int(moving.sum())
            _avg = float(mag[moving].mean()) if count else 0.0
            _max = float(mag.max()) if len(mag) else 0.0
            kept_total += count
        prev = grey
        t2 = time.perf_counter()
        flow += t2 - t1
        if a.preview:
            for x, y, dx, dy in good:
                m = float(np.hypot(dx, dy))
                cv2.arrowedLine(frame, (int(round(x)), int(round(y))), (int(round(x + 3 * dx)), int(round(y + 3 * dy))),
                                colour(m), 1, cv2.LINE_AA, 0, 0.3)
            t3 = time.perf_counter()
            annotate += t3 - t2
            cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, a.jpeg_quality])
            encode += time.perf_counter() - t3
    seconds = time.perf_counter() - start
    n = max(frames, 1)
    print(json.dumps({"frames": frames, "seconds": round(seconds, 4), "fps": round(frames / seconds, 2) if seconds else 0,
                      "stages": {"decode_ms": decode / n * 1000, "flow_ms": flow / n * 1000,
                                 "annotate_ms": annotate / n * 1000, "encode_ms": encode / n * 1000},
                      "vectors_above_threshold": kept_total}))


if __name__ == "__main__":
    main()
