"""Who is asking: session login for pages, Bearer tokens for the API, and the account page.

Owns the login (same-site `next=` only, failed logins throttled and accounts locked through
`grader.services.accounts`), the session (rotated at login, tied to the user's session generation
and to a lifetime, so logout, a password change or a deactivation ends every copy of the cookie),
CSRF on every form, the account page (`/account`: tokens, password, log out everywhere) and the
token API (`/api/v1/tokens`).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from grader.errors import (
    AuthenticationRequired,
    Conflict,
    GraderError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
)
from grader.models import Role, User
from grader.services import accounts
from grader.services.audit import user_actor
from grader.web.context import db

P = ParamSpec("P")
R = TypeVar("R")

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
bp = Blueprint("auth", __name__)
api_bp = Blueprint("api_tokens", __name__, url_prefix="/api/v1/tokens")
# Token-authenticated: no ambient cookie authority, so cross-site request forgery does not apply.
csrf.exempt(api_bp)

# A login lasts a working day at most, counted from the login (not from the last request), so a
# cookie copied from a shared computer does not live on while someone keeps using it.
SESSION_LIFETIME = timedelta(hours=12)
_GENERATION = "generation"
_LOGGED_IN_AT = "logged_in_at"
_FLASK_LOGIN_KEYS = ("_user_id", "_fresh", "_id", "_remember", "_remember_seconds")
_THROTTLE = "grader.login_throttle"
_MAX_NEXT_LENGTH = 2000


class SessionUser(UserMixin):
    """Flask-Login's view of a user: the id, the generation and the login time live in the cookie."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = str(user.id)


@login_manager.user_loader
def _load_user(user_id: str) -> SessionUser | None:
    user = db().get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.active or not _session_is_current(user):
        _forget_login()
        return None
    return SessionUser(user)


def _session_is_current(user: User) -> bool:
    # A cookie is only signed, never remembered by the server: what ends it is a generation that no
    # longer matches the user's (bumped by logout, a password change, a deactivation) or its age.
    generation = session.get(_GENERATION)
    logged_in_at = session.get(_LOGGED_IN_AT)
    if not isinstance(generation, int) or generation != user.session_generation:
        return False
    if not isinstance(logged_in_at, int):
        return False
    age = time.time() - logged_in_at
    return -60 <= age <= current_app.permanent_session_lifetime.total_seconds()


def _forget_login() -> None:
    # Only the login's keys: the CSRF token of a form already on the screen stays valid.
    for key in (*_FLASK_LOGIN_KEYS, _GENERATION, _LOGGED_IN_AT):
        session.pop(key, None)


def _start_session(user: User) -> None:
    """Log in with a fresh session: nothing of the session before the login carries over."""
    session.clear()
    login_user(SessionUser(user), remember=False)
    session[_GENERATION] = user.session_generation
    session[_LOGGED_IN_AT] = int(time.time())


def login_throttle() -> accounts.LoginThrottle:
    throttle: accounts.LoginThrottle = current_app.extensions[_THROTTLE]
    return throttle


def _client_address() -> str:
    # The peer address; behind a reverse proxy the WSGI entry point must apply ProxyFix for this to be
    # the learner's address rather than the proxy's.
    return request.remote_addr or "unknown"


