"""The image's start command, run outside a container: a fresh virtual environment made the way
docker/Dockerfile makes it (torch first, then `pip install .` of the same files), the model
store copied as the image copies it, the Dockerfile's MRMP_* environment and its CMD. It must
serve the shipped model and turn ready. (No Docker engine runs here.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.http import free_port
from tests.service_helpers import wait_ready

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
MODEL = ROOT / "model_store" / "sbu-mrmp"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MODEL / "manifest.json").is_file(), reason="no shipped model"),
]


def dockerfile_env_and_cmd() -> tuple[dict[str, str], list[str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", final_stage, re.M).group(1))
    return env, cmd


_FIND_SPECS = (
    "import importlib.util, sys; print(*[m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
)


def test_image_start_command_serves_the_shipped_model(tmp_path: Path):
    env_vars, cmd = dockerfile_env_and_cmd()
    assert cmd == ["mrmp-serve"]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):  # the Dockerfile's COPY lines
        shutil.copy(ROOT / name, src / name)
    for package in ("mrmp", "service"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__py*"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=900)
    subprocess.run([*pip, str(src)], check=True, timeout=900)
    absent = ("training", "lab", "tqdm", "matplotlib")
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _FIND_SPECS, *absent],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert found == [], f"the image installs {found}"

    app = tmp_path / "app"
    shutil.copytree(MODEL, app / "model_store" / "sbu-mrmp", ignore=shutil.ignore_patterns("tiers"))
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        **{k: v for k, v in env_vars.items() if k.startswith("MRMP_")},
        "MRMP_MODEL_PATH": str(app / "model_store" / "sbu-mrmp"),
        "MRMP_TIER_DIR": str(tmp_path / "tiers"),
        "MRMP_HOST": "127.0.0.1",
        "MRMP_PORT": str(port),
    }
    proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout=120)
        model = httpx.get(f"http://127.0.0.1:{port}/v1/model").json()
        assert model["name"] == "sbu-mrmp" and model["layout"]["num_joints"] == 30
    finally:
        proc.terminate()
        proc.wait(timeout=60)
