"""The README's two commands: what CI runs, and that they work as written in a fresh virtualenv."""
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_command():
    main, tests = readme_commands()
    assert "\n" not in main and "\n" not in tests
    assert main.startswith("pip install") and main.endswith("research report")
    assert "[test]" in tests and "pytest" in tests
    ci = (PROJECT_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == tests, ".ci/run must end with exactly the README's test command"


def _clean_copy(dest: Path) -> Path:
    """The files a fresh clone would have (tracked and untracked-but-not-ignored), nothing else."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = PROJECT_ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def _run_shown(cmd: str, *, cwd: Path, env: dict, capfd) -> subprocess.CompletedProcess:
    """Run ``cmd`` and echo each output line to the terminal as it comes: this test takes minutes,
    and a silent test that long looks hung."""
    out: list[str] = []
    with capfd.disabled():
        print(f"\n[readme] $ {cmd}", file=sys.stderr, flush=True)
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            out.append(line)
            print(f"[readme] {line.rstrip()[:200]}", file=sys.stderr, flush=True)
        proc.wait()
    text = "".join(out)
    return subprocess.CompletedProcess(cmd, proc.returncode, text, "")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_commands_work_in_a_fresh_virtualenv(tmp_path, capfd):
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clone has")
    project = _clean_copy(tmp_path / "treadmill")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "RESEARCH_"))}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # pip's byte-compilation of ~150 packages is a third of each install and checks nothing here
    # (Python compiles what it imports); the commands themselves run exactly as written
    env["PIP_NO_COMPILE"] = "1"
    main, tests = readme_commands()

    r = _run_shown(main, cwd=project, env=env, capfd=capfd)
    assert r.returncode == 0, f"{main!r} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "synthetic" in (r.stdout + r.stderr).lower()  # the empty lake falls back to the simulated market
    assert (project / "reports" / "latest" / "index.html").exists()

    # Run the test command as written; PYTEST_ADDOPTS narrows it to one module so the suite does not
    # run itself recursively (the full suite is what this outer run is).
    env["PYTEST_ADDOPTS"] = "tests/test_schema.py -q"
    r = _run_shown(tests, cwd=project, env=env, capfd=capfd)
    assert r.returncode == 0, f"{tests!r} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert re.search(r"\d+ passed", r.stdout)
    assert Path(sys.executable) != env_dir / "bin" / "python"


def test_readme_grid_example_loads(tmp_path):
    from research import batch

    text = (PROJECT_ROOT / "README.md").read_text()
    (tmp_path / "grid.yaml").write_text(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    specs = batch.load_grid(tmp_path / "grid.yaml").specs
    assert len(specs) == 2 * 2 + 2 * 2  # product 2x2 on one notebook; zip of 2 on two notebooks
    assert {s.parameters.get("start") for s in specs} >= {"2025-10-01", "2026-01-01"}  # dates stay strings