# ---------------------------------------------------------------- login and logout


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[
            DataRequired(message="enter your email"),
            Length(max=254, message="the email may have at most 254 characters"),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(message="enter your password"),
            Length(max=accounts.MAX_PASSWORD_LENGTH, message="the password is too long"),
        ],
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    form = LoginForm()
    error = None
    status = 200
    retry_after: int | None = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                db(),
                form.email.data or "",
                form.password.data or "",
                throttle=login_throttle(),
                client=_client_address(),
            )
        except RateLimited as exc:
            error, status, retry_after = exc.message, 429, exc.retry_after
        except AuthenticationRequired as exc:
            error = exc.message
        else:
            _start_session(user)
            return redirect(safe_next(request.args.get("next")))
    elif form.errors:
        status = 400
    response = make_response(render_template("login.html", form=form, error=error), status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.post("/logout")
def logout() -> Response:
    # Sessions are signed cookies: logging out ends the user's session generation, so no copy of the
    # cookie (another tab, another device, a captured one) opens a page afterwards.
    if current_user.is_authenticated:
        accounts.end_sessions(db(), current_user.user)
    logout_user()
    session.clear()
    flash("You are logged out, on this device and on every other one.")
    return redirect(url_for("auth.login"), code=303)


def _percent_decoded(target: str) -> str:
    # Decoded until nothing changes: whatever layer of encoding a browser or a proxy may undo.
    decoded = target
    for _ in range(5):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    return decoded


def _read_like_a_browser(decoded: str) -> str:
    # Browsers drop tabs and newlines anywhere in a URL, and read a backslash as a slash.
    for dropped in "\t\n\r":
        decoded = decoded.replace(dropped, "")
    return unicodedata.normalize("NFKC", decoded).replace("\\", "/")


def _looks_like_a_slash(char: str) -> bool:
    name = unicodedata.name(char, "")
    return "SOLIDUS" in name or "SLASH" in name


def safe_next(target: str | None) -> str:
    """Where to go after the login: `target` if it is a path of this site, else the home page.

    The target is judged the way a browser would read it (decoded, tabs and newlines dropped,
    backslashes as slashes), so `/%09/evil.example` (a browser's `//evil.example`) is refused; an
    open redirect would let a phishing link borrow our login page.
    """
    home = url_for("learner.home")
    if not target or len(target) > _MAX_NEXT_LENGTH or not target.startswith("/"):
        return home
    decoded = _percent_decoded(target)
    if any(unicodedata.category(char)[0] in "CZ" and char != " " for char in decoded):
        return home  # control characters (a split header, a hidden tab), spaces other than a space
    view = _read_like_a_browser(decoded)
    if not view.startswith("/") or view.startswith("//"):
        return home
    if any(not char.isascii() and _looks_like_a_slash(char) for char in view):
        return home
    parts = urlsplit(view)
    if parts.scheme or parts.netloc:
        return home
    if any(segment in {".", ".."} for segment in parts.path.split("/")):
        return home
    return target


def page_user() -> User:
    if not current_user.is_authenticated:
        raise AuthenticationRequired("please log in")
    user: User = current_user.user
    return user


def api_user() -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationRequired(
            "send a personal API token as 'Authorization: Bearer <token>'",
            details={"field": "Authorization"},
        )
    return accounts.user_for_token(db(), secret.strip())


def require_role(user: User, *roles: Role) -> None:
    if user.role not in roles and user.role != Role.ADMIN:
        raise PermissionDenied("your account may not do this")


def login_required_page(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Like Flask-Login's decorator, but keeps the error pages in our own hierarchy."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if not current_user.is_authenticated:
            # Come back to the page after the login; a form's target cannot be opened by a link.
            if request.method == "GET":
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            return redirect(url_for("auth.login"))
        return view(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------- the account page


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        validators=[
            DataRequired(message="give the token a name"),
            Length(
                max=accounts.MAX_TOKEN_NAME_LENGTH,
                message=f"the token name may have at most {accounts.MAX_TOKEN_NAME_LENGTH} characters",
            ),
        ],
    )


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(message="enter your current password")]
    )
    new_password = PasswordField(
        "New password",
        validators=[
            DataRequired(message="enter a new password"),
            Length(
                min=accounts.MIN_PASSWORD_LENGTH,
                max=accounts.MAX_PASSWORD_LENGTH,
                message=(
                    f"the new password needs {accounts.MIN_PASSWORD_LENGTH} to "
                    f"{accounts.MAX_PASSWORD_LENGTH} characters"
                ),
            ),
        ],
    )
    new_password_again = PasswordField(
        "New password again",
        validators=[
            DataRequired(message="enter the new password a second time"),
            EqualTo("new_password", message="the two new passwords are not the same"),
        ],
    )


