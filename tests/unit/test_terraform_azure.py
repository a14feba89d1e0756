"""Offline checks of the Terraform front ends, the real-Azure module above all.

Nothing here reaches Azure or a Terraform registry: ``terraform fmt`` on the whole
``terraform/`` tree, ``terraform init`` + ``terraform test`` of the provider-free
scenario submodule (in a temporary copy, with an empty CLI configuration), every ``.tf``
file parsed by ``python-hcl2``, and the Azure module's resource types, arguments and
nested blocks checked against the azurerm schema of npm's ``@cdktn/provider-azurerm``
(:mod:`tests.tf_schema`; fetched once, cached). What is never checked here — the module
applied on a subscription, argument types and values — ``terraform/azure/README.md``
says plainly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from lab import terraform_catalog
from lab.scenario import load_scenarios
from tests import tf_schema

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
AZURE = TERRAFORM / "azure"
SCENARIO_MODULE = AZURE / "modules" / "scenario"
IGNORED = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", ".snaplab")


def tf_files(base: Path) -> list[Path]:
    """The tree's ``.tf`` files, outside Terraform's working folders."""
    return sorted(p for p in base.rglob("*.tf") if ".terraform" not in p.parts)


def terraform_bin() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.fail("terraform is not on PATH: it is the Terraform front ends' prerequisite")
    return found


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Terraform offline: an empty CLI configuration, no update check, no colour."""
    home = tmp_path_factory.mktemp("tf-home")
    config = home / "terraformrc"
    config.write_text("", encoding="utf-8")
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(config),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_DATA_DIR=str(home / "data"),
    )
    return env


