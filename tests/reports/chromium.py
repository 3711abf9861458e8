"""``needs_chromium``: skip a browser test when no Chromium is installed, unless ``DYNNAS_REQUIRE_CHROMIUM`` is
set (``.ci/run`` sets it after installing Chromium, so there a missing browser fails instead)."""

from __future__ import annotations

import os

import pytest

from reports.browser import find_chromium

HAVE_CHROMIUM = find_chromium() is not None
needs_chromium = pytest.mark.skipif(
    not HAVE_CHROMIUM and not os.environ.get("DYNNAS_REQUIRE_CHROMIUM"),
    reason="needs Chromium: `apt-get install -y chromium` (.ci/run installs it) or set DYNNAS_CHROMIUM")
