"""Pages of voting rounds: the list and the round page, creating and editing a round, the
one-question-per-screen ballot with its review step, receipts, paper ballots, results
(page, chart, CSV, JSON, printable notice), the board and the receipt check."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from ballots import demo as _demo  # noqa: F401  (adds a demo round to seed-demo)
from ballots import results as result_views
from ballots import services
from ballots.forms import (
    CHANNEL_LABELS,
    ELECTORATE_LABELS,
    MAX_QUESTION_SLOTS,
    METHOD_LABELS,
    QUESTION_SLOTS,
    RULE_LABELS,
    SECRECY_LABELS,
    AnswerForm,
    EmptyForm,
    ObjectionForm,
    PaperBallotForm,
    ReasonForm,
    ReceiptForm,
    RoundForm,
)
from ballots.models import Round, RoundStatus
from community.models import utcnow
from community.services import can_read, require
from community.views import load_community
from crypto import tally, writer
from deliberation.views import NOTIFICATION_TEXTS
from web.database import reads_first
from web.errors import DomainError, InvalidInput, PermissionDenied
from web.extensions import db
from web.forms import form_error, options, render_form
from web.qr import qr_data_uri, site_url

blueprint = Blueprint("ballots", __name__)


def _user():
    return current_user._get_current_object() if current_user.is_authenticated else None


def load_round(round_id: int) -> Round:
    """The one way views fetch a round: 404 outside the reader's communities."""
    return services.get_round(_user(), round_id)


def load_round_and_membership(round_id: int):
    """`load_round`, with the reader's own membership in the round's community (or None)
    from the same query, for the views that check whether the reader may vote."""
    return services.get_round_and_membership(_user(), round_id)


STATUS_LABELS = {
    RoundStatus.SCHEDULED: _l("Scheduled"),
    RoundStatus.OPEN: _l("Open for voting"),
    RoundStatus.CLOSED: _l("Closed: preliminary result, objection period"),
    RoundStatus.FINAL: _l("Final result"),
    RoundStatus.ANNULLED: _l("Annulled"),
}


# Notifications about rounds are shown by deliberation's notification list.
NOTIFICATION_TEXTS.update(
    {
        "round_reminder": _l("Voting closes within 24 hours and you have not voted yet:"),
        "round_closed": _l("Voting has closed; the preliminary result is published:"),
        "round_final": _l("The final result is published:"),
        "round_annulled": _l("The owners' committee annulled the voting round:"),
    }
)


@blueprint.app_template_filter("round_status")
def round_status(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


@blueprint.app_context_processor
def _round_helpers():
    def open_rounds_for_me():
        user = _user()
        return services.open_rounds_for(user) if user else []

    return {"open_rounds_for_me": open_rounds_for_me, "votes_on": services.rounds_deciding}


# ---------------------------------------------------------------- lists and the round page


@blueprint.get("/c/<int:community_id>/rounds")
@login_required
def rounds(community_id: int):
    community = load_community(community_id)
    if not can_read(_user(), community):
        raise PermissionDenied()
    return render_template(
        "ballots/rounds.html",
        community=community,
        rounds=services.rounds_of(community),
        can_run=services.can_run(_user(), community),
    )


@blueprint.get("/r/<int:round_id>")
@login_required
def round_page(round_id: int):
    round_, membership = load_round_and_membership(round_id)
    user = _user()
    place = services.place_of(user, round_, membership) if round_.is_open else None
    ballot = services.current_ballot(place) if place else None
    statement = round_.result_data if round_.is_tallied else None
    return render_template(
        "ballots/round.html",
        round=round_,
        community=round_.community,
        size=services.electorate_size(round_),
        turnout=services.turnout(round_) if round_.status != RoundStatus.SCHEDULED else None,
        may_vote=place is not None,
        ballot=ballot,
        can_run=services.can_run(user, round_.community),
        results=result_views.question_results(round_, statement) if statement else None,
        objections=services.objections_of(round_),
        objections_open=services.objections_open(round_),
        objection_form=ObjectionForm(),
        answer_form=AnswerForm(),
        annul_form=ReasonForm(),
        electorate_label=ELECTORATE_LABELS.get(round_.electorate),
        secrecy_label=SECRECY_LABELS.get(round_.secrecy),
        method_labels=METHOD_LABELS,
        rule_labels=RULE_LABELS,
        percent=result_views.percent,
        area=result_views.area,
    )


# ---------------------------------------------------------------- creating and editing


def _local(moment: datetime | None, zone: str) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=ZoneInfo(zone))


