"""environment.yml and pyproject.toml must name the same dependencies."""
import re
import tomllib

import yaml

from tests.conftest import PROJECT_ROOT

# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}
# extras that are not part of the conda environment on purpose
NOT_IN_CONDA = {"bench", "browser"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]}
    for extra, reqs in py["optional-dependencies"].items():
        if extra not in NOT_IN_CONDA:
            wanted |= {_name(r) for r in reqs}
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    conda = set()
    pip_lines = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_lines += dep.get("pip", [])
            continue
        name = _name(dep)
        if name not in ("python", "pip"):
            conda.add(CONDA_TO_PYPI.get(name, name))
    # packages conda-forge does not carry come through the environment's pip list
    conda |= {_name(line) for line in pip_lines if not line.startswith("-")}
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    assert "-e ." in pip_lines  # the package itself, editable


def test_console_script_points_at_the_cli():
    py = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert py["scripts"]["research"] == "research.cli:app"
