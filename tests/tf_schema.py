"""The azurerm provider's schema, offline, from npm's ``@cdktn/provider-azurerm``.

``terraform validate`` needs the azurerm provider binary, which no registry here serves;
the CDK Terrain bindings for azurerm ship the provider's schema in their ``.jsii`` file
(generated from the azurerm version their ``package.json`` names under
``cdktf.provider.version``). This module fetches the pinned package once with
``npm pack``, turns the ``.jsii`` into a small schema (resource types, their arguments
and nested blocks, required flags) cached under ``~/.cache/snaplab/azurerm-schema/``, and
checks Terraform files parsed by ``python-hcl2`` against it.

How the jsii maps to Terraform's names (read from the file, not guessed):

* a resource is a class whose docs summary reads ``Represents a {@link
  https://registry.terraform.io/providers/hashicorp/azurerm/<v>/docs/resources/<x>
  azurerm_<x>}`` (``/docs/data-sources/`` for data sources, ``/docs azurerm`` for the
  provider); its initializer's ``config`` parameter is the interface holding its
  arguments;
* each argument is a camelCase property whose docs (summary or remarks) link to
  ``...#<terraform_name> <Class>#<terraform_name>``: that anchor is the Terraform name;
* a nested block is a property typed as a struct of the package (alone, in an array, or
  in a union with ``IResolvable``); the struct's properties are the block's arguments;
* ``optional`` absent means the argument is required.

Meta-arguments (count, for_each, depends_on, lifecycle, provider, provisioner,
connection) come from cdktn's ``TerraformMetaArguments`` and are Terraform's, not the
provider's. The check catches unknown resource types, misspelt arguments and blocks and
missing required ones; it does not check types or values.

A failed fetch raises :class:`SchemaUnavailable`: the test fails loudly rather than skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "@cdktn/provider-azurerm"
PACKAGE_VERSION = "16.1.0"
META_ARGUMENTS = frozenset(
    {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
)
_REPRESENTS = re.compile(
    r"Represents a \{@link https://registry\.terraform\.io/providers/hashicorp/azurerm/"
    r"[^/\s]+/docs(?:/(resources|data-sources)/\S+)? (azurerm(?:_\w+)?)\}"
)
_ARGUMENT = re.compile(r"#([a-z0-9_]+) \w+#[a-z0-9_]+\}")


class SchemaUnavailable(Exception):
    """The azurerm schema could not be fetched or read."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snaplab" / "azurerm-schema" / PACKAGE_VERSION


