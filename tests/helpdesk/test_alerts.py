"""The helpdesk alert rules fire on a sync that stopped and on errors that keep coming, and
stay quiet otherwise (promtool's rule unit tests on the series mailgate exposes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).parent.parent / "fixtures" / "alerts_helpdesk_test.yml"


def test_helpdesk_alerts_fire_and_stay_quiet() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/test installs Debian's prometheus package"
    result = subprocess.run(
        [promtool, "test", "rules", str(UNIT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
