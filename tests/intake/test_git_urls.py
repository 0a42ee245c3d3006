"""`validate_git_url` and `validate_ref`: one test per rejected input, plus the URLs that must pass."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from grader.errors import InvalidGitUrl
from grader.intake.git import GitPolicy, validate_git_url, validate_ref

DEFAULT = GitPolicy()
LOOPBACK = GitPolicy(allow_insecure_loopback=True)
PUBLIC_V4 = "140.82.112.3"
PUBLIC_V6 = "2606:50c0:8000::153"


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make `socket.getaddrinfo` answer `answers` for the named hosts (others resolve for real)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host not in answers:
            return real(host, port, *args, **kwargs)
        if not answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results: list[Any] = []
        for address in answers[host]:
            if ":" in address:
                results.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return results

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


@pytest.fixture
def public_forges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The allow-listed forges resolve to public addresses without touching the network."""
    return _fake_dns(monkeypatch, {host: [PUBLIC_V4, PUBLIC_V6] for host in DEFAULT.allowed_hosts})


REJECTED = [
    ("", "empty"),
    ("https://github.com/" + "a" * 2000, "too_long"),
    ("-uhttps://github.com/a/b", "option_injection"),
    ("--upload-pack=touch /tmp/pwned", "option_injection"),
    ("ext::sh -c touch% /tmp/pwned", "transport"),
    ("ext::sh", "transport"),
    ("x::https://github.com/a/b", "transport"),
    ("fd::17", "transport"),
    ("https://github.com/a/b\r\n", "control_chars"),
    ("https://github.com/a b", "control_chars"),
    ("https://github.com/a/b\x00", "control_chars"),
    ("https://github.com/a/b\u0085", "control_chars"),
    ("file:///etc", "local_path"),
    ("FILE:///etc/passwd", "local_path"),
    ("/etc/passwd", "local_path"),
    ("./repo", "local_path"),
    ("../repo", "local_path"),
    ("~/repo", "local_path"),
    ("git@github.com:a/b.git", "scp_syntax"),
    ("github.com:a/b", "scp_syntax"),
    ("http://github.com/a/b", "scheme"),
    ("ssh://git@github.com/a/b", "scheme"),
    ("git://github.com/a/b", "scheme"),
    ("ftp://github.com/a/b", "scheme"),
    ("https://github.com:99999/a/b", "malformed"),
    ("https://user:pass@github.com/a/b", "userinfo"),
    ("https://ghp_token@github.com/a/b", "userinfo"),
    ("https://github.com/a/b?upload-pack=x", "query"),
    ("https://github.com/a/b#frag", "query"),
    ("https://gith%75b.com/a/b", "host"),
    ("https://g\u0456thub.com/a/b", "host"),  # Cyrillic i: a homograph of github.com
    ("https://10.0.0.1/a/b", "private_address"),
    ("https://169.254.169.254/latest/meta-data", "private_address"),
    ("https://127.0.0.1/a/b", "private_address"),
    ("https://0.0.0.0/a/b", "private_address"),
    ("https://[::1]/a/b", "private_address"),
    ("https://[::ffff:127.0.0.1]/a/b", "private_address"),
    ("https://[::ffff:169.254.169.254]/a/b", "private_address"),
    ("https://[fd00::1]/a/b", "private_address"),
    ("https://[fe80::1]/a/b", "private_address"),
    ("https://224.0.0.1/a/b", "private_address"),
    ("https://[64:ff9b::a00:1]/a/b", "private_address"),
    ("https://localhost/a/b", "host_not_allowed"),
    ("https://github.com.evil.example/a/b", "host_not_allowed"),
    ("https://evil.example/github.com/a/b", "host_not_allowed"),
    ("https://8.8.8.8/a/b", "host_not_allowed"),
    ("https://github.com:22/a/b", "port"),
    ("https://github.com", "path"),
    ("https://github.com/", "path"),
    ("https://github.com/../../etc/passwd", "path"),
]


