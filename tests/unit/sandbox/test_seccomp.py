"""The bubblewrap seccomp program: compiled once, and a clear fix when libseccomp is missing."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from sandbox import seccomp
from sandbox.select import DEFAULT_ROOTFS, check_bwrap


@pytest.fixture
def fresh_filter() -> Iterator[None]:
    seccomp.box_filter.cache_clear()
    yield
    seccomp.box_filter.cache_clear()


def test_the_filter_is_a_bpf_program_compiled_once(fresh_filter: None) -> None:
    program = seccomp.box_filter()
    assert len(program) % 8 == 0 and len(program) // 8 > len(seccomp.REFUSED)  # sock_filter: 8 bytes
    assert seccomp.box_filter() is program


def test_without_libseccomp_bwrap_is_refused_with_the_fix(
    fresh_filter: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import fails as with no libseccomp.so.2
    with pytest.raises(seccomp.SeccompUnavailable, match="libseccomp2"):
        seccomp.box_filter()
    if not (DEFAULT_ROOTFS / "box").is_dir():
        pytest.fail(f"the grading root filesystem {DEFAULT_ROOTFS} is missing: run make services")
    check = check_bwrap(DEFAULT_ROOTFS)
    assert not check.ok and "seccomp" in check.detail and check.fix == "apt-get install libseccomp2"
