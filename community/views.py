"""Pages of the community package: home, the tree, a community, joining, the join queue,
members, roles, the voter roll and invitations, profile and display settings."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from community import services
from community.auth import password_confirmation, start_session
from community.forms import (
    KIND_LABELS,
    ROLE_LABELS,
    AppointForm,
    CommunityForm,
    DecisionForm,
    InviteCodeForm,
    IssueInvitesForm,
    JoinForm,
    LanguageForm,
    PasswordForm,
    ProfileForm,
    RoleForm,
    RollForm,
    TextSizeForm,
)
from community.permissions import CHILD_KINDS, CommunityKind
from web.errors import DomainError, render_error
from web.extensions import db, htmx
from web.forms import form_error, options, render_form, safe_next_url
from web.i18n import LANGUAGE_COOKIE, LANGUAGES, TEXT_SIZE_COOKIE

blueprint = Blueprint("community", __name__)

ONE_YEAR = 60 * 60 * 24 * 365


@blueprint.app_template_filter("role_label")
def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


@blueprint.app_template_filter("kind_label")
def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def load_community(community_id: int):
    """The one way views fetch a community: 404 when it does not exist."""
    return services.get_community(community_id)


def _user():
    return current_user._get_current_object()


# ---------------------------------------------------------------- home and browsing


@blueprint.get("/")
def home():
    if not current_user.is_authenticated:
        return render_template("community/welcome.html")
    user = _user()
    return render_template(
        "community/home.html",
        activity=services.home_activity(user),
        waiting=[m for m in services.my_memberships(user) if not m.is_verified],
    )


@blueprint.get("/communities")
def browse():
    return render_template("community/browse.html", tree=services.community_tree())


@blueprint.get("/c/<int:community_id>")
def community_page(community_id: int):
    community = load_community(community_id)
    user = _user() if current_user.is_authenticated else None
    membership = services.membership_of(user, community)
    return render_template(
        "community/community.html",
        community=community,
        ancestors=services.ancestors(community),
        membership=membership,
        members=services.member_count(community),
        office_holders=services.office_holders(community),
        can_verify=services.can(user, "verify_members", community),
        can_view_members=services.can(user, "view_members", community),
        can_manage_roll=services.can(user, "manage_roll", community),
        can_administer=services.can(user, "administer", community),
        can_moderate=services.can(user, "moderate", community),
        can_configure=services.can(user, "configure", community),
        can_read=services.can_read(user, community),
        join_form=JoinForm(),
    )


# ---------------------------------------------------------------- joining


@blueprint.post("/c/<int:community_id>/join")
@login_required
def join(community_id: int):
    community = load_community(community_id)
    form = JoinForm()
    if not form.validate_on_submit():
        return render_form("community/join.html", form, community=community)
    try:
        services.request_join(_user(), community, form.unit.data)
    except DomainError as error:
        return form_error(form, error, "community/join.html", community=community)
    db.session.commit()
    flash(_("Your request was sent. A committee member will check it soon."), "success")
    return redirect(url_for("community.community_page", community_id=community.id))


@blueprint.get("/c/<int:community_id>/join")
@login_required
def join_page(community_id: int):
    return render_form("community/join.html", JoinForm(), community=load_community(community_id))


@blueprint.route("/join/code", methods=["GET", "POST"])
@login_required
def redeem_code():
    form = InviteCodeForm()
    if form.validate_on_submit():
        try:
            membership = services.redeem_invite(_user(), form.code.data)
        except DomainError as error:
            return form_error(form, error, "community/redeem.html")
        db.session.commit()
        flash(
            _(
                "Welcome! You are now a verified member of %(name)s.",
                name=membership.community.name,
            ),
            "success",
        )
        return redirect(url_for("community.community_page", community_id=membership.community_id))
    return render_form("community/redeem.html", form)


@blueprint.get("/c/<int:community_id>/requests")
@login_required
def join_requests(community_id: int):
    community = load_community(community_id)
    queue = services.join_queue(_user(), community)
    return render_template(
        "community/requests.html", community=community, queue=queue, form=DecisionForm()
    )


@blueprint.post("/c/<int:community_id>/requests/<int:membership_id>")
@login_required
def decide(community_id: int, membership_id: int):
    community = load_community(community_id)
    services.require(_user(), "verify_members", community)
    membership = services.get_membership(community, membership_id)
    form = DecisionForm()
    if form.validate_on_submit():
        try:
            services.decide_join(
                _user(), membership, form.decision.data == "approve", form.reason.data or ""
            )
        except DomainError as error:
            form.form_errors.append(str(error.message))
        else:
            db.session.commit()
            if htmx:
                return render_template("community/_partials/decided.html", membership=membership)
            flash(_("Decision saved."), "success")
            return redirect(url_for("community.join_requests", community_id=community.id))
    status = 409 if any("already" in e for e in form.form_errors) else 400
    if htmx:
        return render_template(
            "community/_partials/request.html", community=community, request_=membership, form=form
        ), status
    queue = services.join_queue(_user(), community)
    return render_template(
        "community/requests.html",
        community=community,
        queue=queue,
        form=form,
        failed_id=membership.id,
    ), status


@blueprint.get("/c/<int:community_id>/members")
@login_required
def members(community_id: int):
    return _members_page(load_community(community_id))


def _members_page(community, appoint_form=None, status: int = 200):
    rows = services.list_members(_user(), community)
    return render_template(
        "community/members.html",
        community=community,
        members=rows,
        role_form=RoleForm(),
        appoint_form=appoint_form or AppointForm(),
        can_administer=services.can(_user(), "administer", community),
    ), status


@blueprint.post("/c/<int:community_id>/members/<int:membership_id>/role")
@login_required
def change_role(community_id: int, membership_id: int):
    community = load_community(community_id)
    services.require(_user(), "administer", community)
    membership = services.get_membership(community, membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return render_error(400, _("Please choose a role."))
    services.assign_role(_user(), membership, form.role.data)
    db.session.commit()
    flash(_("Role changed."), "success")
    return redirect(url_for("community.members", community_id=community.id))


@blueprint.post("/c/<int:community_id>/appoint")
@login_required
def appoint(community_id: int):
    community = load_community(community_id)
    services.require(_user(), "administer", community)
    form = AppointForm()
    if form.validate_on_submit():
        try:
            services.appoint(_user(), community, form.contact.data, form.role.data)
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return _members_page(community, form, error.status)
        db.session.commit()
        flash(_("Appointed."), "success")
        return redirect(url_for("community.members", community_id=community.id))
    return _members_page(community, form, 400)


@blueprint.route("/c/<int:community_id>/new", methods=["GET", "POST"])
@login_required
def new_child(community_id: int):
    parent = load_community(community_id)
    services.require(_user(), "administer", parent)
    return _community_form(parent)


@blueprint.route("/communities/new", methods=["GET", "POST"])
@login_required
def new_root():
    if not _user().is_admin:
        return render_error(403)
    return _community_form(None)


def _community_form(parent):
    form = CommunityForm()
    kinds = CHILD_KINDS[CommunityKind(parent.kind)] if parent else tuple(CommunityKind)
    form.kind.choices = options((k.value, KIND_LABELS[k]) for k in kinds)
    if not kinds:
        return render_error(400, _("Nothing can be created inside a place of this kind."))
    if form.validate_on_submit():
        try:
            community = services.create_community(
                _user(),
                form.name.data,
                form.kind.data,
                parent,
                form.timezone.data,
                form.description.data or "",
            )
        except DomainError as error:
            return form_error(form, error, "community/new.html", parent=parent)
        db.session.commit()
        flash(_("Created."), "success")
        return redirect(url_for("community.community_page", community_id=community.id))
    return render_form("community/new.html", form, parent=parent)


# ---------------------------------------------------------------- voter roll


@blueprint.route("/c/<int:community_id>/roll", methods=["GET", "POST"])
@login_required
def roll(community_id: int):
    community = load_community(community_id)
    entries = services.roll_entries(_user(), community)
    form = RollForm()
    problems, report = [], None
    status = 200
    if form.validate_on_submit():
        upload = form.roll.data
        raw = upload.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = raw.decode("gb18030")
            except UnicodeDecodeError:
                text = None
        if text is None or "\x00" in text:
            form.roll.errors.append(_("The file is not readable text (UTF-8 or GB18030)."))
            status = 400
        else:
            try:
                report = services.import_roll(_user(), community, text, upload.filename or "")
            except services.RollRejected as error:
                problems = error.problems
                status = 400
            else:
                db.session.commit()
                entries = services.roll_entries(_user(), community)
    elif request.method == "POST":
        status = 400
    return render_template(
        "community/roll.html",
        community=community,
        entries=entries,
        form=form,
        problems=problems,
        report=report,
        invites_form=IssueInvitesForm(),
    ), status


@blueprint.post("/c/<int:community_id>/roll/invites")
@login_required
def issue_invites(community_id: int):
    community = load_community(community_id)
    form = IssueInvitesForm()
    if not form.validate_on_submit():
        return render_error(400)
    issued = services.issue_invites(_user(), community)
    db.session.commit()
    # Shown once: only digests are stored. The page is printable, one slip per household.
    return render_template("community/invites.html", community=community, issued=issued)


# ---------------------------------------------------------------- profile and display


@blueprint.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    user = _user()
    form = ProfileForm(obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.locale.data = user.locale or "zh"
    password_form = PasswordForm(prefix="pw")
    if form.submit.data and form.validate_on_submit():
        try:
            services.update_profile(
                user, form.display_name.data, form.locale.data, form.large_text.data
            )
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return render_form(
                "community/profile.html", form, status=error.status, password_form=password_form
            )
        db.session.commit()
        flash(_("Saved."), "success")
        return redirect(url_for("community.profile"))
    return render_form("community/profile.html", form, password_form=password_form)


@blueprint.post("/profile/password")
@login_required
def change_password():
    user = _user()
    form = ProfileForm(obj=user)
    password_form = PasswordForm(prefix="pw")
    if password_form.validate_on_submit():
        try:
            with password_confirmation(user):
                services.change_password(
                    user,
                    password_form.current.data,
                    password_form.new.data,
                    cost=current_app.config["PASSWORD_COST"],
                )
        except DomainError as error:
            password_form.form_errors.append(str(error.message))
            body, status = render_form(
                "community/profile.html", form, status=error.status, password_form=password_form
            )
            return body, status, error.headers
        else:
            db.session.commit()
            start_session(user, remember=False)
            flash(_("Password changed. Other devices have been logged out."), "success")
            return redirect(url_for("community.profile"))
    return render_form("community/profile.html", form, status=400, password_form=password_form)


def _settings_redirect(form):
    return redirect(safe_next_url(form.next.data, url_for("community.home")))


@blueprint.post("/settings/language")
def set_language():
    form = LanguageForm()
    if not form.validate_on_submit() or form.language.data not in LANGUAGES:
        return render_error(400)
    if current_user.is_authenticated:
        current_user.locale = form.language.data
        db.session.commit()
    response = make_response(_settings_redirect(form))
    response.set_cookie(
        LANGUAGE_COOKIE,
        form.language.data,
        max_age=ONE_YEAR,
        samesite="Lax",
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


@blueprint.post("/settings/text-size")
def set_text_size():
    form = TextSizeForm()
    if not form.validate_on_submit():
        return render_error(400)
    large = form.size.data == "large"
    if current_user.is_authenticated:
        current_user.large_text = large
        db.session.commit()
    response = make_response(_settings_redirect(form))
    response.set_cookie(
        TEXT_SIZE_COOKIE,
        "large" if large else "normal",
        max_age=ONE_YEAR,
        samesite="Lax",
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response