@pytest.mark.parametrize(("url", "rule"), REJECTED, ids=[f"{rule}:{url[:40]!r}" for url, rule in REJECTED])
def test_rejected_urls(url: str, rule: str, public_forges: list[str]) -> None:
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url(url, DEFAULT)
    assert caught.value.details == {"field": "git_url", "rule": rule}


def test_a_name_resolving_to_loopback_is_rejected_even_when_allow_listed() -> None:
    # Real resolution: `localhost` answers 127.0.0.1 (and maybe ::1); the default policy refuses both.
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("https://localhost/a/b", GitPolicy(allowed_hosts=("localhost",)))
    assert caught.value.details == {"field": "git_url", "rule": "private_address"}


@pytest.mark.parametrize("name", ["localhost", "ip6-localhost", "ip6-loopback"])
def test_loopback_names_from_the_hosts_file_are_rejected(name: str) -> None:
    """Real resolution through /etc/hosts: whatever these names answer here, none may be fetched."""
    try:
        answers = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    except OSError:
        answers = set()
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url(f"https://{name}/a/b", GitPolicy(allowed_hosts=(name,)))
    # A name this machine cannot resolve is refused as such; one it can is refused for its address.
    assert caught.value.details["rule"] == ("private_address" if answers else "unresolvable")


@pytest.mark.parametrize("name", ["ip6-localhost", "localtest.me"])
def test_names_resolving_to_ipv6_or_ipv4_loopback_are_rejected(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What these names answer on a typical machine / public DNS, made deterministic here.
    _fake_dns(monkeypatch, {"ip6-localhost": ["::1"], "localtest.me": ["127.0.0.1", "::1"]})
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url(f"https://{name}/a/b", GitPolicy(allowed_hosts=(name,)))
    assert caught.value.details == {"field": "git_url", "rule": "private_address"}


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::ffff:169.254.169.254"],
        ["::1"],
        ["100.64.0.1"],
        [PUBLIC_V4, "192.168.1.10"],  # every answer counts, not only the first
        [PUBLIC_V6, "fc00::5"],
        ["0.0.0.0"],
        ["2002:7f00:1::1"],  # 6to4 wrapping 127.0.0.1
    ],
)
def test_an_allow_listed_host_resolving_to_an_internal_address_is_rejected(
    answers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_dns(monkeypatch, {"github.com": answers})
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("https://github.com/a/b", DEFAULT)
    assert caught.value.details == {"field": "git_url", "rule": "private_address"}


def test_an_unresolvable_host_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {"github.com": []})
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("https://github.com/a/b", DEFAULT)
    assert caught.value.details == {"field": "git_url", "rule": "unresolvable"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/learner/project", "https://github.com/learner/project"),
        ("https://github.com/learner/project.git", "https://github.com/learner/project.git"),
        ("https://GitHub.com/learner/project", "https://github.com/learner/project"),
        ("https://github.com./learner/project", "https://github.com/learner/project"),
        ("https://github.com:443/learner/project", "https://github.com/learner/project"),
        ("https://gitlab.com/group/sub/project", "https://gitlab.com/group/sub/project"),
        ("https://codeberg.org/a/b", "https://codeberg.org/a/b"),
    ],
)
def test_accepted_urls(url: str, expected: str, public_forges: list[str]) -> None:
    validated = validate_git_url(url, DEFAULT)
    assert validated.url == expected
    assert validated.addresses == (PUBLIC_V4, PUBLIC_V6)
    assert validated.port in (None, 443)
    assert validated.host in DEFAULT.allowed_hosts


