"""`grader demo`: the whole service on one machine, and `--smoke`, a learner's walk through the API.

Embedded defaults: SQLite and Celery's filesystem transport under `./var`, one worker process
started here, the reconciler in a thread. Ctrl-C stops the server, the reconciler and the worker.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from grader.catalog.loader import read_catalog
from grader.catalog.schema import PortfolioAssessment, QuizAssessment, RepositoryAssessment
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.errors import GraderError
from grader.kinds.base import SubmissionRequest
from grader.migrate import upgrade
from grader.models import StaffRole
from grader.quiz import correct_answer
from grader.services import access, accounts
from grader.services.catalog import load_catalog

DEMO_ACCOUNTS = (
    ("learner@example.org", "Ada Learner", "learner"),
    ("reviewer@example.org", "Rui Reviewer", "reviewer"),
    ("admin@example.org", "Alex Admin", "admin"),
)
DEMO_PASSWORD = "demo-password-123"  # printed on start; the demo listens on 127.0.0.1 only
SMOKE_TIMEOUT_SECONDS = 90
SEED_ASSESSMENT = "wsgi-todo-api"  # the demo's learner hands it in once, so a review waits


def run_demo(settings: Settings, *, smoke: bool, port: int | None, catalog_path: Path | None) -> int:
    settings = replace(settings, data_dir=settings.data_dir.resolve())
    catalog_root = (catalog_path or settings.catalog_path).resolve()
    try:
        catalog = read_catalog(catalog_root)
    except GraderError as exc:
        for problem in exc.details.get("problems", []):
            print(problem, file=sys.stderr)
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    engine = make_engine(settings)
    upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        report = load_catalog(session, catalog)
        token = _demo_accounts(session, [p for p in catalog.programs])
    print(f"catalog {catalog_root}: {report.summary()}")
    _prepare_images(settings, catalog)

    host = "127.0.0.1"
    port = port if port is not None else (_free_port() if smoke else 5000)
    if settings.public_url == Settings.public_url:
        # Credentials name their public pages and status lists by this URL: the one actually served.
        settings = replace(settings, public_url=f"http://{host}:{port}")
    from grader.web import create_app

    app = create_app(settings)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}; try --port", file=sys.stderr)
        return 1
    worker = _start_worker(settings)
    if not smoke:
        _seed_review(settings, factory, catalog_root)
    stop = threading.Event()
    reconciler = threading.Thread(target=_reconcile_loop, args=(settings, factory, stop), daemon=True)
    reconciler.start()
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base = f"http://{host}:{port}"
    # A service manager or `kill` asks with SIGTERM: stop as cleanly as for Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if smoke:
            return _smoke(base, settings, factory, catalog_root)
        print(f"\nGrader demo on {base}  (Ctrl-C stops it)")
        for email, _, role in DEMO_ACCOUNTS:
            print(f"  {role:<9} {email}  password: {DEMO_PASSWORD}")
        print(f"  learner API token: {token}")
        while worker.poll() is None:
            time.sleep(0.5)
        print("error: the worker stopped unexpectedly", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop.set()
        _shutdown(server, worker)


def _prepare_images(settings: Settings, catalog: Any) -> None:
    """Build the grading images of assessments with a setup step, on the backend the worker will use,
    so the first submission does not wait for (or fail on) a missing image."""
    from grader.catalog.bundle import Bundle
    from grader.catalog.loader import BUNDLED_FOLDERS_KEY
    from grader.services.images import build_setup_image, setup_image
    from sandbox.errors import SandboxUnavailable
    from sandbox.select import select_runner

    wanted = [
        (slug, image)
        for slug, entry in sorted(catalog.assessments.items())
        if isinstance(entry.definition, RepositoryAssessment)
        and (
            image := setup_image(
                entry.definition,
                Bundle.from_stored(entry.data.get(BUNDLED_FOLDERS_KEY)),
                settings.sandbox_image,
            )
        )
    ]
    if not wanted:
        return
    try:
        backend = select_runner(
            settings.sandbox_backend, image=settings.sandbox_image, rootfs=settings.sandbox_rootfs
        ).name
    except SandboxUnavailable as exc:
        print(f"note: no sandbox backend ({exc}); repository assessments cannot be graded", file=sys.stderr)
        return
    for slug, image in wanted:
        try:
            if build_setup_image(settings, backend, image) == "built":
                print(f"built the grading image of {slug} ({image.reference}, {backend})")
        except GraderError as exc:
            print(f"note: {slug} cannot be graded: {exc.message}", file=sys.stderr)


def _seed_review(settings: Settings, factory: Any, catalog_root: Path) -> None:
    """Hand in the sample repository as the demo learner once, so a review waits in /review."""
    from grader.broker import CeleryTaskQueue
    from grader.models import Submission
    from grader.services import submissions

    sample = catalog_root.parent / "submissions" / f"{SEED_ASSESSMENT}-passing"
    if not sample.is_dir():
        return
    with session_scope(factory) as session:
        learner = accounts.find_user_by_email(session, DEMO_ACCOUNTS[0][0])
        if session.query(Submission).filter_by(user_id=learner.id).count():
            return  # seeded on an earlier start
        try:
            submissions.submit(
                session,
                CeleryTaskQueue(settings),
                settings,
                learner,
                SubmissionRequest(
                    assessment=SEED_ASSESSMENT, archive=_zip_folder(sample), archive_name="sample.zip"
                ),
            )
        except GraderError as exc:
            print(f"note: no sample submission to review: {exc.message}", file=sys.stderr)
            return
    print(f"  a {SEED_ASSESSMENT} hand-in of {DEMO_ACCOUNTS[0][0]} will wait for review: log in as "
          f"{DEMO_ACCOUNTS[1][0]} and open /review")  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _demo_accounts(session: Any, program_slugs: list[str]) -> str:
    for email, name, role in DEMO_ACCOUNTS:
        try:
            user = accounts.find_user_by_email(session, email)
        except GraderError:
            user = accounts.create_user(session, email=email, name=name, password=DEMO_PASSWORD, role=role)
        if role == "learner":
            for slug in program_slugs:
                accounts.enroll(session, user.id, slug)
            learner = user
        elif role == "reviewer":
            for slug in program_slugs:
                access.add_staff(session, user, slug, StaffRole.REVIEWER)
    return accounts.create_token(session, learner.id, "demo").secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log = open(settings.data_dir / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.main",
            "worker",
            "-Q",
            "quiz,sandbox,checks,credentials",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--hostname",
            f"demo-{os.getpid()}@%h",
        ],
        env={**os.environ, **settings.to_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C goes to us; we stop the worker in order
    )


def _reconcile_loop(settings: Settings, factory: Any, stop: threading.Event) -> None:
    from grader.broker import CeleryTaskQueue
    from grader.services.reconciler import reconcile

    queue = CeleryTaskQueue(settings)
    while not stop.wait(settings.reconcile_every_seconds):
        try:
            with session_scope(factory) as session:
                reconcile(
                    session,
                    queue,
                    lease_seconds=settings.lease_seconds,
                    max_tries=settings.max_run_tries,
                )
        except Exception as exc:  # keep reconciling; a passing database hiccup must not stop it
            print(f"reconciler: {exc}", file=sys.stderr)


def _shutdown(server: BaseWSGIServer, worker: subprocess.Popen[bytes]) -> None:
    server.shutdown()
    if worker.poll() is None:
        # The worker's main process stops its pool itself (warm shutdown); the group is killed only
        # if it does not finish in time.
        os.kill(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


# ---------------------------------------------------------------- smoke


class SmokeFailure(Exception):
    pass


def _call(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _smoke(base: str, settings: Settings, factory: Any, catalog_root: Path) -> int:
    catalog = read_catalog(catalog_root)
    with session_scope(factory) as session:
        email = f"smoke-{secrets.token_hex(4)}@example.org"
        user = accounts.create_user(
            session, email=email, name="Smoke Test", password=secrets.token_urlsafe(16)
        )
        for slug in catalog.programs:
            accounts.enroll(session, user.id, slug)
        token = accounts.create_token(session, user.id, "smoke").secret
        reviewer = accounts.find_user_by_email(session, DEMO_ACCOUNTS[1][0])
        reviewer_token = accounts.create_token(session, reviewer.id, "smoke").secret
        admin = accounts.find_user_by_email(session, DEMO_ACCOUNTS[2][0])
        admin_token = accounts.create_token(session, admin.id, "smoke").secret
    try:
        for slug, entry in catalog.assessments.items():
            sample = catalog_root.parent / "submissions" / f"{slug}-passing"
            if isinstance(entry.definition, RepositoryAssessment) and sample.is_dir():
                view = _smoke_repository(base, token, slug, sample)
                if view["result"]["needs_review"]:
                    _smoke_review(
                        base, reviewer_token, token, view, catalog.rubrics[entry.definition.rubric].data
                    )
        for slug, entry in catalog.assessments.items():
            sample = catalog_root.parent / "submissions" / f"{slug}-passing"
            if isinstance(entry.definition, PortfolioAssessment) and sample.is_dir():
                view = _smoke_portfolio(base, token, slug, sample)
                if view["result"]["needs_review"]:
                    _smoke_review(
                        base, reviewer_token, token, view, catalog.rubrics[entry.definition.rubric].data
                    )
        held_back = [
            slug
            for slug, entry in catalog.assessments.items()
            if isinstance(entry.definition, RepositoryAssessment) and entry.definition.due is None
        ]
        for slug in held_back:
            # Hidden tests hold a repository's total back until staff publish its results.
            status, body = _call("POST", f"{base}/api/v1/assessments/{slug}/publish", admin_token, {})
            if status != 200:
                raise SmokeFailure(f"publishing {slug} answered {status}: {body}")
        print(f"published the results of {', '.join(held_back)} as {DEMO_ACCOUNTS[2][0]}")
        for program in catalog.programs.values():
            quiz_slug = next(
                r.assessment
                for r in program.definition.requirements
                if isinstance(catalog.assessments[r.assessment].definition, QuizAssessment)
            )
            quiz = catalog.assessments[quiz_slug].definition
            assert isinstance(quiz, QuizAssessment)
            _smoke_quiz(base, token, quiz)
            status, body = _call("GET", f"{base}/api/v1/programs/{program.slug}/progress", token)
            if status != 200:
                raise SmokeFailure(f"progress answered {status}: {body}")
            print(f"progress in {program.slug}: {body['passed']}/{body['total']} requirements passed")
            if not body["complete"] or body["credential"] is None:
                raise SmokeFailure(f"every requirement of {program.slug} passed, but no credential: {body}")
            url = body["credential"]["url"]
            print(f"credential awarded: {program.slug} {url}")
            _smoke_credential(base, token, program.slug, url, body["credential"]["credential_id"], settings)
    except SmokeFailure as exc:
        print(f"smoke FAILED: {exc}", file=sys.stderr)
        return 1
    print("smoke OK")
    return 0


def _fetch(url: str, accept: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _smoke_credential(
    base: str, token: str, slug: str, url: str, credential_id: str, settings: Settings
) -> None:
    """Fetch the signed credential both ways, keep it for anyone to check, and verify it offline."""
    deadline = time.monotonic() + 60
    while True:  # the worker signs it a moment after the award
        status, document = _fetch(url, "application/ld+json")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if status != 200:
        raise SmokeFailure(f"the credential of {slug} was not signed within a minute ({status})")
    status, jwt = _fetch(f"{base}/api/v1/credentials/{credential_id}?format=jwt", "application/vc+jwt", token)
    if status != 200:
        raise SmokeFailure(f"the VC-JWT of {slug} answered {status}")
    _, did = _fetch(f"{base}/credentials/issuer.json", "application/did+json")
    folder = settings.data_dir / "smoke" / "credentials"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.json").write_bytes(document)
    (folder / f"{slug}.jwt").write_bytes(jwt)
    (folder / "issuer-did.json").write_bytes(did)
    lists = [f"{base}/credentials/status/{purpose}" for purpose in ("revocation", "suspension")]
    for path in (folder / f"{slug}.json", folder / f"{slug}.jwt"):
        command = [sys.executable, "-m", "grader.entrypoints.cli", "credential", "verify", str(path)]
        command += ["--did", str(folder / "issuer-did.json")]
        for status_list in lists:
            command += ["--status-list", status_list]
        checked = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        for line in checked.stdout.splitlines():
            print(f"  {line}")
        if checked.returncode != 0:
            raise SmokeFailure(f"grader credential verify {path.name}: {checked.stderr or checked.stdout}")
    print(f"  kept in {folder}: {slug}.json, {slug}.jwt, issuer-did.json")


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _multipart_files(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = f"----grader{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields.items()
    ]
    for field, filename, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _smoke_repository(base: str, token: str, slug: str, sample: Path) -> dict[str, Any]:
    body, content_type = _multipart_files(
        {"assessment": slug}, [("archive", f"{slug}.zip", _zip_folder(sample))]
    )
    request = urllib.request.Request(f"{base}/api/v1/submissions", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", content_type)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            accepted = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SmokeFailure(f"submitting {slug} answered {exc.code}: {exc.read()[:500]!r}") from None
    print(f"submitted {slug} (archive of {sample.name}): receipt {accepted['receipt']['sha256'][:16]}…")
    view = _wait(base, token, accepted["status_url"], slug, started)
    result = view["result"]
    tests = result["feedback"]["tests"]
    passed = sum(1 for t in tests if t["passed"])
    score = (
        f"{result['score']:g}/{result['max_score']:g} so far"
        if result["held_back"] is None
        else "the total held back while some tests are hidden"
    )
    print(
        f"graded {slug} in {time.monotonic() - started:.2f} s: {passed}/{len(tests)} visible tests passed, "
        + score
        + (", awaiting a reviewer for the manual criteria" if result["needs_review"] else "")
    )
    if passed != len(tests) or result["outcome"] != "graded":
        raise SmokeFailure(f"the sample solution of {slug} should pass every test: {result['feedback']}")
    return view


def _portfolio_parts(sample: Path) -> tuple[dict[str, str], list[tuple[str, str, bytes]]]:
    """The form fields and files of a sample portfolio, as its `portfolio.json` lays them out (a
    folder named there is handed in as a ZIP of it)."""
    layout = json.loads((sample / "portfolio.json").read_text(encoding="utf-8"))
    fields = {f"links.{slot}": url for slot, url in layout.get("links", {}).items()}
    for slot, name in layout.get("statements", {}).items():
        fields[f"statements.{slot}"] = (sample / name).read_text(encoding="utf-8")
    files = []
    for slot, names in layout.get("files", {}).items():
        for name in names:
            path = sample / name
            if path.is_dir():
                files.append((f"files.{slot}", f"{path.name}.zip", _zip_folder(path)))
            else:
                files.append((f"files.{slot}", path.name, path.read_bytes()))
    return fields, files


def _smoke_portfolio(base: str, token: str, slug: str, sample: Path) -> dict[str, Any]:
    fields, files = _portfolio_parts(sample)
    body, content_type = _multipart_files({"assessment": slug, **fields}, files)
    request = urllib.request.Request(f"{base}/api/v1/submissions", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", content_type)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            accepted = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SmokeFailure(f"handing in {slug} answered {exc.code}: {exc.read()[:500]!r}") from None
    print(f"handed in {slug} ({len(files)} files): receipt {accepted['receipt']['sha256'][:16]}…")
    view = _wait(base, token, accepted["status_url"], slug, started)
    checks = view["result"]["feedback"].get("checks", [])
    failed = [c["explanation"] for c in checks if not c["passed"]]
    print(
        f"checked {slug} in {time.monotonic() - started:.2f} s: {len(checks) - len(failed)}/{len(checks)} "
        "automatic checks passed, awaiting a reviewer for the manual criteria"
    )
    if failed:
        raise SmokeFailure(f"the sample portfolio {slug} should pass every check: {failed}")
    return view


def _smoke_review(
    base: str, reviewer_token: str, learner_token: str, view: dict[str, Any], rubric: dict[str, Any]
) -> None:
    """As the demo's reviewer: score every manual criterion at its best, then see the final result."""
    criteria = []
    for criterion in rubric.get("criteria", []):
        if criterion.get("auto") is not None:
            continue
        if criterion.get("levels"):
            best = max(criterion["levels"], key=lambda level: level["points"])
            criteria.append({"criterion": criterion["id"], "level": best["label"]})
        elif criterion.get("items"):
            kept = [i["id"] for i in criterion["items"] if i.get("points", 0) > 0]
            criteria.append({"criterion": criterion["id"], "items": kept})
        else:
            criteria.append({"criterion": criterion["id"], "points": criterion.get("max_points", 0)})
    status, outcome = _call(
        "POST",
        f"{base}/api/v1/submissions/{view['id']}/reviews",
        reviewer_token,
        {"criteria": criteria, "comment": "Reviewed by the smoke test."},
    )
    if status != 200 or not outcome.get("settled"):
        raise SmokeFailure(f"the reviewer's review answered {status}: {outcome}")
    status, final = _call("GET", f"{base}/api/v1/submissions/{view['id']}", learner_token)
    result = final["result"]
    print(
        f"reviewed {view['assessment']} as {DEMO_ACCOUNTS[1][0]}: "
        f"final {result['score']:g}/{result['max_score']:g}, passed={result['passed']}"
    )
    if result["passed"] is not True or result["needs_review"]:
        raise SmokeFailure(f"{view['assessment']} should pass once reviewed: {result}")


