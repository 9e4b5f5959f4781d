"""Pages of the feedback loop: the plan, progress updates and their comments, ratings,
the accountability board with its downloads, and the printable notice of a decision.
Routes of the deliberation blueprint; every form also works without JavaScript."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from community import services as community_services
from community.models import utcnow
from deliberation import accountability, implementation, services
from deliberation.forms import (
    SATISFACTION_LABELS,
    WORK_LABELS,
    EmptyForm,
    MidwayRatingForm,
    PlanForm,
    RatingForm,
    UpdateCommentForm,
    UpdateForm,
)
from deliberation.lifecycle import WORK_TRANSITIONS, Status, Work
from deliberation.views import (
    _read_photos,
    _too_fast,
    _upload_dir,
    _user,
    blueprint,
    load_proposal,
)
from web.charts import bars
from web.errors import DomainError, InvalidInput, NotFound
from web.extensions import db, htmx
from web.forms import form_error, options, render_form
from web.qr import qr_data_uri, site_url
from web.ratelimit import allow_write


@blueprint.app_template_filter("work_label")
def work_label(status: str) -> str:
    if status == "rejected":
        return _("Rejected")
    if status == "accepted":
        return _("Accepted")
    try:
        return str(WORK_LABELS[Work(status)])
    except ValueError:
        return status


@blueprint.app_template_filter("share")
def share(value) -> str:
    """A fraction or decimal 0..1 as a percentage with one decimal; "–" when unknown."""
    if value is None:
        return "–"
    return f"{float(value) * 100:.1f}%"


@blueprint.app_template_filter("verdict")
def verdict(decision) -> str:
    """A decision's verdict in the reader's language."""
    return decision.verdict(str(get_locale() or "zh"))


@blueprint.app_template_filter("satisfaction_label")
def satisfaction_label(score: int) -> str:
    return str(SATISFACTION_LABELS[int(score)])


@blueprint.app_template_filter("mean_score")
def mean_score(value) -> str:
    return "–" if value is None else f"{float(value):.1f}"


@blueprint.app_template_global("can_read_board")
def can_read_board(community) -> bool:
    """For the community page (which the community package renders without importing us)."""
    return accountability.can_read_board(_user(), community)


# ---------------------------------------------------------------- on the proposal page


@dataclass
class WorkContext:
    """What the proposal page shows of the decision and its carrying-out."""

    decision: object | None
    implementation: object | None
    updates: list
    ratings: dict
    mine: dict
    today: date
    can_plan: bool
    can_report: bool
    rating_refusal: str | None
    timeline: list
    final_chart: list
    update_form: UpdateForm | None = None
    rating_form: RatingForm | None = None


def work_context(proposal, viewer, update_form=None, rating_form=None) -> WorkContext | None:
    """None for proposals that never reached a decision (no timeline beyond the status)."""
    if proposal.status not in (
        Status.ACCEPTED,
        Status.REJECTED,
        Status.IMPLEMENTATION,
        Status.COMPLETED,
        Status.ABANDONED,
    ):
        return None
    found = implementation.implementation_of(proposal)
    updates = implementation.updates_of(found) if found else []
    ratings = implementation.ratings_of(found) if found else {}
    final = ratings.get("final")
    decision = implementation.decision_of(proposal)
    context = WorkContext(
        decision=decision,
        implementation=found,
        updates=updates,
        ratings=ratings,
        mine=implementation.my_ratings(viewer, found) if found else {},
        today=implementation.local_today(proposal.community, utcnow()),
        can_plan=bool(found and found.is_active)
        and implementation.is_committee(viewer, proposal.community),
        can_report=bool(found and found.is_active)
        and implementation.can_post_update(viewer, found),
        rating_refusal=implementation.rating_refusal(viewer, found) if found else None,
        timeline=implementation.timeline(
            proposal, updates, decision=decision, implementation=found
        ),
        final_chart=bars(
            (SATISFACTION_LABELS[n], final.counts[n] if final else 0) for n in range(5, 0, -1)
        ),
    )
    if context.can_report:
        context.update_form = update_form or _update_form(found, viewer)
    if found is not None and found.status == Work.COMPLETED and not context.rating_refusal:
        context.rating_form = rating_form or _rating_form(context.mine.get("final"))
    return context


def _update_form(found, viewer, form=None) -> UpdateForm:
    form = form or UpdateForm(formdata=None)
    allowed = sorted(WORK_TRANSITIONS[Work(found.status)], key=list(Work).index)
    if not implementation.is_committee(viewer, found.proposal.community):
        allowed = [w for w in allowed if w != Work.ABANDONED]
    form.status.choices = options((w.value, WORK_LABELS[w]) for w in allowed)
    if not form.status.data:
        form.status.data = Work.IN_PROGRESS.value if Work.IN_PROGRESS in allowed else found.status
    form.milestone.choices = options(
        [("", _("None"))] + [(str(m.id), m.title) for m in found.milestones if m.reached_at is None]
    )
    if form.percent.data is None:
        form.percent.data = str(found.percent)
    return form


def _rating_form(existing, form=None) -> RatingForm:
    form = form or RatingForm(formdata=None)
    if existing is not None and request.method == "GET":
        form.satisfaction.data = str(existing.satisfaction)
        form.as_decided.data = existing.as_decided
        form.comment.data = existing.comment
    return form


def _proposal_page(proposal, status: int = 200, **forms):
    from deliberation.views import _proposal_context

    return render_template(
        "deliberation/proposal.html", **_proposal_context(proposal, **forms)
    ), status


def _implementation_or_404(proposal):
    found = implementation.implementation_of(proposal)
    if found is None:
        raise NotFound(_("This proposal has no implementation."))
    return found


def _back(proposal, anchor: str = "#implementation"):
    return redirect(url_for("deliberation.proposal_page", proposal_id=proposal.id) + anchor)


# ---------------------------------------------------------------- the plan


@blueprint.route("/p/<int:proposal_id>/plan", methods=["GET", "POST"])
@login_required
def plan(proposal_id: int):
    proposal = load_proposal(proposal_id)
    found = _implementation_or_404(proposal)
    community_services.require(_user(), "run_rounds", proposal.community)
    form = PlanForm(obj=found if request.method == "GET" else None)
    form.responsible_user.choices = options(
        [("", _("Nobody: the committee reports"))]
        + [
            (str(uid), label)
            for uid, label in implementation.responsible_choices(proposal.community)
        ]
    )
    if request.method == "GET":
        form.responsible_user.data = str(found.responsible_user_id or "")
        form.budget.data = "" if found.budget is None else str(found.budget)
        milestones = [(m.title, m.due_on.isoformat()) for m in found.milestones]
    else:
        titles = request.form.getlist("milestone_title")
        dues = request.form.getlist("milestone_due")
        milestones = list(zip(titles, dues + [""] * (len(titles) - len(dues)), strict=False))
    rows = milestones + [("", "")] * max(1, 6 - len(milestones))
    page = dict(proposal=proposal, community=proposal.community, rows=rows)
    if form.validate_on_submit():
        chosen = form.responsible_user.data
        if chosen and not chosen.isdigit():
            raise InvalidInput()
        try:
            implementation.plan(
                _user(),
                found,
                implementation.PlanDraft(
                    responsible=form.responsible.data,
                    responsible_user_id=int(chosen) if chosen else None,
                    budget=form.budget.data,
                    budget_source=form.budget_source.data or "",
                    milestones=milestones,
                ),
            )
        except DomainError as error:
            db.session.rollback()
            return form_error(form, error, "deliberation/plan.html", **page)
        db.session.commit()
        flash(_("The plan is saved and shown on the proposal's page."), "success")
        return _back(proposal)
    return render_form("deliberation/plan.html", form, **page)


# ---------------------------------------------------------------- progress updates


@blueprint.route("/p/<int:proposal_id>/updates", methods=["GET", "POST"])
@login_required
def post_update(proposal_id: int):
    proposal = load_proposal(proposal_id)
    found = _implementation_or_404(proposal)
    user = _user()
    if not implementation.can_post_update(user, found):
        community_services.require(user, "run_rounds", proposal.community)
    form = _update_form(found, user, UpdateForm())
    if request.method == "POST" and not allow_write(user.id, "update"):
        return _too_fast()
    page = dict(proposal=proposal, community=proposal.community, work=found)
    if form.validate_on_submit():
        milestone = form.milestone.data
        if milestone and not milestone.isdigit():
            raise InvalidInput()
        try:
            photos = _read_photos(form)
            implementation.post_update(
                user,
                found,
                implementation.UpdateDraft(
                    body=form.body.data,
                    percent=form.percent.data,
                    status=form.status.data,
                    reason=form.reason.data or "",
                    milestone_id=int(milestone) if milestone else None,
                    spent=form.spent.data,
                ),
                photos=photos,
                upload_dir=_upload_dir(),
            )
        except DomainError as error:
            db.session.rollback()
            return form_error(form, error, "deliberation/update.html", **page)
        db.session.commit()
        flash(_("Your progress report is published. Followers are notified."), "success")
        return _back(proposal)
    return render_form("deliberation/update.html", form, **page)


@blueprint.post("/updates/<int:update_id>/comments")
@login_required
def comment_on_update(update_id: int):
    entry = implementation.get_update(_user(), update_id)
    proposal = implementation.proposal_of_update(entry)
    if not allow_write(_user().id, "comment"):
        return _too_fast()
    form = UpdateCommentForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please write something first (at most 5,000 characters)."))
    comment = services.post_comment(
        _user(), proposal, form.body.data, "neutral", update_id=entry.id
    )
    db.session.commit()
    if htmx:
        [view] = implementation.updates_of(
            implementation.implementation_of(proposal), only=entry.id
        )
        return render_template(
            "deliberation/_partials/update_comments.html",
            view=view,
            proposal=proposal,
            comment_form=UpdateCommentForm(formdata=None),
            empty_form=EmptyForm(),
        )
    return _back(proposal, f"#comment-{comment.id}")


# ---------------------------------------------------------------- ratings


@blueprint.post("/p/<int:proposal_id>/rating")
@login_required
def rate(proposal_id: int):
    proposal = load_proposal(proposal_id)
    found = _implementation_or_404(proposal)
    form = RatingForm()
    if not form.validate_on_submit():
        form.form_errors.append(_("Please choose a number of stars and answer the question."))
        return _proposal_page(proposal, 400, rating_form=form)
    try:
        implementation.rate(
            _user(),
            found,
            form.satisfaction.data,
            as_decided=form.as_decided.data,
            comment=form.comment.data or "",
        )
    except DomainError as error:
        db.session.rollback()
        form.form_errors.append(str(error.message))
        return _proposal_page(proposal, error.status, rating_form=form)
    db.session.commit()
    flash(_("Thank you. Your rating is counted; you can change it for 30 days."), "success")
    return _back(proposal, "#ratings")


@blueprint.post("/p/<int:proposal_id>/milestones/<int:milestone_id>/rating")
@login_required
def rate_milestone(proposal_id: int, milestone_id: int):
    proposal = load_proposal(proposal_id)
    found = _implementation_or_404(proposal)
    form = MidwayRatingForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please choose how it is going, from 1 to 5."))
    implementation.rate(
        _user(),
        found,
        form.satisfaction.data,
        comment=form.comment.data or "",
        milestone_id=milestone_id,
    )
    db.session.commit()
    flash(_("Thank you for saying how it is going."), "success")
    return _back(proposal, f"#milestone-{milestone_id}")


# ---------------------------------------------------------------- the accountability board


def _board_arguments(categories: list[tuple[str, str]]):
    status = request.args.get("status") or None
    category = request.args.get("category") or None
    if status is not None and status not in accountability.STATUS_FILTERS:
        raise InvalidInput(_("Unknown status filter."))
    known = {value for value, _label in categories}
    if category is not None and category not in known:
        raise InvalidInput(_("Unknown category."))
    page = request.args.get("page", "1")
    return status, category, int(page) if page.isdigit() and len(page) < 6 else 1


def _board(community_id: int, downloads: bool = False):
    community = accountability.board_community(_user(), community_id)
    categories = services.categories(community)
    status, category, page = _board_arguments(categories)
    result = accountability.board(
        _user(),
        community,
        utcnow(),
        status=status,
        category=category,
        page=page,
        locale=str(get_locale() or "zh"),
        everything=downloads,
    )
    return community, result, categories


STATUS_FILTER_LABELS = {"stale": _l("Stale (no update for 30 days)"), "overdue": _l("Overdue")}


@blueprint.get("/c/<int:community_id>/accountability")
@login_required
def accountability_board(community_id: int):
    community, result, categories = _board(community_id)
    totals = result.totals
    status_chart = bars(
        (work_label(value), totals.by_status.get(value, 0))
        for value in ("rejected", *(w.value for w in Work))
    )
    satisfaction_chart = bars(
        (SATISFACTION_LABELS[n], totals.satisfaction.counts[n]) for n in range(5, 0, -1)
    )
    filters = [("", _("All"))] + [
        (
            value,
            str(STATUS_FILTER_LABELS[value])
            if value in STATUS_FILTER_LABELS
            else work_label(value),
        )
        for value in accountability.STATUS_FILTERS
    ]
    context = dict(
        community=community,
        board=result,
        status_chart=status_chart,
        satisfaction_chart=satisfaction_chart,
        status_filters=filters,
        categories=[("", _("All")), *categories],
        category_labels=dict(categories),
        category_label=services.category_label,
    )
    if htmx:
        return render_template("deliberation/_partials/board_table.html", **context)
    return render_template("deliberation/accountability.html", **context)


@blueprint.get("/c/<int:community_id>/accountability.csv")
@login_required
def accountability_csv(community_id: int):
    community, result, _categories = _board(community_id, downloads=True)
    return Response(
        "\ufeff" + accountability.board_csv(result),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="accountability-{community.id}.csv"'
        },
    )


@blueprint.get("/c/<int:community_id>/accountability.json")
@login_required
def accountability_json(community_id: int):
    community, result, _categories = _board(community_id, downloads=True)
    response = Response(
        json.dumps(accountability.board_json(result), ensure_ascii=False),
        mimetype="application/json",
    )
    response.headers["Content-Disposition"] = (
        f'attachment; filename="accountability-{community.id}.json"'
    )
    return response


# ---------------------------------------------------------------- the lobby notice


@blueprint.get("/p/<int:proposal_id>/notice")
@login_required
def decision_notice(proposal_id: int):
    """One printable page for the lobby notice board: the decision, the verified result,
    where the work stands, and a QR code to the proposal's page."""
    proposal = load_proposal(proposal_id)
    decision = implementation.decision_of(proposal)
    if decision is None:
        raise NotFound(_("This proposal has not been decided by a vote."))
    found = implementation.implementation_of(proposal)
    page_url = site_url(url_for("deliberation.proposal_page", proposal_id=proposal.id))
    final = implementation.ratings_of(found).get("final") if found else None
    return render_template(
        "deliberation/notice.html",
        proposal=proposal,
        community=proposal.community,
        decision=decision,
        work=found,
        final=final,
        page_url=page_url,
        qr=qr_data_uri(page_url),
        today=implementation.local_today(proposal.community, utcnow()),
    )
