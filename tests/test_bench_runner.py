"""`make bench` (bench/run-all.sh) without running the benchmarks themselves (they take minutes and
a release build; the script was run by hand in full): it knows every bench under bench/, its quick
shape is set for each, and its command line refuses what it does not know before building anything.
"""
import re
import subprocess

from conftest import ROOT

SCRIPT = ROOT / "bench/run-all.sh"


def run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_make_bench_calls_the_script():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^bench:\n\t@?bash bench/run-all.sh", makefile, re.M), makefile
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_every_bench_is_run_with_a_quick_shape():
    text = SCRIPT.read_text()
    listed = re.search(r"^ALL=\(([^)]*)\)", text, re.M).group(1).split()
    on_disk = sorted(p.parent.name for p in (ROOT / "bench").glob("*/run.sh"))
    assert sorted(listed) == on_disk, (listed, on_disk)
    case = text[text.index("bench_command() {"):text.index("extra_results() {")]
    for name in on_disk:
        assert re.search(rf"^\s+{re.escape(name)}\) ", case, re.M), f"no quick shape for {name}"


def test_help_and_refusals_come_before_any_build():
    ok = run("--help")
    assert ok.returncode == 0 and "--full" in ok.stdout and "building" not in ok.stdout, ok.stdout + ok.stderr
    unknown = run("no-such-bench")
    assert unknown.returncode == 2 and "no-such-bench" in unknown.stderr and "building" not in unknown.stdout
    flag = run("--fast")
    assert flag.returncode == 2 and "--fast" in flag.stderr
