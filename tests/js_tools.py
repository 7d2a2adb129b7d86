"""The suite's Node side (package.json at the root: dcrf-client, redocly, the AsyncAPI parser, tsc, ws, and the
clients/js workspace), installed from the committed package-lock.json.

`make test` runs `npm ci` first; `node_tools()` does it too when the install is missing
or does not match package-lock.json, so a lone `pytest tests/...` works as well.
"""

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT
STAMP = TOOLS / "node_modules" / ".installed-lock-sha256"


@dataclass
class NodeTools:
    """Where node and the installed packages are."""

    node: str
    modules: Path

    def bin(self, name: str) -> str:
        """An installed package's command (node_modules/.bin/<name>)."""
        return str(self.modules / ".bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """An environment in which CommonJS scripts anywhere can require the installed packages."""
        return {**os.environ, "NODE_PATH": str(self.modules), **extra}


def _lock_digest() -> str:
    return hashlib.sha256((TOOLS / "package-lock.json").read_bytes()).hexdigest()


def node_tools() -> NodeTools:
    """Node 20+ and the installed packages, running `npm ci` first if the install does not match the lockfile."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed (Debian package nodejs); `make test` expects them"
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"Node 20 or newer is needed, found {major}"
    digest = _lock_digest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TOOLS, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
        STAMP.write_text(digest)
    return NodeTools(node=node, modules=TOOLS / "node_modules")
