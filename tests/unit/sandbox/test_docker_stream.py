"""The Docker exec's stderr: the job's part and the returned files' tar, told apart by the files mark."""

from __future__ import annotations

import io
import tarfile

from sandbox.docker_backend import _StderrAndFiles, _untar

MARK = b"nonce123/files:"


def feed(stream: _StderrAndFiles, *chunks: bytes) -> list[bool]:
    """Whether each chunk, then the end of the stream, took the job's part past its limit."""
    return [*(stream.add(chunk) for chunk in chunks), stream.finish()]


def tar_of(**files: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_mark_split_across_chunks_is_found() -> None:
    stream = _StderrAndFiles(100, MARK, 10_000)
    data = b"job says hi\n" + MARK + tar_of(out=b"42")
    feed(stream, *(data[i : i + 5] for i in range(0, len(data), 5)))
    assert stream.job.value() == b"job says hi\n"
    assert stream.files is not None and _untar(stream.files.value(), ("out",), 100) == {"out": b"42"}


def test_without_the_mark_everything_is_the_jobs() -> None:
    stream = _StderrAndFiles(100, MARK, 10_000)
    feed(stream, b"ends with half a mark nonce12", b"3/fil")
    assert stream.job.value() == b"ends with half a mark nonce123/fil" and stream.files is None


def test_only_the_jobs_part_counts_against_the_output_limit() -> None:
    stream = _StderrAndFiles(10, MARK, 100_000)
    assert feed(stream, b"0123456789", MARK + b"x" * 50_000) == [False, False, False]
    assert not stream.job.overflowed
    over = _StderrAndFiles(10, MARK, 100_000)
    assert feed(over, b"0123456789A") == [False, True]  # the last bytes were held back for the mark
    assert feed(_StderrAndFiles(10, MARK, 100), b"x" * 30) == [True, True]


def test_a_tar_past_its_cap_loses_files_not_the_jobs_output() -> None:
    stream = _StderrAndFiles(100, MARK, 600)
    feed(stream, b"fine\n" + MARK + tar_of(small=b"s", big=b"b" * 5000))
    assert stream.job.value() == b"fine\n" and not stream.job.overflowed
    assert stream.files is not None and stream.files.overflowed
    assert _untar(stream.files.value(), ("small", "big"), 10_000) == {"small": b"s"}
