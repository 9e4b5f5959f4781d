"""The audit log page of a community: the whole log for its owners' committee and admins,
the moderation part for every member who may read the community."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from community import audit
from community.views import load_community

blueprint = Blueprint("audit", __name__)


@blueprint.get("/c/<int:community_id>/audit")
@login_required
def community_log(community_id: int):
    community = load_community(community_id)
    log = audit.community_log(current_user._get_current_object(), community)
    return render_template("community/audit.html", community=community, log=log)
