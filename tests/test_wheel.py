"""The package installs like any other: the built wheel carries everything `attentive-sync`
needs (prefect.yaml included), installs nothing top-level but ``attentive_sync``, and runs
every flow against the emulator from a folder that has nothing to do with the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from attentive_sync.settings import DEMO_API_KEY

ROOT = Path(__file__).resolve().parents[1]

RUN_EVERY_FLOW = """
from datetime import datetime, timezone
from attentive_sync.flows.registry import FLOWS, run_now

for name in FLOWS:
    params = {"wait_seconds": 20}
    if name == "audience-backfill":
        params["run_key"] = "wheel"
    if name in ("reward-reminder", "expiry-notice"):
        params["as_of"] = "2026-11-01"
    counts = run_now(name, params)
    print(name, "ok", counts.get("leased", counts.get("members_read", "")), flush=True)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        # Building needs setuptools from the package index (an isolated build).
        pytest.skip(f"cannot build the wheel here: {build.stderr.strip().splitlines()[-1:]}")
    (path,) = out.glob("attentive_sync-*.whl")
    return path


def test_the_wheel_carries_the_deployments_and_no_top_level_shell(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"attentive_sync"}
    for path in (
        "attentive_sync/deployments/prefect.yaml",
        "attentive_sync/flows/registry.py",
        "attentive_sync/tasks/bulk.py",
        "attentive_sync/deployments/serve.py",
        "attentive_sync/store/migrations/env.py",
    ):
        assert path in names


@pytest.mark.prefect
def test_an_installed_wheel_runs_every_flow_from_an_unrelated_folder(
    wheel, tmp_path, seeded_template, emulator
):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # The dependencies come from this environment (one .pth line, read after the venv's own
    # site-packages); attentive-sync itself only from the wheel.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    assert not any((site / top).exists() for top in ("flows", "tasks", "deployments"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(seeded_template, elsewhere / "program.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTENTIVE_", "PREFECT_"))}
    env.update(
        ATTENTIVE_SYNC_DB_URL=f"sqlite:///{elsewhere / 'program.db'}",
        ATTENTIVE_BASE_URL=emulator.base_url,
        ATTENTIVE_API_KEY=DEMO_API_KEY,
        ATTENTIVE_SYNC_POLL_INTERVAL_SECONDS="0.2",
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONPATH="",
    )
    where = subprocess.run(
        [python, "-c", "import attentive_sync.flows as f; print(f.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr

    init = subprocess.run(
        [env_dir / "bin" / "attentive-sync", "db", "init", "--url", "sqlite:///fresh.db"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0 and "State store ready" in init.stdout, init.stderr[-2000:]

    flows = subprocess.run(
        [python, "-c", RUN_EVERY_FLOW], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert flows.returncode == 0, flows.stdout + flows.stderr[-3000:]
    assert flows.stdout.count(" ok ") == 6, flows.stdout

    cli = subprocess.run(
        [env_dir / "bin" / "attentive-sync", "run", "audience-incremental"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr[-3000:]
    assert "audience-incremental" in cli.stdout
    assert emulator.state.stats()["users"] > 0