def _round_form(community, round_=None) -> RoundForm:
    form = RoundForm()
    proposals = [("", _("None"))] + [
        (str(p.id), p.title) for p in services.schedulable_proposals(community, round_)
    ]
    wanted = request.args.get("questions", type=int) or 0
    while len(form.questions) < min(max(wanted, QUESTION_SLOTS), MAX_QUESTION_SLOTS):
        form.questions.append_entry()
    for block in form.questions:
        block.proposal.choices = options(proposals)
    return form


def _draft(form: RoundForm, zone: str) -> services.RoundDraft:
    questions = []
    for block in form.questions:
        q = block.form
        if not (q.title.data or "").strip():
            continue
        questions.append(
            services.QuestionDraft(
                title=q.title.data,
                method=q.method.data,
                options=(q.option_labels.data or "").splitlines(),
                max_choices=q.max_choices.data or 1,
                rule=q.rule.data,
                quorum_percent=q.quorum.data,
                proposal_id=int(q.proposal.data) if (q.proposal.data or "").isdigit() else None,
            )
        )
    return services.RoundDraft(
        title=form.title.data,
        explanation=form.explanation.data or "",
        scope=form.scope.data or "",
        opens_at=_local(form.opens_at.data, zone),
        closes_at=_local(form.closes_at.data, zone),
        electorate=form.electorate.data,
        secrecy=form.secrecy.data,
        objection_days=form.objection_days.data,
        questions=questions,
    )


@blueprint.route("/c/<int:community_id>/rounds/new", methods=["GET", "POST"])
@login_required
def new_round(community_id: int):
    community = load_community(community_id)
    require(_user(), "run_rounds", community)
    form = _round_form(community)
    if request.method == "GET" and request.args.get("proposal", "").isdigit():
        form.questions[0].form.proposal.data = request.args["proposal"]
    if form.validate_on_submit():
        try:
            round_ = services.create_round(_user(), community, _draft(form, community.timezone))
        except DomainError as error:
            return form_error(form, error, "ballots/edit.html", community=community, round=None)
        db.session.commit()
        flash(_("The voting round is scheduled. You can change it until it opens."), "success")
        return redirect(url_for("ballots.round_page", round_id=round_.id), 303)
    return render_form("ballots/edit.html", form, community=community, round=None)


@blueprint.route("/r/<int:round_id>/edit", methods=["GET", "POST"])
@login_required
def edit_round(round_id: int):
    round_ = load_round(round_id)
    community = round_.community
    require(_user(), "run_rounds", community)
    if round_.status != RoundStatus.SCHEDULED or utcnow() >= round_.opens_at:
        raise services.NotEditable()
    form = _round_form(community, round_)
    if request.method == "GET":
        zone = ZoneInfo(community.timezone)
        form.title.data, form.explanation.data = round_.title, round_.explanation
        form.scope.data = round_.scope
        form.opens_at.data = round_.opens_at.astimezone(zone).replace(tzinfo=None)
        form.closes_at.data = round_.closes_at.astimezone(zone).replace(tzinfo=None)
        form.electorate.data, form.secrecy.data = round_.electorate, round_.secrecy
        form.objection_days.data = round_.objection_days
        while len(form.questions) < len(round_.questions):
            form.questions.append_entry()
        for block in form.questions:
            block.proposal.choices = form.questions[0].proposal.choices
        for block, question in zip(form.questions, round_.questions, strict=False):
            draft = services.question_draft(question)
            q = block.form
            q.title.data, q.method.data = draft.title, draft.method
            q.option_labels.data = "\n".join(draft.options)
            q.max_choices.data, q.rule.data = draft.max_choices, draft.rule
            q.quorum.data = draft.quorum_percent
            q.proposal.data = str(draft.proposal_id or "")
    elif form.validate_on_submit():
        try:
            services.update_round(_user(), round_, _draft(form, community.timezone))
        except DomainError as error:
            return form_error(form, error, "ballots/edit.html", community=community, round=round_)
        db.session.commit()
        flash(_("The voting round was changed."), "success")
        return redirect(url_for("ballots.round_page", round_id=round_id), 303)
    return render_form("ballots/edit.html", form, community=community, round=round_)


# ---------------------------------------------------------------- the ballot


def _answers_from(form, questions: list[dict]) -> dict[str, list[str]]:
    return {q["id"]: sorted(set(form.getlist(f"a_{q['id']}"))) for q in questions}


def _step_page(round_, manifest, answers, nonce, step, problem=None, status=200):
    questions = manifest["questions"]
    return (
        render_template(
            "ballots/vote.html",
            round=round_,
            community=round_.community,
            questions=questions,
            question=questions[step],
            step=step,
            answers=answers,
            nonce=nonce,
            problem=problem,
            option_label=result_views.option_label,
        ),
        status,
    )


