"""Setup benchmark: ``python -m evals.bench_setup [--json] [--skip-full]``.

Clones the repository at HEAD (committed work only) into a temporary directory and, with a
new, empty pip cache directory, times ``make demo`` from a clean start until it has printed
its cited answer and the API it ends by serving answers ``/readyz``; then stops it. Reports
the size of that base environment, then installs everything (``bash scripts/setup.sh``, what
``make test`` runs, with this machine's usual pip cache, so llama.cpp's wheel built earlier is
reused) and reports the size of the full environment, with the biggest packages of each.
Downloads from the package registry: this is a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from evals.beir import REPO_ROOT
from evals.report import Reporter

TARGET_DEMO_S = 300.0
TARGET_BASE_MB = 1536.0
CITATION = re.compile(r"^\s*\[\d+\] .*characters \d+-\d+: supported")
SERVING_MARK = re.compile(r"^API http://")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dir_mb(path: Path) -> float:
    """Bytes of the files under ``path`` (what ``du --apparent-size`` counts), in MiB."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 2**20


def biggest_packages(venv: Path, n: int = 12) -> list[tuple[str, float]]:
    """The largest top-level entries of the venv's site-packages (MiB), biggest first."""
    (site,) = venv.glob("lib/python3*/site-packages")
    sizes = [
        (entry.name, dir_mb(entry) if entry.is_dir() else entry.stat().st_size / 2**20)
        for entry in site.iterdir()
        if not entry.name.endswith((".dist-info", ".pth"))
    ]
    return sorted(sizes, key=lambda kv: -kv[1])[:n]


def answers_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C to the demo's process group (make and the server), then a kill if need be."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def time_demo(clone: Path, env: dict[str, str], timeout_s: float, log: Path) -> dict[str, Any]:
    """Runs ``make demo`` in ``clone``; the seconds to the printed answer and to ``/readyz``."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "demo", f"PORT={port}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    marks: dict[str, float] = {}
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "answer" not in marks and CITATION.match(line):
                marks["answer"] = time.perf_counter() - started  # its first cited source
            if "serving" not in marks and SERVING_MARK.match(line):
                marks["serving"] = time.perf_counter() - started

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready = None
    try:
        while time.perf_counter() - started < timeout_s and proc.poll() is None:
            if "serving" in marks and answers_ready(port):
                ready = time.perf_counter() - started
                break
            time.sleep(0.2)
    finally:
        stop(proc)
        reader.join(timeout=5)
        log.write_text("".join(lines), encoding="utf-8")
    if ready is None:
        tail = "".join(lines[-30:])
        raise SystemExit(f"make demo did not get to /readyz (exit {proc.returncode}):\n{tail}")
    if "answer" not in marks:
        raise SystemExit("make demo printed no supported citation:\n" + "".join(lines[-30:]))
    return {"ready_s": ready, "answer_s": marks["answer"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--skip-full", action="store_true", help="measure the base only")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for make demo")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args(argv)
    rep = Reporter(args.json)
    if subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"],
                      capture_output=True, text=True, check=True).stdout.strip():  # fmt: skip
        print("note: uncommitted changes are not in the clone", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="ragstack-setup-"))
    try:
        clone, cache = tmp / "ragstack", tmp / "pip-cache"
        cache.mkdir()
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("RAGSTACK_", "VIRTUAL_ENV"))
        }
        env["PIP_CACHE_DIR"] = str(cache)
        env["UV_CACHE_DIR"] = str(cache / "uv")  # the base layer installs with uv: empty too
        demo = time_demo(clone, env, args.timeout, tmp / "demo.log")
        venv = clone / ".venv"
        base_mb = dir_mb(venv)
        base_top = biggest_packages(venv)
        has_torch = (venv / "lib").glob("python3*/site-packages/torch")
        base_torch = any(True for _ in has_torch)
        full_mb, full_top, full_s = None, [], None
        if not args.skip_full:
            full_env = {k: v for k, v in env.items() if k not in ("PIP_CACHE_DIR", "UV_CACHE_DIR")}
            t0 = time.perf_counter()
            subprocess.run(["bash", "scripts/setup.sh"], cwd=clone, env=full_env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            full_s = time.perf_counter() - t0
            full_mb = dir_mb(venv)
            full_top = biggest_packages(venv)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    rep.table(
        "Setup from a fresh clone (new, empty pip cache for make demo)",
        ["step", "value", "target", "notes"],
        [
            ["make demo: answer printed (s)", demo["answer_s"], None, "setup --base + demo"],
            ["make demo: /readyz answers (s)", demo["ready_s"], TARGET_DEMO_S, ""],
            ["base environment (MB)", base_mb, TARGET_BASE_MB, f"torch: {base_torch}"],
            ["full environment (MB)", full_mb, None, "setup.sh, every extra + test tools"],
            ["full setup on top (s)", full_s, None, "machine's usual pip cache"],
        ],
    )
    rep.table("Biggest packages, base", ["package", "MB"], [[n, mb] for n, mb in base_top])
    if full_top:
        rep.table("Biggest packages, full", ["package", "MB"], [[n, mb] for n, mb in full_top])
    rep.final(
        {
            "demo_ready_s": round(demo["ready_s"], 1),
            "base_env_mb": round(base_mb, 1),
            "full_env_mb": round(full_mb, 1) if full_mb is not None else None,
        }
    )


if __name__ == "__main__":
    main()