def _account_page(
    *,
    token_form: TokenForm | None = None,
    password_form: PasswordForm | None = None,
    new_token: accounts.IssuedToken | None = None,
    error: GraderError | None = None,
    status: int = 200,
    retry_after: int | None = None,
) -> Response:
    user = page_user()
    response = make_response(
        render_template(
            "account.html",
            user=user,
            tokens=accounts.list_tokens(db(), user.id),
            token_form=token_form or TokenForm(formdata=None),
            password_form=password_form or PasswordForm(formdata=None),
            new_token=new_token,
            error=error,
            min_password_length=accounts.MIN_PASSWORD_LENGTH,
        ),
        status,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    # The page may show a token's secret: never kept by a browser cache or a proxy.
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(
    exc: GraderError, *, token_form: TokenForm | None = None, password_form: PasswordForm | None = None
) -> Response:
    """The account page again, the service's refusal beside the field it names, with its status."""
    form = token_form or password_form
    field = getattr(form, str(exc.details.get("field", "")), None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
        error = None
    else:
        error = exc
    return _account_page(
        token_form=token_form,
        password_form=password_form,
        error=error,
        status=exc.http_status,
        retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
    )


@bp.get("/account")
@login_required_page
def account() -> Response:
    """Who you are, your API tokens, your password, and your sessions."""
    return _account_page()


@bp.post("/account/tokens")
@login_required_page
def create_token() -> Response:
    form = TokenForm()
    if not form.validate():
        return _account_page(token_form=form, status=400)
    user = page_user()
    try:
        issued = accounts.create_token(db(), user.id, form.name.data or "")
    except (InvalidInput, Conflict) as exc:
        return _refused(exc, token_form=form)
    # Answered at once, not through a redirect: the secret is in this one response and nowhere else.
    return _account_page(new_token=issued, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required_page
def revoke_token(token_id: int) -> Response:
    user = page_user()
    token = accounts.revoke_token(db(), user, token_id, actor=user_actor(user))
    flash(f"The token “{token.name}” is revoked: it no longer opens the API.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/password")
@login_required_page
def change_password() -> Response:
    form = PasswordForm()
    if not form.validate():
        return _account_page(password_form=form, status=400)
    user = page_user()
    try:
        accounts.change_password(
            db(),
            user,
            form.current_password.data or "",
            form.new_password.data or "",
            actor=user_actor(user),
        )
    except (InvalidInput, RateLimited) as exc:
        return _refused(exc, password_form=form)
    _start_session(user)  # this browser stays logged in, with the new generation and a new cookie
    flash("Your password is changed. Every other session has ended; your API tokens still work.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/logout-everywhere")
@login_required_page
def logout_everywhere() -> Response:
    user = page_user()
    accounts.end_sessions(db(), user, actor=user_actor(user))
    logout_user()
    session.clear()
    flash("You are logged out on every device. Your API tokens still work; revoke them on the account page.")
    return redirect(url_for("auth.login"), code=303)


# ---------------------------------------------------------------- the token API


def _json_object() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        raise InvalidInput(
            "send a JSON object with Content-Type: application/json", details={"field": "body"}
        )
    return data


@api_bp.get("")
def api_tokens() -> Response:
    """The caller's own tokens, without their secrets."""
    user = api_user()
    return jsonify({"tokens": [token.to_dict() for token in accounts.list_tokens(db(), user.id)]})


@api_bp.post("")
def api_create_token() -> Response:
    """A new token for the caller; its secret is in this response only."""
    user = api_user()
    name = _json_object().get("name")
    if not isinstance(name, str):
        raise InvalidInput("give the token a name: a string", details={"field": "name"})
    issued = accounts.create_token(db(), user.id, name)
    body = {**accounts.get_token(db(), user, issued.id).to_dict(), "secret": issued.secret}
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("api_tokens.api_token", token_id=issued.id)
    response.headers["Cache-Control"] = "no-store"
    return response


@api_bp.get("/<int:token_id>")
def api_token(token_id: int) -> Response:
    user = api_user()
    return jsonify(accounts.get_token(db(), user, token_id).to_dict())


@api_bp.delete("/<int:token_id>")
def api_revoke_token(token_id: int) -> Response:
    """Revoke one of the caller's tokens (the one in use too); 404 for anyone else's."""
    user = api_user()
    accounts.revoke_token(db(), user, token_id, actor=user_actor(user))
    return Response(status=204)


def register(app: Flask) -> None:
    csrf.init_app(app)
    login_manager.init_app(app)
    app.extensions[_THROTTLE] = accounts.LoginThrottle()
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)

    @app.context_processor
    def _user_in_templates() -> dict[str, Any]:
        return {"current_user": current_user}
