"""Benchmark the lab platform (a script, not a test): python bench/bench_platform.py

Prints, on this machine:
  * the floor: the guest image's bare `docker run` until systemd reports running;
  * seconds from `up` to every agent Ready, for 1 guest and for 10 guests;
  * memory per idle guest (cgroup usage without page cache), after the 10-guest lab
    has settled.
Images are built first and not timed. Every lab it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time

import docker

from lab.provision import engine, images
from lab.provision import lab as labs
from lab.provision.containers import CGROUP_MOUNT, SYSTEMD_TMPFS
from lab.provision.spec import lab_spec

SETTLE_SECONDS = 30.0


def bare_boot_seconds(client: docker.DockerClient, image: str) -> float:
    """`docker run` of the guest image to `systemctl is-system-running` = running."""
    start = time.monotonic()
    container = client.containers.run(
        image,
        detach=True,
        tmpfs=SYSTEMD_TMPFS,
        volumes=CGROUP_MOUNT,
        network_mode="none",
        labels={"snaplab.lab": "bench-floor"},
    )
    try:
        while True:
            _, out = container.exec_run(["systemctl", "is-system-running"])
            if out.decode().strip() in ("running", "degraded"):
                return time.monotonic() - start
            time.sleep(0.05)
    finally:
        container.remove(force=True)


def up_seconds(client: docker.DockerClient, name: str, guests: int) -> float:
    spec = lab_spec(name, tuple(f"vm{i + 1}" for i in range(guests)))
    start = time.monotonic()
    labs.up(client, spec, lambda _: None)
    return time.monotonic() - start


def idle_guest_memory_mib(client: docker.DockerClient, lab: str) -> list[float]:
    usages = []
    for container in client.containers.list(
        filters={"label": [f"snaplab.lab={lab}", "snaplab.role=guest"]}
    ):
        stats = container.stats(stream=False)["memory_stats"]
        cache = stats.get("stats", {}).get("cache", 0) or stats.get("stats", {}).get("file", 0)
        usages.append((stats["usage"] - cache) / 2**20)
    return usages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--many", type=int, default=10, help="guests in the large lab")
    args = parser.parse_args()

    client = engine.ensure_engine(print)
    engine.raise_inotify_limit()
    for recipe in images.all_recipes(("2.7.3.0",)):
        images.ensure_image(client, recipe, print)
    guest_image = images.guest_recipe("2.7.3.0").tag

    floors = [bare_boot_seconds(client, guest_image) for _ in range(3)]
    floor = f"{statistics.median(floors):.2f} s"
    rows = [("bare docker run -> systemd running (median of 3)", floor)]
    try:
        rows.append(("up -> all agents Ready, 1 guest", f"{up_seconds(client, 'bench1', 1):.2f} s"))
        labs.down(client, "bench1")
        many = f"up -> all agents Ready, {args.many} guests"
        rows.append((many, f"{up_seconds(client, 'bench10', args.many):.2f} s"))
        time.sleep(SETTLE_SECONDS)
        memory = idle_guest_memory_mib(client, "bench10")
        rows.append(
            (
                f"memory per idle guest ({len(memory)} guests, {SETTLE_SECONDS:.0f} s idle)",
                f"mean {statistics.mean(memory):.0f} MiB, max {max(memory):.0f} MiB",
            )
        )
    finally:
        for lab in ("bench1", "bench10"):
            labs.down(client, lab)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
