"""Build the Debian base image once, from the host's own package mirror (no registry needed).

``ensure_base_image()`` returns ``egress-mesh/debian-base:<suite>``, building it with
``debootstrap --variant=minbase`` and ``docker import`` when that tag does not exist yet. The
mirror and suite come from the host's apt configuration (``/etc/apt/sources.list`` and deb822
``/etc/apt/sources.list.d/*.sources``); nothing is hard-coded.

    python -m scenarios.base_image [--suite bookworm] [--mirror URL] [--force]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

BASE_REPOSITORY = "egress-mesh/debian-base"
PACKAGES = ("python3", "iptables", "iproute2", "curl", "ca-certificates", "procps")
Progress = Callable[[str], None]
#: debootstrap's per-package lines, summarised in the progress output
PHASES = ("Retrieving", "Validating", "Extracting", "Unpacking", "Configuring")


class BaseImageError(RuntimeError):
    """The base image cannot be built here; the message says why and what to do."""


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]
    keyring: str | None = None


def parse_one_line(text: str) -> list[AptSource]:
    """``deb [options] URI SUITE COMPONENT...`` lines of a sources.list file."""
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        keyring = None
        if words and words[0].startswith("["):
            options = []
            while words:
                word = words.pop(0)
                options.append(word.strip("[]"))
                if word.endswith("]"):
                    break
            for option in options:
                key, _, value = option.partition("=")
                if key == "signed-by":
                    keyring = value
        if len(words) >= 2:
            sources.append(AptSource(words[0], words[1], tuple(words[2:]), keyring))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Stanzas of a ``*.sources`` file (one source per URI and suite)."""
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        keyring = fields.get("signed-by") or None
        if keyring and "\n" in keyring or (keyring and " " in keyring.strip()):
            keyring = None  # an inline key block; let debootstrap use its default keyring
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                sources.append(AptSource(uri, suite, tuple(fields.get("components", "").split()), keyring))
    return sources


def host_sources(root: str = "/") -> list[AptSource]:
    sources: list[AptSource] = []
    main_list = Path(root, "etc/apt/sources.list")
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    for path in sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.list"))):
        sources += parse_one_line(Path(path).read_text(errors="replace"))
    for path in sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.sources"))):
        sources += parse_deb822(Path(path).read_text(errors="replace"))
    return sources


def pick_source(sources: Iterable[AptSource]) -> AptSource:
    """The main Debian/Ubuntu suite: not -updates/-security/-backports, and carrying ``main``."""
    for source in sources:
        if "-" in source.suite or "/" in source.suite:
            continue
        if "main" in source.components:
            return source
    raise BaseImageError(
        "no main Debian/Ubuntu suite found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources; "
        "pass --mirror URL --suite NAME, or use a pullable base with --base-image debian:bookworm-slim"
    )


def docker_client(error: type[Exception] = BaseImageError):
    """A Docker client that answers, or ``error`` saying that no engine does."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker raises several unrelated types when no engine answers
        raise error(f"no Docker engine answers ({exc}); start dockerd first") from None
    return client


def image_exists(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(
    suite: str | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    client=None,
) -> str:
    """Return the base image ref, building it when missing. Takes minutes the first time."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    client = client or docker_client()
    keyring = None
    if not suite or not mirror:
        source = pick_source(host_sources())
        suite = suite or source.suite
        mirror = mirror or source.uri
        keyring = source.keyring if source.keyring and os.path.isfile(source.keyring) else None
    ref = f"{BASE_REPOSITORY}:{suite}"
    if not force and image_exists(client, ref):
        return ref
    if shutil.which("debootstrap") is None:
        raise BaseImageError(
            "debootstrap is not installed (apt-get install debootstrap), "
            "or use a pullable base with --base-image debian:bookworm-slim"
        )
    if os.geteuid() != 0:
        raise BaseImageError("debootstrap needs root; run as root or pass --base-image")
    say(f"building {ref} with debootstrap from {mirror} (takes a few minutes, done once)")
    with tempfile.TemporaryDirectory(prefix="egress-mesh-rootfs-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        _debootstrap(suite, mirror, rootfs, keyring, say)
        _trim(rootfs)
        say(f"importing {rootfs} as {ref}")
        _import(client, rootfs, ref, suite)
    say(f"built {ref}")
    return ref


def _debootstrap(suite: str, mirror: str, rootfs: str, keyring: str | None, say: Progress) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
    if keyring:
        argv.append(f"--keyring={keyring}")
    argv += [suite, rootfs, mirror]
    say("$ " + " ".join(argv))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    counts: dict[str, int] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        phase = next((p for p in PHASES if line.startswith(f"I: {p} ")), None)
        if phase is None:
            say("  " + line)
            continue
        # one line per package: show the phase starting and then every 25th package
        counts[phase] = counts.get(phase, 0) + 1
        if counts[phase] == 1 or counts[phase] % 25 == 0:
            say(f"  {phase.lower()} packages ({counts[phase]}): {line.split(' ', 2)[-1]}")
    if proc.wait() != 0:
        raise BaseImageError("debootstrap failed:\n" + "\n".join(tail))


def _trim(rootfs: str) -> None:
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log", "tmp/*"):
        for path in glob.glob(os.path.join(rootfs, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def _import(client, rootfs: str, ref: str, suite: str) -> None:
    repository, _, tag = ref.partition(":")
    archive = rootfs.rstrip("/") + ".tar"
    if subprocess.run(["tar", "--numeric-owner", "-C", rootfs, "-cf", archive, "."]).returncode != 0:
        raise BaseImageError(f"tar of {rootfs} failed")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL egress-mesh.io/base=debootstrap egress-mesh.io/suite={suite}",
    ]
    client.api.import_image_from_file(archive, repository=repository, tag=tag, changes=changes)
    if not image_exists(client, ref):
        raise BaseImageError(f"docker import did not produce {ref}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.base_image", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--suite", help="Debian/Ubuntu suite (default: the host's main suite)")
    parser.add_argument("--mirror", help="package mirror URL (default: the host's)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    args = parser.parse_args(argv)
    try:
        print(ensure_base_image(args.suite, args.mirror, force=args.force))
    except BaseImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
