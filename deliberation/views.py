"""Pages of deliberation: lists and search, proposals, support, threads, moderation,
notifications and settings. Each htmx interaction is also a plain form post."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from community import services as community_services
from community.views import load_community
from deliberation import demo as _demo  # noqa: F401  (adds demo proposals to seed-demo)
from deliberation import markup, services
from deliberation import photos as photo_checks
from deliberation.forms import (
    STANCE_LABELS,
    CategoryForm,
    CommentEditForm,
    CommentForm,
    EmptyForm,
    ProposalForm,
    ReasonForm,
    SettingsForm,
    SuspendForm,
    WithdrawForm,
)
from deliberation.lifecycle import PUBLISHED, Status
from web.errors import DomainError, InvalidInput, render_error
from web.extensions import db, htmx
from web.forms import options, render_form
from web.ratelimit import allow_write

blueprint = Blueprint("deliberation", __name__)

STATUS_LABELS = {
    Status.DRAFT: _l("Draft"),
    Status.COLLECTING: _l("Collecting support"),
    Status.DELIBERATION: _l("In deliberation"),
    Status.SCHEDULED: _l("Scheduled for a vote"),
    Status.VOTING: _l("Voting"),
    Status.ACCEPTED: _l("Accepted"),
    Status.REJECTED: _l("Rejected"),
    Status.IMPLEMENTATION: _l("In implementation"),
    Status.COMPLETED: _l("Completed"),
    Status.ABANDONED: _l("Abandoned"),
    Status.WITHDRAWN: _l("Withdrawn"),
    Status.EXPIRED: _l("Expired"),
    Status.CLOSED: _l("Closed"),
}

PHOTO_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

PHOTO_MESSAGES = {
    "too_large": _l("is larger than 8 MB"),
    "not_an_image": _l("is not a photo"),
    "unsupported_type": _l("is not a JPEG, PNG or WebP photo"),
    "too_many_pixels": _l("has too many pixels"),
    "corrupt": _l("is damaged or incomplete"),
}


def _user():
    return current_user._get_current_object() if current_user.is_authenticated else None


def _upload_dir() -> Path:
    return Path(current_app.config.get("UPLOAD_DIR") or Path(current_app.instance_path) / "uploads")


@blueprint.app_template_filter("status_label")
def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


@blueprint.app_template_filter("money")
def money(amount) -> str:
    """¥680000.00 reads better as 680,000 (cents only when there are any)."""
    from flask_babel import format_decimal

    whole = amount == amount.to_integral_value()
    return format_decimal(amount, format="#,##0" if whole else "#,##0.00")


@blueprint.app_template_filter("stance_label")
def stance_label(stance: str) -> str:
    return str(STANCE_LABELS.get(stance, stance))


MODERATION_ACTION_LABELS = {
    "hide": _l("hid"),
    "restore": _l("restored"),
    "lock": _l("locked the discussion"),
    "unlock": _l("unlocked the discussion"),
    "dismiss": _l("kept visible after a report"),
    "suspend": _l("suspended from writing"),
}

NOTIFICATION_TEXTS = {
    "reply": _l("Someone replied to your comment on"),
    "threshold_reached": _l("Enough support: now in deliberation:"),
    "expired": _l("Support collection ended without enough support:"),
    "status_changed": _l("The status changed:"),
    "moderated": _l("The neighborhood committee moderated your content on"),
    "suspended": _l("You were suspended from writing for a while. See the moderation log."),
    "implementation_update": _l("New progress report on"),
    "milestone_overdue": _l("A milestone is overdue on"),
    "implementation_stale": _l("No progress reported for 30 days on"),
    "monthly_digest": _l("Monthly report of your community:"),
}


@blueprint.app_template_filter("moderation_action")
def moderation_action(action: str) -> str:
    return str(MODERATION_ACTION_LABELS.get(action, action))


@blueprint.app_template_filter("notification_text")
def notification_text(kind: str) -> str:
    return str(NOTIFICATION_TEXTS.get(kind, kind))


@blueprint.app_template_filter("sanitized")
def sanitized(html: str):
    return markup.as_safe_html(html)


@blueprint.app_template_global("reports_waiting")
def reports_waiting(community) -> int | None:
    """For the community page (which the community package renders without importing us)."""
    return services.reports_waiting(_user(), community)


@blueprint.app_template_global("proposal_news")
def proposal_news(community):
    """For the home page's community cards."""
    return services.proposal_news(community)


