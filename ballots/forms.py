"""Flask-WTF forms of voting rounds. The ballot itself is read from plain fields
(`a_<question key>`), since its questions come from the round, not from a class."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    DecimalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from community.forms import REQUIRED
from web.forms import PlainText, options

ELECTORATE_LABELS = {
    "residents": _l("All verified residents (one vote each)"),
    "owners": _l("Owners only (weighted by private area where the rule needs it)"),
    "households": _l("One vote per household (unit)"),
}
SECRECY_LABELS = {
    "secret": _l("Secret: the public board shows no names or units"),
    "named": _l("Named: the public board shows each ballot's unit"),
}
METHOD_LABELS = {
    "yes_no_abstain": _l("Yes / No / Abstain"),
    "single": _l("Choose one option"),
    "approval": _l("Choose up to a number of options"),
}
RULE_LABELS = {
    "simple_majority": _l("Simple majority of the votes cast"),
    "absolute_majority": _l("Absolute majority of all voters"),
    "two_thirds": _l("Two thirds of the votes cast"),
    "three_quarters": _l("Three quarters of the votes cast"),
    "art278_ordinary": _l("Owners' double majority, ordinary matter (Civil Code art. 278)"),
    "art278_major": _l("Owners' double three quarters, major matter (Civil Code art. 278)"),
}
CHANNEL_LABELS = {"paper": _l("Paper ballot"), "proxy": _l("Proxy (written authorization)")}
QUESTION_SLOTS = 3
MAX_QUESTION_SLOTS = 10


class QuestionForm(Form):
    """One question block of the round form; a block without a title is ignored."""

    title = StringField(_l("Question text"), validators=[Optional(), Length(max=200), PlainText()])
    method = SelectField(
        _l("How is it answered?"), choices=options(METHOD_LABELS.items()), default="yes_no_abstain"
    )
    option_labels = TextAreaField(
        _l("Options, one per line (not needed for Yes / No / Abstain)"),
        validators=[Optional(), Length(max=4000), PlainText(allow_newlines=True)],
    )
    max_choices = IntegerField(
        _l("For “choose up to”: how many options a voter may choose at most"),
        default=1,
        validators=[Optional(), NumberRange(min=1, max=20)],
    )
    rule = SelectField(
        _l("Decision rule"), choices=options(RULE_LABELS.items()), default="simple_majority"
    )
    quorum = DecimalField(
        _l("Turnout quorum, in percent of all voters (optional)"),
        places=None,
        validators=[Optional(), NumberRange(min=0, max=100)],
    )
    # Checked by the service (it must be a proposal of this community scheduled for a vote).
    proposal = SelectField(
        _l("Proposal decided by this question (optional)"), choices=[], validate_choice=False
    )


class RoundForm(FlaskForm):
    title = StringField(
        _l("Title"), validators=[DataRequired(REQUIRED), Length(max=120), PlainText()]
    )
    explanation = TextAreaField(
        _l("Explanation for voters"),
        validators=[Optional(), Length(max=10000), PlainText(allow_newlines=True)],
    )
    scope = StringField(
        _l("Scope (for example: buildings 1 to 6)"),
        validators=[Optional(), Length(max=200), PlainText()],
    )
    opens_at = DateTimeLocalField(
        _l("Opens at"), format="%Y-%m-%dT%H:%M", validators=[InputRequired(REQUIRED)]
    )
    closes_at = DateTimeLocalField(
        _l("Closes at"), format="%Y-%m-%dT%H:%M", validators=[InputRequired(REQUIRED)]
    )
    electorate = RadioField(
        _l("Who may vote?"),
        choices=options(ELECTORATE_LABELS.items()),
        default="residents",
        validators=[InputRequired(REQUIRED)],
    )
    secrecy = RadioField(
        _l("Secret or named ballot"),
        choices=options(SECRECY_LABELS.items()),
        default="secret",
        validators=[InputRequired(REQUIRED)],
    )
    objection_days = IntegerField(
        _l("Objection period after the close, in days"),
        default=7,
        validators=[InputRequired(REQUIRED), NumberRange(min=0, max=30)],
    )
    questions = FieldList(
        FormField(QuestionForm), min_entries=QUESTION_SLOTS, max_entries=MAX_QUESTION_SLOTS
    )


class PaperBallotForm(FlaskForm):
    voter = SelectField(_l("Voter"), choices=[], validators=[DataRequired(REQUIRED)])
    channel = RadioField(
        _l("How was the ballot given?"),
        choices=options(CHANNEL_LABELS.items()),
        default="paper",
        validators=[InputRequired(REQUIRED)],
    )
    witness = StringField(
        _l("Witness (name)"), validators=[DataRequired(REQUIRED), Length(max=80), PlainText()]
    )
    proxy_note = TextAreaField(
        _l("Proxy: who holds it, and the written authorization"),
        validators=[Optional(), Length(max=1000), PlainText(allow_newlines=True)],
    )
    nonce = HiddenField()


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason (shown publicly)"),
        validators=[DataRequired(REQUIRED), Length(max=2000), PlainText(allow_newlines=True)],
    )


class ObjectionForm(FlaskForm):
    body = TextAreaField(
        _l("Your objection"),
        validators=[DataRequired(REQUIRED), Length(max=4000), PlainText(allow_newlines=True)],
    )


class AnswerForm(FlaskForm):
    answer = TextAreaField(
        _l("The committee's answer (shown publicly)"),
        validators=[DataRequired(REQUIRED), Length(max=4000), PlainText(allow_newlines=True)],
    )


class ReceiptForm(FlaskForm):
    receipt = TextAreaField(
        _l("Your receipt (paste all of it)"),
        validators=[DataRequired(REQUIRED), Length(max=4000)],
    )


class EmptyForm(FlaskForm):
    pass
