"""Git intake: validate a learner's repository URL, pin a ref to a commit, fetch that commit's work tree.

This module owns every git process the service starts on a learner's behalf. The threats it answers
(docs/intake.md, threats.md section 3): transport tricks (`ext::`, `file://`, ssh, option injection),
SSRF to internal hosts (checked at validation time *and* pinned against DNS rebinding with
`http.curloptResolve`, redirects off), hooks/fsmonitor/filters/LFS/submodules running or fetching anything,
symlinks escaping the tree, and repositories too big or too slow to fetch.

Git runs as a plain subprocess with an environment built from scratch (not `os.environ` plus overrides as
GitPython does), so nothing the worker inherits (`GIT_DIR`, `GIT_CONFIG_PARAMETERS`, `GIT_SSH_COMMAND`,
a user's `~/.gitconfig`) can change what git does. Every argument is ours; learner data only ever appears
after validation, as the URL (after `--`) or as a 40-hex commit id.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn, Protocol
from urllib.parse import SplitResult, unquote, urlsplit

from grader.errors import InvalidGitUrl, RepositoryUnavailable
from grader.intake.tree import TreeStats, TreeViolation, is_git_component, scan_tree, symlink_escapes

MIB = 1024 * 1024
MAX_URL_LENGTH = 2000
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# `<transport>::<address>` is git's remote-helper syntax (`ext::sh -c ...` runs a command).
_TRANSPORT_RE = re.compile(r"^[A-Za-z0-9+.-]*::")
# scp-like syntax `[user@]host:path` (git treats it as ssh when there is no `/` before the colon).
_SCP_RE = re.compile(r"^(?:[^@/]+@)?[^/:]+:(?!//)")
_HOST_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
# The last label of a name getaddrinfo would read as an IPv4 address (decimal, octal or hex shorthand).
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_GIT_BINARY = "git"
_CHUNK = 64 * 1024
_MAX_STDOUT = 8 * MIB
_MAX_STDERR = 64 * 1024


@dataclass(frozen=True)
class GitPolicy:
    """What the service agrees to fetch. The defaults are the production policy."""

    allowed_hosts: tuple[str, ...] = ("github.com", "gitlab.com", "codeberg.org", "bitbucket.org")
    # TESTS ONLY: accept http:// and loopback servers (127.0.0.0/8, ::1, `localhost`, any name resolving only
    # to loopback), on any port. The default never does.
    allow_insecure_loopback: bool = False
    clone_timeout_seconds: int = 60
    max_repo_bytes: int = 50 * MIB
    max_files: int = 5000
    # CPU niceness of the `ls-remote` that pins a ref (it runs in a web process, beside quiz requests).
    resolve_nice: int = 0


@dataclass(frozen=True)
class ValidatedGitUrl:
    """A URL that passed `validate_git_url`; `addresses` are the vetted IPs `host` resolved to."""

    url: str
    host: str
    port: int | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class WorkTree:
    """The checked-out files of one commit, without `.git`."""

    path: Path
    commit: str
    file_count: int
    total_bytes: int


def _reject_url(rule: str, message: str) -> NoReturn:
    raise InvalidGitUrl(message, details={"field": "git_url", "rule": rule})


def _reject_ref(rule: str, message: str) -> NoReturn:
    raise InvalidGitUrl(message, details={"field": "ref", "rule": rule})


# ---------------------------------------------------------------------------------------------------------
# URL validation


def validate_git_url(url: str, policy: GitPolicy) -> ValidatedGitUrl:
    """Check `url` against `policy` and resolve its host; raise `InvalidGitUrl` naming the failed rule.

    Rules (details["rule"]), in order:

    1. "empty"; "too_long"; "option_injection" (leading `-`); "transport" (`<transport>::`).
    2. "invisible_chars" (Unicode format, bidi, private-use, unassigned, line/paragraph separators and
       other default-ignorable characters), then "control_chars" (C0/C1 controls, DEL, any whitespace).
       Both are checked again on the percent-decoded URL (decoded until nothing changes, so `%250a`
       counts), with a message that says the character was percent-encoded.
    3. "local_path" (also `file:`); "backslash" (`\\` anywhere: parsers disagree on what it separates);
       "scp_syntax" (`user@host:path`); "scheme" (https; `javascript:`, `ssh://` and the like).
    4. "malformed" (urlsplit or the port does not parse); "scheme"; "userinfo"; "query" (`?`, `#`).
    5. "host" (missing, not ASCII, percent-encoded, IPv6 zone, numeric shorthand, not a valid name);
       "private_address" (IP literals); "host_not_allowed"; "scheme" (http under
       allow_insecure_loopback, but for a host that is not loopback); "port".
    6. The path: "encoded_path" (percent-encoded `.`, `/` or `\\`, also double-encoded), "dot_segment"
       (`.`, `..`), "empty_segment" (`//`), "path_chars" (anything but `A-Z a-z 0-9 . _ ~ -` between the
       slashes), "path" (names no repository: the forges need `owner/repo`, GitLab also
       `group/sub/repo`, so at least two segments; one for a loopback test server).
    7. "unresolvable" and "private_address" for every address the host resolves to.

    The returned URL is normalised: lower-case scheme and host, no trailing dot, no default port, and
    one trailing `/` dropped (`.../repo/` and `.../repo` are the same repository to git).
    """
    if not isinstance(url, str) or not url:
        _reject_url("empty", "enter the URL of your git repository")
    if len(url) > MAX_URL_LENGTH:
        _reject_url("too_long", f"the repository URL is longer than {MAX_URL_LENGTH} characters")
    if url.startswith("-"):
        _reject_url("option_injection", "the repository URL must not start with '-'")
    if _TRANSPORT_RE.match(url):
        _reject_url("transport", "git transport syntax ('<transport>::') is not allowed")
    _check_characters(url)
    lowered = url.lower()
    if lowered.startswith(("file:", "/", ".", "~", "\\")) or re.match(r"^[a-z]:[\\/]", lowered):
        _reject_url("local_path", "local paths and file:// URLs are not allowed")
    if "\\" in url:
        # WHATWG parsers read `\` as `/`, urlsplit and curl do not: `https://evil\@github.com/` means two
        # different hosts to two parsers, so no URL with one gets as far as a parser.
        _reject_url("backslash", "the repository URL must use '/' and not '\\' (backslash)")
    if not _SCHEME_RE.match(url) or (_SCP_RE.match(url) and "://" not in url):
        if _SCP_RE.match(url) and _looks_like_scp(url):
            _reject_url("scp_syntax", "use an https:// URL, not the scp-style 'user@host:path' form")
        _reject_url("scheme", _scheme_message(url))

    try:
        parts = urlsplit(url)
    except ValueError:
        _reject_url("malformed", "the repository URL is not a valid URL (check the host name and brackets)")
    try:
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        _reject_url("malformed", "the port number in the repository URL is not valid")
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_insecure_loopback):
        _reject_url("scheme", _scheme_message(url))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        _reject_url(
            "userinfo",
            "the repository URL must not contain a user name, password or token (the part before '@')",
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        _reject_url("query", "the repository URL must not contain '?' or '#'")

    host = _host_of(parts)
    literal = _ip_literal(host)
    if literal is not None:
        # An IP literal is checked before the allow-list so that the rejection names the real problem.
        _check_address(literal, policy)
    allowed = host in policy.allowed_hosts
    # Only the test policy admits loopback servers, and only they may use http, any port and a one-segment
    # path (`http://127.0.0.1:<port>/demo.git`): a forge on the allow-list gets none of that.
    loopback = policy.allow_insecure_loopback and (
        host == "localhost"
        or (literal is not None and _is_loopback(literal))
        or _resolves_to_loopback_only(host, policy)
    )
    if not allowed and not loopback:
        accepted = ", ".join(policy.allowed_hosts)
        _reject_url("host_not_allowed", f"repositories on {host} are not accepted (use one of: {accepted})")
    if scheme == "http" and not loopback:
        _reject_url("scheme", _scheme_message(url))
    default_port = 443 if scheme == "https" else 80
    if port is not None and port != default_port and not loopback:
        _reject_url(
            "port", f"the repository URL must not name a port (:{port}); use the forge's usual https address"
        )
    segments = _repository_path(parts.path, host, minimum=1 if loopback else 2)

    addresses = _resolve(host, port or default_port, policy)
    host_in_url = f"[{host}]" if ":" in host else host
    port_in_url = f":{port}" if port is not None and port != default_port else ""
    normalized = f"{scheme}://{host_in_url}{port_in_url}/{'/'.join(segments)}"
    return ValidatedGitUrl(url=normalized, host=host, port=port, addresses=addresses)


# Default_Ignorable_Code_Point characters (Unicode DerivedCoreProperties) outside the categories below,
# plus the braille blank: each renders as nothing and can hide in a pasted URL.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors
    (0x2800, 0x2800),  # braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
# Cf holds the bidi overrides/isolates, zero-width characters, soft hyphen and BOM; Co, Cn and Cs have no
# visible form a learner could check; Zl/Zp break lines without looking like whitespace.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
_CONTROL_NAMES = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a carriage return",
    "\0": "a NUL",
}


def _is_invisible(ch: str) -> bool:
    code = ord(ch)
    if code < 0x80:
        return False
    if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
        return True
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _is_control(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cc"


def _describe(ch: str) -> str:
    """`ch` in words a learner can search for, never the (possibly invisible) character itself."""
    if ch in _CONTROL_NAMES:
        return _CONTROL_NAMES[ch]
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def _check_characters(url: str) -> None:
    """Rules "invisible_chars" and "control_chars", on the URL as typed and percent-decoded."""
    for ch in url:
        if _is_invisible(ch):
            _reject_url(
                "invisible_chars",
                f"the repository URL contains an invisible or text-direction character ({_describe(ch)}) "
                "that can make it look different from what it is; type the URL in again",
            )
    # Whitespace and control characters: nothing legitimate needs them and they smuggle extra arguments,
    # header lines or (CVE-2025-48384-style) trailing CRs into git.
    for ch in url:
        if _is_control(ch):
            _reject_url(
                "control_chars",
                "the repository URL must not contain spaces or control characters "
                f"(it contains {_describe(ch)})",
            )
    # A server, proxy or later tool may decode what curl sends as is; `%250a` is `%0a` after one pass.
    for layer in _decodings(url)[1:]:
        for ch in layer:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:
                # A byte that is not UTF-8 (surrogateescape); 0x80-0x9F are the C1 controls in Latin-1.
                if code <= 0xDC9F:
                    _reject_url(
                        "control_chars",
                        "the repository URL contains a percent-encoded control character "
                        f"(byte 0x{code - 0xDC00:02X})",
                    )
                continue
            if _is_invisible(ch):
                _reject_url(
                    "invisible_chars",
                    f"the repository URL contains a percent-encoded invisible or text-direction character "
                    f"({_describe(ch)})",
                )
            if _is_control(ch):
                _reject_url(
                    "control_chars",
                    "the repository URL contains a percent-encoded space or control character "
                    f"({_describe(ch)})",
                )


def _decodings(text: str) -> list[str]:
    """`text`, then each percent-decoding of the previous one until a pass changes nothing."""
    layers = [text]
    # Every pass that changes anything shortens the text, so this ends after at most len(text) / 3 passes.
    while "%" in layers[-1]:
        decoded = unquote(layers[-1], encoding="utf-8", errors="surrogateescape")
        if decoded == layers[-1]:
            break
        layers.append(decoded)
    return layers


def _looks_like_scp(url: str) -> bool:
    """`git@host:path`, `host.tld:path` or `localhost:path`; not `javascript:` or `mailto:` and the like."""
    prefix = url.split(":", 1)[0]
    _user, at, host = prefix.rpartition("@")
    return bool(at) or "." in host or host.lower() == "localhost"


def _scheme_message(url: str) -> str:
    match = _SCHEME_RE.match(url)
    if match is None:
        return "the repository URL must start with https://, e.g. https://github.com/you/project"
    scheme = match.group(0)[:-1].lower()
    rest = url[len(scheme) + 1 :]
    if scheme in ("http", "https") and not rest.startswith("//"):
        return f"write '//' after '{scheme}:': the repository URL must start with https://"
    if scheme == "http":
        return "plain http:// is not accepted: the repository URL must start with https://"
    shown = f"{scheme}://" if rest.startswith("//") else f"{scheme}:"
    return f"{shown} URLs are not accepted: the repository URL must start with https://"


_ENCODED_SEPARATOR_RE = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)
_ENCODED_NAMES = {"2e": "dot ('.')", "2f": "slash ('/')", "5c": "backslash ('\\')"}
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")


def _repository_path(path: str, host: str, *, minimum: int) -> list[str]:
    """The path's segments; rules "encoded_path", "dot_segment", "empty_segment", "path_chars", "path"."""
    for depth, layer in enumerate(_decodings(path)):
        found = _ENCODED_SEPARATOR_RE.search(layer)
        if found is not None:
            what = _ENCODED_NAMES[found.group(1).lower()]
            how = "a percent-encoded" if depth == 0 else "a double-encoded"
            # As the learner wrote it: each extra pass of encoding added a `25` after the `%`.
            written = "%" + "25" * depth + found.group(0)[1:]
            _reject_url(
                "encoded_path",
                f"the repository path contains {how} {what} ({written}); write the path out plainly",
            )
    body = path[1:] if path.startswith("/") else path
    if body.endswith("/"):
        body = body[:-1]  # `https://github.com/you/project/` is how browsers often show it
    segments = body.split("/") if body else []
    if any(segment in (".", "..") for segment in segments):
        _reject_url("dot_segment", "the repository path must not contain '.' or '..' segments")
    if "" in segments:
        _reject_url("empty_segment", "the repository path must not contain empty segments ('//')")
    for segment in segments:
        if not _SEGMENT_RE.fullmatch(segment):
            bad = next(ch for ch in segment if not _SEGMENT_RE.fullmatch(ch))
            if bad == "%":
                _reject_url(
                    "path_chars",
                    "the repository path must not be percent-encoded ('%'): owner and repository names "
                    "are plain letters, digits, '-', '_' and '.'",
                )
            shown = f"'{bad}'" if bad.isascii() and bad.isprintable() else _describe(bad)
            _reject_url(
                "path_chars",
                f"the repository path may only contain letters, digits, '-', '_', '.' and '~' between its "
                f"slashes (it contains {shown})",
            )
    if len(segments) < minimum:
        if not segments:
            _reject_url(
                "path",
                f"the repository URL names no repository: add the owner and the repository, "
                f"e.g. https://{host}/you/project",
            )
        _reject_url(
            "path",
            f"the repository URL names no repository, only '{segments[0]}': add the repository, "
            f"e.g. https://{host}/{segments[0]}/project",
        )
    return segments


