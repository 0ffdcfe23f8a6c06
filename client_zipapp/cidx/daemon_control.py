"""Find, start, stop and inspect the daemon process: the client's only process I/O.

Starting never sleeps and hopes: ``cidx-daemon serve --detach`` returns only
once its socket accepts connections (a readiness pipe inside the daemon
package), so the exit of that command *is* the readiness signal. Liveness is
judged by a connection (``hello``), never by the socket file existing.
"""

from __future__ import annotations

import os
import sys

from cidx_shared import config as cfgmod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

INSTALL_HINT = "install it with 'python3 build.py install' (or: pip install cidx-daemon)"


class DaemonNotInstalled(RuntimeError):
    pass


def daemon_command(cfg: dict) -> list[str]:
    """argv prefix that runs the daemon package's CLI.

    Order: ``daemon.command`` from config; ``cidx-daemon`` next to this
    zipapp (``build.py install`` puts both in one bin dir); ``cidx-daemon`` on
    PATH. The search is a few ``stat`` calls, no imports.
    """
    configured = cfg["daemon"].get("command")
    if configured:
        return list(configured)
    here = os.path.dirname(os.path.abspath(sys.argv[0] or "."))
    candidates = [os.path.join(here, "cidx-daemon")]
    candidates += [os.path.join(d, "cidx-daemon") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return [path]
    raise DaemonNotInstalled(f"the cidx daemon package is not installed: {INSTALL_HINT}")


def start(cfg: dict, config_path: Path, timeout: float = 120.0) -> tuple[bool, str]:
    """Start the daemon detached and wait for its readiness; (ok, message)."""
    import subprocess

    argv = [*daemon_command(cfg), "serve", "--config", str(config_path), "--detach"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"daemon did not become ready within {timeout:.0f}s"
    except OSError as exc:
        return False, f"cannot run {argv[0]}: {exc.strerror or exc}"
    text = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        return True, text
    return False, text.splitlines()[-1] if text else f"daemon exited with code {proc.returncode}"


def log_path(config_path: Path) -> str:
    return cfgmod.sibling(config_path, cfgmod.LOG_NAME)


def socket_path(config_path: Path) -> str:
    return cfgmod.sibling(config_path, cfgmod.SOCKET_NAME)


def run_daemon_cli(cfg: dict, args: list[str], config_path: Path | None) -> int:
    """Hand a command to the daemon package with the terminal attached (progress bars)."""
    import subprocess

    argv = [*daemon_command(cfg), *(["--config", str(config_path)] if config_path else []), *args]
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:
        return 130