def _review_page(round_, manifest, answers, nonce, problem=None, status=200):
    return (
        render_template(
            "ballots/review.html",
            round=round_,
            community=round_.community,
            questions=manifest["questions"],
            answers=answers,
            nonce=nonce,
            problem=problem,
            option_label=result_views.option_label,
        ),
        status,
    )


def _require_open(round_: Round) -> None:
    if not round_.is_open:
        raise services.RoundClosed() if round_.is_tallied else services.RoundNotOpen()


def _ready_to_vote(round_: Round, membership):
    _require_open(round_)
    services.voter_of(_user(), round_, membership=membership)
    return round_.manifest_data


@blueprint.route("/r/<int:round_id>/vote", methods=["GET", "POST"])
@login_required
def vote(round_id: int):
    """One question per screen. The answers so far travel in hidden fields, so this works
    without JavaScript and keeps nothing on the server until the ballot is cast."""
    round_, membership = load_round_and_membership(round_id)
    manifest = _ready_to_vote(round_, membership)
    questions = manifest["questions"]
    if request.method == "GET":
        return _step_page(round_, manifest, {}, services.new_nonce(), 0)
    form = EmptyForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("This form has expired. Please start again."))
    answers = _answers_from(request.form, questions)
    nonce = request.form.get("nonce", "")
    if len(nonce) != 32:
        nonce = services.new_nonce()
    step = request.form.get("step", type=int)
    if step is None or not 0 <= step < len(questions):
        step = 0
    if "back" in request.form:
        return _step_page(round_, manifest, answers, nonce, max(step - 1, 0))
    if "goto" in request.form:
        target = request.form.get("goto", type=int)
        if target is not None and 0 <= target < len(questions):
            return _step_page(round_, manifest, answers, nonce, target)
    problem = tally.answer_problem(questions[step], answers[questions[step]["id"]])
    if problem:
        message = (
            _("Please choose one answer.")
            if questions[step]["method"] != "approval"
            else _("Please choose at most %(n)d options.", n=questions[step]["max_choices"])
        )
        return _step_page(round_, manifest, answers, nonce, step, message, 400)
    if step + 1 < len(questions):
        return _step_page(round_, manifest, answers, nonce, step + 1)
    return _review_page(round_, manifest, answers, nonce)


@blueprint.post("/r/<int:round_id>/cast")
@reads_first
@login_required
def cast(round_id: int):
    round_, membership = load_round_and_membership(round_id)
    form = EmptyForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("This form has expired. Please start again."))
    # The service refuses a round that is not open (and logs the refusal).
    manifest = round_.manifest_data or {"questions": []}
    answers = _answers_from(request.form, manifest["questions"])
    credential = request.form.get("credential") or None
    signature = request.form.get("signature") or None
    ballot = services.cast_ballot(
        _user(),
        round_,
        answers,
        request.form.get("nonce", ""),
        credential=credential,
        signature=signature,
        membership=membership,
    )
    ballot_id = ballot.id  # before the commit, which would expire it
    db.session.commit()
    return redirect(url_for("ballots.receipt", round_id=round_id, ballot_id=ballot_id), 303)


@blueprint.get("/r/<int:round_id>/receipts/<int:ballot_id>")
@login_required
def receipt(round_id: int, ballot_id: int):
    round_ = load_round(round_id)
    ballot = services.my_receipt(_user(), round_, ballot_id)
    text = ballot.receipt
    return render_template(
        "ballots/receipt.html",
        round=round_,
        community=round_.community,
        ballot=ballot,
        receipt=ballot.receipt_data,
        receipt_text=text,
        qr=qr_data_uri(text),
    )


# ---------------------------------------------------------------- paper and proxy ballots


@blueprint.route("/r/<int:round_id>/paper", methods=["GET", "POST"])
@login_required
def paper_ballot(round_id: int):
    round_ = load_round(round_id)
    voters = services.paper_voters(_user(), round_)
    _require_open(round_)
    manifest = round_.manifest_data
    form = PaperBallotForm()
    form.voter.choices = options(
        [("", _("Choose the voter"))]
        + [
            (str(voter.id), label)
            for voter, label in voters
            if voter.channel in (None, "paper", "proxy")
        ]
    )
    if request.method == "GET":
        form.nonce.data = services.new_nonce()
    context = {
        "round": round_,
        "community": round_.community,
        "questions": manifest["questions"],
        "option_label": result_views.option_label,
        "channel_labels": CHANNEL_LABELS,
    }
    if form.validate_on_submit():
        answers = _answers_from(request.form, manifest["questions"])
        try:
            services.record_paper_ballot(
                _user(),
                round_,
                int(form.voter.data),
                answers,
                channel=form.channel.data,
                witness=form.witness.data,
                proxy_note=form.proxy_note.data or "",
                nonce=form.nonce.data or "",
            )
        except DomainError as error:
            return form_error(form, error, "ballots/paper.html", **context)
        db.session.commit()
        flash(_("The paper ballot was recorded on the board."), "success")
        return redirect(url_for("ballots.paper_ballot", round_id=round_id), 303)
    return render_form("ballots/paper.html", form, **context)


