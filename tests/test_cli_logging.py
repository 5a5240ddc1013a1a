"""The command line and the logs of both executables: --help (every setting, generated from their
declarations, nothing bound or opened), --version (with the git commit), unknown flags and stray
words (exit 2 naming them), the log lines (timestamp, level, LOG_FORMAT=json), the API's access log
and the worker's source errors, with camera passwords masked everywhere."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from conftest import ROOT, free_port, wait_until

# `2026-01-02T03:04:05.678Z info vectorflow-worker: message key=value`
TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (trace|debug|info|notice|warning|error|critical) "
                       r"([\w.-]+): (.*)$")
# `--vf-port N  (VF_PORT, default: 8000)`
HELP_ENTRY = re.compile(r"^  (--[a-z0-9-]+)(?: [A-Z]+)?  \(([A-Z][A-Z0-9_]*), default: (.*)\)$")
SETTING_READ = re.compile(r"\bc\.(?:raw|string|int|double|bool)\(\s*\"([A-Z][A-Z0-9_]*)\"")


def api_bin(bin_dir):
    return str(bin_dir / "vectorflow-api")


def worker_bin(bin_dir):
    return str(bin_dir / "vectorflow-worker")


def run(argv, env=None, timeout=10):
    return subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def help_entries(text):
    """{variable: (flag, default)} of a --help text."""
    entries = {}
    for line in text.splitlines():
        m = HELP_ENTRY.match(line)
        if m:
            entries[m.group(2)] = (m.group(1), m.group(3))
    return entries


# StreamSettings reads its variables by their codec's names (`Variable.gridSize` = "GRID_SIZE").
VARIABLE_NAME = re.compile(r'public static let \w+ = "([A-Z][A-Z0-9_]+)"')


def settings_read(*folders, codec=False):
    """Every setting name the sources read through the configuration loader (`c.int("X", ...)` etc.),
    and (`codec`: for the worker, which decodes it) the variable names of StreamSettings' environment codec."""
    names = set()
    for folder in folders:
        for path in (ROOT / "Sources" / folder).glob("*.swift"):
            text = path.read_text()
            names |= set(SETTING_READ.findall(text))
            if codec and path.name == "StreamSettings.swift":
                names |= set(VARIABLE_NAME.findall(text))
    return names


