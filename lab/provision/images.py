"""Build the lab images from Debian packages, cached by a hash of their recipe.

No container registry is reachable, so every image starts as a root filesystem made
by ``mmdebstrap`` from the machine's own Debian archive, imported with
``docker import``, and finished by a Dockerfile from ``lab/images/<kind>/``. The tag
of each image is a hash of everything that went into it, so an unchanged recipe is
never rebuilt and a changed one never reuses a stale image.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from lab.errors import ImageBuildFailed, UnknownAgentVersion
from lab.platform.package_mirror import source_line
from lab.provision.apt_sources import Archive, machine_archive
from lab.provision.guest_variants import GUEST_VARIANTS, guest_variant
from lab.provision.labels import IMAGE_LABEL, RECIPE_LABEL
from lab.provision.ssh_guest import ADMIN_USER

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = PACKAGE_ROOT / "images"
AZURITE_VERSION = "3.33.0"
AZURE_STORAGE_BLOB_VERSION = "12.31.1"
MMDEBSTRAP_TIMEOUT = 1800

Report = Callable[[str], None]


@dataclass(frozen=True)
class Rootfs:
    """A root filesystem made by mmdebstrap: suite, extra suites, packages, hooks."""

    name: str
    suite: str
    packages: tuple[str, ...]
    extra_suites: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()

    def digest(self) -> str:
        return _digest(json.dumps([self.suite, self.packages, self.extra_suites, self.hooks]))

    @property
    def tag(self) -> str:
        return f"snaplab/rootfs-{self.name}:{self.digest()[:12]}"


@dataclass(frozen=True)
class Recipe:
    """A finished image: a rootfs, a Dockerfile folder, build args and extra files.

    A recipe with a ``base`` is a layer on another recipe's image (its Dockerfile gets
    the base image as build arg ``BASE``; ``rootfs`` is then the base's): guest variants
    are built that way, on top of the base guest's recipe."""

    name: str
    rootfs: Rootfs
    context: str
    build_args: tuple[tuple[str, str], ...] = ()
    extra_files: tuple[tuple[Path, str], ...] = field(default=())
    base: Recipe | None = None

    def files(self) -> list[tuple[str, Path]]:
        """(path in the build context, source file) pairs, sorted for a stable hash."""
        pairs = [
            (p.relative_to(RECIPES_DIR / self.context).as_posix(), p)
            for p in (RECIPES_DIR / self.context).rglob("*")
            if p.is_file()
        ]
        for source, dest in self.extra_files:
            if source.is_dir():
                pairs.extend(
                    (f"{dest}/{p.relative_to(source).as_posix()}", p)
                    for p in source.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts
                )
            else:
                pairs.append((dest, source))
        return sorted(pairs)

    def digest(self) -> str:
        h = hashlib.sha256(self.rootfs.digest().encode())
        if self.base is not None:
            h.update(self.base.digest().encode())
        h.update(json.dumps(self.build_args).encode())
        for arcname, path in self.files():
            h.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()

    @property
    def tag(self) -> str:
        return f"snaplab/{self.name}:{self.digest()[:12]}"


_GUEST_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "iptables",
    "stress-ng",
    "openssl",
    "python3",
    "procps",
    "ca-certificates",
    "curl",
    "dmidecode",
    # Reached as an Azure VM is: SSH as the admin, then sudo (lab.provision.ssh_guest).
    "openssh-server",
    "sudo",
)


@dataclass(frozen=True)
class AgentFlavor:
    """Where one waagent version comes from: the guest's suite and the package spec."""

    version: str
    suite: str
    package: str
    extra_suites: tuple[str, ...] = ()


AGENT_FLAVORS: dict[str, AgentFlavor] = {
    # bullseye's package: below Azure's minimum supported 2.2.53.1; installs on bookworm.
    "2.2.47": AgentFlavor("2.2.47", "bookworm", "waagent/bullseye", ("bullseye",)),
    "2.7.3.0": AgentFlavor("2.7.3.0", "bookworm", "waagent"),
    # trixie's package needs trixie's Python crypt modules, so the guest is trixie.
    "2.12.0.2": AgentFlavor("2.12.0.2", "trixie", "waagent"),
}
DEFAULT_AGENT = "2.7.3.0"


