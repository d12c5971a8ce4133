"""The tree is clean under the project's pre-commit hooks (``setup/lint``)."""

import subprocess

from conftest import REPO


def test_lint():
    result = subprocess.run(
        [str(REPO / "setup" / "lint")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
