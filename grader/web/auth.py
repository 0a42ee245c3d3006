"""Who is asking: session login for pages (Flask-Login, CSRF on every form), Bearer tokens for the API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from grader.errors import AuthenticationRequired, PermissionDenied
from grader.models import Role, User
from grader.services import accounts
from grader.web.context import db

P = ParamSpec("P")
R = TypeVar("R")

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
bp = Blueprint("auth", __name__)


class SessionUser(UserMixin):
    """Flask-Login's view of a user: only the id lives in the (signed) session cookie."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.id = str(user.id)


@login_manager.user_loader
def _load_user(user_id: str) -> SessionUser | None:
    if not user_id.isdigit():
        return None
    user = db().get(User, int(user_id))
    return SessionUser(user) if user is not None and user.active else None


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(db(), form.email.data or "", form.password.data or "")
        except AuthenticationRequired as exc:
            error = exc.message
        else:
            login_user(SessionUser(user))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form, error=error)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would let a phishing link borrow our login page.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("learner.home")


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
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


@bp.get("/account")
@login_required_page
def account() -> str:
    """The account page (tokens, password, sessions; built out with the security work)."""
    return render_template("error.html", status=200, code="", message="Your account.", details={})


def register(app: Flask) -> None:
    csrf.init_app(app)
    login_manager.init_app(app)
    app.register_blueprint(bp)

    @app.context_processor
    def _user_in_templates() -> dict[str, Any]:
        return {"current_user": current_user}
