"""Guest variants: the lab's Debian guest shaped as other distributions configure it.

The base guest is Debian as Azure's Debian images are: eth0 by DHCP through ifupdown and
dhclient, the agent's unit ``walinuxagent.service``. Real VMs differ where the checks
look: Ubuntu configures eth0 with netplan and systemd-networkd, RHEL with NetworkManager,
and RHEL and SUSE name the agent's unit ``waagent.service``. A variant rebuilds that
difference from Debian's own packages (the same suite and mirror as the base guest), so
the checks and faults meet it for real:

- ``netplan``: ``netplan.io`` (and udev, as on Ubuntu) with systemd-networkd instead of
  ifupdown and dhclient; ``/etc/netplan/01-eth0.yaml`` says ``dhcp4: true``, netplan's
  generator turns it into a ``.network`` file at boot and networkd is eth0's DHCP client
  (its lease, ``OPTION_245`` included, in ``/run/systemd/netif/leases/<ifindex>``).
- ``networkmanager``: ``network-manager`` instead of ifupdown; a keyfile connection
  ``System eth0`` with ``ipv4.method=auto`` (as RHEL's); NetworkManager runs dhclient as
  its DHCP client (``dhcp=dhclient``, as RHEL 7 and 8 do; the lease goes to
  ``/var/lib/NetworkManager/dhclient-<uuid>-eth0.lease``, the path RHEL's agent reads)
  and starts eth0 from a clean state (``keep-configuration=no``: Docker hands the
  container an addressed eth0, which NetworkManager would otherwise adopt as an
  external connection without DHCP). Debian's ``waagent`` package declares ``Conflicts:
  network-manager`` (RHEL's WALinuxAgent package, made for NetworkManager, does not), so
  apt installs NetworkManager in place of the agent and the same agent package is put
  back with ``dpkg --force-conflicts``: the files are the package's, only apt's view
  of the pair is forced (apt calls the guest's packages broken until one goes).
- ``waagent-unit``: the agent package's unit diverted (``dpkg-divert``, so package
  upgrades follow) to ``waagent.service``, with the lab's drop-ins; its SysV script
  diverted and unlinked too (RHEL's package has none, and systemd would generate a
  ``walinuxagent.service`` from it); no ``walinuxagent.service`` remains.

In every variant the agent is Debian's package, so it runs its Debian code path
(WALinuxAgent ``osutil/debian.py``): it reads only ``/var/lib/dhcp/dhclient.*.leases``,
finds none on the netplan and NetworkManager variants, and asks for option 245 with its
own DHCP request ("Send dhcp request" in waagent.log) — what the agent does on any VM
whose DHCP client keeps its lease where the agent's distribution code does not look (on
Ubuntu before agent 2.10, whose ``osutil/ubuntu.py`` reads networkd's ``OPTION_245``
from 2.10 on; on RHEL with NetworkManager's internal client). On Azure a host route to
168.63.129.16 usually spares the agent that request; the lab's WireServer address has
no such route.

A variant's image is built on first use (``Recipe.base``: the base guest's Dockerfile on
the variant's root filesystem, then the variant's own layer from
``lab/images/guest-variants/<name>/``), never by ``snaplab setup``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import BadInput


@dataclass(frozen=True)
class GuestVariant:
    """One variant: what it stands for, and the base guest's packages it changes."""

    name: str
    summary: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    # Installed after the agent package, which Debian makes conflict with them.
    over_agent: tuple[str, ...] = ()

    @property
    def context(self) -> str:
        """Its Dockerfile folder under ``lab/images``."""
        return f"guest-variants/{self.name}"

    def packages(self, base: tuple[str, ...]) -> tuple[str, ...]:
        """The root filesystem's packages: the base guest's, changed by this variant."""
        return (*(p for p in base if p not in self.remove), *self.add)


_DHCLIENT_STACK = ("ifupdown", "isc-dhcp-client")

GUEST_VARIANTS: dict[str, GuestVariant] = {
    v.name: v
    for v in (
        GuestVariant(
            "netplan",
            "eth0 by DHCP through netplan and systemd-networkd (as Ubuntu)",
            add=("netplan.io", "udev"),
            remove=_DHCLIENT_STACK,
        ),
        GuestVariant(
            "networkmanager",
            "eth0 by DHCP through NetworkManager (as RHEL)",
            remove=("ifupdown",),
            over_agent=("network-manager",),
        ),
        GuestVariant(
            "waagent-unit", "the agent's systemd unit named waagent.service (as RHEL and SUSE)"
        ),
    )
}


def guest_variant(name: str, where: str = "guest") -> GuestVariant:
    """The variant called ``name``; BadInput naming ``where`` and the known ones."""
    try:
        return GUEST_VARIANTS[name]
    except KeyError:
        known = ", ".join(GUEST_VARIANTS)
        raise BadInput(f"{where}: unknown guest variant {name!r} (known: {known})") from None