def _host_of(parts: SplitResult) -> str:
    raw = parts.hostname  # lower-cased, brackets removed for IPv6 literals
    if not raw:
        _reject_url("host", "the repository URL has no host name")
    host = raw.rstrip(".") if not raw.endswith("..") else raw
    if not host.isascii():
        bad = next(ch for ch in host if not ch.isascii())
        _reject_url(
            "host",
            f"the host name must be plain ASCII, but it contains {_describe(bad)} (such letters can imitate "
            "another host's name); type it in again, or use its punycode (xn--) form",
        )
    if "%" in host:
        if "[" in parts.netloc:
            _reject_url("host", "IPv6 zone identifiers ('%' in an [IPv6] address) are not allowed")
        if "%40" in host:
            _reject_url(
                "host",
                "the host name contains a percent-encoded '@' (%40), which can hide a different host; "
                "use the plain host name, e.g. github.com",
            )
        _reject_url("host", "the host name must not contain percent-encoded characters ('%')")
    if _ip_literal(host) is None:
        if _NUMERIC_LABEL_RE.fullmatch(host.rsplit(".", 1)[-1]):
            # getaddrinfo reads `2130706433` or `0x7f.1` as 127.0.0.1; no real top-level domain is numeric.
            _reject_url("host", "the host name is an IP address written in an unusual form")
        if not _HOST_RE.match(host):
            _reject_url("host", "the host name is not valid")
    return host


