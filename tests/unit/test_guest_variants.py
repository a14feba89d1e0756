"""Guest variants: their recipes (built on the base guest's, only when used), the ``--vm
...,guest=VARIANT`` option, the ``guest=VARIANT`` run variant and the scenario field."""

from __future__ import annotations

from typing import Any

import pytest

from lab.errors import BadInput
from lab.provision import images
from lab.provision.guest_variants import GUEST_VARIANTS
from lab.provision.spec import VmSpec, guest_images, lab_spec, parse_vm, vm_option
from lab.runner import PHASES, Variant, parse_variant, plan_run
from tests.unit.test_runner_fakes import FakeFault, fake_fault, write_scenario

__all__ = ["fake_fault"]

BASE = images.guest_recipe("2.7.3.0")


@pytest.mark.parametrize("name", ["netplan", "networkmanager"])
def test_network_variants_have_their_own_packages_under_the_base_guests_dockerfile(
    name: str,
) -> None:
    recipe = images.guest_recipe("2.7.3.0", name)
    assert recipe.name == f"guest-2.7.3.0-{name}" and recipe.context == f"guest-variants/{name}"
    base = recipe.base
    assert base is not None and base.context == BASE.context
    assert base.build_args == BASE.build_args
    packages = base.rootfs.packages
    assert "ifupdown" not in packages
    assert set(GUEST_VARIANTS[name].add) <= set(packages)
    assert base.rootfs.suite == BASE.rootfs.suite == "bookworm"
    assert recipe.tag != BASE.tag and base.rootfs.tag != BASE.rootfs.tag


def test_networkmanager_goes_in_over_the_agent_packages_conflict() -> None:
    rootfs = images.guest_recipe("2.7.3.0", "networkmanager").rootfs
    assert "network-manager" not in rootfs.packages and "waagent" in rootfs.packages
    hooks = " ".join(rootfs.hooks)
    assert "install --yes --no-install-recommends network-manager" in hooks
    assert "dpkg --force-conflicts -i" in hooks
    assert hooks.index("download waagent=") < hooks.index("network-manager")


def test_unit_variant_is_a_layer_on_the_base_guest_image_itself() -> None:
    recipe = images.guest_recipe("2.7.3.0", "waagent-unit")
    assert recipe.base == BASE and recipe.rootfs == BASE.rootfs


def test_a_changed_base_guest_changes_every_variant() -> None:
    recipe = images.guest_recipe("2.7.3.0", "waagent-unit")
    other = images.Recipe(
        name=recipe.name,
        rootfs=recipe.rootfs,
        context=recipe.context,
        base=images.guest_recipe("2.2.47"),
    )
    assert other.tag != recipe.tag


def test_variants_are_built_only_when_asked() -> None:
    assert all(r.base is None for r in images.all_recipes())
    asked = images.all_recipes(("2.7.3.0",), (("2.7.3.0", "netplan"),))
    assert [r.name for r in asked][-2:] == ["guest-2.7.3.0", "guest-2.7.3.0-netplan"]


def test_setup_keeps_the_current_variant_images() -> None:
    removed: list[str] = []

    class Image:
        def __init__(self, tag: str) -> None:
            self.tags, self.id = [tag], tag

    recipe = images.guest_recipe("2.7.3.0", "netplan")
    assert recipe.base is not None
    stale = "snaplab/guest-2.7.3.0-netplan:000000000000"
    listed = [Image(t) for t in (recipe.tag, recipe.base.tag, recipe.rootfs.tag, stale)]

    class Client:
        class images:  # docker-py's attribute name
            @staticmethod
            def list(**_: Any) -> list[Image]:
                return listed

            @staticmethod
            def remove(image_id: str, force: bool = False) -> None:
                removed.append(image_id)

    assert images.prune_stale_images(Client(), images.all_recipes()) == 1
    assert removed == [stale]


def test_vm_option_round_trips() -> None:
    assert parse_vm("vm2:agent=2.2.47,guest=netplan") == VmSpec("vm2", "2.2.47", "netplan")
    assert parse_vm(vm_option("vm1", "2.7.3.0", "waagent-unit")).guest == "waagent-unit"
    assert parse_vm(vm_option("vm1", "2.7.3.0")) == VmSpec("vm1", "2.7.3.0")


def test_unknown_guest_variant_is_one_line() -> None:
    with pytest.raises(BadInput, match=r"--vm 'vm1:guest=rhel'.*unknown guest variant 'rhel'"):
        parse_vm("vm1:guest=rhel")
    with pytest.raises(BadInput, match="expected agent=VERSION or guest=VARIANT"):
        parse_vm("vm1:net=netplan")


def test_guest_images_splits_plain_guests_from_variants() -> None:
    spec = lab_spec("gv", ("vm1", "vm2:guest=netplan", "vm3:agent=2.2.47,guest=netplan"))
    assert guest_images(spec.vms) == (
        ("2.7.3.0",),
        (("2.2.47", "netplan"), ("2.7.3.0", "netplan")),
    )


def test_guest_run_variant() -> None:
    assert parse_variant("guest=networkmanager", "x") == Variant("guest", guest="networkmanager")
    assert Variant("guest", guest="netplan").name == "guest=netplan"
    with pytest.raises(BadInput, match="unknown guest variant 'suse'"):
        parse_variant("guest=suse", "'demo@guest=suse'")


@pytest.fixture
def catalog(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> None:
    monkeypatch.delenv("SNAPLAB_TIME_SCALE", raising=False)
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(tmp_path))
    write_scenario(tmp_path, "demo")


@pytest.mark.usefixtures("catalog")
def test_guest_item_puts_every_vm_on_the_variant_and_keeps_the_expectation() -> None:
    [plain] = plan_run(("demo",), ())
    [item] = plan_run(("demo@guest=netplan",), ())
    assert item.id == "demo@guest=netplan" and item.phases == PHASES
    assert {vm.guest for vm in item.scenario.spec.vms} == {"netplan"}
    assert item.scenario.spec.expect == plain.scenario.spec.expect


@pytest.mark.usefixtures("catalog")
def test_scenario_file_may_name_a_guest_variant(tmp_path: Any) -> None:
    from lab.scenario import load_scenario

    text = (tmp_path / "demo" / "scenario.yaml").read_text()
    assert "agent: 2.7.3.0" in text
    bad = text.replace("agent: 2.7.3.0", "agent: 2.7.3.0\n    guest: ubuntu", 1)
    (tmp_path / "demo" / "scenario.yaml").write_text(bad)
    with pytest.raises(BadInput, match="guest"):
        load_scenario("demo")
    good = text.replace("agent: 2.7.3.0", "agent: 2.7.3.0\n    guest: netplan", 1)
    (tmp_path / "demo" / "scenario.yaml").write_text(good)
    assert load_scenario("demo").spec.vms[0].guest == "netplan"
