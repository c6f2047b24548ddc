"""The deploy/ files an operator copies: systemd units, sysusers, env.example, recipes.

The units are checked by ``systemd-analyze verify`` where systemd is installed, and their
hardening directives are read in any case; the sysusers file really creates the user in a
scratch root; env.example names every setting mailgate has (support domains first) and
nothing it lacks; every recipe placeholder is explained in deploy/README.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest
from helpers import ROOT

from worker.settings import Settings

DEPLOY = ROOT / "deploy"
UNITS = ("mailgate.service", "mailgate-dispatch.service")


def unit(name: str) -> ConfigParser:
    parser = ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_unit_is_hardened(name: str) -> None:
    """Private files, a state directory, and a sandbox; dispatch runs `mailgate dispatch`."""
    service = unit(name)["Service"]
    assert service["UMask"] == "0077"
    assert service["StateDirectory"] == "mailgate"
    assert service["User"] == "mailgate"
    for directive in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert service[directive] == "true", directive
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    command = "dispatch" if "dispatch" in name else "serve"
    assert service["ExecStart"].split()[1] == command


def verify(copy: Path, analyze: str) -> tuple[int, list[str]]:
    """``systemd-analyze verify`` of one unit: its exit code and the lines about that unit.

    The units it pulls in (``postgresql.service``, Request Tracker's web server on a CI
    machine) are loaded too and may print their own warnings: only our unit's lines are
    judged, and ``--recursive-errors=no`` keeps their problems out of the exit code."""
    result = subprocess.run(
        [analyze, "verify", "--recursive-errors=no", str(copy)], capture_output=True, text=True
    )
    ours = [
        line
        for line in result.stderr.splitlines()
        if line.startswith((f"{copy}:", f"{copy.name}:"))
    ]
    return result.returncode, ours


def deployable_copy(name: str, directory: Path) -> Path:
    text = (DEPLOY / "systemd" / name).read_text()
    # The unit points to /opt/mailgate; here the binary is this checkout's.
    text = text.replace("/opt/mailgate/.venv/bin/mailgate", str(Path(sys.prefix) / "bin/mailgate"))
    text = text.replace("WorkingDirectory=/opt/mailgate", f"WorkingDirectory={ROOT}")
    copy = directory / name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies(name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` finds no unknown directive (when systemd is installed)."""
    analyze = shutil.which("systemd-analyze")
    copy = deployable_copy(name, tmp_path)
    if analyze is None:  # no systemd here: at least every line is a known section or key=value
        lines = copy.read_text().splitlines()
        assert all(re.match(r"^(#.*|\[\w+\]|\w+=.*|)$", line) for line in lines)
        return
    code, ours = verify(copy, analyze)
    assert code == 0, ours
    assert not [line for line in ours if "Unknown" in line or "ignoring" in line], ours


def test_unit_verify_judges_only_our_unit(tmp_path: Path) -> None:
    """Another unit's warnings pass; an unknown key in ours is still caught by its line."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of the test machine (scripts/test)"
    # A neighbour our unit pulls in (After=postgresql.service), with keys systemd lacks.
    (tmp_path / "postgresql.service").write_text(
        "[Unit]\nDescription=x\nBogusKey=1\n[Service]\nExecStart=/bin/true\nFooBar=2\n"
    )
    copy = deployable_copy("mailgate.service", tmp_path)
    assert verify(copy, analyze) == (0, [])
    copy.write_text(copy.read_text() + "\nNoSuchDirective=3\n")
    code, ours = verify(copy, analyze)
    assert code != 0 and len(ours) == 1 and "NoSuchDirective" in ours[0]


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    """The sysusers.d line creates `mailgate` with the state directory as home, no login."""
    conf = DEPLOY / "systemd" / "mailgate.sysusers.conf"
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        [line] = [x for x in conf.read_text().splitlines() if x and not x.startswith("#")]
        assert line.split()[:3] == ["u", "mailgate", "-"]
        return
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    [entry] = [x for x in (tmp_path / "etc/passwd").read_text().splitlines() if "mailgate" in x]
    fields = entry.split(":")
    assert fields[0] == "mailgate" and fields[5:] == ["/var/lib/mailgate", "/usr/sbin/nologin"]


def test_env_example_names_every_setting_support_domains_first() -> None:
    """Every setting appears (set or commented); the first one set is the support domains."""
    text = (DEPLOY / "env.example").read_text()
    documented = re.findall(r"^#? ?(MAILGATE_[A-Z_]+)=", text, re.M)
    assert set(documented) == {f"MAILGATE_{name.upper()}" for name in Settings.model_fields}
    assert re.findall(r"^(MAILGATE_[A-Z_]+)=", text, re.M)[0] == "MAILGATE_SUPPORT_DOMAINS"
    secret = re.search(r"^MAILGATE_REPLY_SECRET=(.*)$", text, re.M)
    assert secret and "CHANGE-ME" in secret.group(1)


def test_recipe_placeholders_are_documented() -> None:
    """Each {{PLACEHOLDER}} of deploy/postfix/ is explained in deploy/README.md."""
    readme = (DEPLOY / "README.md").read_text()
    found = set()
    for recipe in (DEPLOY / "postfix").iterdir():
        found |= set(re.findall(r"\{\{[A-Z_]+\}\}", recipe.read_text()))
    assert found and all(placeholder in readme for placeholder in found), found
