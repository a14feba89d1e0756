"""Bring a lab up, look at it, and take it down again — always completely.

``up`` creates objects in a fixed order and, if anything fails (including Ctrl-C),
removes everything carrying the lab's label before the error leaves this module.
``down`` and ``down --all`` find objects by label only, so they also sweep what a
killed run left behind.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab import signals
from lab.errors import BadInput, LabExists, LabNotFound, ProvisionFailed, UnknownVm
from lab.platform.arm.compute_sizes import NoMatchingSize, vm_size_for
from lab.platform.roster import GuestEntry, Roster
from lab.provision import containers, images, network
from lab.provision.fabric_client import FabricClient
from lab.provision.labels import (
    ARM_PORT_LABEL,
    ARM_TOKEN_LABEL,
    LAB_LABEL,
    ROLE_LABEL,
    VM_LABEL,
    container_name,
)
from lab.provision.readiness import wait_for_disks, wait_until_ready
from lab.provision.spec import LabSpec, guest_images
from lab.provision.ssh_guest import ADMIN_USER, install_admin_key, record_host_keys
from lab.provision.ssh_keys import create_key_pair, lab_ssh_files
from lab.provision.state_dir import lab_dir, remove_lab_dir
from lab.provision.tls import write_lab_tls

Report = Callable[[str], None]
READY_TIMEOUT = 300.0
SSHD_TIMEOUT = 60.0


@dataclass(frozen=True)
class ArmEndpoint:
    url: str
    token: str
    ca_file: str
    subscription_id: str
    resource_group: str
    lab: str  # its state folder holds the CA bundle and az's config


def lab_names(client: docker.DockerClient) -> list[str]:
    """Every lab that has at least one labelled object."""
    names: set[str] = set()
    # ignore_removed: another lab's teardown may remove a container between the list and
    # its inspect; that must not break this lab's listing.
    listed = client.containers.list(all=True, filters={"label": LAB_LABEL}, ignore_removed=True)
    for container in listed:
        names.add(container.labels[LAB_LABEL])
    for net in client.networks.list(filters={"label": LAB_LABEL}):
        names.add(net.attrs["Labels"][LAB_LABEL])
    for volume in client.volumes.list(filters={"label": LAB_LABEL}):
        names.add(volume.attrs["Labels"][LAB_LABEL])
    return sorted(names)


def resolve_lab(client: docker.DockerClient, name: str | None) -> str:
    """The named lab, or the only running one when no name is given."""
    names = lab_names(client)
    if name is not None:
        if name not in names:
            raise LabNotFound(f"no lab named {name!r} (running: {', '.join(names) or 'none'})")
        return name
    if not names:
        raise LabNotFound("no lab is running (start one with `snaplab up`)")
    if len(names) > 1:
        raise BadInput(f"several labs are running ({', '.join(names)}): name one")
    return names[0]


def up(client: docker.DockerClient, spec: LabSpec, report: Report) -> Roster:
    """Create the lab and wait until every guest agent reports Ready."""
    if spec.name in lab_names(client):
        raise LabExists(f"--lab {spec.name!r}: a lab with this name already exists")
    wanted = images.all_recipes(*guest_images(spec.vms))
    tags = {recipe.name: images.ensure_image(client, recipe, report) for recipe in wanted}
    try:
        return _create_lab(client, spec, tags, report)
    except BaseException:
        report(f"tearing down lab {spec.name} after a failure")
        down(client, spec.name)
        raise


def _create_lab(
    client: docker.DockerClient, spec: LabSpec, tags: dict[str, str], report: Report
) -> Roster:
    report(f"creating network for lab {spec.name}")
    addresses = network.create_network(client, spec.name)
    network.add_firewall_rules(spec.name)
    guests = tuple(
        GuestEntry(
            name=vm.name,
            ip=addresses.guest(index),
            mac=network.mac_for(addresses.guest(index)),
            agent_version=vm.agent,
            container=container_name(spec.name, vm.name),
            cpus=containers.GUEST_CPUS,
            memory_mib=containers.GUEST_MEMORY_MIB,
        )
        for index, vm in enumerate(spec.vms)
    )
    for guest in guests:  # a VM must show an Azure size that is true of its limits
        try:
            vm_size_for(guest)
        except NoMatchingSize as exc:
            raise ProvisionFailed(f"{guest.name}: {exc}") from exc
    roster = Roster(
        lab=spec.name,
        subnet=str(addresses.subnet),
        fabric_ip=addresses.fabric,
        storage_ip=addresses.storage,
        guests=guests,
        time_scale=spec.time_scale,
    )
    report("starting fabric (DHCP, WireServer, HostGAPlugin) and storage (Azurite)")
    fabric = containers.create_fabric(client, roster, tags["host"])
    fabric.start()
    containers.create_storage(client, spec.name, addresses.storage, tags["storage"]).start()
    _wait_for_fabric(fabric, FabricClient(roster.fabric_ip))
    network.guard_platform(client, roster)  # before any guest boots
    report(f"booting {len(guests)} guest(s)")
    admin_key = create_key_pair(lab_ssh_files(spec.name), f"{ADMIN_USER}@{spec.name}")
    for guest, vm in zip(guests, spec.vms, strict=True):
        image = tags[images.guest_image_name(vm.agent, vm.guest)]
        created = containers.create_guest(client, spec.name, guest, image)
        install_admin_key(created, admin_key)
        created.start()
        containers.open_guest(client, guest.container)
    report("starting the ARM twin")
    write_lab_tls(spec.name, lab_dir(spec.name))
    containers.create_arm_twin(
        client,
        lab=spec.name,
        image=tags["host"],
        fabric_ip=roster.fabric_ip,
        port=_free_loopback_port(),
        token=secrets.token_urlsafe(24),
        tls_dir=lab_dir(spec.name),
    ).start()
    report("waiting for every guest agent to report Ready")
    wait_until_ready(client, roster, FabricClient(roster.fabric_ip), READY_TIMEOUT)
    wait_for_disks(FabricClient(roster.fabric_ip), READY_TIMEOUT)
    record_host_keys(client, roster, SSHD_TIMEOUT)
    return roster


def _wait_for_fabric(fabric: Container, client: FabricClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.answers():
        fabric.reload()
        if fabric.status != "running":
            log = fabric.logs(tail=5).decode(errors="replace").strip().splitlines()
            raise ProvisionFailed(f"fabric exited: {log[-1] if log else 'no output'}")
        if time.monotonic() > deadline:
            raise ProvisionFailed(f"fabric control API did not answer within {timeout:.0f} s")
        time.sleep(0.3)


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@signals.shielded("removing a lab")
def down(client: docker.DockerClient, lab: str | None) -> int:
    """Remove every object of ``lab`` (every lab when None); returns how many.

    Shielded: a SIGTERM or Ctrl-C meanwhile lets the removal finish (lab.signals).
    """
    selector = {"label": f"{LAB_LABEL}={lab}" if lab else LAB_LABEL}
    removed = 0
    for container in client.containers.list(all=True, filters=selector, ignore_removed=True):
        try:
            container.remove(force=True, v=True)
            removed += 1
        except NotFound:
            continue
        except APIError as exc:
            raise ProvisionFailed(f"could not remove {container.name}: {exc.explanation}") from exc
    removed += network.remove_network(client, lab)
    for volume in client.volumes.list(filters=selector):
        try:
            volume.remove(force=True)
            removed += 1
        except NotFound:
            continue
    removed += network.remove_firewall_rules(lab)
    remove_lab_dir(lab)
    return removed


def roster_of(client: docker.DockerClient, lab: str) -> Roster:
    fabric = _container(client, lab, "fabric")
    ip = fabric.attrs["NetworkSettings"]["Networks"][f"snaplab-{lab}"]["IPAddress"]
    return FabricClient(ip).roster()


def status(client: docker.DockerClient, lab: str, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """The lab's VMs (or only the named ones): power state, agent and extensions."""
    roster = roster_of(client, lab)
    for name in only:
        if roster.guest_by_name(name) is None:
            known = ", ".join(g.name for g in roster.guests)
            raise UnknownVm(f"--vm {name!r}: lab {lab!r} has no such VM (it has: {known})")
    views = {vm["name"]: vm for vm in FabricClient(roster.fabric_ip).vms()}
    vms = []
    for guest in roster.guests:
        if only and guest.name not in only:
            continue
        view = views.get(guest.name, {})
        agent = view.get("agent") or {}
        vms.append(
            {
                "name": guest.name,
                # The platform's record, as the instance view shows it (not Docker's).
                "power_state": view.get("power_state") or "unknown",
                "agent": {
                    "version": agent.get("version"),
                    "status": agent.get("status", "Not Ready"),
                    "last_report": agent.get("last_report"),
                },
                "extensions": view.get("extensions", []),
            }
        )
    return {"lab": lab, "vms": vms}