def agent_flavor(version: str) -> AgentFlavor:
    try:
        return AGENT_FLAVORS[version]
    except KeyError:
        known = ", ".join(AGENT_FLAVORS)
        raise UnknownAgentVersion(f"unknown agent version {version!r} (known: {known})") from None


def guest_image_name(version: str, variant: str | None = None) -> str:
    """The recipe (and image) name of a guest: ``guest-2.7.3.0``, ``guest-2.7.3.0-netplan``."""
    return f"guest-{version}" + (f"-{variant}" if variant else "")


def guest_recipe(version: str, variant: str | None = None) -> Recipe:
    """The guest with agent ``version``; with ``variant``, that guest reshaped as
    :mod:`lab.provision.guest_variants` describes (the base guest's Dockerfile on the
    variant's packages, then the variant's own layer)."""
    base = _base_guest_recipe(version)
    if variant is None:
        return base
    shape = guest_variant(variant)
    packages = shape.packages(base.rootfs.packages)
    under = base
    if packages != base.rootfs.packages or shape.over_agent:
        rootfs = replace(
            base.rootfs,
            name=guest_image_name(version, variant),
            packages=packages,
            hooks=(*base.rootfs.hooks, *_over_agent(shape.over_agent)),
        )
        under = replace(base, name=f"{guest_image_name(version, variant)}-base", rootfs=rootfs)
    return Recipe(
        name=guest_image_name(version, variant),
        rootfs=under.rootfs,
        context=shape.context,
        base=under,
    )


def _over_agent(packages: tuple[str, ...]) -> tuple[str, ...]:
    """Chroot hooks that install ``packages`` although Debian's agent package conflicts
    with them: keep the installed agent's .deb, let apt install them (it removes the
    agent), then put the same agent package back over the conflict."""
    if not packages:
        return ()
    keep = "/tmp/snaplab-agent"
    version = "$(dpkg-query -W -f=\\${Version} waagent)"
    return _with_machine_ca(
        f"{IN_CHROOT} sh -c 'mkdir -p {keep} && cd {keep} && apt-get "
        f"-o Acquire::https::CAInfo=/tmp/hostca/ca.crt download waagent={version}'",
        f"{IN_CHROOT} apt-get -o Acquire::https::CAInfo=/tmp/hostca/ca.crt install --yes "
        f"--no-install-recommends {' '.join(packages)}",
        f"{IN_CHROOT} sh -c 'dpkg --force-conflicts -i {keep}/waagent_*.deb && rm -rf {keep}'",
    )


def _base_guest_recipe(version: str) -> Recipe:
    flavor = agent_flavor(version)
    rootfs = Rootfs(
        name=f"guest-{flavor.version}",
        suite=flavor.suite,
        packages=(*_GUEST_PACKAGES, flavor.package),
        extra_suites=flavor.extra_suites,
    )
    return Recipe(
        name=f"guest-{flavor.version}",
        rootfs=rootfs,
        context="guest",
        # Azure images point apt at a Debian mirror inside Azure; lab guests at the lab's.
        build_args=(
            ("AGENT_VERSION", flavor.version),
            ("APT_SOURCE", source_line(flavor.suite)),
            ("ADMIN_USER", ADMIN_USER),
        ),
    )


# What the lab's package mirror holds, per suite: the packages runbooks install, as
# .debs fetched from the machine's archive at build time (the 2.2.47 guest lacks none of
# bookworm waagent's dependencies, so the agent package alone upgrades it). Every guest
# suite gets an index, empty or not, so apt-get update works in every guest.
MIRROR_PACKAGES: dict[str, tuple[str, ...]] = {"bookworm": ("waagent",), "trixie": ()}
MIRROR_INCOMING = "/opt/snaplab/mirror-incoming"


def _mirror_downloads() -> tuple[str, ...]:
    """Chroot commands that put each mirrored suite's .debs in its incoming folder.

    The host rootfs is bookworm, so its own apt fetches bookworm's packages: the same
    machine archive, the same ordinary client, as every other package of the images.
    """
    commands = []
    for suite, packages in MIRROR_PACKAGES.items():
        if not packages:
            continue
        if suite != "bookworm":
            raise ValueError(f"the host rootfs can only download bookworm packages, not {suite}")
        folder = f"{MIRROR_INCOMING}/{suite}"
        commands.append(
            f"{IN_CHROOT} sh -c 'mkdir -p {folder} && cd {folder} && "
            f"apt-get -o Acquire::https::CAInfo=/tmp/hostca/ca.crt download {' '.join(packages)}'"
        )
    return tuple(commands)