def _resolves_to_loopback_only(host: str, policy: GitPolicy) -> bool:
    """Under the test-only loopback policy, any name whose every address is loopback counts as allowed."""
    if not policy.allow_insecure_loopback:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = [_ip_literal(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return bool(addresses) and all(address is not None and _is_loopback(address) for address in addresses)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in an IPv4-mapped, NAT64, 6to4 or Teredo IPv6 address, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # `is_global` already excludes private, loopback, link-local, reserved, unspecified and shared ranges;
    # the explicit checks keep the intent readable and cover multicast (some multicast is "global").
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return _is_public(inner)
    return True


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: GitPolicy) -> None:
    if _is_public(address):
        return
    if policy.allow_insecure_loopback and _is_loopback(address):
        return
    _reject_url("private_address", "the repository host is not a public internet address")


def _resolve(host: str, port: int, policy: GitPolicy) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        _reject_url("unresolvable", f"the host name {host} cannot be resolved")
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        address = _ip_literal(text)
        if address is None:
            _reject_url("unresolvable", f"the host name {host} resolved to something that is not an address")
        # Every result must pass: git/curl may pick any of them.
        _check_address(address, policy)
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        _reject_url("unresolvable", f"the host name {host} cannot be resolved")
    return tuple(addresses)


# ---------------------------------------------------------------------------------------------------------
# Refs


def validate_ref(ref: str) -> str:
    """Check a learner-supplied ref like `git check-ref-format --allow-onelevel` would; raise `InvalidGitUrl`.

    A 40-hex commit id is accepted as is (lower-cased). The rules are stricter than git's where that costs
    nothing: ASCII only, at most 255 characters.
    """
    if not ref:
        _reject_ref("empty", "the branch, tag or commit is empty")
    if ref.startswith("-"):
        _reject_ref("option_injection", "a branch or tag name must not start with '-'")
    if _SHA_RE.match(ref.lower()):
        return ref.lower()
    if len(ref) > 255 or not ref.isascii():
        _reject_ref("format", "the branch or tag name is too long or not plain ASCII")
    bad_chars = set(" ~^:?*[\\\x7f")
    if any(ord(ch) < 0x20 or ch in bad_chars for ch in ref):
        _reject_ref("format", "the branch or tag name contains a character git does not allow")
    if ".." in ref or "@{" in ref or "//" in ref or ref == "@" or ref.endswith(("/", ".")):
        _reject_ref("format", "the branch or tag name is not a valid git ref name")
    for component in ref.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            _reject_ref("format", "the branch or tag name is not a valid git ref name")
    return ref


def resolve_commit(url: ValidatedGitUrl, ref: str | None, policy: GitPolicy) -> str:
    """The 40-hex commit `ref` (a branch, tag, `refs/...` name or commit id; default the remote HEAD) names.

    Raises `InvalidGitUrl` (field "ref") for a malformed ref and `RepositoryUnavailable` with rule
    "not_found", "ref_not_found" (field "ref"), "timeout" or "unreachable". A full commit id is returned
    as is once the repository is known to exist: `fetch_worktree` verifies the object.
    """
    checked = validate_ref(ref) if ref is not None else None
    with _git_home() as home:
        env = _git_env(url, policy, home)
        if checked is None:
            patterns = ["HEAD"]
        elif _SHA_RE.match(checked):
            patterns = ["HEAD"]  # only to prove that the repository exists and is reachable
        elif checked.startswith("refs/"):
            patterns = [checked]
        else:
            patterns = [f"refs/heads/{checked}", f"refs/tags/{checked}"]
        deadline = time.monotonic() + policy.clone_timeout_seconds
        # The peeled `^{}` names must be asked for explicitly, or an annotated tag yields its tag object.
        wanted = [*patterns, *(f"{pattern}^{{}}" for pattern in patterns if pattern != "HEAD")]
        result = _run_git(
            ["ls-remote", "--", url.url, *wanted],
            env=env,
            cwd=home,
            deadline=deadline,
            nice=policy.resolve_nice,
        )
        if result.returncode != 0:
            _raise_remote_failure(result.stderr)
    advertised: dict[str, str] = {}
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        sha, _, name = line.partition("\t")
        if _SHA_RE.match(sha):
            advertised[name] = sha
    if checked is not None and _SHA_RE.match(checked):
        return checked
    if checked is None:
        if "HEAD" not in advertised:
            raise RepositoryUnavailable(
                "the repository is empty or has no default branch",
                details={"field": "git_url", "rule": "ref_not_found"},
            )
        return advertised["HEAD"]
    for candidate in patterns:
        # An annotated tag is advertised twice: the tag object and, with `^{}`, the commit it points to.
        if f"{candidate}^{{}}" in advertised:
            return advertised[f"{candidate}^{{}}"]
        if candidate in advertised:
            return advertised[candidate]
    raise RepositoryUnavailable(
        f"the repository has no branch or tag named {checked}",
        details={"field": "ref", "rule": "ref_not_found"},
    )


def _raise_remote_failure(stderr: bytes) -> NoReturn:
    text = stderr.decode("utf-8", "replace").lower()
    # Forges answer 404 for a missing repository and 401/403 for a private one (prompts are disabled);
    # to the learner both mean "we cannot see it".
    if any(
        marker in text
        for marker in ("not found", "404", "401", "403", "could not read username", "authentication")
    ):
        raise RepositoryUnavailable(
            "the repository does not exist or is not public",
            details={"field": "git_url", "rule": "not_found"},
        )
    raise RepositoryUnavailable(
        "the repository could not be reached; try again later",
        details={"field": "git_url", "rule": "unreachable"},
    )


# ---------------------------------------------------------------------------------------------------------
# Fetch


def fetch_worktree(url: ValidatedGitUrl, commit: str, dest: Path, policy: GitPolicy) -> WorkTree:
    """Fetch exactly `commit` (shallow, no tags, no submodules) into a new directory `dest`, without `.git`.

    Raises `RepositoryUnavailable` with rule "timeout", "too_large", "too_many_files", "ref_not_found" (the
    commit is not in the repository), "not_found", "unreachable" or "unsafe_tree"; `dest` is removed on
    any failure. `dest` must not exist.
    """
    commit = commit.lower()
    if not _SHA_RE.match(commit):
        # Callers pass what `resolve_commit` returned; anything else is a bug, not learner input.
        raise ValueError("commit must be a 40-hex commit id")
    dest.mkdir(parents=True)
    os.chmod(dest, 0o755)
    try:
        with _git_home() as home:
            env = _git_env(url, policy, home)
            git_dir = dest / ".git"
            # GIT_DIR/GIT_WORK_TREE are explicit so git never discovers some other repository.
            env["GIT_DIR"] = str(git_dir)
            env["GIT_WORK_TREE"] = str(dest)
            deadline = time.monotonic() + policy.clone_timeout_seconds

            def git(
                *args: str,
                watch: tuple[Path, int] | None = None,
                stdin: bytes | None = None,
                max_stdout: int = _MAX_STDOUT,
            ) -> _GitResult:
                return _run_git(
                    args,
                    env=env,
                    cwd=home,
                    deadline=deadline,
                    watch=watch,
                    stdin=stdin,
                    max_stdout=max_stdout,
                )

            _checked(git("init", "--quiet", "--", str(dest)))
            fetch = git(
                *("fetch", "--quiet", "--depth=1", "--no-tags", "--no-recurse-submodules"),
                *("--no-write-fetch-head", "--", url.url, commit),
                # The pack is streamed into .git/objects/pack/tmp_pack_*: watching the directory stops a
                # huge repository long before it fills the disk.
                watch=(git_dir, policy.max_repo_bytes),
            )
            if fetch.returncode != 0:
                _raise_fetch_failure(fetch.stderr)
            resolved = git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
            if resolved.returncode != 0 or resolved.stdout.decode().strip() != commit:
                _commit_missing()
            listing = git(
                *("ls-tree", "-r", "-z", "-l", "--full-tree", commit),
                # Generous per-entry room (long paths), still a bound on memory.
                max_stdout=max(_MAX_STDOUT, policy.max_files * 512),
            )
            _check_link_targets(_check_tree_listing(listing, policy), git)
            _checked(git("checkout", "--quiet", "--force", "--detach", commit, "--"))
            head = git("rev-parse", "--verify", "HEAD")
            if head.returncode != 0 or head.stdout.decode().strip() != commit:
                raise RepositoryUnavailable(
                    "the fetched commit is not the one requested",
                    details={"field": "ref", "rule": "ref_mismatch"},
                )
        # Only the work tree goes on: learner-controlled `.git` content must never meet a git on the host.
        shutil.rmtree(dest / ".git")
        stats = _scan_tree(dest, policy)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return WorkTree(path=dest, commit=commit, file_count=stats.file_count, total_bytes=stats.total_bytes)


def _commit_missing() -> NoReturn:
    raise RepositoryUnavailable(
        "the repository does not contain that commit", details={"field": "ref", "rule": "ref_not_found"}
    )


_MAX_LINK_TARGET = 4096  # PATH_MAX: a longer "link" is not a link any system would follow


def _check_tree_listing(listing: _GitResult, policy: GitPolicy) -> list[tuple[str, str]]:
    """Count and size the commit's blobs from the object headers before anything is written to disk.

    Returns the symlinks as `(path, blob id)` so their targets can be judged before checkout.
    """
    if listing.overflowed:
        _too_many_files(policy)
    _checked(listing)
    count = 0
    total = 0
    links: list[tuple[str, str]] = []
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) != 4:
            continue
        mode, kind, sha, size = fields
        # git refuses to check out `.git` components itself; naming the problem beats a failed checkout.
        if any(is_git_component(part) for part in path.split(b"/")):
            _unsafe_tree(path.decode("utf-8", "replace"))
        if kind != b"blob":
            continue  # gitlinks (submodules) are never fetched; checkout leaves an empty directory
        # Symlinks count too: they are checked out as small files holding the link text.
        count += 1
        total += int(size) if size.isdigit() else 0
        if count > policy.max_files:
            _too_many_files(policy)
        if total > policy.max_repo_bytes:
            _too_large(policy)
        if mode == b"120000":
            name = path.decode("utf-8", "replace")
            if not size.isdigit() or int(size) > _MAX_LINK_TARGET:
                _symlink_escape(name)
            links.append((name, sha.decode("ascii")))
    return links