def load_schema() -> dict[str, Any]:
    """The cached schema; fetched and extracted on first use."""
    path = cache_dir() / "schema.json"
    if not path.is_file():
        schema = extract(*_fetch_jsii())
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.part")
        partial.write_text(json.dumps(schema), encoding="utf-8")
        partial.replace(path)
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def _fetch_jsii() -> tuple[dict[str, Any], dict[str, Any]]:
    """``npm pack`` the pinned package; return its ``.jsii`` and ``package.json``."""
    npm = shutil.which("npm")
    if npm is None:
        raise SchemaUnavailable(f"npm is not installed: cannot fetch {PACKAGE}")
    with tempfile.TemporaryDirectory(prefix="azurerm-schema-") as tmp:
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise SchemaUnavailable(
                f"npm pack {PACKAGE}@{PACKAGE_VERSION} failed (exit {done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )
        with tarfile.open(tarballs[0]) as tar:
            members = {m.name: m for m in tar.getmembers()}
            try:
                jsii = _json_member(tar, members["package/.jsii"])
                package = _json_member(tar, members["package/package.json"])
            except KeyError as exc:
                raise SchemaUnavailable(f"{tarballs[0].name} has no {exc}") from exc
    return jsii, package


def _json_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    stream = tar.extractfile(member)
    if stream is None:
        raise SchemaUnavailable(f"{member.name} is not a file")
    data = json.load(stream)
    assert isinstance(data, dict)
    return data


def extract(jsii: dict[str, Any], package: dict[str, Any]) -> dict[str, Any]:
    """The schema (see the module's docstring for the mapping) from the jsii assembly."""
    types: dict[str, Any] = jsii["types"]
    memo: dict[str, dict[str, Any]] = {}
    resources: dict[str, Any] = {}
    data_sources: dict[str, Any] = {}
    provider: dict[str, Any] | None = None
    for kind in types.values():
        if kind.get("kind") != "class":
            continue
        found = _REPRESENTS.search(kind.get("docs", {}).get("summary", ""))
        if not found:
            continue
        config = next(
            (
                p["type"]["fqn"]
                for p in kind.get("initializer", {}).get("parameters", [])
                if p["name"] == "config"
            ),
            None,
        )
        if config is None:
            continue
        block = _block(types, config, memo)
        section, name = found.groups()
        if section == "resources":
            resources[name] = block
        elif section == "data-sources":
            data_sources[name] = block
        else:
            provider = block
    if provider is None or not resources:
        raise SchemaUnavailable(f"{PACKAGE}'s .jsii holds no azurerm provider or resources")
    return {
        "package": f"{PACKAGE}@{package.get('version')}",
        "provider_version": package["cdktf"]["provider"]["version"],
        "provider": provider,
        "resources": resources,
        "data_sources": data_sources,
    }


def _block(types: dict[str, Any], fqn: str, memo: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One block's arguments: {name: {"required": bool, "block": nested or None}}."""
    if fqn in memo:
        return memo[fqn]
    arguments: dict[str, Any] = {}
    memo[fqn] = arguments
    kind = types[fqn]
    inherited = [i for i in kind.get("interfaces", []) if i.startswith(PACKAGE)]
    for parent in inherited:
        arguments.update(_block(types, parent, memo))
    for prop in kind.get("properties", []):
        docs = prop.get("docs", {})
        match = _ARGUMENT.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")
        if not match:
            continue
        struct = _struct_of(types, prop["type"])
        arguments[match.group(1)] = {
            "required": not prop.get("optional", False),
            "block": _block(types, struct, memo) if struct else None,
        }
    return arguments


def _struct_of(types: dict[str, Any], ref: dict[str, Any]) -> str | None:
    """The package struct a property's type names, alone, in an array or in a union."""
    fqn = ref.get("fqn")
    if isinstance(fqn, str):
        kind = types.get(fqn, {})
        return fqn if kind.get("kind") == "interface" and kind.get("datatype") else None
    collection = ref.get("collection")
    if collection and collection.get("kind") == "array":
        return _struct_of(types, collection["elementtype"])
    for member in ref.get("union", {}).get("types", []):
        found = _struct_of(types, member)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Finding:
    """One problem in a Terraform file, located by its path of block names."""

    file: str
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.problem}"


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def check_file(parsed: dict[str, Any], file: str, schema: dict[str, Any]) -> list[Finding]:
    """Every azurerm resource, data source and provider block of one parsed file."""
    findings: list[Finding] = []
    for section, table in (("resource", "resources"), ("data", "data_sources")):
        for entry in parsed.get(section, []):
            for raw_type, instances in entry.items():
                rtype = _unquote(raw_type)
                if not rtype.startswith("azurerm_"):
                    continue
                for raw_name, body in instances.items():
                    where = f"{section} {rtype}.{_unquote(raw_name)}"
                    known = schema[table].get(rtype)
                    if known is None:
                        findings.append(Finding(file, where, f"unknown {section} type {rtype}"))
                        continue
                    findings += _check_body(body, known, file, where, META_ARGUMENTS)
    for entry in parsed.get("provider", []):
        for raw_name, body in entry.items():
            if _unquote(raw_name) == "azurerm":
                findings += _check_body(
                    body, schema["provider"], file, "provider azurerm", frozenset({"alias"})
                )
    return findings


def _check_body(
    body: dict[str, Any],
    arguments: dict[str, Any],
    file: str,
    where: str,
    meta: frozenset[str] = frozenset(),
) -> list[Finding]:
    findings: list[Finding] = []
    given: set[str] = set()
    for key, value in body.items():
        if key.startswith("__") or key in meta:
            continue
        if key == "dynamic":
            for dynamic in value:
                for raw_label, spec in dynamic.items():
                    if raw_label.startswith("__"):
                        continue
                    label = _unquote(raw_label)
                    given.add(label)
                    known = arguments.get(label)
                    if known is None or known["block"] is None:
                        findings.append(Finding(file, where, f"dynamic {label!r}: no such block"))
                        continue
                    for content in spec.get("content", []):
                        findings += _check_body(
                            content, known["block"], file, f"{where}.{label}", frozenset()
                        )
            continue
        given.add(key)
        known = arguments.get(key)
        if known is None:
            findings.append(Finding(file, where, f"unknown argument or block {key!r}"))
            continue
        items = value if isinstance(value, list) else []
        blocks = [v for v in items if isinstance(v, dict) and v.get("__is_block__")]
        if blocks:
            if known["block"] is None:
                findings.append(Finding(file, where, f"{key!r} is an argument, not a block"))
                continue
            for block in blocks:
                findings += _check_body(block, known["block"], file, f"{where}.{key}")
    for name, known in sorted(arguments.items()):
        if known["required"] and name not in given:
            findings.append(Finding(file, where, f"required {name!r} is missing"))
    return findings
