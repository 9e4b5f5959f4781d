"""Flask-WTF forms of deliberation."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    DecimalField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from community.forms import REQUIRED
from deliberation.lifecycle import AsDecided, Stance, Work
from web.forms import PlainText, options

STANCE_LABELS = {
    Stance.FOR: _l("For"),
    Stance.AGAINST: _l("Against"),
    Stance.QUESTION: _l("Question"),
    Stance.NEUTRAL: _l("Neutral"),
}


class ProposalForm(FlaskForm):
    title = StringField(
        _l("Title"), validators=[DataRequired(REQUIRED), Length(max=120), PlainText()]
    )
    body = TextAreaField(
        _l("What do you propose, and why? (Markdown: *italic*, **bold**, lists, links)"),
        validators=[DataRequired(REQUIRED), Length(max=20000), PlainText(allow_newlines=True)],
    )
    category = SelectField(_l("Category"), choices=[], validators=[DataRequired(REQUIRED)])
    estimated_cost = StringField(
        _l("Estimated cost in yuan (optional)"), validators=[Optional(), Length(max=20)]
    )
    photos = MultipleFileField(_l("Photos (up to 6; JPEG, PNG or WebP)"))
    action = HiddenField()


class CommentForm(FlaskForm):
    stance = RadioField(
        _l("Your position"),
        choices=options((s.value, label) for s, label in STANCE_LABELS.items()),
        default=Stance.NEUTRAL.value,
        validators=[InputRequired(REQUIRED)],
    )
    body = TextAreaField(
        _l("Your comment"),
        validators=[DataRequired(REQUIRED), Length(max=5000), PlainText(allow_newlines=True)],
    )
    parent_id = HiddenField()


class CommentEditForm(FlaskForm):
    body = TextAreaField(
        _l("Your comment"),
        validators=[DataRequired(REQUIRED), Length(max=5000), PlainText(allow_newlines=True)],
    )


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason (shown publicly)"),
        validators=[DataRequired(REQUIRED), Length(max=500), PlainText(allow_newlines=True)],
    )


class WithdrawForm(FlaskForm):
    reason = TextAreaField(
        _l("Why (optional, shown publicly)"),
        validators=[Optional(), Length(max=500), PlainText(allow_newlines=True)],
    )


class SuspendForm(ReasonForm):
    days = IntegerField(
        _l("Days"), default=7, validators=[InputRequired(REQUIRED), NumberRange(1, 365)]
    )


class SettingsForm(FlaskForm):
    mode = RadioField(
        _l("Support needed to start a discussion"),
        choices=options(
            [("number", _l("A number of supporters")), ("percent", _l("A share of members"))]
        ),
        validators=[InputRequired(REQUIRED)],
    )
    threshold = IntegerField(_l("Number of supporters"), validators=[Optional(), NumberRange(1)])
    percent = DecimalField(
        _l("Percent of verified members"), places=2, validators=[Optional(), NumberRange(0.1, 100)]
    )
    window_days = IntegerField(
        _l("Days to collect support"), validators=[InputRequired(REQUIRED), NumberRange(1, 365)]
    )


class CategoryForm(FlaskForm):
    name = StringField(
        _l("New category"), validators=[DataRequired(REQUIRED), Length(max=40), PlainText()]
    )


class EmptyForm(FlaskForm):
    """Only the CSRF token: for buttons that need no input."""


# ---------------------------------------------------------------- implementation

WORK_LABELS = {
    Work.NOT_STARTED: _l("Not started"),
    Work.IN_PROGRESS: _l("In progress"),
    Work.BLOCKED: _l("Blocked"),
    Work.COMPLETED: _l("Completed"),
    Work.ABANDONED: _l("Abandoned"),
}

AS_DECIDED_LABELS = {
    AsDecided.YES: _l("Yes, as decided"),
    AsDecided.PARTLY: _l("Partly"),
    AsDecided.NO: _l("No"),
}

SATISFACTION_LABELS = {
    1: _l("1 – very dissatisfied"),
    2: _l("2 – dissatisfied"),
    3: _l("3 – so-so"),
    4: _l("4 – satisfied"),
    5: _l("5 – very satisfied"),
}


class PlanForm(FlaskForm):
    """The milestones come as repeated `milestone_title` / `milestone_due` fields."""

    responsible = StringField(
        _l(
            "Who is responsible (a committee member, the property management company, a contractor)"
        ),
        validators=[DataRequired(REQUIRED), Length(max=200), PlainText()],
    )
    responsible_user = SelectField(
        _l("Member who reports progress (optional)"), choices=[], default=""
    )
    budget = StringField(_l("Budget in yuan (optional)"), validators=[Optional(), Length(max=20)])
    budget_source = StringField(
        _l("Where the money comes from (e.g. maintenance fund, public income)"),
        validators=[Optional(), Length(max=200), PlainText()],
    )


class UpdateForm(FlaskForm):
    body = TextAreaField(
        _l("What was done? (Markdown)"),
        validators=[DataRequired(REQUIRED), Length(max=5000), PlainText(allow_newlines=True)],
    )
    status = SelectField(_l("Status"), choices=[], validators=[DataRequired(REQUIRED)])
    reason = TextAreaField(
        _l("Reason (needed when blocked or abandoned; shown publicly)"),
        validators=[Optional(), Length(max=2000), PlainText(allow_newlines=True)],
    )
    percent = StringField(
        _l("Percent complete (0–100)"), validators=[DataRequired(REQUIRED), Length(max=4)]
    )
    milestone = SelectField(
        _l("Milestone reached with this update (optional)"), choices=[], default=""
    )
    spent = StringField(
        _l("Money spent so far, in yuan (optional)"), validators=[Optional(), Length(max=20)]
    )
    photos = MultipleFileField(_l("Photos (up to 6; JPEG, PNG or WebP)"))


class RatingForm(FlaskForm):
    satisfaction = RadioField(
        _l("How satisfied are you with the result?"),
        choices=options((str(n), label) for n, label in SATISFACTION_LABELS.items()),
        validators=[InputRequired(REQUIRED)],
    )
    as_decided = RadioField(
        _l("Was it done as decided?"),
        choices=options((a.value, label) for a, label in AS_DECIDED_LABELS.items()),
        validators=[InputRequired(REQUIRED)],
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        validators=[Optional(), Length(max=1000), PlainText(allow_newlines=True)],
    )


class MidwayRatingForm(FlaskForm):
    satisfaction = RadioField(
        _l("How is it going?"),
        choices=options((str(n), label) for n, label in SATISFACTION_LABELS.items()),
        validators=[InputRequired(REQUIRED)],
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        validators=[Optional(), Length(max=1000), PlainText(allow_newlines=True)],
    )


class UpdateCommentForm(FlaskForm):
    body = TextAreaField(
        _l("Your comment on this update"),
        validators=[DataRequired(REQUIRED), Length(max=5000), PlainText(allow_newlines=True)],
    )