@blueprint.app_template_global("unread_notifications")
def unread_notifications() -> int:
    return services.unread_count(_user()) if current_user.is_authenticated else 0


def _too_fast():
    return render_error(
        429,
        _("You are posting very quickly. Please wait a minute, then try again."),
        {"Retry-After": "60"},
    )


def load_proposal(proposal_id: int):
    return services.get_proposal(_user(), proposal_id)


# ---------------------------------------------------------------- lists


@blueprint.get("/c/<int:community_id>/proposals")
@login_required
def proposals(community_id: int):
    community = load_community(community_id)
    args = request.args
    try:
        page_number = int(args.get("page", "1"))
    except ValueError:
        page_number = 1
    page = services.list_proposals(
        _user(),
        community,
        status=args.get("status") or None,
        category=args.get("category") or None,
        sort=args.get("sort", "newest"),
        query=args.get("q", "")[:200],
        page=page_number,
    )
    context = dict(
        community=community,
        page=page,
        filters={k: args.get(k, "") for k in ("status", "category", "sort", "q")},
        statuses=[s for s in Status if s in PUBLISHED],
        categories=services.categories(community),
        can_propose=community_services.can(_user(), "participate", community),
        drafts=services.my_drafts(_user(), community),
    )
    if htmx and htmx.target == "proposal-results":
        return render_template("deliberation/_partials/results.html", **context)
    return render_template("deliberation/list.html", **context)


# ---------------------------------------------------------------- proposals


def _proposal_form(community, form=None):
    form = form or ProposalForm()
    form.category.choices = options(services.categories(community))
    return form


def _read_photos(form) -> list:
    prepared = []
    files = [f for f in (form.photos.data or []) if getattr(f, "filename", "")]
    if len(files) > 6:
        raise InvalidInput(_("Please attach at most 6 photos."))
    for upload in files:
        data = upload.read(photo_checks.MAX_BYTES + 1)
        try:
            prepared.append((photo_checks.prepare_photo(data), upload.filename or "photo"))
        except photo_checks.PhotoRefused as refused:
            name = photo_checks.safe_display_name(upload.filename or "photo")
            raise InvalidInput(
                _(
                    'The file "%(name)s" %(why)s. Please choose your photos again.',
                    name=name,
                    why=str(PHOTO_MESSAGES.get(refused.reason, PHOTO_MESSAGES["corrupt"])),
                )
            ) from refused
    return prepared


@blueprint.route("/c/<int:community_id>/proposals/new", methods=["GET", "POST"])
@login_required
def new_proposal(community_id: int):
    community = load_community(community_id)
    community_services.require(_user(), "participate", community)
    form = _proposal_form(community)
    if request.method == "POST" and not allow_write(_user().id, "proposal"):
        return _too_fast()
    if form.validate_on_submit():
        try:
            photos = _read_photos(form)
            proposal = services.submit_proposal(
                _user(),
                community,
                services.ProposalDraft(
                    form.title.data, form.body.data, form.category.data, form.estimated_cost.data
                ),
                publish=form.action.data != "draft",
                photos=photos,
                upload_dir=_upload_dir(),
            )
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return render_form(
                "deliberation/edit.html",
                form,
                status=error.status,
                community=community,
                proposal=None,
            )
        db.session.commit()
        flash(
            _("Your draft is saved. Only you can see it.")
            if proposal.status == Status.DRAFT
            else _("Your proposal is published. Neighbours can now support it."),
            "success",
        )
        return redirect(url_for("deliberation.proposal_page", proposal_id=proposal.id))
    return render_form("deliberation/edit.html", form, community=community, proposal=None)