def host_recipe() -> Recipe:
    rootfs = Rootfs(
        name="host",
        suite="bookworm",
        packages=(
            "python3",
            "python3-werkzeug",
            "python3-docker",
            "python3-pip",
            "openssl",
            "dnsmasq-base",
            "tinyproxy",
            "iptables",
            "iproute2",
            "procps",
            "ca-certificates",
        ),
        # Debian's python3-azure-storage drags in all of python3-azure (1.2 GB), so the
        # one SDK the backup service needs comes from PyPI instead.
        hooks=_with_machine_ca(
            f"{IN_CHROOT} python3 -m pip install --break-system-packages --no-cache-dir "
            f"--cert /tmp/hostca/ca.crt --quiet azure-storage-blob=={AZURE_STORAGE_BLOB_VERSION}",
            *_mirror_downloads(),
        ),
    )
    platform = PACKAGE_ROOT / "platform"
    return Recipe(
        name="host",
        rootfs=rootfs,
        context="host",
        build_args=(
            ("MIRROR_INCOMING", MIRROR_INCOMING),
            ("MIRROR_SUITES", " ".join(MIRROR_PACKAGES)),
        ),
        extra_files=(
            (PACKAGE_ROOT / "__init__.py", "lab/__init__.py"),
            (platform, "lab/platform"),
            (PACKAGE_ROOT / "extension", "lab/extension"),
        ),
    )


# A clean environment for commands run in a chroot: the caller's variables (CA paths,
# pip options pointing at host folders) mean nothing inside it; proxies pass through.
IN_CHROOT = (
    'chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root '
    "${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} "
    "${no_proxy:+no_proxy=$no_proxy}"
)


def _with_machine_ca(*commands: str) -> tuple[str, ...]:
    """Hooks that run ``commands`` in the chroot trusting what this machine trusts.

    Package clients inside the chroot (npm, pip) must accept the same TLS chain as
    the machine's own (a proxy's CA, say), so the machine's bundle is lent to the
    chroot as /tmp/hostca/ca.crt for the commands and removed afterwards.
    """
    return (
        'mkdir -p "$1/tmp/hostca"',
        'cp /etc/ssl/certs/ca-certificates.crt "$1/tmp/hostca/ca.crt"',
        *commands,
        'rm -rf "$1/tmp/hostca" "$1/root/.npm" "$1/root/.cache"',
    )


def storage_recipe() -> Recipe:
    rootfs = Rootfs(
        name="storage",
        suite="trixie",
        packages=("nodejs", "npm", "ca-certificates"),
        hooks=_with_machine_ca(
            f"{IN_CHROOT} npm_config_cafile=/tmp/hostca/ca.crt npm install -g --no-audit "
            f"--no-fund --loglevel=error azurite@{AZURITE_VERSION}"
        ),
    )
    return Recipe(name="storage", rootfs=rootfs, context="storage")


def all_recipes(
    agent_versions: tuple[str, ...] = tuple(AGENT_FLAVORS),
    variants: tuple[tuple[str, str], ...] = (),
) -> list[Recipe]:
    """The platform's images, the plain guests of ``agent_versions`` and the
    ``(agent version, guest variant)`` guests asked for (variants only when asked)."""
    return [
        host_recipe(),
        storage_recipe(),
        *(guest_recipe(v) for v in agent_versions),
        *(guest_recipe(agent, variant) for agent, variant in variants),
    ]


def variant_recipes() -> list[Recipe]:
    """Every guest variant for every agent version: built only when used, but current."""
    return [guest_recipe(a, v) for a in AGENT_FLAVORS for v in GUEST_VARIANTS]


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def ensure_image(client: docker.DockerClient, recipe: Recipe, report: Report) -> str:
    """Build ``recipe`` unless an image with its hash exists; return its tag."""
    if image_exists(client, recipe.tag):
        return recipe.tag
    if recipe.base is not None:
        ensure_image(client, recipe.base, report)
    elif not image_exists(client, recipe.rootfs.tag):
        report(f"building root filesystem {recipe.rootfs.name} (mmdebstrap, {recipe.rootfs.suite})")
        _build_rootfs(client, recipe.rootfs)
    report(f"building image {recipe.name}")
    _build_image(client, recipe)
    return recipe.tag


