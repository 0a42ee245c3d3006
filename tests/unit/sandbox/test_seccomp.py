"""The bubblewrap seccomp program: compiled once, and a clear fix when libseccomp is missing."""

from __future__ import annotations

import json
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


def test_the_docker_profile_is_the_same_table() -> None:
    profile = json.loads(seccomp.docker_profile())
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW" and profile["architectures"] == ["SCMP_ARCH_X86_64"]
    written = [(entry["names"], entry["errnoRet"], entry.get("args")) for entry in profile["syscalls"]]
    table = []
    for rule in seccomp.refused_here():
        args = None
        if rule.condition is not None:
            index, op, first, second = rule.condition
            if op == "masked_eq":
                args = [{"index": index, "value": first, "valueTwo": second, "op": "SCMP_CMP_MASKED_EQ"}]
            else:
                args = [{"index": index, "value": second, "valueTwo": 0, "op": "SCMP_CMP_GT"}]
        table.append(([rule.name], rule.errno, args))
    assert written == table
    names = {entry["names"][0] for entry in profile["syscalls"]}
    assert {
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "io_uring_setup",
        "clone3",
        "personality",
    } <= names


def test_the_arch_guard_only_checks_the_abi() -> None:
    program = seccomp.arch_guard()
    assert 0 < len(program) // 8 < 12  # a handful of instructions: arch, the x32 bit, allow or kill