@blueprint.route("/p/<int:proposal_id>/edit", methods=["GET", "POST"])
@login_required
def edit_proposal(proposal_id: int):
    proposal = load_proposal(proposal_id)
    if proposal.author_id != _user().id:
        return render_error(403, _("Only the author can edit a proposal."))
    form = _proposal_form(
        proposal.community, ProposalForm(obj=proposal if request.method == "GET" else None)
    )
    if form.validate_on_submit():
        try:
            services.edit_proposal(
                _user(),
                proposal,
                services.ProposalDraft(
                    form.title.data, form.body.data, form.category.data, form.estimated_cost.data
                ),
            )
            if form.action.data == "publish" and proposal.status == Status.DRAFT:
                services.publish_proposal(_user(), proposal)
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return render_form(
                "deliberation/edit.html",
                form,
                status=error.status,
                community=proposal.community,
                proposal=proposal,
            )
        db.session.commit()
        flash(_("Saved. The earlier version is kept in the history."), "success")
        return redirect(url_for("deliberation.proposal_page", proposal_id=proposal.id))
    return render_form(
        "deliberation/edit.html", form, community=proposal.community, proposal=proposal
    )


def _page_argument() -> int:
    value = request.args.get("page", "1")
    return int(value) if value.isdigit() and len(value) < 7 else 1


def _proposal_context(
    proposal, comment_form=None, page: int | None = None, update_form=None, rating_form=None
):
    from deliberation.implementation_views import work_context

    user = _user()
    community = proposal.community
    required = services.required_support(community)
    return dict(
        work=work_context(proposal, user, update_form=update_form, rating_form=rating_form),
        proposal=proposal,
        community=community,
        thread=services.thread(proposal, user, page or _page_argument()),
        supported=services.has_supported(user, proposal),
        following=services.is_following(user, proposal),
        needed=max(0, required - proposal.support_count),
        required=required,
        can_participate=community_services.can(user, "participate", community),
        can_moderate=services.is_moderator(user, community),
        can_run_rounds=community_services.can(user, "run_rounds", community),
        revisions=services.revisions(proposal),
        category=services.category_label(proposal.category),
        comment_form=comment_form or CommentForm(),
        reason_form=ReasonForm(),
        empty_form=EmptyForm(),
    )


@blueprint.get("/p/<int:proposal_id>")
@login_required
def proposal_page(proposal_id: int):
    proposal = load_proposal(proposal_id)
    return render_template("deliberation/proposal.html", **_proposal_context(proposal))


def _back_to(proposal, anchor: str = ""):
    return redirect(url_for("deliberation.proposal_page", proposal_id=proposal.id) + anchor)


def _back_to_comment(comment):
    page = services.thread_page_of(comment)
    url = url_for(
        "deliberation.proposal_page",
        proposal_id=comment.proposal_id,
        page=page if page > 1 else None,
    )
    return redirect(f"{url}#comment-{comment.id}")


def _empty_form_or_400():
    form = EmptyForm()
    if not form.validate_on_submit():
        raise InvalidInput()
    return form


@blueprint.post("/p/<int:proposal_id>/publish")
@login_required
def publish(proposal_id: int):
    proposal = load_proposal(proposal_id)
    _empty_form_or_400()
    services.publish_proposal(_user(), proposal)
    db.session.commit()
    flash(_("Your proposal is published. Neighbours can now support it."), "success")
    return _back_to(proposal)


@blueprint.post("/p/<int:proposal_id>/withdraw")
@login_required
def withdraw(proposal_id: int):
    proposal = load_proposal(proposal_id)
    form = WithdrawForm()
    if not form.validate_on_submit():
        raise InvalidInput(" ".join(str(e) for e in form.reason.errors) or None)
    services.withdraw(_user(), proposal, form.reason.data or "")
    db.session.commit()
    flash(_("Your proposal is withdrawn."), "success")
    return _back_to(proposal)


