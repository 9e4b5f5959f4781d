"""Account settings for a member's own data: "My data" (what the site holds, downloaded
as JSON) and deleting the account. Services: community/privacy.py."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, flash, redirect, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired

from community import privacy
from community.auth import password_confirmation
from web.database import reads_first
from web.errors import DomainError, render_error
from web.extensions import db
from web.forms import form_error, render_form

blueprint = Blueprint("privacy", __name__, url_prefix="/account")

# What the "My data" page calls each kind of row (a table not named here shows its name).
TABLE_LABELS = {
    "memberships": _l("Memberships and join requests"),
    "roll_imports": _l("Voter rolls you imported"),
    "roll_entries": _l("Voter-roll households you joined with"),
    "audit_entries": _l("Actions of yours in the audit log"),
    "proposals": _l("Proposals"),
    "supports": _l("Supports"),
    "comments": _l("Comments"),
    "helpful_marks": _l("Comments you found helpful"),
    "follows": _l("Proposals you follow"),
    "reports": _l("Reports"),
    "moderation_log": _l("Moderation entries by you or about you"),
    "notifications": _l("Notifications"),
    "implementations": _l("Implementations you report on"),
    "progress_updates": _l("Progress updates"),
    "ratings": _l("Ratings"),
    "rounds": _l("Voting rounds you created"),
    "round_voters": _l("Places in voting rounds"),
    "ballots": _l("Ballots"),
    "round_objections": _l("Objections and answers"),
}


class DownloadForm(FlaskForm):
    submit = SubmitField(_l("Download my data (JSON)"))


class DeleteAccountForm(FlaskForm):
    password = PasswordField(
        _l("Your password"), validators=[DataRequired(_l("Please fill this in."))]
    )
    submit = SubmitField(_l("Delete my account"))


def _user():
    return current_user._get_current_object()


@blueprint.get("/data")
@login_required
def my_data():
    held = [(str(TABLE_LABELS.get(name, name)), n) for name, n in privacy.data_summary(_user())]
    return render_form("community/my_data.html", DownloadForm(), held=held)


@blueprint.post("/data/download")
@reads_first
@login_required
def download_data():
    if not DownloadForm().validate_on_submit():
        return render_error(400)
    document = privacy.export_data(_user())
    db.session.commit()  # the export's audit entry
    body = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
    return current_app.response_class(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="yishi-my-data.json"',
            "Cache-Control": "no-store",
        },
    )


@blueprint.route("/delete", methods=["GET", "POST"])
@reads_first
@login_required
def delete_account():
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            with password_confirmation(_user()):
                privacy.erase_account(
                    _user(), form.password.data, cost=current_app.config["PASSWORD_COST"]
                )
        except DomainError as error:
            return form_error(form, error, "community/delete_account.html")
        db.session.commit()
        # Clear first: logout_user() leaves the note that deletes the remember-me cookie.
        session.clear()
        logout_user()
        flash(_("Your account has been deleted. Thank you for taking part."), "info")
        return redirect(url_for("community.home"))
    return render_form("community/delete_account.html", form)