# ---------------------------------------------------------------- results and the board


def _statement(round_: Round) -> dict:
    return services.published_result(round_)


@blueprint.get("/r/<int:round_id>/results.csv")
@login_required
def results_csv(round_id: int):
    round_ = load_round(round_id)
    text = result_views.results_csv(round_, _statement(round_))
    return Response(
        "\ufeff" + text,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=round-{round_id}-results.csv"},
    )


@blueprint.get("/r/<int:round_id>/results.json")
@login_required
def results_json(round_id: int):
    round_ = load_round(round_id)
    statement = _statement(round_)
    signature = services.result_signature(round_)
    return Response(
        json.dumps(
            result_views.results_json(round_, statement, signature), ensure_ascii=False, indent=1
        ),
        mimetype="application/json",
    )


@blueprint.get("/r/<int:round_id>/board.json")
@login_required
def board_json(round_id: int):
    round_ = load_round(round_id)
    document = services.board_document(round_)
    return Response(
        writer.document_text(document),
        mimetype="application/json",
        headers={"Content-Disposition": f"attachment; filename=round-{round_id}-board.json"},
    )


@blueprint.get("/r/<int:round_id>/notice")
@login_required
def notice(round_id: int):
    """A printable one-page notice for the lobby: the vote notice before the close, the
    result after it, with a QR code to the verification page."""
    round_ = load_round(round_id)
    statement = round_.result_data if round_.is_tallied else None
    verify_url = site_url(url_for("ballots.verify_receipt", round_id=round_id))
    return render_template(
        "ballots/notice.html",
        round=round_,
        community=round_.community,
        size=services.electorate_size(round_),
        turnout=services.turnout(round_) if round_.status != RoundStatus.SCHEDULED else None,
        results=result_views.question_results(round_, statement) if statement else None,
        qr=qr_data_uri(verify_url),
        verify_url=verify_url,
        electorate_label=ELECTORATE_LABELS.get(round_.electorate),
        rule_labels=RULE_LABELS,
        percent=result_views.percent,
        area=result_views.area,
    )


@blueprint.route("/r/<int:round_id>/verify", methods=["GET", "POST"])
@login_required
def verify_receipt(round_id: int):
    round_ = load_round(round_id)
    form = ReceiptForm()
    check = None
    status = 200
    if round_.round_hash is None:
        check = services.ReceiptCheck(False, _("This round has not opened yet."))
    elif form.validate_on_submit():
        check = services.check_receipt(round_, form.receipt.data)
        status = 200 if check.ok else 422
    elif request.method == "POST":
        status = 400
    return (
        render_template(
            "ballots/verify.html",
            round=round_,
            community=round_.community,
            form=form,
            check=check,
        ),
        status,
    )


# ---------------------------------------------------------------- objections and annulment


@blueprint.post("/r/<int:round_id>/objections")
@login_required
def raise_objection(round_id: int):
    round_ = load_round(round_id)
    form = ObjectionForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please write your objection."))
    services.raise_objection(_user(), round_, form.body.data)
    db.session.commit()
    flash(_("Your objection was published. The committee will answer it here."), "success")
    return redirect(url_for("ballots.round_page", round_id=round_id) + "#objections", 303)


@blueprint.post("/objections/<int:objection_id>/answer")
@login_required
def answer_objection(objection_id: int):
    objection = services.get_objection(_user(), objection_id)
    form = AnswerForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please write the answer."))
    services.answer_objection(_user(), objection, form.answer.data)
    db.session.commit()
    flash(_("The answer was published."), "success")
    return redirect(url_for("ballots.round_page", round_id=objection.round_id) + "#objections", 303)


@blueprint.post("/r/<int:round_id>/annul")
@login_required
def annul(round_id: int):
    round_ = load_round(round_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Please give the reason for annulling the round."))
    services.annul_round(_user(), round_, form.reason.data)
    db.session.commit()
    flash(_("The round was annulled. The reason is shown on its page."), "success")
    return redirect(url_for("ballots.round_page", round_id=round_id), 303)
