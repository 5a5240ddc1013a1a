"""Fan-out with real workers: N streams (process runtime, LOOP=true, vtest.avi) x M WebSocket viewers
each, through the real API. Reports the latency from a frame's `captured_at` (stamped by the worker
when it read the frame) to its receipt by a viewer (p50/p99), and the API's CPU time per delivered
frame (from /proc). Starts its own PostgreSQL and Redis on free loopback ports.

    python3 bench/fanout/workers.py [--streams 8] [--viewers 4] [--seconds 20]
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import websockets

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import Postgres, Redis, free_port, wait_until  # noqa: E402


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def viewer(port, stream_id, until, latencies, counter):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/frames?stream_id={stream_id}", max_size=None) as ws:
        while time.time() < until:
            try:
                msg = await asyncio.wait_for(ws.recv(), max(0.1, until - time.time()))
            except asyncio.TimeoutError:
                break
            now = time.time()
            n = struct.unpack(">I", msg[:4])[0]
            header = json.loads(msg[4:4 + n])
            if header["jpeg"]:
                latencies.append((now - header["captured_at"]) * 1000)
            counter[0] += 1


async def watch(port, ids, viewers, seconds, warmup):
    latencies, counter = [], [0]
    until = time.time() + warmup + seconds
    tasks = [asyncio.create_task(viewer(port, sid, until, latencies, counter)) for sid in ids for _ in range(viewers)]
    await asyncio.sleep(warmup)  # previews start once workers see the viewer mark
    latencies.clear()
    counter[0] = 0
    start = time.time()
    await asyncio.gather(*tasks)
    return latencies, counter[0], time.time() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--viewers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--bin-dir", default=os.environ.get("VF_BIN_DIR"))
    args = ap.parse_args()
    bin_dir = Path(args.bin_dir or subprocess.check_output(
        ["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, text=True).strip())
    samples = Path(subprocess.check_output(["bash", str(ROOT / "scripts/fetch-samples.sh")], text=True).split()[-1])
    pg, redis = Postgres(), Redis()
    state = Path(tempfile.mkdtemp(prefix="vf-fanout-"))
    port = free_port()
    ids = []
    env = dict(os.environ, DATABASE_URL=pg.url, REDIS_URL=redis.url, VF_HOST="127.0.0.1", VF_PORT=str(port),
               VF_RUNTIME="process", VF_WORKER_BIN=str(bin_dir / "vectorflow-worker"), VF_ALLOW_FILE_SOURCES="true", VF_MEDIA_DIR=str(samples),
               VF_FILE_SD_PATH=str(state / "workers.json"), VF_STATE_DIR=str(state / "workers"))
    api = subprocess.Popen([str(bin_dir / "vectorflow-api")], env=env, stdout=subprocess.DEVNULL,
                           stderr=open(state / "api.log", "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(base + "/health", timeout=1).ok, 20, what="the API")
        for i in range(args.streams):
            r = requests.post(base + "/streams", json={"name": f"bench {i}", "rtsp_url": f"file://{samples}/vtest.avi",
                                                      "is_active": True}, timeout=20)
            r.raise_for_status()
            ids.append(r.json()["id"])
        wait_until(lambda: all((s["status"] or {}).get("state") == "running"
                               for s in requests.get(base + "/streams", timeout=5).json()), 60, what="workers running")
        cpu0 = cpu_seconds(api.pid)
        lat, delivered, elapsed = asyncio.run(watch(port, ids, args.viewers, args.seconds, warmup=3))
        cpu = cpu_seconds(api.pid) - cpu0
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] if lat else float("nan")  # noqa: E731
        print(json.dumps({
            "streams": args.streams, "viewers_per_stream": args.viewers, "seconds": round(elapsed, 1),
            "frames_delivered": delivered, "frames_per_second": round(delivered / elapsed, 1),
            "latency_ms_p50": round(pct(0.5), 2), "latency_ms_p99": round(pct(0.99), 2),
            "latency_ms_max": round(lat[-1], 2) if lat else None,
            "api_cpu_ms_per_delivered_frame": round(1000 * cpu / max(1, delivered), 3),
        }))
    finally:
        for sid in ids:
            requests.post(f"http://127.0.0.1:{port}/streams/{sid}/deactivate", timeout=20)
        try:
            wait_until(lambda: not list((state / "workers").glob("*.json")), 15, what="workers to stop")
        except AssertionError:
            pass
        api.terminate()
        api.wait(10)
        # Workers the API did not get to stop: each leads its own process group.
        for f in (state / "workers").glob("*.json"):
            pid = json.loads(f.read_text()).get("pid")
            if isinstance(pid, int) and pid > 1:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except OSError:
                    pass
        redis.close()
        pg.close()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
