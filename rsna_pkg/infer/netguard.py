"""Refuse network access while inference runs.

Kaggle reruns the submission kernel with internet off; a library that tries to reach
the network there (a model hub, telemetry) fails late or hangs. Inside ``no_network()``
any attempt to create an internet socket, resolve a name or connect raises
``NetworkBlocked`` at once, so the problem shows up on the first local run instead.
Unix-domain sockets stay allowed: they never leave the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_INTERNET_FAMILIES = {socket.AF_INET, socket.AF_INET6}


class NetworkBlocked(OSError):
    """Raised instead of opening a network connection. An OSError, so code that
    already handles "no network" (as it must on Kaggle) handles this too."""


def _refuse(what: str) -> NetworkBlocked:
    return NetworkBlocked(f"network access blocked during offline inference ({what})")


@contextmanager
def no_network() -> Iterator[None]:
    """Patch ``socket`` so internet sockets, DNS look-ups and connections raise, then restore."""
    original_socket = socket.socket
    saved = {
        name: getattr(socket, name)
        for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex")
    }

    class GuardedSocket(original_socket):  # type: ignore[misc, valid-type]
        def __init__(self, family: Any = -1, *args: Any, **kwargs: Any) -> None:
            fam = socket.AF_INET if family == -1 else family
            if fam in _INTERNET_FAMILIES and kwargs.get("fileno") is None:
                raise _refuse(f"socket family {fam!r}")
            super().__init__(family, *args, **kwargs)

    def blocked(name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise _refuse(f"socket.{name}{args[:1]!r}")

        return refuse

    socket.socket = GuardedSocket  # type: ignore[misc]
    for name in saved:
        setattr(socket, name, blocked(name))
    try:
        yield
    finally:
        socket.socket = original_socket  # type: ignore[misc]
        for name, fn in saved.items():
            setattr(socket, name, fn)