def _build_rootfs(client: docker.DockerClient, rootfs: Rootfs) -> None:
    if shutil.which("mmdebstrap") is None:
        _apt_install("mmdebstrap")
    archive = machine_archive()
    with tempfile.TemporaryDirectory(prefix="snaplab-rootfs-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        argv = _mmdebstrap_argv(rootfs, archive, tarball)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=MMDEBSTRAP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ImageBuildFailed(f"mmdebstrap for {rootfs.name} timed out") from exc
        if done.returncode != 0:
            raise ImageBuildFailed(
                f"mmdebstrap for {rootfs.name} failed: {_last_error(done.stderr + done.stdout)}"
            )
        repository, tag = rootfs.tag.split(":")
        try:
            client.api.import_image_from_file(
                str(tarball),
                repository=repository,
                tag=tag,
                changes=[f"LABEL {IMAGE_LABEL}=rootfs {RECIPE_LABEL}={rootfs.digest()[:12]}"],
            )
        except APIError as exc:
            raise ImageBuildFailed(
                f"docker import of {rootfs.name} failed: {exc.explanation}"
            ) from exc


def _mmdebstrap_argv(rootfs: Rootfs, archive: Archive, tarball: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=tar",
        "--include=" + ",".join(rootfs.packages),
    ]
    argv += [f"--customize-hook={hook}" for hook in rootfs.hooks]
    argv += [rootfs.suite, str(tarball), archive.line(rootfs.suite)]
    argv += [archive.line(suite) for suite in rootfs.extra_suites]
    return argv


def _build_image(client: docker.DockerClient, recipe: Recipe) -> None:
    context = _context_tar(recipe)
    buildargs = {"ROOTFS": recipe.rootfs.tag, **dict(recipe.build_args)}
    if recipe.base is not None:
        buildargs["BASE"] = recipe.base.tag
    repository, tag = recipe.tag.split(":")
    try:
        client.images.build(
            fileobj=context,
            custom_context=True,
            tag=recipe.tag,
            buildargs=buildargs,
            labels={IMAGE_LABEL: recipe.name, RECIPE_LABEL: tag},
            rm=True,
            forcerm=True,
            network_mode="none",
        )
    except BuildError as exc:
        lines = [str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log]
        raise ImageBuildFailed(
            f"image {recipe.name} failed to build: {_last_error(''.join(lines))}"
        ) from exc
    except APIError as exc:
        raise ImageBuildFailed(f"image {recipe.name} failed to build: {exc.explanation}") from exc
    client.images.get(recipe.tag).tag(repository, "latest")


def _context_tar(recipe: Recipe) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for arcname, path in recipe.files():
            info = tar.gettarinfo(str(path), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with path.open("rb") as data:
                tar.addfile(info, data)
    buffer.seek(0)
    return buffer


def _apt_install(package: str) -> None:
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageBuildFailed(f"could not install {package}: {_last_error(done.stderr)}")


def _last_error(text: str) -> str:
    """The most telling line of a failed build: the tool's own error, not the wrapper's."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(("ERROR", "error", "npm ERR!", "dpkg:"))]
    wrapper = [line for line in lines if line.startswith("E:")]
    pick = (own or wrapper[:1] or lines[-1:] or ["no output"])[0]
    return pick[:300]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def prune_stale_images(client: docker.DockerClient, recipes: list[Recipe]) -> int:
    """Remove snaplab images that no current recipe builds (older recipe hashes).

    Images are a cache keyed by recipe hash, so every recipe change leaves the previous
    build behind; `setup` clears them so the cache does not grow without bound. The
    current guest variants' images (built when a lab first used them) are kept too.
    """
    wanted: set[str] = set()
    pending = [*recipes, *variant_recipes()]
    while pending:
        recipe = pending.pop()
        wanted |= {recipe.tag, recipe.rootfs.tag}
        if recipe.base is not None:
            pending.append(recipe.base)
    removed = 0
    for image in client.images.list(filters={"label": IMAGE_LABEL}):
        tags = [t for t in image.tags if not t.endswith(":latest")]
        if not tags or any(t in wanted for t in tags):
            continue
        try:
            client.images.remove(image.id, force=False)
            removed += 1
        except APIError:
            continue  # still used by a container (a running lab): keep it
    return removed
