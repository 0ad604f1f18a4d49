"""Prerequisites of the end-to-end tests: locally a missing one skips the test, in CI it fails.

``cargo xtask ci`` provisions every program these tests use (Debian packages when it runs as root
or with passwordless sudo, the pinned npm and PyPI packages). Under CI (``CI`` set to anything but
``""``, ``0`` or ``false``) a missing prerequisite is therefore a broken machine, and the test
fails with the reason instead of quietly not running::

    from prereq import require_program, missing

    chromium = require_program("chromium")
    if key is None:
        missing("no readable key in /etc/ssl/private")
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

#: The Debian package that provides a program, where the names differ.
PACKAGES = {"rg": "ripgrep", "pgrep": "procps", "node": "nodejs", "fc-list": "fontconfig"}


def in_ci() -> bool:
    """Whether the tests run under CI (``CI`` set and not ``""``, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(message: str) -> NoReturn:
    """Fails the test under CI, skips it locally."""
    message = f"{message} (`cargo xtask ci` provisions it when it may install packages)"
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {message}", pytrace=False)
    pytest.skip(message)


def require_program(name: str) -> str:
    """The path of ``name`` on ``PATH``; fails under CI, skips locally when it is not installed."""
    path = shutil.which(name)
    if path is None:
        missing(f"`{name}` is not installed (Debian package `{PACKAGES.get(name, name)}`)")
    return path
