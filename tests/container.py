"""A Debian 12 machine with a real systemd, for the install tests: a root file system made once by debootstrap
from Debian's packages (kept in /var/cache/sitekeeper-tests, so later runs start from a copy of it), booted
with `systemd-nspawn -b` on the host's network, commands run in it with nsenter. Debian's package cache and
pip's are shared with the host's cache folder, so a second install fetches nothing again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("SITEKEEPER_TEST_CACHE", "/var/cache/sitekeeper-tests"))
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,sudo,iproute2,procps"


def why_not() -> str | None:
    """Why no container can be booted here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool} (setup.sh --dev installs systemd-container and debootstrap)"
    return None


def base_root() -> Path:
    """Debian 12 with systemd, made once."""
    root = CACHE / "bookworm"
    if not (root / "etc" / "os-release").exists():
        tmp = CACHE / "bookworm.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(tmp),
                        "http://deb.debian.org/debian"], check=True, capture_output=True, timeout=1200)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root


class Container:
    def __init__(self, workdir: Path, repo: Path, name: str = "sktest"):
        self.root = workdir / "root"
        self.repo, self.name = repo, name
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.log = workdir / "boot.log"

    def boot(self) -> Container:
        subprocess.run(["cp", "-a", "--reflink=auto", str(base_root()), str(self.root)], check=True, timeout=600)
        for folder in ("apt", "pip"):
            (CACHE / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "hostname").write_text(self.name + "\n")
        with open(self.root / "etc" / "hosts", "a") as hosts:
            hosts.write(f"127.0.1.1 {self.name}\n")
        # this machine reaches the package registries through a proxy with a CA of its own: the container
        # trusts what the host trusts (the test's network, not the product's)
        extra = Path("/usr/local/share/ca-certificates")
        if extra.is_dir():
            shutil.copytree(extra, self.root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit", "-M", self.name,
             "--console=read-only", f"--bind-ro={self.repo}:/src",
             f"--bind={CACHE / 'apt'}:/var/cache/apt/archives", f"--bind={CACHE / 'pip'}:/root/.cache/pip"],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.pid = self._init_pid()
            if self.pid and self.run("systemctl is-system-running", check=False).stdout.strip() in (
                    "running", "degraded"):
                self.run("update-ca-certificates >/dev/null 2>&1 || true")
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the container did not boot:\n{self.log.read_text()[-3000:]}")

    def _init_pid(self) -> int:
        if self.proc is None:
            return 0
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        pids = out.stdout.split()
        return int(pids[0]) if pids else 0

    def run(self, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """`command` in the container's namespaces, as root, by bash (its output in the result)."""
        out = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--", "/bin/bash", "-c", command],
                             capture_output=True, text=True, timeout=timeout,
                             env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "LANG": "C.UTF-8", "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"})
        if check and out.returncode != 0:
            raise AssertionError(f"{command!r} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)
