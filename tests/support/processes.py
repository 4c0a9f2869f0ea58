"""Real `feedbot` processes for end-to-end tests: started like an operator would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_DROP = ("TELEGRAM_", "FEEDBOT_", "DATABASE_URL", "PORT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(extra)
    return env


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds it took; AssertionError naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


IN_FLIGHT_WARNING = re.compile(r"(\d+) messages were in flight when feedbot last stopped")


def in_flight_at_stop(log: str) -> int:
    """How many messages a process found in flight, left by the one before it (its
    recovery warning): each of them, and nothing else, may reach its chat twice."""
    return sum(int(n) for n in IN_FLIGHT_WARNING.findall(log))


class Feedbot:
    """``python -m feedbot --config CFG ROLE`` with its stderr in a file."""

    def __init__(self, role: str, config: Path, env: Mapping[str, str], log: Path) -> None:
        self.role = role
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feedbot", "--config", str(config), role],
            cwd=ROOT,
            env=clean_env(env),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no clean-up of any kind."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode
