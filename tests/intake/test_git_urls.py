"""`validate_git_url` and `validate_ref`: one test per rejected input, plus the URLs that must pass."""

from __future__ import annotations

import socket
import unicodedata
from typing import Any

import pytest

from grader.errors import InvalidGitUrl
from grader.intake.git import GitPolicy, validate_git_url, validate_ref

DEFAULT = GitPolicy()
LOOPBACK = GitPolicy(allow_insecure_loopback=True)
PUBLIC_V4 = "140.82.112.3"
PUBLIC_V6 = "2606:50c0:8000::153"


def _fake_dns(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]], *, others: list[str] | None = None
) -> list[str]:
    """Make `socket.getaddrinfo` answer `answers` for the named hosts, `others` (if given) for every other
    name, and real DNS otherwise."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host not in answers and others is None:
            return real(host, port, *args, **kwargs)
        wanted = answers.get(host, others or [])
        if not wanted:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results: list[Any] = []
        for address in wanted:
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


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name resolves to a public address: only a rule, never a DNS failure, can refuse a URL."""
    return _fake_dns(monkeypatch, {}, others=[PUBLIC_V4, PUBLIC_V6])


@pytest.fixture
def git_forbidden(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and fail) any attempt to start git, through the module's runner or subprocess directly."""
    import subprocess

    from grader.intake import git

    started: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        started.append(repr(args))
        raise AssertionError("a git process was started during URL validation")

    monkeypatch.setattr(git, "_run_git", refuse)
    monkeypatch.setattr(git, "_start_git", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    return started


# (url, rule, words the message must contain: the real problem, in the learner's terms)
REJECTED: list[tuple[str, str, tuple[str, ...]]] = [
    ("", "empty", ("enter the url",)),
    ("https://github.com/" + "a" * 2000, "too_long", ("longer than 2000",)),
    ("-uhttps://github.com/a/b", "option_injection", ("start with '-'",)),
    ("--upload-pack=touch /tmp/pwned", "option_injection", ("start with '-'",)),
    ("ext::sh -c touch% /tmp/pwned", "transport", ("transport",)),
    ("ext::sh", "transport", ("transport",)),
    ("x::https://github.com/a/b", "transport", ("transport",)),
    ("fd::17", "transport", ("transport",)),
    # Invisible, bidi and other characters a learner cannot see, anywhere in the URL.
    ("https://github.com/org/repo\u202e", "invisible_chars", ("invisible", "U+202E RIGHT-TO-LEFT OVERRIDE")),
    ("https://github.com/org/\u202eoper", "invisible_chars", ("U+202E",)),
    ("\u202ehttps://github.com/org/repo", "invisible_chars", ("U+202E",)),
    ("https://github.com/org/repo\u202d", "invisible_chars", ("U+202D LEFT-TO-RIGHT OVERRIDE",)),
    ("https://github.com/org/re\u2066po\u2069", "invisible_chars", ("U+2066 LEFT-TO-RIGHT ISOLATE",)),
    ("https://github.com/org/repo\u200e", "invisible_chars", ("U+200E LEFT-TO-RIGHT MARK",)),
    ("https://github.com/org/repo\u200f", "invisible_chars", ("U+200F RIGHT-TO-LEFT MARK",)),
    ("https://github.com/org/repo\u061c", "invisible_chars", ("U+061C ARABIC LETTER MARK",)),
    ("https://git\u200bhub.com/org/repo", "invisible_chars", ("U+200B ZERO WIDTH SPACE",)),
    ("https://github.com/org/re\u200dpo", "invisible_chars", ("U+200D ZERO WIDTH JOINER",)),
    ("https://github.com/org/re\u2060po", "invisible_chars", ("U+2060 WORD JOINER",)),
    ("\ufeffhttps://github.com/org/repo", "invisible_chars", ("U+FEFF ZERO WIDTH NO-BREAK SPACE",)),
    ("https://github.com/org/re\u00adpo", "invisible_chars", ("U+00AD SOFT HYPHEN",)),
    ("https://github.com/org/repo\U000e0041", "invisible_chars", ("U+E0041 TAG LATIN CAPITAL LETTER A",)),
    ("https://github.com/org/repo\u180e", "invisible_chars", ("U+180E MONGOLIAN VOWEL SEPARATOR",)),
    ("https://github.com/org/repo\ue000", "invisible_chars", ("invisible", "U+E000")),  # private use (Co)
    ("https://github.com/org/repo\U000f0000", "invisible_chars", ("U+F0000",)),  # private use (Co)
    ("https://github.com/org/repo\u0378", "invisible_chars", ("U+0378",)),  # unassigned (Cn)
    ("https://github.com/org/repo\ufffe", "invisible_chars", ("U+FFFE",)),  # noncharacter (Cn)
    ("https://github.com/org/repo\ud800", "invisible_chars", ("U+D800",)),  # lone surrogate (Cs)
    ("https://github.com/org/repo\u2028", "invisible_chars", ("U+2028 LINE SEPARATOR",)),
    ("https://github.com/org/repo\u2029", "invisible_chars", ("U+2029 PARAGRAPH SEPARATOR",)),
    ("https://github.com/org/re\u034fpo", "invisible_chars", ("U+034F COMBINING GRAPHEME JOINER",)),
    ("https://github.com/org/repo\ufe0f", "invisible_chars", ("U+FE0F VARIATION SELECTOR-16",)),
    ("https://github.com/org/repo\u3164", "invisible_chars", ("U+3164 HANGUL FILLER",)),
    ("https://github.com/org/repo\u2800", "invisible_chars", ("U+2800 BRAILLE PATTERN BLANK",)),
    # Controls and whitespace, typed or percent-encoded (decoded until nothing changes).
    ("https://github.com/a/b\r\n", "control_chars", ("control characters", "a carriage return")),
    ("https://github.com/a b", "control_chars", ("spaces", "a space")),
    ("https://github.com/a/b\x00", "control_chars", ("a NUL",)),
    ("https://github.com/a/b\u0085", "control_chars", ("U+0085",)),
    ("https://github.com/a/b\x7f", "control_chars", ("U+007F",)),
    ("https://github.com/a/b\t", "control_chars", ("a tab",)),
    ("https://github.com/a/b\u00a0", "control_chars", ("U+00A0 NO-BREAK SPACE",)),
    ("https://github.com/a/b\u3000", "control_chars", ("U+3000 IDEOGRAPHIC SPACE",)),
    ("https://github.com/org/repo%0a", "control_chars", ("percent-encoded", "a line break")),
    ("https://github.com/org/repo%0A", "control_chars", ("percent-encoded", "a line break")),
    ("https://github.com/org/repo%00", "control_chars", ("percent-encoded", "a NUL")),
    ("https://github.com/org/repo%0d%0a", "control_chars", ("percent-encoded", "a carriage return")),
    ("https://github.com/org/repo%7f", "control_chars", ("percent-encoded", "U+007F")),
    ("https://github.com/org/repo%09", "control_chars", ("percent-encoded", "a tab")),
    ("https://github.com/org/repo%20", "control_chars", ("percent-encoded", "a space")),
    ("https://github.com/org/repo%c2%85", "control_chars", ("percent-encoded", "U+0085")),
    ("https://github.com/org/repo%C2%9B", "control_chars", ("percent-encoded", "U+009B")),
    ("https://github.com/org/repo%85", "control_chars", ("percent-encoded", "byte 0x85")),  # Latin-1 NEL
    ("https://github.com/org/repo%250a", "control_chars", ("percent-encoded", "a line break")),  # twice
    ("https://github.com/org/repo%25250d", "control_chars", ("percent-encoded", "a carriage return")),
    ("https://github.com%0a.evil.example/a/b", "control_chars", ("percent-encoded", "a line break")),
    ("https://github.com/org/repo?x=%00", "control_chars", ("percent-encoded", "a NUL")),
    ("https://github.com/org/repo%e2%80%ae", "invisible_chars", ("percent-encoded", "U+202E")),
    ("https://github.com/org/repo%EF%BB%BF", "invisible_chars", ("percent-encoded", "U+FEFF")),
    ("https://github.com/org/repo%25e2%2580%25ae", "invisible_chars", ("percent-encoded", "U+202E")),
    ("file:///etc", "local_path", ("local paths",)),
    ("FILE:///etc/passwd", "local_path", ("local paths",)),
    ("/etc/passwd", "local_path", ("local paths",)),
    ("./repo", "local_path", ("local paths",)),
    ("../repo", "local_path", ("local paths",)),
    ("~/repo", "local_path", ("local paths",)),
    ("C:\\repo", "local_path", ("local paths",)),
    ("\\\\server\\share\\repo", "local_path", ("local paths",)),
    # A backslash means `/` to browsers and nothing to urlsplit or curl: refused before any parser sees it.
    ("https://github.com\\@evil.example/o/r", "backslash", ("backslash",)),
    ("https://evil.example\\.github.com/o/r", "backslash", ("backslash",)),
    ("https://github.com/org\\repo", "backslash", ("backslash",)),
    ("https:\\\\github.com\\org\\repo", "backslash", ("backslash",)),
    ("git@github.com:a/b.git", "scp_syntax", ("scp-style",)),
    ("github.com:a/b", "scp_syntax", ("scp-style",)),
    ("localhost:repo.git", "scp_syntax", ("scp-style",)),
    # A scheme that is not https, named as such (not mistaken for the scp-style form).
    ("javascript:alert(1)", "scheme", ("javascript:", "https://")),
    ("JavaScript:alert(document.domain)//", "scheme", ("javascript:", "https://")),
    ("data:text/html;base64,PHNjcmlwdD4=", "scheme", ("data:", "https://")),
    ("mailto:git@github.com", "scheme", ("mailto:", "https://")),
    ("vbscript:msgbox", "scheme", ("vbscript:", "https://")),
    ("about:blank", "scheme", ("about:", "https://")),
    ("https:github.com/org/repo", "scheme", ("'//'", "https://")),
    ("https:/github.com/org/repo", "scheme", ("'//'", "https://")),
    ("github.com/org/repo", "scheme", ("must start with https://",)),
    ("www.github.com/org/repo", "scheme", ("must start with https://",)),
    ("?", "scheme", ("must start with https://",)),
    ("http://github.com/a/b", "scheme", ("plain http://", "https://")),
    ("HTTP://github.com/a/b", "scheme", ("plain http://", "https://")),
    ("ssh://git@github.com/a/b", "scheme", ("ssh://", "https://")),
    ("git+ssh://git@github.com/a/b", "scheme", ("git+ssh://", "https://")),
    ("git://github.com/a/b", "scheme", ("git://", "https://")),
    ("ftp://github.com/a/b", "scheme", ("ftp://", "https://")),
    ("https://github.com:99999/a/b", "malformed", ("port number",)),
    ("https://github.com:abc/a/b", "malformed", ("port number",)),
    ("https://[github.com]/a/b", "malformed", ("not a valid url",)),
    ("https://user:pass@github.com/a/b", "userinfo", ("user name, password or token",)),
    ("https://ghp_token@github.com/a/b", "userinfo", ("user name, password or token",)),
    ("https://github.com@evil.example/a/b", "userinfo", ("before '@'",)),
    ("https://:@github.com/a/b", "userinfo", ("before '@'",)),
    ("https://github.com/a/b?upload-pack=x", "query", ("'?' or '#'",)),
    ("https://github.com/a/b#frag", "query", ("'?' or '#'",)),
    ("https://github.com/org/repo?", "query", ("'?' or '#'",)),
    ("https://github.com?", "query", ("'?' or '#'",)),
    ("https://github.com/org/repo#", "query", ("'?' or '#'",)),
    ("https://gith%75b.com/a/b", "host", ("percent-encoded",)),
    ("https://github.com%40evil.example/o/r", "host", ("percent-encoded '@'", "%40")),
    ("https://evil%40github.com/o/r", "host", ("percent-encoded '@'", "%40")),
    ("https://[fe80::1%25eth0]/a/b", "host", ("zone",)),
    ("https://g\u0456thub.com/a/b", "host", ("plain ascii", "U+0456")),  # Cyrillic i: a homograph
    ("https://\uff47\uff49\uff54\uff48\uff55\uff42.com/a/b", "host", ("plain ascii", "FULLWIDTH")),
    ("https://b\u00fccher.example/a/b", "host", ("plain ascii", "punycode")),
    ("https:///org/repo", "host", ("no host name",)),
    ("https://github.com../a/b", "host", ("not valid",)),
    ("https://git_hub.com/a/b", "host", ("not valid",)),
    ("https://2130706433/a/b", "host", ("unusual form",)),  # 127.0.0.1 to getaddrinfo
    ("https://0x7f.1/a/b", "host", ("unusual form",)),
    ("https://10.0.0.1/a/b", "private_address", ("not a public internet address",)),
    ("https://169.254.169.254/latest/meta-data", "private_address", ("not a public internet address",)),
    ("https://127.0.0.1/a/b", "private_address", ("not a public internet address",)),
    ("https://0.0.0.0/a/b", "private_address", ("not a public internet address",)),
    ("https://[::1]/a/b", "private_address", ("not a public internet address",)),
    ("https://[::ffff:127.0.0.1]/a/b", "private_address", ("not a public internet address",)),
    ("https://[::ffff:169.254.169.254]/a/b", "private_address", ("not a public internet address",)),
    ("https://[fd00::1]/a/b", "private_address", ("not a public internet address",)),
    ("https://[fe80::1]/a/b", "private_address", ("not a public internet address",)),
    ("https://224.0.0.1/a/b", "private_address", ("not a public internet address",)),
    ("https://[64:ff9b::a00:1]/a/b", "private_address", ("not a public internet address",)),
    ("https://localhost/a/b", "host_not_allowed", ("on localhost are not accepted", "github.com")),
    ("https://github.com.evil.example/a/b", "host_not_allowed", ("on github.com.evil.example",)),
    ("https://evil.example/github.com/a/b", "host_not_allowed", ("on evil.example are not accepted",)),
    ("https://8.8.8.8/a/b", "host_not_allowed", ("on 8.8.8.8 are not accepted",)),
    ("https://xn--gthub-n4a.com/a/b", "host_not_allowed", ("on xn--gthub-n4a.com are not accepted",)),
    ("https://www.github.com/a/b", "host_not_allowed", ("on www.github.com are not accepted",)),
    ("https://github.com:22/a/b", "port", ("port (:22)",)),
    ("https://github.com:8443/a/b", "port", ("port (:8443)",)),
    ("https://github.com:80/a/b", "port", ("port (:80)",)),
    # Percent-encoded dots, slashes and backslashes in the path, in any case and encoded more than once.
    ("https://github.com/org/%2e%2e", "encoded_path", ("percent-encoded dot", "%2e")),
    ("https://github.com/%2e%2e/%2e%2e/etc/passwd", "encoded_path", ("percent-encoded dot", "%2e")),
    ("https://github.com/org/%2E%2E", "encoded_path", ("percent-encoded dot", "%2E")),
    ("https://github.com/org/.%2e", "encoded_path", ("percent-encoded dot", "%2e")),
    ("https://github.com/org/%2e", "encoded_path", ("percent-encoded dot",)),
    ("https://github.com/org/repo%2f..%2f..", "encoded_path", ("percent-encoded slash", "%2f")),
    ("https://github.com/org%2Frepo", "encoded_path", ("percent-encoded slash", "%2F")),
    ("https://github.com/org/repo%5c", "encoded_path", ("percent-encoded backslash", "%5c")),
    ("https://github.com/org/repo%5C..%5C", "encoded_path", ("percent-encoded backslash", "%5C")),
    ("https://github.com/org/%252e%252e", "encoded_path", ("double-encoded dot", "%252e")),
    ("https://github.com/org/repo%252F", "encoded_path", ("double-encoded slash", "%252F")),
    ("https://github.com/org/repo%25255c", "encoded_path", ("double-encoded backslash", "%25255c")),
    ("https://github.com/org/./repo", "dot_segment", ("'.' or '..'",)),
    ("https://github.com/./org/repo", "dot_segment", ("'.' or '..'",)),
    ("https://github.com/org/repo/..", "dot_segment", ("'.' or '..'",)),
    ("https://github.com/../../etc/passwd", "dot_segment", ("'.' or '..'",)),
    ("https://github.com//org/repo", "empty_segment", ("empty segments", "'//'")),
    ("https://github.com/org//repo", "empty_segment", ("empty segments", "'//'")),
    ("https://github.com/org/repo//", "empty_segment", ("empty segments", "'//'")),
    ("https://github.com/org/repo@main", "path_chars", ("it contains '@'",)),
    ("https://github.com/@evil.example/repo", "path_chars", ("it contains '@'",)),
    ("https://github.com/org/repo:x", "path_chars", ("it contains ':'",)),
    ("https://github.com/org/re$po", "path_chars", ("it contains '$'",)),
    ("https://github.com/org/repo;x", "path_chars", ("it contains ';'",)),
    ("https://github.com/org/caf\u00e9", "path_chars", ("U+00E9 LATIN SMALL LETTER E WITH ACUTE",)),
    ("https://github.com/org/rep%6f", "path_chars", ("percent-encoded ('%')",)),
    ("https://github.com/org/repo%zz", "path_chars", ("percent-encoded ('%')",)),
    ("https://github.com/org/repo%", "path_chars", ("percent-encoded ('%')",)),
    # No repository part: the forges' repository URLs are https://host/owner/repo (GitLab: group/sub/repo).
    ("https://github.com", "path", ("names no repository", "https://github.com/you/project")),
    ("https://github.com/", "path", ("names no repository", "https://github.com/you/project")),
    ("https://github.com//", "path", ("names no repository",)),
    ("https://github.com/org", "path", ("names no repository, only 'org'", "https://github.com/org/")),
    ("https://github.com/org/", "path", ("names no repository, only 'org'",)),
    ("https://gitlab.com/group", "path", ("names no repository, only 'group'",)),
]


@pytest.mark.parametrize(
    ("url", "rule", "words"), REJECTED, ids=[f"{rule}:{url[:48]!r}" for url, rule, _ in REJECTED]
)
def test_rejected_urls(
    url: str, rule: str, words: tuple[str, ...], public_dns: list[str], git_forbidden: list[str]
) -> None:
    with pytest.raises(InvalidGitUrl) as caught:
        validate_git_url(url, DEFAULT)
    assert caught.value.details == {"field": "git_url", "rule": rule}
    for word in words:
        assert word.lower() in caught.value.message.lower(), caught.value.message
    assert git_forbidden == []


def test_no_rejected_url_needs_dns_or_git(public_dns: list[str], git_forbidden: list[str]) -> None:
    """The syntax rules never need DNS: with every name resolving publicly, none of them asked for one."""
    for url, _rule, _words in REJECTED:
        with pytest.raises(InvalidGitUrl):
            validate_git_url(url, DEFAULT)
    assert public_dns == []
    assert git_forbidden == []


def _characters(*categories: str) -> list[str]:
    return [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) in categories]


def test_every_format_separator_and_private_use_character_is_refused_by_name(
    public_dns: list[str],
) -> None:
    formats = _characters("Cf", "Zl", "Zp")
    private = _characters("Co")
    unassigned = _characters("Cn")
    surrogates = _characters("Cs")
    samples = [*formats, *private[::997], private[-1], *unassigned[::4999], unassigned[-1], *surrogates[::97]]
    for ch in samples:
        for url in (f"https://github.com/org/repo{ch}", f"https://git{ch}hub.com/org/repo"):
            with pytest.raises(InvalidGitUrl) as caught:
                validate_git_url(url, DEFAULT)
            assert caught.value.details["rule"] == "invisible_chars", f"U+{ord(ch):04X}"
            assert f"U+{ord(ch):04X}" in caught.value.message
            # Percent-encoded (as UTF-8), the same character is refused by the same rule.
            if not 0xD800 <= ord(ch) <= 0xDFFF:
                encoded = "".join(f"%{byte:02x}" for byte in ch.encode())
                with pytest.raises(InvalidGitUrl) as caught:
                    validate_git_url(f"https://github.com/org/repo{encoded}", DEFAULT)
                assert caught.value.details["rule"] == "invisible_chars", encoded
                assert "percent-encoded" in caught.value.message


def test_every_control_character_is_refused_typed_or_percent_encoded(public_dns: list[str]) -> None:
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        encoded = "".join(f"%{byte:02X}" for byte in chr(code).encode())
        for url in (f"https://github.com/org/repo{chr(code)}", f"https://github.com/org/repo{encoded}"):
            with pytest.raises(InvalidGitUrl) as caught:
                validate_git_url(url, DEFAULT)
            assert caught.value.details["rule"] == "control_chars", repr(url)


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
        ("https://gitlab.com/group/sub/repo.git", "https://gitlab.com/group/sub/repo.git"),
        ("https://codeberg.org/a/b", "https://codeberg.org/a/b"),
        ("https://bitbucket.org/workspace/repo.git", "https://bitbucket.org/workspace/repo.git"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        # One trailing slash (as browsers show it) is accepted and dropped: git treats both the same.
        ("https://github.com/org/repo/", "https://github.com/org/repo"),
        ("https://github.com/org/repo.git/", "https://github.com/org/repo.git"),
        ("HTTPS://GITHUB.COM/Org/Repo", "https://github.com/Org/Repo"),
        ("https://github.com:/org/repo", "https://github.com/org/repo"),
        ("https://github.com/org/.github", "https://github.com/org/.github"),
        ("https://github.com/my-org/my_repo-1.2", "https://github.com/my-org/my_repo-1.2"),
        ("https://gitlab.com/group/project/-/tree", "https://gitlab.com/group/project/-/tree"),
    ],
)
def test_accepted_urls(url: str, expected: str, public_forges: list[str], git_forbidden: list[str]) -> None:
    validated = validate_git_url(url, DEFAULT)
    assert validated.url == expected
    assert validated.addresses == (PUBLIC_V4, PUBLIC_V6)
    assert validated.port in (None, 443)
    assert validated.host in DEFAULT.allowed_hosts
    # The normalised URL is stored and validated again later: it must pass unchanged.
    assert validate_git_url(validated.url, DEFAULT).url == expected
    assert git_forbidden == []


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
        ("http://127.0.0.1:8080/", "path"),
        ("http://127.0.0.1:8080/%2e%2e/demo.git", "encoded_path"),
        ("http://127.0.0.1:8080/demo.git\u202e", "invisible_chars"),
    ]:
        with pytest.raises(InvalidGitUrl) as caught:
            validate_git_url(url, LOOPBACK)
        assert caught.value.details["rule"] == rule, url


def test_the_loopback_policy_gives_an_allow_listed_forge_no_http_ports_or_short_paths(
    public_forges: list[str],
) -> None:
    """Only loopback servers get http, any port and a one-segment path; github.com stays github.com."""
    for url, rule, words in [
        ("http://github.com/org/repo", "scheme", "plain http://"),
        ("https://github.com:8443/org/repo", "port", "port (:8443)"),
        ("https://github.com/org", "path", "names no repository"),
    ]:
        with pytest.raises(InvalidGitUrl) as caught:
            validate_git_url(url, LOOPBACK)
        assert caught.value.details == {"field": "git_url", "rule": rule}, url
        assert words in caught.value.message
    assert validate_git_url("https://github.com/org/repo/", LOOPBACK).url == "https://github.com/org/repo"


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
