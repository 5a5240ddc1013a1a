"""The README's run command (`make run`), started in a clean copy of the project: it brings up the
whole local platform (private PostgreSQL, Redis, Prometheus, the API with process workers and the
demo stream), serves the dashboard and live frames, stops cleanly on Ctrl-C leaving no process
behind, and keeps its data across a restart.

The binaries are the ones this test run already built (VF_BIN_DIR), so the test measures the
platform, not a second compile.
"""
import asyncio
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
import websockets

from conftest import OUT, ROOT, free_port, wait_until


def clean_copy(dest: Path):
    files = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).split(b"\0")
    for f in files:
        if not f:
            continue
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())


class RunCommand:
    def __init__(self, folder: Path, env: dict, log_name: str):
        self.log_path = OUT / log_name
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["make", "run"], cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def interrupt(self, timeout=30):
        os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.log.close()


def processes_mentioning(text: str):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmd or text in env:
            found.append((int(pid), cmd))
    return found


async def first_frames(port, stream_id, token, count=3, timeout=40):
    got = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/frames?stream_id={stream_id}", max_size=None,
                                  subprotocols=["vectorflow.frames", f"bearer.{token}"]) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(got) < count:
            msg = await asyncio.wait_for(ws.recv(), timeout)
            n = struct.unpack(">I", msg[:4])[0]
            header = json.loads(msg[4:4 + n])
            if header["jpeg"]:  # previews start once the worker sees a viewer
                got.append((header, msg[4 + n:]))
    return got


def test_run_command_serves_the_demo_and_stops_cleanly(bin_dir, samples):
    folder = Path(tempfile.mkdtemp(prefix="vf-clean-"))
    home = Path(tempfile.mkdtemp(prefix="vf-home-"))
    home.chmod(0o755)  # like a checkout's .vf: the postgres user can reach its data folder
    try:
        clean_copy(folder)
        assert not (folder / ".build").exists()
        ports = {k: free_port() for k in ("VF_PORT", "VF_PG_PORT", "VF_REDIS_PORT", "VF_PROMETHEUS_PORT")}
        env = dict(os.environ, VF_BIN_DIR=str(bin_dir), VF_HOME=str(home), VF_SAMPLES_DIR=str(samples),
                   **{k: str(v) for k, v in ports.items()})
        api = f"http://127.0.0.1:{ports['VF_PORT']}"

        run = RunCommand(folder, env, "run-command-1.log")
        wait_until(lambda: "Vector Flow is running" in run.output() or run.proc.poll() is not None, 120,
                   what="the run command to report the platform running")
        assert run.proc.poll() is None, run.output()
        out = run.output()
        assert f"{api}/" in out and f"{api}/docs" in out and f"127.0.0.1:{ports['VF_PROMETHEUS_PORT']}" in out
        # A token of its own, generated, kept private, printed with the dashboard's address.
        token_file = home / "api-token"
        token = token_file.read_text()
        assert len(token) >= 24 and (token_file.stat().st_mode & 0o777) == 0o600
        assert f"{api}/#token={token}" in out
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(api + "/streams", timeout=5).status_code == 401

        page = requests.get(api + "/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        streams = requests.get(api + "/streams", headers=auth, timeout=5).json()
        demo = [s for s in streams if s["name"].startswith("Demo")]
        assert len(demo) == 1 and demo[0]["is_active"] and demo[0]["rtsp_url"].endswith("vtest.avi")
        demo_id = demo[0]["id"]

        frames = asyncio.run(first_frames(ports["VF_PORT"], demo_id, token))
        assert len(frames) == 3
        for header, jpeg in frames:
            assert header["stream_id"] == demo_id and header["width"] == 768 and header["height"] == 576
            assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 5000
        wait_until(lambda: (requests.get(f"{api}/streams/{demo_id}", headers=auth, timeout=5).json()["status"]
                            or {}).get("state")
                   == "running", 20, what="the demo stream's status to be running")
        prom = f"http://127.0.0.1:{ports['VF_PROMETHEUS_PORT']}"
        wait_until(lambda: requests.get(prom + "/api/v1/query", params={
            "query": f'vector_flow_frames_processed_total{{stream_id="{demo_id}"}}'}, timeout=5).json()["data"]["result"],
            40, what="Prometheus to scrape the demo worker")
        # ... and the API's own /metrics, with the token from its file.
        wait_until(lambda: requests.get(prom + "/api/v1/query", params={
            "query": 'up{job="vectorflow-api"} == 1'}, timeout=5).json()["data"]["result"],
            40, what="Prometheus to scrape the API with the token")

        assert processes_mentioning(f"STREAM_ID={demo_id}"), "the demo worker runs"
        code = run.interrupt()
        # make reports an interrupted recipe with 2; the script itself ends 0 or 130.
        assert code in (0, 2, 130, -signal.SIGINT), (code, run.output())
        assert "stopped." in run.output()
        left = processes_mentioning(str(home)) + processes_mentioning(f"STREAM_ID={demo_id}")
        assert not left, f"processes left behind: {left}"
        for name, port in ports.items():
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)

        # Its data survives a restart: the same demo stream, not a second one.
        run2 = RunCommand(folder, env, "run-command-2.log")
        wait_until(lambda: "Vector Flow is running" in run2.output() or run2.proc.poll() is not None, 120,
                   what="the second start")
        assert run2.proc.poll() is None, run2.output()
        # The same token: a signed-in tab stays signed in.
        assert (home / "api-token").read_text() == token
        streams = requests.get(api + "/streams", headers=auth, timeout=5).json()
        assert [s["id"] for s in streams if s["name"].startswith("Demo")] == [demo_id]
        assert run2.interrupt() in (0, 2, 130, -signal.SIGINT)
        assert not processes_mentioning(str(home))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
