"""Where a vLLM server listens and who may call it.

Host and port of a server URL, loopback checks and free ports; the per-run API key a server
this process started gets (clients in this process send it, :func:`api_key_for`; others use
``$SIGNAL_AL_VLLM_API_KEY``); what a non-loopback bind exposes; and whether the model a
server reports is the configured generator.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

#: Clients send this key to servers this process did not start (e.g. `serve-generator`, launch scripts).
API_KEY_ENV = "SIGNAL_AL_VLLM_API_KEY"
_RUN_KEYS: dict[str, str] = {}  # normalised URL -> API key of a server this process started


def _url_key(url: str) -> str:
    host, port = server_host_port(url)
    return f"{'127.0.0.1' if host in ('localhost', '::1') else host}:{port}"


def api_key_for(url: str) -> str | None:
    """The API key for the server at ``url``: the one this process started it with, else ``$SIGNAL_AL_VLLM_API_KEY``."""
    return _RUN_KEYS.get(_url_key(url)) or os.environ.get(API_KEY_ENV) or None


def new_api_key() -> str:
    return secrets.token_urlsafe(24)


@contextmanager
def remember_api_key(url: str, key: str) -> Iterator[None]:
    """While inside: this process's clients send ``key`` to the server at ``url`` (one it started)."""
    _RUN_KEYS[_url_key(url)] = key
    try:
        yield
    finally:
        _RUN_KEYS.pop(_url_key(url), None)


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches this machine only (``localhost``, 127.0.0.0/8, ``::1``): the one rule the
    generator server, ``serve-generator`` and ``serve-reward`` use to decide whether a bind exposes them.

    >>> [is_loopback(h) for h in ("localhost", "127.0.0.2", "::1", "0.0.0.0", "10.0.0.2", "example.org")]
    [True, True, True, False, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int, api_key: str | None) -> str | None:
    """What a non-loopback bind exposes (None on loopback)."""
    if is_loopback(host):
        return None
    where = "every network interface" if host in ("0.0.0.0", "::") else host
    access = ("requests need its API key" if api_key else
              "it has NO API key: anyone who reaches the port can use it")
    return (f"warning: the vLLM server listens on {where} port {port}; {access}. Whoever can call it can generate "
            f"with the model and hot-load LoRA adapters from any path the server process can read "
            f"(/v1/load_lora_adapter). Keep it on 127.0.0.1 unless other machines must reach it, and firewall the port.")


def same_model(served: str, expected: str) -> bool:
    """Whether a server's model id (its ``--model`` path or ``--served-model-name``) is ``generator.model``.

    ``expected`` may be an offline asset name, a folder or a hub name; the served id is
    usually the resolved folder, so folders compare resolved and names by their last part.
    """
    if served == expected:
        return True
    candidates = {expected}
    try:
        from signal_al.assets.registry import resolve_model

        candidates.add(str(resolve_model(expected)))
    except Exception:  # noqa: BLE001  (an unknown name: compare as given)
        pass
    norm = lambda m: os.path.normpath(os.path.expanduser(m)) if m.startswith((".", "/", "~")) else m  # noqa: E731
    served_n = norm(served)
    for name in candidates:
        name_n = norm(name)
        if served_n == name_n:
            return True
        if Path(served_n).is_absolute() and Path(name_n).is_absolute():
            try:
                if Path(served_n).resolve() == Path(name_n).resolve():
                    return True
            except OSError:
                pass
    return False

def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, for a server to take over (uvicorn's ``sockets=``).

    Binding before the model loads and before "serving at" is printed means a taken port, an
    address this machine does not have or a host that does not resolve is one clear
    :class:`~signal_al.core.errors.ServerError` up front, not a uvicorn exit after the announcement.
    """
    from signal_al.core.errors import ServerError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServerError(f"--host {host}: not an address of this machine ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = ("is already in use; pick another with --port" if exc.errno == errno.EADDRINUSE else
                  f"cannot be bound ({exc.strerror})")
        raise ServerError(f"port {port} on {host} {reason}") from None
    sock.set_inheritable(True)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (for tests and throwaway servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_free_port(host: str, port: int, timeout: float) -> bool:
    """Poll until nothing listens on ``host:port`` (a stopped server releases it a moment later)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def url_problem(url: str) -> str | None:
    """Why ``url`` is not the base URL of an HTTP server (scheme, host, port 1-65535), or None.

    Checked where a URL is read (``generator.server_url``/``server_urls``, so ``--server-url`` too),
    the same way for every command, before anything connects.
    """
    if not url.startswith(("http://", "https://")):
        return f"must start with http:// or https://, got {url!r}"
    if any(c.isspace() for c in url):
        return f"must not hold spaces, got {url!r}"
    try:
        parsed = urlparse(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed [
        return f"is not a URL ({exc}), got {url!r}"
    try:
        port = parsed.port
    except ValueError:
        return f"the port must be a number from 1 to 65535, got {url!r}"
    if port == 0:
        return f"the port must be a number from 1 to 65535, got {url!r}"
    if not parsed.hostname:
        return f"has no host, got {url!r}"
    if parsed.query or parsed.fragment:
        return f"must be the server's base URL, without '?' or '#' parts, got {url!r}"
    if parsed.path.rstrip("/").endswith("/v1"):
        return f"must be the server's base URL without /v1 (the client adds /v1/...), got {url!r}"
    return None


def host_problem(host: str) -> str | None:
    """Why a server cannot listen on ``host`` (it does not resolve), or None."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"not an address of this machine ({exc})"
    return None


def server_host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 8000


__all__ = ["API_KEY_ENV", "api_key_for", "bind_listening_socket", "exposure_warning", "free_port", "is_loopback",
           "host_problem", "new_api_key", "port_is_free", "remember_api_key", "same_model", "server_host_port", "url_problem", "wait_for_free_port"]
