"""Where the browser tests find Debian's Chromium, and what happens when it is missing:
outside CI they skip, saying why; in CI (``CI=true``, which `.ci/run` installs it
for) a missing Chromium fails them, so it can never hide a failure there."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = (
    os.environ.get("FEEDBOT_TEST_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)


def require_chromium() -> str:
    if os.path.isfile(CHROMIUM):
        return CHROMIUM
    why = (
        f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium; "
        ".ci/run does; or set FEEDBOT_TEST_CHROMIUM)"
    )
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)
