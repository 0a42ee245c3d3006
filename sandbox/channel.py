"""The interactive channel of `Runner.run(spec, serve=...)`, shared by both backends' supervision loops.

The job's stdout is cut into lines; each complete line (without its newline) is answered by
`serve`, and the answer goes to the job's stdin. A line longer than the job's output cap is an
output_limit, so a job cannot make the worker hold more than the cap. `serve` raising is our
fault, never the job's: the backend kills the box and reports a sandbox_error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.contract import Serve


class ServeFailed(Exception):
    """`serve` raised (or answered with something other than bytes)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"serve raised {type(cause).__name__}: {cause}")
        self.cause = cause


class LineChannel:
    def __init__(self, serve: Serve, line_limit: int) -> None:
        self._serve = serve
        self._limit = line_limit
        self._buffer = bytearray()
        self._line_start = 0  # where the line not yet ended begins in the buffer

    def add(self, chunk: bytes) -> bool:
        """Take more of the job's stdout; True when a line went past the cap."""
        search_from = len(self._buffer)
        self._buffer += chunk
        while (end := self._buffer.find(b"\n", search_from)) >= 0:
            if end - self._line_start > self._limit:
                return True
            self._line_start = search_from = end + 1
        return len(self._buffer) - self._line_start > self._limit

    def lines(self) -> Iterator[bytes]:
        """The complete lines taken so far, each removed as it is handed out."""
        while (end := self._buffer.find(b"\n", 0, self._line_start)) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line_start -= end + 1
            yield line

    def answer(self, line: bytes) -> bytes:
        try:
            reply = self._serve(line)
        except Exception as exc:
            raise ServeFailed(exc) from exc
        if not isinstance(reply, bytes | bytearray):
            raise ServeFailed(TypeError(f"serve must return bytes, not {type(reply).__name__}"))
        return bytes(reply)

    @property
    def rest(self) -> bytes:
        """What followed the last newline: the job's stdout as the result reports it."""
        return bytes(self._buffer)
