"""A TCP relay on loopback that breaks uploads the way networks do: cut halfway, or bytes changed in transit.

    with FaultyLink(server_port, cut_after=600_000) as link:      # every connection dies after 600 kB
        store = S3FileStore(client_for(link.port), bucket)           # the store talks through the relay
    with FaultyLink(server_port, corrupt=(b"\\0mark\\0", b"\\0MARK\\0")):  # a body's bytes changed

What the server sends back is relayed untouched. `down()` stops listening and drops every
connection, so the store behind it is simply gone (connections refused); `up()` listens again on the
same port; `close()` is `down()` for good.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class FaultyLink:
    def __init__(
        self,
        target_port: int,
        *,
        cut_after: int | None = None,
        corrupt: tuple[bytes, bytes] | None = None,
    ) -> None:
        if corrupt is not None and len(corrupt[0]) != len(corrupt[1]):
            raise ValueError("a corruption keeps the length (the request's Content-Length stays right)")
        self.target_port = target_port
        self.cut_after = cut_after
        self.corrupt = corrupt
        self.cuts = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyLink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def down(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._open]
            self._open.clear()
        for held in sockets:
            _drop(held)

    def up(self) -> None:
        with self._lock:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._closed = False
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    close = down

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _drop(client)
                continue
            with self._lock:
                if self._closed:
                    _drop(client)
                    _drop(server)
                    return
                self._open.update({client, server})
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        sent = 0
        held = b""
        marker = self.corrupt[0] if self.corrupt else b""
        try:
            while chunk := client.recv(65536):
                data = held + chunk
                held = b""
                if self.corrupt:
                    data = data.replace(*self.corrupt)
                    held = _marker_prefix_at_end(data, marker)
                    data = data[: len(data) - len(held)]
                if self.cut_after is not None and sent + len(data) >= self.cut_after:
                    server.sendall(data[: self.cut_after - sent])
                    self.cuts += 1
                    break
                server.sendall(data)
                sent += len(data)
        except OSError:
            pass
        _drop(client)
        _drop(server)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := server.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        _drop(client)
        _drop(server)


def _marker_prefix_at_end(data: bytes, marker: bytes) -> bytes:
    """The end of `data` that could be the start of `marker`: held back until the next chunk completes it."""
    for size in range(min(len(marker) - 1, len(data)), 0, -1):
        if marker.startswith(data[-size:]):
            return data[-size:]
    return b""


def _drop(held: socket.socket) -> None:
    with contextlib.suppress(OSError):
        held.shutdown(socket.SHUT_RDWR)
    held.close()