def test_the_loopback_policy_allows_local_test_servers_only() -> None:
    assert validate_git_url("http://127.0.0.1:8080/demo.git", LOOPBACK).addresses == ("127.0.0.1",)
    assert validate_git_url("http://[::1]:8080/demo.git", LOOPBACK).url == "http://[::1]:8080/demo.git"
    assert validate_git_url("http://localhost:8080/demo.git", LOOPBACK).host == "localhost"
    for url, rule in [
        ("http://10.0.0.1/demo.git", "private_address"),
        ("http://169.254.169.254/demo.git", "private_address"),
        ("http://example.org/demo.git", "host_not_allowed"),
        ("ssh://127.0.0.1/demo.git", "scheme"),
        ("file:///tmp/demo.git", "local_path"),
    ]:
        with pytest.raises(InvalidGitUrl) as caught:
            validate_git_url(url, LOOPBACK)
        assert caught.value.details["rule"] == rule, url


def test_the_loopback_policy_allows_any_name_that_resolves_only_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_dns(monkeypatch, {"forge.test": ["127.0.0.1", "::1"], "mixed.test": ["127.0.0.1", PUBLIC_V4]})
    assert validate_git_url("http://forge.test:8080/demo.git", LOOPBACK).addresses == ("127.0.0.1", "::1")
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("http://mixed.test:8080/demo.git", LOOPBACK)
    assert caught.value.details["rule"] == "host_not_allowed"
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("https://forge.test/demo.git", DEFAULT)
    assert caught.value.details["rule"] == "host_not_allowed"


def test_the_default_policy_refuses_what_the_loopback_policy_allows() -> None:
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("http://127.0.0.1:8080/demo.git", DEFAULT)
    assert caught.value.details["rule"] == "scheme"
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url("https://127.0.0.1:8080/demo.git", DEFAULT)
    assert caught.value.details["rule"] == "private_address"


BAD_REFS = [
    ("", "empty"),
    ("-u", "option_injection"),
    ("--upload-pack=touch /tmp/x", "option_injection"),
    ("a..b", "format"),
    ("a b", "format"),
    ("a~1", "format"),
    ("a^", "format"),
    ("a:b", "format"),
    ("a?", "format"),
    ("a*", "format"),
    ("a[", "format"),
    ("a\\b", "format"),
    ("a\x00b", "format"),
    ("a\nb", "format"),
    (".hidden", "format"),
    ("x/.hidden", "format"),
    ("x.lock", "format"),
    ("a//b", "format"),
    ("a/", "format"),
    ("a.", "format"),
    ("@", "format"),
    ("a@{1}", "format"),
    ("caf\u00e9", "format"),
    ("b" * 256, "format"),
]


@pytest.mark.parametrize(("ref", "rule"), BAD_REFS, ids=[f"{rule}:{ref[:20]!r}" for ref, rule in BAD_REFS])
def test_rejected_refs(ref: str, rule: str) -> None:
    with pytest.raises(InvalidGitUrl) as caught:
        validate_ref(ref)
    assert caught.value.details == {"field": "ref", "rule": rule}


@pytest.mark.parametrize(
    "ref", ["main", "feature/login-form", "v1.0.0", "refs/heads/main", "release-2024_01"]
)
def test_accepted_refs(ref: str) -> None:
    assert validate_ref(ref) == ref


def test_a_commit_id_is_accepted_and_lower_cased() -> None:
    assert validate_ref("A" * 40) == "a" * 40


@pytest.mark.parametrize("path", [b"sub/.git/config", b".GIT/hooks/x", b"a/.git. /config"])
def test_the_tree_listing_check_refuses_git_directories_even_if_fsck_let_them_through(path: bytes) -> None:
    from grader.errors import RepositoryUnavailable
    from grader.intake.git import _check_tree_listing, _GitResult

    listing = b"100644 blob " + b"a" * 40 + b"       12\t" + path + b"\0"
    with pytest.raises(RepositoryUnavailable) as caught:
        _check_tree_listing(_GitResult(returncode=0, stdout=listing, stderr=b""), DEFAULT)
    assert caught.value.details == {"field": "git_url", "rule": "unsafe_tree"}