def wait_ready(
    client: docker.DockerClient, lab: str, only: tuple[str, ...], timeout: float
) -> None:
    """Wait until the named VMs' agents (all when none named) report Ready."""
    roster = roster_of(client, lab)
    guests = tuple(g for g in roster.guests if not only or g.name in only)
    subset = dataclasses.replace(roster, guests=guests)
    wait_until_ready(client, subset, FabricClient(roster.fabric_ip), timeout)


def arm_endpoint(client: docker.DockerClient, lab: str) -> ArmEndpoint:
    twin = _container(client, lab, "arm")
    roster = roster_of(client, lab)
    return ArmEndpoint(
        url=f"https://127.0.0.1:{twin.labels[ARM_PORT_LABEL]}",
        token=twin.labels[ARM_TOKEN_LABEL],
        ca_file=str(lab_dir(lab) / "ca.pem"),
        subscription_id=roster.subscription_id,
        resource_group=roster.resource_group,
        lab=lab,
    )


def guest_container(client: docker.DockerClient, lab: str, vm: str) -> Container:
    found = client.containers.list(
        all=True, filters={"label": [f"{LAB_LABEL}={lab}", f"{VM_LABEL}={vm}"]}
    )
    if not found:
        raise UnknownVm(f"lab {lab!r} has no VM named {vm!r}")
    return found[0]


def _container(client: docker.DockerClient, lab: str, role: str) -> Container:
    found = client.containers.list(
        all=True, filters={"label": [f"{LAB_LABEL}={lab}", f"{ROLE_LABEL}={role}"]}
    )
    if not found:
        raise LabNotFound(f"lab {lab!r} has no {role} container (run `snaplab down {lab}`)")
    return found[0]