@blueprint.post("/p/<int:proposal_id>/support")
@login_required
def support(proposal_id: int):
    proposal = load_proposal(proposal_id)
    _empty_form_or_400()
    if request.form.get("action") == "withdraw":
        services.withdraw_support(_user(), proposal)
    else:
        services.support(_user(), proposal)
    db.session.commit()
    db.session.refresh(proposal)
    if htmx:
        return render_template("deliberation/_partials/support.html", **_proposal_context(proposal))
    return _back_to(proposal, "#support")


@blueprint.post("/p/<int:proposal_id>/follow")
@login_required
def follow(proposal_id: int):
    proposal = load_proposal(proposal_id)
    _empty_form_or_400()
    services.set_following(_user(), proposal, request.form.get("action") != "unfollow")
    db.session.commit()
    return _back_to(proposal)


@blueprint.post("/p/<int:proposal_id>/schedule")
@login_required
def schedule(proposal_id: int):
    proposal = load_proposal(proposal_id)
    _empty_form_or_400()
    services.schedule_for_vote(_user(), proposal)
    db.session.commit()
    flash(_("Scheduled for a vote."), "success")
    return _back_to(proposal)


@blueprint.post("/p/<int:proposal_id>/close")
@login_required
def close(proposal_id: int):
    proposal = load_proposal(proposal_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give the reason for closing."))
    services.close_proposal(_user(), proposal, form.reason.data)
    db.session.commit()
    flash(_("The proposal is closed."), "success")
    return _back_to(proposal)


# ---------------------------------------------------------------- comments


@blueprint.post("/p/<int:proposal_id>/comments")
@login_required
def post_comment(proposal_id: int):
    proposal = load_proposal(proposal_id)
    if not allow_write(_user().id, "comment"):
        services.flag_burst(_user(), proposal, services.latest_comment_by(_user(), proposal))
        db.session.commit()
        return _too_fast()
    form = CommentForm()
    parent = None
    if form.parent_id.data:
        if not form.parent_id.data.isdigit():
            raise InvalidInput()
        parent = services.get_comment(_user(), int(form.parent_id.data))
    if not form.validate_on_submit():
        context = _proposal_context(proposal, comment_form=form)
        if htmx:
            return render_template(
                "deliberation/_partials/comment_form.html", parent=parent, **context
            ), 400
        return render_template("deliberation/proposal.html", **context), 400
    try:
        comment = services.post_comment(_user(), proposal, form.body.data, form.stance.data, parent)
    except DomainError as error:
        form.form_errors.append(str(error.message))
        context = _proposal_context(proposal, comment_form=form)
        if htmx:
            return render_template(
                "deliberation/_partials/comment_form.html", parent=parent, **context
            ), error.status
        return render_template("deliberation/proposal.html", **context), error.status
    db.session.commit()
    if htmx:
        db.session.refresh(proposal)
        # A fresh, empty form: the one bound to this request would show the text again.
        context = _proposal_context(
            proposal,
            comment_form=CommentForm(formdata=None),
            page=services.thread_page_of(comment),
        )
        return render_template("deliberation/_partials/thread.html", **context)
    return _back_to_comment(comment)


@blueprint.route("/comments/<int:comment_id>/edit", methods=["GET", "POST"])
@login_required
def edit_comment(comment_id: int):
    comment = services.get_comment(_user(), comment_id)
    form = CommentEditForm(obj=comment if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            services.edit_comment(_user(), comment, form.body.data)
        except DomainError as error:
            form.form_errors.append(str(error.message))
            return render_form(
                "deliberation/comment_edit.html", form, status=error.status, comment=comment
            )
        db.session.commit()
        return _back_to_comment(comment)
    if comment.author_id != _user().id:
        return render_error(403, _("Only the author can change a comment."))
    return render_form("deliberation/comment_edit.html", form, comment=comment)


@blueprint.post("/comments/<int:comment_id>/delete")
@login_required
def delete_comment(comment_id: int):
    comment = services.get_comment(_user(), comment_id)
    _empty_form_or_400()
    services.delete_comment(_user(), comment)
    db.session.commit()
    flash(_("Your comment is deleted. Replies to it stay in place."), "success")
    return _back_to_comment(comment)


@blueprint.post("/comments/<int:comment_id>/helpful")
@login_required
def helpful(comment_id: int):
    comment = services.get_comment(_user(), comment_id)
    _empty_form_or_400()
    services.mark_helpful(_user(), comment)
    db.session.commit()
    if htmx:
        context = _proposal_context(comment.proposal, page=services.thread_page_of(comment))
        return render_template("deliberation/_partials/helpful.html", comment=comment, **context)
    return _back_to_comment(comment)


# ---------------------------------------------------------------- reports and moderation


@blueprint.route("/p/<int:proposal_id>/report", methods=["GET", "POST"])
@blueprint.route("/comments/<int:comment_id>/report", methods=["GET", "POST"])
@login_required
def report(proposal_id: int | None = None, comment_id: int | None = None):
    comment = services.get_comment(_user(), comment_id) if comment_id else None
    proposal = comment.proposal if comment else load_proposal(proposal_id)
    form = ReasonForm()
    if request.method == "POST" and not allow_write(_user().id, "report"):
        return _too_fast()
    if form.validate_on_submit():
        services.report(_user(), proposal, form.reason.data, comment)
        db.session.commit()
        flash(_("Thank you. The neighborhood committee will look at your report."), "success")
        return _back_to_comment(comment) if comment else _back_to(proposal)
    return render_form("deliberation/report.html", form, proposal=proposal, comment=comment)


@blueprint.get("/c/<int:community_id>/moderation")
@login_required
def moderation_queue(community_id: int):
    community = load_community(community_id)
    queue = services.report_queue(_user(), community)
    return render_template(
        "deliberation/moderation.html", community=community, queue=queue, form=ReasonForm()
    )


MODERATION_ACTIONS = {
    "hide": (services.hide_proposal, services.hide_comment, _l("Hidden with your public reason.")),
    "restore": (services.restore_proposal, services.restore_comment, _l("Restored.")),
}


@blueprint.post("/p/<int:proposal_id>/<any(hide, restore):action>")
@blueprint.post("/comments/<int:comment_id>/<any(hide, restore):action>")
@login_required
def moderate(action: str, proposal_id: int | None = None, comment_id: int | None = None):
    comment = services.get_comment(_user(), comment_id) if comment_id else None
    proposal = comment.proposal if comment else load_proposal(proposal_id)
    if not services.is_moderator(_user(), proposal.community):
        return render_error(403)
    form = ReasonForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give a reason. It is shown publicly."))
    on_proposal, on_comment, done = MODERATION_ACTIONS[action]
    if comment is not None:
        on_comment(_user(), comment, form.reason.data)
    else:
        on_proposal(_user(), proposal, form.reason.data)
    db.session.commit()
    flash(str(done), "success")
    return _back_to_comment(comment) if comment else _back_to(proposal)


@blueprint.post("/p/<int:proposal_id>/<any(lock, unlock):action>")
@login_required
def lock(proposal_id: int, action: str):
    proposal = load_proposal(proposal_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give a reason. It is shown publicly."))
    services.set_locked(_user(), proposal, action == "lock", form.reason.data)
    db.session.commit()
    flash(_("Saved."), "success")
    return _back_to(proposal)


@blueprint.post("/reports/<int:report_id>/dismiss")
@login_required
def dismiss(report_id: int):
    from deliberation.models import Report

    entry = db.session.get(Report, report_id)
    if entry is None:
        return render_error(404)
    form = ReasonForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give a reason. It is shown publicly."))
    services.dismiss_report(_user(), entry, form.reason.data)
    db.session.commit()
    flash(_("Report dismissed."), "success")
    return redirect(url_for("deliberation.moderation_queue", community_id=entry.community_id))


@blueprint.route(
    "/c/<int:community_id>/members/<int:membership_id>/suspend", methods=["GET", "POST"]
)
@login_required
def suspend(community_id: int, membership_id: int):
    community = load_community(community_id)
    community_services.require(_user(), "moderate", community)
    membership = community_services.get_membership(community, membership_id)
    form = SuspendForm()
    if form.validate_on_submit():
        services.suspend_member(_user(), membership, form.days.data, form.reason.data)
        db.session.commit()
        flash(_("The member is suspended from writing."), "success")
        return redirect(url_for("deliberation.moderation_log", community_id=community.id))
    return render_form(
        "deliberation/suspend.html", form, community=community, membership=membership
    )


@blueprint.get("/c/<int:community_id>/moderation-log")
@login_required
def moderation_log(community_id: int):
    community = load_community(community_id)
    entries = services.moderation_log(_user(), community)
    return render_template("deliberation/log.html", community=community, entries=entries)


# ---------------------------------------------------------------- notifications


@blueprint.get("/notifications")
@login_required
def notifications():
    return render_template(
        "deliberation/notifications.html",
        notifications=services.notifications_of(_user()),
        form=EmptyForm(),
    )


@blueprint.post("/notifications/read")
@login_required
def read_notifications():
    _empty_form_or_400()
    services.mark_all_read(_user())
    db.session.commit()
    return redirect(url_for("deliberation.notifications"))


# ---------------------------------------------------------------- photos


# One endpoint, two rules: templates say which with `thumb=` (url_for picks by defaults).
@blueprint.get("/photos/<name>", defaults={"thumb": False})
@blueprint.get("/photos/<name>/thumb", defaults={"thumb": True})
@login_required
def photo(name: str, thumb: bool):
    from deliberation import implementation

    photo = implementation.get_update_photo(_user(), name) or services.get_photo(_user(), name)
    path = _upload_dir() / (f"thumb-{photo.stored_name}" if thumb else photo.stored_name)
    if not path.is_file():
        return render_error(404)
    response = send_file(path, mimetype=photo.mime, max_age=3600, conditional=True)
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, max-age=3600"
    # No document: nothing may run or load; frame-ancestors does not fall back to default-src.
    response.headers["Content-Security-Policy"] = PHOTO_CSP
    return response


# ---------------------------------------------------------------- settings


@blueprint.route("/c/<int:community_id>/settings", methods=["GET", "POST"])
@login_required
def settings(community_id: int):
    community = load_community(community_id)
    community_services.require(_user(), "configure", community)
    current = services.settings_for(community)
    form = SettingsForm()
    if request.method == "GET":
        form.mode.data = "number" if current.support_threshold is not None else "percent"
        form.threshold.data = current.support_threshold
        form.percent.data = current.support_percent
        form.window_days.data = current.support_window_days
    category_form = CategoryForm(prefix="cat")
    if form.validate_on_submit():
        try:
            services.update_settings(
                _user(),
                community,
                threshold=form.threshold.data if form.mode.data == "number" else None,
                percent=form.percent.data if form.mode.data == "percent" else None,
                window_days=form.window_days.data,
            )
        except DomainError as error:
            form.form_errors.append(str(error.message))
        else:
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("deliberation.settings", community_id=community.id))
    return render_form(
        "deliberation/settings.html",
        form,
        community=community,
        category_form=category_form,
        categories=services.categories(community),
        can_add_category=community_services.can(_user(), "configure", community),
    )


@blueprint.post("/c/<int:community_id>/categories")
@login_required
def add_category(community_id: int):
    community = load_community(community_id)
    form = CategoryForm(prefix="cat")
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give the category a name of at most 40 characters."))
    services.add_category(_user(), community, form.name.data)
    db.session.commit()
    flash(_("Category added."), "success")
    return redirect(url_for("deliberation.settings", community_id=community.id))


# The pages of implementation and the accountability board share this blueprint.
from deliberation import implementation_views as _implementation_views  # noqa: E402, F401