def _check_link_targets(links: list[tuple[str, str]], git: _GitRunner) -> None:
    """Refuse the commit if any symlink blob names a target outside the tree (absolute, or `..` too far).

    core.symlinks=false already turns links into small text files, so nothing on disk could be followed;
    refusing the commit tells the learner why their code would not see the file they meant.
    """
    if not links:
        return
    request = "".join(f"{sha}\n" for _name, sha in links).encode()
    # Each target is at most _MAX_LINK_TARGET bytes (checked from the listing), plus a header line.
    result = _checked(
        git("cat-file", "--batch", stdin=request, max_stdout=len(links) * (_MAX_LINK_TARGET + 128))
    )
    stream = result.stdout
    offset = 0
    for name, sha in links:
        header_end = stream.find(b"\n", offset)
        header = stream[offset:header_end].split() if header_end >= 0 else []
        if len(header) != 3 or header[0].decode("ascii", "replace") != sha or not header[2].isdigit():
            raise RepositoryUnavailable(
                "the repository could not be checked out", details={"field": "git_url", "rule": "unreachable"}
            )
        size = int(header[2])
        target = stream[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1  # the content is followed by a newline
        if symlink_escapes(name, target.decode("utf-8", "surrogateescape")):
            _symlink_escape(name)


def _symlink_escape(name: str) -> NoReturn:
    raise RepositoryUnavailable(
        f"the repository contains a symbolic link that points outside it: {name}",
        details={"field": "git_url", "rule": "symlink_escape", "path": name},
    )


def _scan_tree(root: Path, policy: GitPolicy) -> TreeStats:
    """Walk the checked-out tree (shared rules in `grader.intake.tree`) and report in git's terms."""
    try:
        # core.symlinks=false means git writes no links at all; finding one means something is wrong.
        return scan_tree(root, max_files=policy.max_files, max_bytes=policy.max_repo_bytes)
    except TreeViolation as violation:
        if violation.rule == "too_many_files":
            _too_many_files(policy)
        if violation.rule == "too_large":
            _too_large(policy)
        if violation.rule == "symlink_escape":
            _symlink_escape(violation.path)
        _unsafe_tree(violation.path)


def _unsafe_tree(name: str) -> NoReturn:
    raise RepositoryUnavailable(
        f"the repository contains an entry that is not a plain file or directory: {name}",
        details={"field": "git_url", "rule": "unsafe_tree"},
    )


def _too_many_files(policy: GitPolicy) -> NoReturn:
    raise RepositoryUnavailable(
        f"the repository has more than {policy.max_files} files",
        details={"field": "git_url", "rule": "too_many_files", "limit": policy.max_files},
    )


def _too_large(policy: GitPolicy) -> NoReturn:
    raise RepositoryUnavailable(
        f"the repository is larger than {policy.max_repo_bytes // MIB} MiB",
        details={"field": "git_url", "rule": "too_large", "limit": policy.max_repo_bytes},
    )


def _raise_fetch_failure(stderr: bytes) -> NoReturn:
    text = stderr.decode("utf-8", "replace").lower()
    # transfer.fsckObjects refused an object (a `.git` tree entry, a malicious .gitmodules, bad paths).
    if "fsck" in text or "error in object" in text or "invalid object" in text:
        raise RepositoryUnavailable(
            "the repository contains objects that git considers unsafe (for example a .git folder)",
            details={"field": "git_url", "rule": "unsafe_tree"},
        )
    if "not our ref" in text or "no such remote ref" in text or "couldn't find remote ref" in text:
        _commit_missing()
    _raise_remote_failure(stderr)


# ---------------------------------------------------------------------------------------------------------
# Running git


@dataclass(frozen=True)
class _GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    overflowed: bool = False


class _GitRunner(Protocol):
    """`fetch_worktree`'s `git(...)`: `_run_git` bound to one repository, environment and deadline."""

    def __call__(
        self,
        *args: str,
        watch: tuple[Path, int] | None = None,
        stdin: bytes | None = None,
        max_stdout: int = _MAX_STDOUT,
    ) -> _GitResult: ...


def _checked(result: _GitResult) -> _GitResult:
    if result.returncode != 0:
        raise RepositoryUnavailable(
            "the repository could not be checked out", details={"field": "git_url", "rule": "unreachable"}
        )
    return result


@contextmanager
def _git_home() -> Iterator[Path]:
    """A throw-away HOME (and cwd) so git reads no user configuration and discovers no repository."""
    with tempfile.TemporaryDirectory(prefix="grader-git-") as tmp:
        home = Path(tmp)
        (home / "templates").mkdir()
        yield home


def _git_env(url: ValidatedGitUrl, policy: GitPolicy, home: Path) -> dict[str, str]:
    """The complete environment for git: built from nothing, never from `os.environ`."""
    protocols = "https:http" if policy.allow_insecure_loopback else "https"
    config: list[tuple[str, str]] = [
        ("core.hooksPath", "/dev/null"),  # no hook ever runs, whatever a template or repo provides
        ("core.fsmonitor", "false"),  # .git/config-driven command execution
        ("core.symlinks", "false"),  # symlinks become small text files: nothing points out of the tree
        ("core.protectNTFS", "true"),
        ("core.protectHFS", "true"),
        ("core.autocrlf", "false"),
        ("transfer.fsckObjects", "true"),  # reject malformed objects (the classic .gitmodules/path attacks)
        ("fetch.fsckObjects", "true"),
        ("http.followRedirects", "false"),  # a redirect would bypass the address check
        ("submodule.recurse", "false"),
        ("fetch.recurseSubmodules", "false"),
        ("protocol.allow", "never"),  # GIT_ALLOW_PROTOCOL below is authoritative; this is the fallback
        ("protocol.https.allow", "always"),
        ("credential.helper", ""),
        ("http.lowSpeedLimit", "1024"),  # curl gives up on a trickling server before our own kill does
        ("http.lowSpeedTime", str(max(5, min(30, policy.clone_timeout_seconds)))),
        ("gc.auto", "0"),
        ("maintenance.auto", "false"),
        ("advice.detachedHead", "false"),
        ("init.defaultBranch", "main"),
        ("safe.directory", "*"),  # our own temp directories only; avoids ownership errors under sandboxes
    ]
    if policy.allow_insecure_loopback:
        config.append(("protocol.http.allow", "always"))
    if _ip_literal(url.host) is None:
        # Pin the host to the address we vetted so a second DNS answer (rebinding) cannot redirect git.
        port = url.port or (443 if url.url.startswith("https:") else 80)
        pinned = url.addresses[0]
        pinned_text = f"[{pinned}]" if ":" in pinned else pinned
        config.append(("http.curloptResolve", f"{url.host}:{port}:{pinned_text}"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_ALLOW_PROTOCOL": protocols,
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "GIT_TEMPLATE_DIR": str(home / "templates"),  # empty: no sample hooks, no template config
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_CEILING_DIRECTORIES": str(home.parent),
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _directory_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # git renames temporary files while we look
    return total


def _run_git(
    args: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    deadline: float,
    watch: tuple[Path, int] | None = None,
    stdin: bytes | None = None,
    max_stdout: int = _MAX_STDOUT,
    nice: int = 0,
) -> _GitResult:
    """Run git with `args`; kill its whole process group at `deadline` or when `watch` grows too big.
    `nice` lowers its CPU priority (and its helpers', which inherit it).

    `stdin` (our own bytes, e.g. object ids for `cat-file --batch`) is handed over through a file in
    `cwd`, so no writer thread can block on a full pipe.

    Output is read by threads into bounded buffers: a hostile server or a tree of millions of entries
    (nested, deduplicated subtrees make that a tiny pack) must not fill our memory. Past `max_stdout` the
    process is killed and the result says `overflowed`.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        _timeout()
    if stdin is None:
        process = _start_git(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    else:
        with tempfile.TemporaryFile(dir=cwd) as source:
            source.write(stdin)
            source.seek(0)
            process = _start_git(args, env=env, cwd=cwd, stdin=source)
    if nice:
        # Set from outside rather than in a pre-exec hook, which would cost the spawn its vfork and is
        # unsafe in a threaded web process; git forks its helpers later, and they inherit it.
        with suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    assert process.stdout is not None and process.stderr is not None
    too_large = threading.Event()
    overflowed = threading.Event()
    finished = threading.Event()
    stdout = bytearray()
    stderr = bytearray()

    def pump(stream: IO[bytes], sink: bytearray, limit: int, kill_on_overflow: bool) -> None:
        while chunk := stream.read(_CHUNK):
            if len(sink) + len(chunk) > limit:
                if kill_on_overflow:
                    overflowed.set()
                    _kill_group(process)
                continue  # stderr: keep draining, stop keeping
            sink.extend(chunk)

    threads = [
        threading.Thread(target=pump, args=(process.stdout, stdout, max_stdout, True), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, stderr, _MAX_STDERR, False), daemon=True),
    ]
    if watch is not None:
        watched, limit = watch

        def watch_size() -> None:
            while not finished.wait(0.05):
                if _directory_bytes(watched) > limit:
                    too_large.set()
                    _kill_group(process)
                    return

        threads.append(threading.Thread(target=watch_size, name="git-size-watch", daemon=True))
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        timed_out = not _exits_within(process, remaining)
        if timed_out:
            _kill_group(process)
        process.wait()
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    finally:
        finished.set()
        for thread in threads:
            thread.join()
        process.stdout.close()
        process.stderr.close()
    if timed_out:
        _timeout()
    if too_large.is_set():
        raise RepositoryUnavailable(
            "the repository is too large to fetch",
            details={"field": "git_url", "rule": "too_large", "limit": watch[1] if watch else None},
        )
    return _GitResult(
        returncode=process.returncode,
        stdout=bytes(stdout),
        stderr=bytes(stderr),
        overflowed=overflowed.is_set(),
    )


def _start_git(
    args: Sequence[str], *, env: dict[str, str], cwd: Path, stdin: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    # A new session makes git and its helpers (git-remote-https, index-pack) one killable process group.
    return subprocess.Popen(
        [_GIT_BINARY, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
    )


def _exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether `process` exits within `seconds`, told the moment it does: `wait(timeout=...)` polls with
    sleeps of up to 50 ms, which made each git run up to half again as long as git itself. The process is
    not reaped here, so its group cannot be another's when the caller kills it."""
    try:
        descriptor = os.pidfd_open(process.pid)
    except OSError:  # a kernel without pidfds (before 5.3)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()  # not select(): a busy web process has descriptors past FD_SETSIZE
        poller.register(descriptor, select.POLLIN)
        return bool(poller.poll(max(seconds, 0) * 1000))
    finally:
        os.close(descriptor)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _timeout() -> NoReturn:
    raise RepositoryUnavailable(
        "fetching the repository took too long", details={"field": "git_url", "rule": "timeout"}
    )


__all__: Sequence[str] = [
    "GitPolicy",
    "ValidatedGitUrl",
    "WorkTree",
    "fetch_worktree",
    "resolve_commit",
    "validate_git_url",
    "validate_ref",
]
