"""Azurite from the lab's own storage image, for tests that need real blob storage
without a whole lab: a labelled container on an internal network of its own."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
from docker.models.containers import Container

from lab.platform.backup.azure_storage import DEV_ACCOUNT_NAME
from lab.provision import containers, images, network
from lab.provision import lab as labs

BLOB_PORT = 10000


class AzuriteContainer:
    """Created stopped, so a test can first check what happens while storage is down."""

    def __init__(self, container: Container, ip: str) -> None:
        self.container = container
        self.ip = ip

    @property
    def account_url(self) -> str:
        return f"http://{self.ip}:{BLOB_PORT}/{DEV_ACCOUNT_NAME}"

    def start(self, timeout: float = 30.0) -> None:
        self.container.start()
        deadline = time.monotonic() + timeout
        while not _listening(self.ip, BLOB_PORT):
            self.container.reload()
            assert self.container.status == "running", "azurite exited"
            assert time.monotonic() < deadline, f"azurite did not listen within {timeout:.0f} s"
            time.sleep(0.1)

    def stop(self) -> None:
        self.container.stop(timeout=5)


@contextmanager
def azurite_container(client: docker.DockerClient, lab: str) -> Iterator[AzuriteContainer]:
    """A stopped Azurite on its own internal network; everything is removed after."""
    try:
        image = images.ensure_image(client, images.storage_recipe(), lambda _: None)
        addresses = network.create_network(client, lab)
        container = containers.create_storage(client, lab, addresses.storage, image)
        yield AzuriteContainer(container, addresses.storage)
    finally:
        labs.down(client, lab)


def _listening(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((ip, port)) == 0
