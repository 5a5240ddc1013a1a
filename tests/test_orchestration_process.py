"""Orchestration end to end through the real API, process runtime (VF_RUNTIME=process).

The real vectorflow-api (PostgreSQL, Redis, reconciler) starts real vectorflow-worker processes on
vtest.avi; a real Prometheus discovers them through the API's file_sd; WebSocket viewers get the
frames. Scenario (tests/_orchestration_helpers.py): create + activate → a worker per active stream,
frames on each stream's socket and only there, Prometheus target + metric, status `running`; a
stalled viewer slows nobody and costs bounded memory; kill -9 → replaced; deactivate → worker,
record and target gone; API restart → the running worker is adopted (same pid), the worker of a
stream deleted while the API was down is removed, nothing is duplicated.
"""
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from _orchestration_helpers import Scenario, proc_workers
from conftest import OUT


class ProcessRuntime:
    adoption_may_replace = False  # a restarted API must adopt the same process

    def __init__(self, worker_bin: Path):
        self.bin = worker_bin
        self.ids: list[str] = []

    def env(self):
        return {"VF_RUNTIME": "process", "VF_WORKER_BIN": str(self.bin)}

    def workers(self):
        return proc_workers(self.bin, self.ids)

    def kill(self, stream_id):
        pid = self.workers()[stream_id]
        os.kill(pid, signal.SIGKILL)

    def cleanup(self):
        """Workers outlive the API on purpose; the test ends them (by pid, its own ones only)."""
        for pid in self.workers().values():
            for p in pid if isinstance(pid, list) else [pid]:
                try:
                    os.killpg(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_process_runtime_end_to_end(spawn, bin_dir, postgres, redis_server, prometheus_factory, samples):
    runtime = ProcessRuntime(bin_dir / "vectorflow-worker")
    tmp = Path(tempfile.mkdtemp(prefix="vf-orch-proc-"))
    scenario = Scenario(runtime=runtime, spawn=spawn, bin_dir=bin_dir, postgres=postgres, redis_server=redis_server,
                        prometheus_factory=prometheus_factory, source_url=f"file://{samples}/vtest.avi", tmp=tmp,
                        name="orch-process-api")
    runtime.ids = scenario.ids  # the same list: filled as streams are created
    try:
        scenario.run()
        # The API's state folder records exactly the adopted worker of A (its pid), none for B or C.
        a = scenario.ids[0]
        records = {r.stem: json.loads(r.read_text()) for r in (tmp / "state").glob("*.json")}
        assert set(records) == {a}, records
        assert records[a]["pid"] == runtime.workers()[a], (records, runtime.workers())
        # Every worker's own log lives in the API's state folder.
        assert any((tmp / "state" / "logs").glob("vector-worker-*.log"))
    finally:
        scenario.shutdown()
        runtime.cleanup()
        logs = tmp / "state" / "logs"
        if logs.is_dir():
            shutil.rmtree(OUT / "orch-process-workers", ignore_errors=True)
            shutil.copytree(logs, OUT / "orch-process-workers")
        shutil.rmtree(tmp, ignore_errors=True)
