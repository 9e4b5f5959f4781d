"""Flask-WTF forms of the community package. Labels and messages go through Babel."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from community.permissions import CommunityKind, Role
from web.forms import PlainText, options
from web.i18n import LANGUAGES

REQUIRED = _l("Please fill this in.")

ROLE_LABELS = {
    Role.RESIDENT: _l("Resident"),
    Role.OWNER: _l("Owner"),
    Role.MODERATOR: _l("Neighborhood committee (moderator)"),
    Role.COMMITTEE: _l("Owners' committee"),
    Role.ADMIN: _l("Administrator"),
}

KIND_LABELS = {
    CommunityKind.DISTRICT: _l("District"),
    CommunityKind.STREET: _l("Street / town"),
    CommunityKind.COMMUNITY: _l("Community"),
    CommunityKind.COMPOUND: _l("Residential compound"),
    CommunityKind.BUILDING: _l("Building"),
    CommunityKind.VILLAGE: _l("Village"),
    CommunityKind.VILLAGE_GROUP: _l("Village group"),
}


class RegisterForm(FlaskForm):
    display_name = StringField(
        _l("Your name (shown to neighbours)"),
        validators=[DataRequired(REQUIRED), Length(max=40), PlainText()],
    )
    contact = StringField(
        _l("Mobile number or email"),
        validators=[DataRequired(REQUIRED), Length(max=254), PlainText()],
    )
    password = PasswordField(
        _l("Password (at least 8 characters)"),
        validators=[DataRequired(REQUIRED), Length(min=8, max=256)],
    )
    submit = SubmitField(_l("Create my account"))


class LoginForm(FlaskForm):
    contact = StringField(
        _l("Mobile number or email"), validators=[DataRequired(REQUIRED), Length(max=254)]
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(REQUIRED), Length(max=256)])
    remember = BooleanField(_l("Keep me logged in on this device"))
    next = HiddenField()
    submit = SubmitField(_l("Log in"))


class LogoutForm(FlaskForm):
    submit = SubmitField(_l("Log out"))


class JoinForm(FlaskForm):
    unit = StringField(
        _l('Where you live, e.g. "Building 3, Room 502"'),
        validators=[DataRequired(REQUIRED), Length(max=80), PlainText()],
    )
    submit = SubmitField(_l("Ask to join"))


class InviteCodeForm(FlaskForm):
    code = StringField(
        _l("Invitation code from your committee"),
        validators=[DataRequired(REQUIRED), Length(max=40)],
    )
    submit = SubmitField(_l("Join with this code"))


class DecisionForm(FlaskForm):
    decision = RadioField(
        _l("Decision"),
        choices=options([("approve", _l("Approve")), ("reject", _l("Reject"))]),
        validators=[InputRequired(REQUIRED)],
    )
    reason = TextAreaField(
        _l("Reason (required when rejecting; the resident will see it)"),
        validators=[Optional(), Length(max=500), PlainText(allow_newlines=True)],
    )
    submit = SubmitField(_l("Save decision"))


class CommunityForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(REQUIRED), Length(max=80), PlainText()])
    kind = SelectField(_l("Kind of place"), choices=[], validators=[DataRequired(REQUIRED)])
    timezone = StringField(
        _l("Time zone"), default="Asia/Shanghai", validators=[Optional(), Length(max=40)]
    )
    description = TextAreaField(
        _l("Short description"),
        validators=[Optional(), Length(max=2000), PlainText(allow_newlines=True)],
    )
    submit = SubmitField(_l("Create"))


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"),
        choices=options((r.value, label) for r, label in ROLE_LABELS.items()),
        validators=[DataRequired(REQUIRED)],
    )
    submit = SubmitField(_l("Change role"))


class AppointForm(FlaskForm):
    contact = StringField(
        _l("Their mobile number or email"), validators=[DataRequired(REQUIRED), Length(max=254)]
    )
    role = SelectField(
        _l("Role"),
        choices=options((r.value, label) for r, label in ROLE_LABELS.items()),
        validators=[DataRequired(REQUIRED)],
    )
    submit = SubmitField(_l("Appoint"))


class RollForm(FlaskForm):
    roll = FileField(
        _l("Voter roll (CSV: unit, owner_name, phone, private_area)"),
        validators=[
            FileRequired(REQUIRED),
            FileAllowed(["csv", "txt"], _l("Please upload a CSV file.")),
        ],
    )
    submit = SubmitField(_l("Import roll"))


class IssueInvitesForm(FlaskForm):
    submit = SubmitField(_l("Print new invitation codes for households not yet joined"))


class ProfileForm(FlaskForm):
    display_name = StringField(
        _l("Your name (shown to neighbours)"),
        validators=[DataRequired(REQUIRED), Length(max=40), PlainText()],
    )
    locale = SelectField(_l("Language"), choices=options(LANGUAGES.items()))
    large_text = BooleanField(_l("Large text"))
    submit = SubmitField(_l("Save"))


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(REQUIRED)])
    new = PasswordField(
        _l("New password (at least 8 characters)"),
        validators=[DataRequired(REQUIRED), Length(min=8, max=256)],
    )
    submit = SubmitField(_l("Change password"))


class LanguageForm(FlaskForm):
    language = SelectField(choices=options(LANGUAGES.items()), validators=[DataRequired()])
    next = HiddenField()


class TextSizeForm(FlaskForm):
    size = SelectField(
        choices=options([("normal", "normal"), ("large", "large")]), validators=[DataRequired()]
    )
    next = HiddenField()
