"""The built wheel, installed into a fresh venv, works from an empty directory.

The wheel is built from a copy of the tracked sources (never this checkout's ``build/``,
which could hold files since deleted) with ``pip wheel --no-build-isolation --no-index``:
nothing is downloaded. The fresh venv has no pip and none of our dependencies; a ``.pth``
line makes this environment's site-packages importable after its own, as a plain path (so
this checkout's editable install, a ``.pth`` of that directory, is not processed), and the
wheel is installed into it with ``pip --python``. Then, from an empty directory and with
no ``MAILGATE_POLICY_DIR``, the README's quick start: ``mailgate serve``, its smtplib line,
and ``mailgate decisions``. Built once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, free_port

SOURCES = ("worker", "policies", "pyproject.toml", "README.md")


def quiet_pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ directory of a fresh venv holding only the wheel (and a path to its deps)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    quiet_pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(base), source)
    [wheel] = base.glob("mailgate-*.whl")
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "zz_mailgate_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    quiet_pip(
        "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)
    )
    yield venv / "bin"


def test_wheel_carries_policies_templates_and_catalogue_globs(installed: Path) -> None:
    """The package data is in the wheel, and `worker` is imported from the venv, not here."""
    empty = installed.parent.parent / "probe"
    empty.mkdir()
    program = (
        "import worker, worker.shipped as s; "
        "print(worker.__file__); print(sorted(p.name for p in s.shipped_policy_dir().iterdir()))"
    )
    result = subprocess.run(
        [str(installed / "python"), "-c", program],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    module, names = result.stdout.splitlines()
    assert module.startswith(str(installed.parent)), module
    assert names == "['templates', 'wildix-2018-06.toml', 'wildix-2022-04.toml']"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"locale/**/*"' in pyproject  # the lang branch's catalogues ride along


def _clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILGATE_", "PYTHON"))}
    return {**env, **settings}


def test_quick_start_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    """serve + the README's smtplib line + `mailgate decisions`, no source tree in sight."""
    port = free_port()
    env = _clean_env(MAILGATE_SMTP_LISTEN=f"127.0.0.1:{port}", MAILGATE_HTTP_LISTEN="off")
    serve = subprocess.Popen(
        [str(installed / "mailgate"), "serve"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert serve.stderr is not None
        for line in serve.stderr:
            if line.startswith(b"{") and json.loads(line).get("event") == "mailgate_started":
                break
        else:
            raise AssertionError(f"serve never started: exit {serve.wait()}")
        smtplib.SMTP("127.0.0.1", port, timeout=60).sendmail(
            "you@example.com",
            ["support@wildix.com"],
            b"From: you@example.com\r\nTo: support@wildix.com\r\nSubject: help\r\n\r\n"
            b"my PBX is down\r\n",
        )
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        if serve.stderr is not None:
            serve.stderr.close()
    result = subprocess.run(
        [str(installed / "mailgate"), "decisions", "--format", "json"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [decision] = [json.loads(line) for line in result.stdout.splitlines()]
    assert decision["decision"] == "rejected_new_ticket"
    assert decision["policy"] == "wildix-2022-04"
    assert list((tmp_path / "var" / "outbox").glob("*.eml")), "the reply, spooled"