def _wait(base: str, token: str, status_url: str, slug: str, started: float) -> dict[str, Any]:
    deadline = started + SMOKE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status, view = _call("GET", base + status_url, token)
        if status == 200 and view["result"] is not None:
            return dict(view)
        if status == 200 and view["status"] == "error":
            raise SmokeFailure(f"{slug} could not be graded (see var/worker.log)")
        time.sleep(0.1)
    raise SmokeFailure(f"{slug} was not graded within {SMOKE_TIMEOUT_SECONDS} s (see var/worker.log)")


def _smoke_quiz(base: str, token: str, quiz: QuizAssessment) -> None:
    status, attempt = _call("POST", f"{base}/api/v1/assessments/{quiz.slug}/attempts", token, {})
    if status != 201:
        raise SmokeFailure(f"starting {quiz.slug} answered {status}: {attempt}")
    by_id = quiz.questions_by_id()
    answers = {q["id"]: correct_answer(by_id[q["id"]]) for q in attempt["questions"]}
    started = time.monotonic()
    status, accepted = _call(
        "POST",
        f"{base}/api/v1/submissions",
        token,
        {"assessment": quiz.slug, "attempt": attempt["id"], "answers": answers},
    )
    if status != 202:
        raise SmokeFailure(f"submitting {quiz.slug} answered {status}: {accepted}")
    print(f"submitted {quiz.slug}: receipt {accepted['receipt']['sha256'][:16]}…")
    deadline = started + SMOKE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status, view = _call("GET", base + accepted["status_url"], token)
        if status == 200 and view["result"] is not None:
            result = view["result"]
            elapsed = time.monotonic() - started
            print(
                f"graded {quiz.slug} in {elapsed:.2f} s: {result['score']:g}/{result['max_score']:g}, "
                f"passed={result['passed']}"
            )
            if not result["passed"]:
                raise SmokeFailure(f"{quiz.slug} should have passed with every answer right")
            return
        if status == 200 and view["status"] == "error":
            raise SmokeFailure(f"{quiz.slug} could not be graded")
        time.sleep(0.1)
    raise SmokeFailure(f"{quiz.slug} was not graded within {SMOKE_TIMEOUT_SECONDS} s (see var/worker.log)")