def test_help_exits_0_binding_no_port_and_opening_no_database(bin_dir):
    """--help answers at once: the port it would bind is held here (binding it would fail), the
    database and Redis do not exist, and the state folder is never made."""
    state = os.path.join(tempfile.mkdtemp(prefix="vf-help-"), "never-made")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        env = {"VF_HOST": "127.0.0.1", "VF_PORT": str(port), "VF_STATE_DIR": state,
               "DATABASE_URL": f"postgresql://x:y@127.0.0.1:{free_port()}/none",
               "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        for argv in ([api_bin(bin_dir), "--help"], [api_bin(bin_dir), "-h"], [api_bin(bin_dir), "--vf-port", "1", "--help"]):
            started = time.monotonic()
            r = run(argv, env)
            assert r.returncode == 0 and r.stderr == "", (argv, r.stderr)
            assert r.stdout.startswith("Usage: vectorflow-api") and "VF_PORT" in r.stdout
            assert time.monotonic() - started < 5
        for argv in (["--help"], ["run", "--help"], ["bench", "--help"], ["flow", "-h"]):
            r = run([worker_bin(bin_dir), *argv], {"METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(port)})
            assert r.returncode == 0 and r.stderr == "", (argv, r.stderr)
            assert r.stdout.startswith("Usage: vectorflow-worker") and "SOURCE_URL" in r.stdout
    assert not os.path.exists(state)


def test_help_lists_every_setting_the_sources_read(bin_dir):
    api_help = run([api_bin(bin_dir), "--help"]).stdout
    api = help_entries(api_help)
    worker_help = run([worker_bin(bin_dir), "--help"]).stdout
    worker = help_entries(worker_help)
    # Each setting is declared once (the worker's sections are disjoint too).
    for text, entries in ((api_help, api), (worker_help, worker)):
        assert sum(1 for line in text.splitlines() if HELP_ENTRY.match(line)) == len(entries)
    api_reads = settings_read("vectorflow-api", "VFAPI", "VFControl", "VFRuntime", "VFCore")
    worker_reads = settings_read("vectorflow-worker", "VFCore", codec=True)
    assert {"VF_PORT", "VF_RUNTIME", "VF_STATE_DIR"} <= api_reads and {"SOURCE_URL", "FRAMES"} <= worker_reads
    assert api_reads - set(api) == set(), "read by the API but not in its --help"
    assert worker_reads - set(worker) == set(), "read by the worker but not in its --help"
    for name in ("VF_RUNTIME", "VF_STOP_WORKERS_ON_EXIT", "VF_DOCS_ASSETS_DIR", "VF_MEDIA_DIR", "VF_ALLOWED_HOSTS",
                 "VF_CORS_ORIGINS", "VF_ACCESS_LOG", "LOG_LEVEL", "LOG_FORMAT", "DATABASE_URL", "REDIS_URL"):
        assert name in api, name
    for name in ("SOURCE_URL", "SOURCE_URL_FILE", "VECTOR_FILTER", "FILTER_CHECKS", "LOG_LEVEL", "LOG_FORMAT",
                 "GRID_SIZE", "THRESHOLD", "PREVIEW", "DUMP_VECTORS", "METRICS_PORT"):
        assert name in worker, name
    # The flag is the variable in kebab case, and the defaults are the ones the programs use.
    for entries in (api, worker):
        for name, (flag, _) in entries.items():
            assert flag == "--" + name.lower().replace("_", "-"), (name, flag)
    assert api["VF_PORT"][1] == "8000" and api["VF_ACCESS_LOG"][1] == "true" and api["LOG_LEVEL"][1] == "info"
    assert worker["GRID_SIZE"][1] == "16" and worker["THRESHOLD"][1] == "1.2" and worker["LOOP"][1] == "true"


def test_every_documented_setting_is_in_help(bin_dir):
    """The settings tables of README.md (API, then worker) name only settings --help knows."""
    known = set(help_entries(run([api_bin(bin_dir), "--help"]).stdout)) | \
        set(help_entries(run([worker_bin(bin_dir), "--help"]).stdout))
    documented = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            documented |= {n for n in re.findall(r"`([A-Z][A-Z0-9_]+)`", first)}
    assert {"VF_PORT", "SOURCE_URL", "LOG_LEVEL"} <= documented
    assert documented - known == set()


def test_version_prints_the_version_and_the_commit(bin_dir):
    version = re.search(r'version = "([^"]+)"', (ROOT / "Sources/VFCore/BuildInfo.swift").read_text()).group(1)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    for program, binary in (("vectorflow-api", api_bin(bin_dir)), ("vectorflow-worker", worker_bin(bin_dir))):
        r = run([binary, "--version"], {"VF_PORT": "1"})
        assert r.returncode == 0 and r.stderr == "", r.stderr
        m = re.fullmatch(rf"{program} {re.escape(version)} \(commit ([0-9a-f]{{7,40}}|unknown)\)\n", r.stdout)
        assert m, r.stdout
        if head.returncode == 0:  # built from a checkout: the commit is the checkout's
            assert head.stdout.strip().startswith(m.group(1)), (m.group(1), head.stdout)


@pytest.mark.parametrize("argv,word", [
    (["--port", "9000"], "--port"),
    (["--vf-port=0", "--verbose"], "--verbose"),
    (["-p"], "-p"),
    (["serve"], "serve"),
    (["--vf-allow-file-sources", "true"], "true"),
    (["--vf-port", "eighty"], "eighty"),
])
def test_api_rejects_unknown_flags_and_stray_words(bin_dir, argv, word):
    r = run([api_bin(bin_dir), *argv], {"VF_HOST": "127.0.0.1", "VF_PORT": "0"})
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vectorflow-api: ") and word in lines[0], r.stderr


@pytest.mark.parametrize("argv,word", [
    (["run", "--bogus"], "--bogus"),
    (["--grid", "8"], "--grid"),
    (["run", "clip.mp4"], "clip.mp4"),
    (["bench", "clip.mp4", "--preview", "false"], "false"),
    (["bench", "clip.mp4", "other.mp4"], "other.mp4"),
    (["bench", "--frames", "clip.mp4"], "clip.mp4"),
    (["bench", "clip.mp4", "--dump-vectors"], "--dump-vectors"),
    (["flow", "a.png", "b.png", "c.png"], "c.png"),
    (["serve"], "serve"),
    (["run", "--log-level", "loud"], "loud"),
])
def test_worker_rejects_unknown_flags_and_misplaced_words(bin_dir, argv, word):
    r = run([worker_bin(bin_dir), *argv], {"SOURCE_URL": "rtsp://127.0.0.1:1/x", "METRICS_PORT": "0"})
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vectorflow-worker: ") and word in lines[0], r.stderr


def test_a_switch_does_not_take_the_source_as_its_value(bin_dir, samples):
    """`bench --preview clip.mp4`: --preview is a switch, clip.mp4 the source."""
    r = run([worker_bin(bin_dir), "bench", "--preview", str(samples / "vtest.avi"), "--frames", "3"], timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["frames"] == 3 and out["stages"]["encode_ms"] > 0


def start_worker(spawn, bin_dir, redis_server, name, source, **env):
    stream_id = f"{name}-{uuid.uuid4().hex[:8]}"
    e = {"STREAM_ID": stream_id, "SOURCE_URL": source, "REDIS_URL": redis_server.url, "METRICS_HOST": "127.0.0.1",
         "METRICS_PORT": "0"}
    e.update(env)
    proc = spawn(f"cli-logging-{name}", [worker_bin(bin_dir), "run"], env=e)
    proc.stream_id = stream_id
    return proc


def test_worker_logs_why_its_source_fails(spawn, bin_dir, redis_server, tmp_path):
    missing = tmp_path / "no-such-video.mp4"
    w = start_worker(spawn, bin_dir, redis_server, "missing", str(missing))
    wait_until(lambda: "cannot open the source" in w.log_path.read_text(errors="replace"), 15, what="the source error in the log")
    lines = [TEXT_LINE.match(line) for line in w.log_path.read_text(errors="replace").splitlines()]
    assert all(lines), w.log_path.read_text(errors="replace")
    errors = [m for m in lines if m.group(2) == "error" and "cannot open the source" in m.group(4)]
    assert errors, w.log_path.read_text(errors="replace")
    first = errors[0]
    assert first.group(3) == "vectorflow-worker" and f"source={missing}" in first.group(4)
    assert "No such file or directory" in first.group(4), "the system's reason"
    assert f"stream_id={w.stream_id}" in first.group(4) and "retrying in" in first.group(4)
    # The state change is logged too: a file that cannot be opened is `failed`.
    assert any("state connecting -> failed" in m.group(4) and f"stream_id={w.stream_id}" in m.group(4)
               for m in lines), w.log_path.read_text(errors="replace")
    assert w.stop() == 0


def test_worker_json_lines_and_masked_credentials(spawn, bin_dir, redis_server):
    """LOG_FORMAT=json: every line is one JSON object; an rtsp:// password never reaches the log,
    whatever FFmpeg says about the URL, through several reconnect attempts."""
    port = free_port()  # nothing listens there
    w = start_worker(spawn, bin_dir, redis_server, "json", f"rtsp://admin:s3cr3t-pw@127.0.0.1:{port}/cam",
                     LOG_FORMAT="json", LOG_LEVEL="debug")

    def attempts():
        return [o for o in map(json.loads, w.log_path.read_text(errors="replace").splitlines()) if "cannot open the source" in o["message"]]
    wait_until(lambda: len(attempts()) >= 2, 20, what="two failed attempts in the log")
    assert w.stop() == 0
    text = w.log_path.read_text(errors="replace")
    assert "s3cr3t-pw" not in text
    objects = [json.loads(line) for line in text.splitlines()]
    assert objects and all(set(o) >= {"ts", "level", "label", "message"} for o in objects)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]) for o in objects)
    assert all(o.get("stream_id") == w.stream_id for o in objects)
    first = attempts()[0]
    assert first["level"] == "error" and first["attempt"] == "1" and float(first["retry_in_s"]) > 0
    assert first["source"] == f"rtsp://admin:***@127.0.0.1:{port}/cam"
    assert any(o["message"].startswith("starting") for o in objects)


# --- the API ----------------------------------------------------------------------------------------

def start_api(spawn, bin_dir, postgres, redis_server, name, **env):
    db = f"cli_{uuid.uuid4().hex[:10]}"
    postgres.psql(f"CREATE DATABASE {db} OWNER vectorflow")
    e = {"VF_HOST": "127.0.0.1", "VF_PORT": "0", "VF_STATE_DIR": tempfile.mkdtemp(prefix="vf-cli-state-"),
         "VF_STATIC_DIR": str(ROOT / "test-output" / "no-static"), "VF_RUNTIME": "process",
         "VF_WORKER_BIN": worker_bin(bin_dir), "VF_FILE_SD_PATH": os.path.join(tempfile.mkdtemp(), "workers.json"),
         "DATABASE_URL": f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{db}",
         "REDIS_URL": redis_server.url}
    e.update(env)
    p = spawn(name, [api_bin(bin_dir)], env=e)
    m = wait_until(lambda: re.search(r"vectorflow-api listening on http://[\d.]+:(\d+)", p.output()) or
                   (not p.alive() and pytest.fail(f"api exited: {p.output()}")), 20, what="api to listen")
    return p, f"http://127.0.0.1:{m.group(1)}"


def access_lines(objects):
    return [o for o in objects if o["label"] == "vectorflow-api.access"]


def test_api_access_log_one_json_line_per_request(spawn, bin_dir, postgres, redis_server):
    p, base = start_api(spawn, bin_dir, postgres, redis_server, "cli-api-access", LOG_FORMAT="json")
    wait_until(lambda: requests.get(base + "/health", timeout=2).status_code == 200, 20, what="healthy API")

    def log_objects():
        # stdout's one line ("vectorflow-api listening on ...") is the scripts' start signal, not a log line.
        text = p.log_path.read_text(errors="replace")  # also after the stop, when Proc closed its handle
        return [json.loads(line) for line in text.splitlines() if not line.startswith("vectorflow-api listening")]
    before = len(access_lines(log_objects()))
    assert before >= 1
    s = requests.post(base + "/streams", json={"name": "cam", "rtsp_url": "rtsp://admin:hunter2-secret@cam.example/live"},
                      timeout=5)
    assert s.status_code == 201, s.text
    sid = s.json()["id"]
    sent = [("GET", "/streams", 200), ("GET", f"/streams/{sid}", 200), ("GET", "/no/such/path", 404),
            ("GET", "/streams?access_token=tok-in-query", 200)]
    for method, path, status in sent:
        assert requests.request(method, base + path, timeout=5).status_code == status
    n = 1 + len(sent)
    wait_until(lambda: len(access_lines(log_objects())) >= before + n, 10, what="access lines")
    assert p.stop() == 0
    objects = log_objects()
    lines = access_lines(objects)[before:]
    assert len(lines) == n, lines
    pattern = re.compile(r"(GET|POST) (\S+) (\d{3}) (\d+\.\d{3}) ms")
    parsed = [pattern.fullmatch(o["message"]) for o in lines]
    assert all(parsed) and all(o["level"] == "info" for o in lines), lines
    assert [(m.group(1), m.group(2), int(m.group(3))) for m in parsed] == [
        ("POST", "/streams", 201), ("GET", "/streams", 200), ("GET", "/streams/{id}", 200),
        ("GET", "/no/such/path", 404), ("GET", "/streams", 200)]
    text = p.log_path.read_text(errors="replace")
    assert "hunter2-secret" not in text and "tok-in-query" not in text
    assert any(o["message"].startswith("listening on") and o.get("commit") for o in objects)


def test_api_text_log_and_access_log_off(spawn, bin_dir, postgres, redis_server):
    p, base = start_api(spawn, bin_dir, postgres, redis_server, "cli-api-quiet", VF_ACCESS_LOG="false")
    for _ in range(3):
        assert requests.get(base + "/health", timeout=5).status_code in (200, 503)
    assert p.stop() == 0
    lines = [line for line in p.log_path.read_text().splitlines() if not line.startswith("vectorflow-api listening")]
    parsed = [TEXT_LINE.match(line) for line in lines]
    assert parsed and all(parsed), lines
    assert not [m for m in parsed if m.group(3) == "vectorflow-api.access"]
    assert any(m.group(2) == "info" and m.group(4).startswith("listening on http://127.0.0.1:") for m in parsed)


# --- the build step that writes the commit ----------------------------------------------------------

def build_commit_script():
    """The shell step of Sources/BuildCommitPlugin/plugin.swift, as Swift's raw string gives it to sh."""
    source = (ROOT / "Sources/BuildCommitPlugin/plugin.swift").read_text()
    m = re.search(r'static let script = #"""\n(.*?)\n( *)"""#', source, re.S)
    assert m, "the plugin's script"
    indent = m.group(2)
    return "\n".join(line[len(indent):] if line.startswith(indent) else line for line in m.group(1).split("\n"))


def generated_commit(package_dir, out_dir, **env):
    full = {"PATH": os.environ["PATH"], **env}
    r = subprocess.run(["/bin/sh", "-c", build_commit_script(), "build-commit", str(package_dir), str(out_dir)],
                       env=full, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    text = (out_dir / "BuildCommit.swift").read_text()
    m = re.search(r'let generatedBuildCommit = "([^"]*)"', text)
    assert m, text
    return m.group(1)


def test_build_commit_step_never_fails_the_build(tmp_path):
    plain = tmp_path / "no-git"  # a source copy without .git, as in a Docker build
    plain.mkdir()
    out = tmp_path / "out"
    assert generated_commit(plain, out) == "unknown"
    before = (out / "BuildCommit.swift").stat().st_mtime_ns
    assert generated_commit(plain, out) == "unknown"
    assert (out / "BuildCommit.swift").stat().st_mtime_ns == before, "an unchanged commit rewrites nothing"
    assert generated_commit(plain, out, VF_BUILD_COMMIT="0123abcd") == "0123abcd"
    assert generated_commit(plain, out, VF_BUILD_COMMIT='x"; rm -rf /') == "unknown"
    no_git = tmp_path / "bin"  # the tools the step needs, but no git
    no_git.mkdir()
    for tool in ("mkdir", "cat", "mv"):
        (no_git / tool).symlink_to(shutil.which(tool))
    (out / "BuildCommit.swift").unlink()
    assert generated_commit(plain, out, PATH=str(no_git)) == "unknown", "no git at all"
    repo = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert generated_commit(repo, out) == head
    assert generated_commit(repo, out, VF_BUILD_COMMIT="feedbeef") == "feedbeef", "the build argument wins"


def test_log_level_filters(spawn, bin_dir, redis_server, tmp_path):
    w = start_worker(spawn, bin_dir, redis_server, "level", str(tmp_path / "missing.mp4"), LOG_LEVEL="warning")
    wait_until(lambda: "cannot open the source" in w.log_path.read_text(errors="replace"), 15, what="the error")
    assert w.stop() == 0
    lines = [TEXT_LINE.match(line) for line in w.log_path.read_text().splitlines()]
    assert lines and all(lines), lines
    levels = {m.group(2) for m in lines}
    assert levels <= {"warning", "error", "critical"}, levels


def test_workers_log_as_the_api_was_told(spawn, bin_dir, postgres, redis_server, samples):
    """LOG_FORMAT and LOG_LEVEL of the API reach the workers it starts (process runtime here)."""
    state = tempfile.mkdtemp(prefix="vf-cli-state-")
    p, base = start_api(spawn, bin_dir, postgres, redis_server, "cli-api-worker-logs", LOG_FORMAT="json",
                        LOG_LEVEL="info", VF_STATE_DIR=state, VF_ALLOW_FILE_SOURCES="true", VF_MEDIA_DIR=str(samples))
    s = requests.post(base + "/streams", json={"name": "lobby", "rtsp_url": f"file://{samples}/vtest.avi"}, timeout=5)
    assert s.status_code == 201, s.text
    sid = s.json()["id"]
    assert requests.post(f"{base}/streams/{sid}/activate", timeout=30).status_code == 200
    logs = os.path.join(state, "logs")

    def worker_objects():
        if not os.path.isdir(logs):
            return []
        lines = [line for name in os.listdir(logs) for line in open(os.path.join(logs, name)).read().splitlines()]
        return [json.loads(line) for line in lines]
    wait_until(lambda: any(o["message"] == "state connecting -> running" for o in worker_objects()), 30,
               what="the worker's JSON log to say running")
    objects = worker_objects()
    assert all(o["stream_id"] == sid for o in objects)
    assert objects[0]["message"].startswith("starting: source file://"), objects[0]
    assert requests.post(f"{base}/streams/{sid}/deactivate", timeout=30).status_code == 200
    assert p.stop() == 0


def _main_thread_waits_for_signals(pid):
    """Whether the API's main thread sits in sigwait (rt_sigtimedwait): its start-up is over,
    the "listening" line written (or not)."""
    number = {"x86_64": 128, "aarch64": 137}[os.uname().machine]
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == str(number)
    except (OSError, IndexError):
        return False


def test_api_whose_output_reader_is_gone_keeps_running_and_stops_on_sighup(bin_dir, postgres, redis_server):
    """`make run | tee run.log`, Ctrl-C: the tee dies first, and every line the API writes after
    that meets a closed pipe (EPIPE, SIGPIPE ignored). It used to trap on its "listening" line and
    crash (issue 13); now the lines are lost and the API serves on, then stops on SIGHUP (a
    terminal hang-up) with status 0."""
    db = f"cli_{uuid.uuid4().hex[:10]}"
    postgres.psql(f"CREATE DATABASE {db} OWNER vectorflow")
    port = free_port()
    env = {**os.environ, "VF_HOST": "127.0.0.1", "VF_PORT": str(port),
           "VF_STATE_DIR": tempfile.mkdtemp(prefix="vf-cli-state-"), "VF_RUNTIME": "process",
           "VF_STATIC_DIR": str(ROOT / "test-output" / "no-static"), "VF_WORKER_BIN": worker_bin(bin_dir),
           "VF_FILE_SD_PATH": os.path.join(tempfile.mkdtemp(), "workers.json"),
           "DATABASE_URL": f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{db}",
           "REDIS_URL": redis_server.url}
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    p = subprocess.Popen([api_bin(bin_dir)], stdout=w, stderr=w, env=env)
    os.close(w)
    try:
        wait_until(lambda: p.poll() is not None or _main_thread_waits_for_signals(p.pid), 30,
                   what="the API's start-up to end")
        assert p.poll() is None, f"the API ended with status {p.returncode}"
        # The database connects in the background: wait for it (a 503 until then), not for luck.
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200, 30,
                   what="/health 200")
        assert p.poll() is None, f"the API ended with status {p.returncode}"
        p.send_signal(signal.SIGHUP)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
