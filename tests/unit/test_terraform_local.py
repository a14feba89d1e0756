"""terraform/local without Docker: its own `terraform test` files (validation, the derived
commands) and the apply/destroy flows against a fake `snaplab` that records what it was
asked (the real CLI is driven by tests/integration/test_terraform_local.py). That the
generated catalog.tf.json equals what the lab renders is test_terraform_azure.py's
test_local_catalog_file_is_generated_from_the_lab."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab import cli as cli_module

MODULE = Path(__file__).resolve().parents[2] / "terraform" / "local"
TERRAFORM = shutil.which("terraform")
# Terraform's working files: never copied (the tests must work from a clean checkout).
NOT_COPIED = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", ".snaplab")

# A stand-in for the snaplab CLI: each call appends its arguments to calls.log; `up` makes
# the lab (a file), `down` removes it, `status`/`env --json` print what the real ones print.
FAKE_SNAPLAB = textwrap.dedent(
    """\
    import json, os, sys
    from pathlib import Path
    state = Path(os.environ["FAKE_SNAPLAB_DIR"])
    args = sys.argv[1:]
    with open(state / "calls.log", "a") as log:
        log.write(" ".join(args) + "\\n")
    if args[0] == "up":
        lab = args[args.index("--lab") + 1]
        if (state / lab).exists():
            sys.exit(f"Error: --lab {lab!r}: a lab with this name already exists")
        if os.environ.get("FAKE_UP_FAILS"):
            sys.exit("Error: vm1: the agent never reported Ready (lab %s removed)" % lab)
        (state / lab).write_text(" ".join(args))
    elif args[0] == "status":
        if not (state / args[1]).exists():
            sys.exit(2)
        print(json.dumps({"lab": args[1], "vms": [{"name": "vm1", "power_state": "running",
              "agent": {"version": "2.7.3.0", "status": "Ready", "last_report": "t"},
              "extensions": []}]}))
    elif args[0] == "env":
        print(json.dumps({"ARM_ENDPOINT": "https://127.0.0.1:4443",
              "AZURE_RESOURCE_GROUP": "rg-" + args[1], "AZURE_SUBSCRIPTION_ID": "sub",
              "IDENTITY_HEADER": "it's"}))
    elif args[0] == "down":
        (state / args[1]).unlink(missing_ok=True)
    """
)


@dataclass
class Workspace:
    """A copy of the module, initialised, with a fake snaplab beside it."""

    root: Path  # the configuration Terraform runs in
    fake_dir: Path
    env: dict[str, str]

    def terraform(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [TERRAFORM or "terraform", *args, "-no-color"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def calls(self) -> list[str]:
        log = self.fake_dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def labs(self) -> list[str]:
        return sorted(p.name for p in self.fake_dir.iterdir() if p.name != "calls.log")


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """No CLI configuration (no registry, no plugin cache): only built-in providers."""
    rc = tmp_path / "terraformrc"
    rc.write_text("")
    return {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1"}


def _copy_module(target: Path) -> Path:
    shutil.copytree(MODULE, target, ignore=NOT_COPIED)
    return target


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """The module used as a child module (as a trainer's configuration would use it)."""
    if TERRAFORM is None:
        pytest.fail("terraform is not on PATH (the README names Terraform >= 1.9 as needed)")
    _copy_module(tmp_path / "local")
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir()
    fake = tmp_path / "snaplab"
    fake.write_text(f"#!{sys.executable}\n{FAKE_SNAPLAB}")
    fake.chmod(0o755)
    root = tmp_path / "config"
    root.mkdir()
    _write_config(root, fake, "tfl-fake", None)
    env = {**_offline_env(tmp_path), "FAKE_SNAPLAB_DIR": str(fake_dir)}
    ws = Workspace(root, fake_dir, env)
    ws.terraform("init", "-input=false")
    yield ws


def _write_config(root: Path, fake: Path, lab: str, scenario: str | None) -> None:
    scenario_line = f'  scenario = "{scenario}"\n' if scenario else ""
    (root / "main.tf").write_text(
        'module "drill" {\n'
        '  source   = "../local"\n'
        f'  snaplab  = "{fake}"\n'
        f'  lab_name = "{lab}"\n'
        f"{scenario_line}"
        "}\n"
        'output "arm_endpoint" { value = module.drill.arm_endpoint }\n'
        'output "vms" { value = module.drill.vms }\n'
        'output "exports" {\n  value     = module.drill.exports\n  sensitive = true\n}\n'
    )


def test_terraform_test_passes_offline(tmp_path: Path) -> None:
    """The module's own tests (tests/*.tftest.hcl: validation and plans), from a clean copy."""
    if TERRAFORM is None:
        pytest.fail("terraform is not on PATH (the README names Terraform >= 1.9 as needed)")
    module = _copy_module(tmp_path / "local")
    env = _offline_env(tmp_path)
    init = subprocess.run(
        [TERRAFORM, "init", "-input=false", "-no-color"],
        cwd=module,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    junit = tmp_path / "terraform-test.xml"
    done = subprocess.run(
        [TERRAFORM, "test", "-no-color", f"-junit-xml={junit}"],
        cwd=module,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("Success! ")
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) >= 16
    assert not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]


def test_apply_outputs_survive_the_files_and_destroy_takes_the_lab_down(
    workspace: Workspace,
) -> None:
    workspace.terraform("apply", "-auto-approve", "-input=false")
    assert workspace.labs() == ["tfl-fake"]
    assert workspace.calls() == [
        "status tfl-fake --json",  # is there a lab of that name already? (no: ours)
        "up --lab tfl-fake",
        "status tfl-fake --json",
        "env tfl-fake --json",
    ]
    shutil.rmtree(workspace.root / ".snaplab")
    plan = workspace.terraform("plan", "-detailed-exitcode", "-input=false")
    assert "No changes." in plan.stdout
    outputs = json.loads(workspace.terraform("output", "-json").stdout)
    assert outputs["arm_endpoint"]["value"] == "https://127.0.0.1:4443"
    assert outputs["vms"]["value"]["vm1"]["agent_version"] == "2.7.3.0"
    assert "export IDENTITY_HEADER='it'\\''s'\n" in outputs["exports"]["value"]

    workspace.terraform("destroy", "-auto-approve", "-input=false")
    assert workspace.labs() == []
    assert workspace.calls()[-1] == "down tfl-fake --missing-ok"


def test_a_failed_up_fails_the_apply_with_the_cli_error_and_the_next_apply_retries(
    workspace: Workspace,
) -> None:
    failing = {**workspace.env, "FAKE_UP_FAILS": "1"}
    done = subprocess.run(
        [TERRAFORM or "terraform", "apply", "-auto-approve", "-input=false", "-no-color"],
        cwd=workspace.root,
        env=failing,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    said = " ".join(done.stderr.split())  # Terraform wraps its lines
    fake = workspace.root.parent / "snaplab"
    assert (
        f"Error running command '{fake} up --lab tfl-fake': exit status 1. Output: "
        "Error: vm1: the agent never reported Ready (lab tfl-fake removed)"
    ) in said
    assert workspace.labs() == []
    state = workspace.terraform("state", "list").stdout.split()
    assert state == ["module.drill.terraform_data.lab"]  # tainted: the next apply replaces it

    workspace.terraform("apply", "-auto-approve", "-input=false")
    assert workspace.labs() == ["tfl-fake"]
    workspace.terraform("destroy", "-auto-approve", "-input=false")
    assert workspace.labs() == []


def test_a_lab_of_the_same_name_is_refused_and_survives_a_destroy(
    workspace: Workspace,
) -> None:
    (workspace.fake_dir / "tfl-fake").write_text("a person's lab")
    done = workspace.terraform("apply", "-auto-approve", "-input=false", ok=False)
    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    assert "Error: --lab 'tfl-fake': a lab with this name already exists" in said
    workspace.terraform("destroy", "-auto-approve", "-input=false")
    assert workspace.labs() == ["tfl-fake"]
    assert not [c for c in workspace.calls() if c.startswith("down")]


def test_another_scenario_replaces_the_lab(workspace: Workspace) -> None:
    workspace.terraform("apply", "-auto-approve", "-input=false")
    fake = workspace.root.parent / "snaplab"
    _write_config(workspace.root, fake, "tfl-fake", "blocked-egress")
    workspace.terraform("apply", "-auto-approve", "-input=false")
    calls = workspace.calls()
    assert calls[4:] == [
        "down tfl-fake --missing-ok",
        "status tfl-fake --json",
        "up --lab tfl-fake --scenario blocked-egress",
        "status tfl-fake --json",
        "env tfl-fake --json",
    ]
    assert (workspace.fake_dir / "tfl-fake").read_text() == (
        "up --lab tfl-fake --scenario blocked-egress"
    )
    workspace.terraform("destroy", "-auto-approve", "-input=false")
    assert workspace.labs() == []


def test_removing_the_module_with_the_readmes_removed_block_takes_the_lab_down(
    workspace: Workspace,
) -> None:
    workspace.terraform("apply", "-auto-approve", "-input=false")
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    block = readme.split("```hcl removed\n", 1)[1].split("```", 1)[0]
    (workspace.root / "main.tf").write_text(block)
    workspace.terraform("apply", "-auto-approve", "-input=false")
    assert workspace.labs() == []
    assert workspace.calls()[-1] == "down tfl-fake --missing-ok"
    assert workspace.terraform("state", "list").stdout.strip() == ""


def test_down_missing_ok_needs_a_lab_name() -> None:
    result = CliRunner().invoke(cli_module.cli, ["down", "--missing-ok"], obj={})
    assert result.exit_code == 2
    assert "--missing-ok needs a LAB" in result.output


def test_down_missing_ok_removes_by_label_without_resolving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    removed: list[str | None] = []
    monkeypatch.setattr("lab.provision.engines.connect_for_lab", lambda lab: object())

    def down(client: object, lab: str | None) -> int:
        removed.append(lab)
        return 0

    monkeypatch.setattr("lab.provision.lab.down", down)

    def no_such_lab(client: object, name: str | None) -> str:
        raise AssertionError("--missing-ok must not ask whether the lab exists")

    monkeypatch.setattr("lab.provision.lab.resolve_lab", no_such_lab)
    result = CliRunner().invoke(cli_module.cli, ["down", "gone", "--missing-ok"], obj={})
    assert result.exit_code == 0, result.output
    assert removed == ["gone"]
    assert result.output.strip() == "removed 0 object(s) of gone"


def test_env_json_prints_the_same_exports_as_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    exports = {"ARM_ENDPOINT": "https://127.0.0.1:1", "IDENTITY_HEADER": "a b'c"}
    monkeypatch.setattr("lab.provision.engines.connect_for_lab", lambda lab: object())
    monkeypatch.setattr("lab.provision.lab.resolve_lab", lambda client, name: name)
    monkeypatch.setattr("lab.provision.lab.arm_endpoint", lambda client, lab: lab)
    monkeypatch.setattr("lab.cli.env_exports", lambda arm: exports)
    as_json = CliRunner().invoke(cli_module.cli, ["env", "lab1", "--json"], obj={})
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == exports
    as_shell = CliRunner().invoke(cli_module.cli, ["env", "lab1"], obj={})
    assert as_shell.output.splitlines()[1] == "export IDENTITY_HEADER='a b'\"'\"'c'"