def run_tf(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [terraform_bin(), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"terraform {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def scenario_module(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Path:
    """An initialised copy of the scenario submodule (no .terraform lands in the tree)."""
    copy = tmp_path_factory.mktemp("scenario-module") / "scenario"
    shutil.copytree(SCENARIO_MODULE, copy, ignore=IGNORED)
    run_tf(["init", "-input=false", "-no-color"], copy, tf_env)
    return copy


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The azurerm schema; a fetch that fails fails the tests (CI reaches npm)."""
    return tf_schema.load_schema()


def parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    assert isinstance(parsed, dict)
    return parsed


# --- one source of truth ---------------------------------------------------------------


def test_scenario_catalog_file_is_generated_from_the_scenario_files() -> None:
    text = terraform_catalog.AZURE_FILE.read_text(encoding="utf-8")
    assert text == terraform_catalog.render_azure(), (
        "terraform/azure/modules/scenario/scenarios.json is stale: "
        "run .venv/bin/python -m lab.terraform_catalog"
    )


def test_local_catalog_file_is_generated_from_the_lab() -> None:
    text = terraform_catalog.LOCAL_FILE.read_text(encoding="utf-8")
    assert text == terraform_catalog.render_local(), (
        "terraform/local/catalog.tf.json is stale: run .venv/bin/python -m lab.terraform_catalog"
    )


def test_scenario_catalog_holds_each_scenarios_error_and_faults() -> None:
    data = json.loads(terraform_catalog.AZURE_FILE.read_text(encoding="utf-8"))["scenarios"]
    scenarios = load_scenarios()
    assert sorted(data) == sorted(s.id for s in scenarios)
    for scenario in scenarios:
        entry = data[scenario.id]
        assert entry["backup_error"] == scenario.spec.expect.backup_error
        assert entry["faults"] == [
            {"fault": f.fault, "params": f.params} for f in scenario.spec.faults
        ]
        assert entry["azure_clock"] == scenario.spec.fidelity.azure_clock


# --- format and parse -------------------------------------------------------------------


def test_terraform_fmt_check_on_the_whole_tree(tmp_path: Path, tf_env: dict[str, str]) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=IGNORED)
    done = subprocess.run(
        [terraform_bin(), "fmt", "-check", "-recursive", "-diff", "-no-color"],
        cwd=copy,
        env=tf_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"terraform fmt -check found unformatted files:\n{done.stdout}"


def test_every_tf_file_parses_with_python_hcl2() -> None:
    files = tf_files(TERRAFORM)
    assert any(p.is_relative_to(AZURE) for p in files)
    for path in files:
        try:
            parse(path)
        except Exception as exc:  # the parser raises lark's errors
            pytest.fail(f"{path.relative_to(ROOT)}: python-hcl2 cannot parse it: {exc}")


# --- the scenario submodule's own tests ---------------------------------------------------


def test_scenario_submodule_terraform_test_passes_offline(
    scenario_module: Path, tf_env: dict[str, str], tmp_path: Path
) -> None:
    tests = (SCENARIO_MODULE / "tests" / "scenarios.tftest.hcl").read_text(encoding="utf-8")
    runs = len(re.findall(r'^run "', tests, flags=re.M))
    junit = tmp_path / "scenario.xml"
    out = run_tf(["test", "-no-color", f"-junit-xml={junit}"], scenario_module, tf_env)
    assert f"Success! {runs} passed, 0 failed." in out, out
    assert junit.is_file()


def console(module: Path, env: dict[str, str], expression: str) -> Any:
    out = run_tf(["console", "-no-color"], module, env, stdin=f"jsonencode({expression})\n")
    return json.loads(json.loads(out.strip()))


def test_readme_lists_every_scenario_as_the_module_decides(
    scenario_module: Path, tf_env: dict[str, str]
) -> None:
    refusals: dict[str, str | None] = console(scenario_module, tf_env, "local.refusals")
    readme = (AZURE / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (built|refused)\b", readme, flags=re.M))
    assert set(rows) == set(refusals), "the README's scenario table must list every scenario"
    for scenario, refusal in refusals.items():
        assert rows[scenario] == ("built" if refusal is None else "refused"), scenario


# --- the Azure module against the azurerm schema ------------------------------------------


def findings_in(base: Path, schema: dict[str, Any]) -> list[tf_schema.Finding]:
    found: list[tf_schema.Finding] = []
    for path in tf_files(base):
        found += tf_schema.check_file(parse(path), str(path.relative_to(base)), schema)
    return found


def test_azure_module_matches_the_azurerm_schema(
    schema: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():  # shown in every run, not only on failure
        print(
            f"\n[azurerm schema] checked against azurerm {schema['provider_version']} "
            f"({schema['package']})"
        )
    assert findings_in(AZURE, schema) == []
    used = {
        json.loads(rtype)
        for path in tf_files(AZURE)
        for entry in parse(path).get("resource", [])
        for rtype in entry
    }
    assert {
        "azurerm_resource_group",
        "azurerm_virtual_network",
        "azurerm_subnet",
        "azurerm_network_security_group",
        "azurerm_network_security_rule",
        "azurerm_network_interface",
        "azurerm_linux_virtual_machine",
        "azurerm_recovery_services_vault",
        "azurerm_backup_policy_vm",
        "azurerm_backup_protected_vm",
    } <= used


def test_azure_module_asks_for_the_provider_major_the_schema_describes(
    schema: dict[str, Any],
) -> None:
    versions = parse(AZURE / "versions.tf")["terraform"][0]["required_providers"][0]
    constraint = versions["azurerm"]["version"]
    assert constraint == '"~> 4.0"'  # python-hcl2 keeps the quotes
    assert schema["provider_version"].split(".")[0] == "4"


@pytest.fixture
def azure_copy(tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "azure"
    shutil.copytree(AZURE, copy, ignore=IGNORED)
    yield copy


def mutate(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "disable_password_authentication = true",
            "disable_pasword_authentication = true",
            "resource azurerm_linux_virtual_machine.vm: unknown argument or block "
            "'disable_pasword_authentication'",
        ),
        (
            'caching              = "ReadWrite"',
            'cacheing             = "ReadWrite"',
            "resource azurerm_linux_virtual_machine.vm.os_disk: unknown argument or block "
            "'cacheing'",
        ),
        (
            "source_image_reference {",
            "source_image_referense {",
            "resource azurerm_linux_virtual_machine.vm: unknown argument or block "
            "'source_image_referense'",
        ),
        (
            'resource "azurerm_backup_policy_vm" "daily"',
            'resource "azurerm_backup_policy_virtual_machine" "daily"',
            "unknown resource type azurerm_backup_policy_virtual_machine",
        ),
        (
            "  recovery_vault_name = azurerm_recovery_services_vault.drill.name\n  source_vm_id",
            "  source_vm_id",
            "resource azurerm_backup_protected_vm.vm: required 'recovery_vault_name' is missing",
        ),
        (
            "purge_protected_items_from_vault_on_destroy          = true",
            "purge_protected_items_on_destroy = true",
            "provider azurerm.features.recovery_service: unknown argument or block "
            "'purge_protected_items_on_destroy'",
        ),
    ],
    ids=["argument", "nested-argument", "block", "resource-type", "required", "provider"],
)
def test_schema_check_fails_on_a_misspelt_copy(
    azure_copy: Path, schema: dict[str, Any], old: str, new: str, problem: str
) -> None:
    target = azure_copy / ("versions.tf" if "purge" in old else "main.tf")
    mutate(target, old, new)
    found = [str(f) for f in findings_in(azure_copy, schema)]
    assert any(problem in f for f in found), found


def test_schema_fetch_without_npm_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(tf_schema.SchemaUnavailable, match="npm is not installed"):
        tf_schema.load_schema()
