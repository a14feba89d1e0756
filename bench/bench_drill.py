"""Benchmark a drill (a script, not a test): python bench/bench_drill.py [--trainees 6]

Times ``snaplab drill start`` for a class with mixed scenarios (by default six trainees,
each a different scenario, one of them the nine-VM schedule storm), then ``drill end``,
and reports memory: the host's (``MemTotal - MemAvailable``, sampled every half second,
its peak over the level before the start) and the drill's containers' (their cgroup's
current and peak usage, cgroup v1 ``memory.usage_in_bytes`` / ``max_usage_in_bytes``, or
v2 ``memory.current`` / ``memory.peak``), and the CPU seconds those containers used
while starting. It needs a real Docker engine and about two labs' worth of the machine:
run it inside ``labslot`` when other lab runs are not going.

Its output is what lab/drill/capacity.py's numbers are checked against. ``--engine URL``
(repeatable) spreads the class over Docker engines of this machine, as ``drill start``
does, and reads the containers of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import docker

DEFAULT_SCENARIOS = (
    "agent-stopped",
    "blocked-egress",
    "cpu-saturation",
    "memory-pressure",
    "prescript-hang",
    "schedule-storm",
)
MIB = 1024 * 1024


def host_used_mib() -> float:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


class Sampler(threading.Thread):
    """The host's used memory every half second, keeping the peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = host_used_mib()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, host_used_mib())
            time.sleep(0.5)


def _cgroup_file(container_id: str, v1: str, v2: str) -> Path | None:
    for path in (
        Path(f"/sys/fs/cgroup/memory/docker/{container_id}/{v1}"),
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/{v2}"),
        Path(f"/sys/fs/cgroup/docker/{container_id}/{v2}"),
    ):
        if path.exists():
            return path
    return None


def _read_int(path: Path | None) -> int:
    try:
        return int(path.read_text().split()[0]) if path else 0
    except (OSError, ValueError):
        return 0


def _cpu_seconds(container_id: str) -> float:
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    if v1.exists():
        return _read_int(v1) / 1e9
    for folder in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),
        Path(f"/sys/fs/cgroup/docker/{container_id}"),
    ):
        stat = folder / "cpu.stat"
        if stat.exists():
            for line in stat.read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
    return 0.0


def drill_containers(client: docker.DockerClient, drill: str) -> list[dict[str, Any]]:
    """Each container of the drill's labs: role, current and peak memory, CPU seconds."""
    rows = []
    for container in client.containers.list(all=True, filters={"label": "snaplab.lab"}):
        lab = container.labels.get("snaplab.lab", "")
        if not lab.startswith(f"{drill}-t"):
            continue
        cid = container.id
        rows.append(
            {
                "name": container.name,
                "lab": lab,
                "role": container.labels.get("snaplab.role", "?"),
                "mib": _read_int(_cgroup_file(cid, "memory.usage_in_bytes", "memory.current"))
                / MIB,
                "peak_mib": _read_int(_cgroup_file(cid, "memory.max_usage_in_bytes", "memory.peak"))
                / MIB,
                "cpu_s": _cpu_seconds(cid),
            }
        )
    return rows


def engine_client(engine: str) -> docker.DockerClient:
    """A client for an ``--engine`` value given as ``default`` or a URL."""
    return docker.from_env() if engine == "default" else docker.DockerClient(base_url=engine)


def snaplab(*args: str, env: dict[str, str]) -> tuple[int, float, str]:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lab", "drill", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, time.monotonic() - began, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainees", type=int, default=len(DEFAULT_SCENARIOS))
    parser.add_argument("--scenario", action="append", default=None)
    parser.add_argument("--name", default=f"drab{os.getpid() % 10000}")
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        help="Passed to drill start (repeatable): the class spread over these engines.",
    )
    options = parser.parse_args()
    scenarios = options.scenario or list(DEFAULT_SCENARIOS)
    clients = [engine_client(e) for e in options.engine or ["default"]]
    env = dict(os.environ)
    env.setdefault("SNAPLAB_STATE_DIR", tempfile.mkdtemp(prefix="bench-drill-"))

    before = host_used_mib()
    sampler = Sampler()
    sampler.start()
    start_args = ["start", "--trainees", str(options.trainees), "--name", options.name]
    for item in scenarios:
        start_args += ["--scenario", item]
    for engine in options.engine:
        start_args += ["--engine", engine]
    code, start_s, output = snaplab(*start_args, env=env)
    sampler.stop.set()
    sampler.join()
    containers = [c for client in clients for c in drill_containers(client, options.name)]
    idle_after = host_used_mib()
    print(output.rstrip())
    end_code, end_s, end_output = snaplab(
        "end",
        "--drill",
        options.name,
        "--out",
        tempfile.mkdtemp(prefix="bench-debrief-"),
        env=env,
    )
    print(end_output.rstrip())
    left = [
        c.name
        for client in clients
        for c in client.containers.list(all=True, filters={"label": "snaplab.lab"})
        if c.labels.get("snaplab.lab", "").startswith(f"{options.name}-t")
    ]
    result = {
        "trainees": options.trainees,
        "engines": options.engine or ["default"],
        "scenarios": scenarios,
        "start_exit": code,
        "start_seconds": round(start_s, 1),
        "end_exit": end_code,
        "end_seconds": round(end_s, 1),
        "host_used_before_mib": round(before),
        "host_used_peak_mib": round(sampler.peak),
        "host_peak_delta_mib": round(sampler.peak - before),
        "host_after_start_delta_mib": round(idle_after - before),
        "containers": len(containers),
        "containers_mib": round(sum(c["mib"] for c in containers)),
        "containers_peak_mib_sum": round(sum(c["peak_mib"] for c in containers)),
        "containers_cpu_seconds": round(sum(c["cpu_s"] for c in containers), 1),
        "by_role_peak_mib": {
            role: round(max(c["peak_mib"] for c in containers if c["role"] == role))
            for role in sorted({c["role"] for c in containers})
        },
        "peak_mib_by_container": {c["name"]: round(c["peak_mib"]) for c in containers},
        "left_behind": left,
    }
    print(json.dumps(result, indent=2))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if code == 0 and end_code == 0 and not left else 1


if __name__ == "__main__":
    sys.exit(main())
