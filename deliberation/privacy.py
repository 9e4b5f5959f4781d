"""When a member deletes their account (community/privacy.py), the text they wrote stays
with their name, phone and email replaced; what deliberation derives from that text (the
rendered HTML and the search terms) is derived again here, so that neither still holds
them (a search for their name then finds nothing of theirs)."""

from __future__ import annotations

from sqlalchemy import select

from community.privacy import account_erased
from deliberation import markup, textsearch
from deliberation.models import Comment, ProgressUpdate, Proposal
from web.extensions import db


@account_erased.connect
def rederive_text(_sender, user_id: int, **_extra) -> None:
    for model in (Proposal, Comment, ProgressUpdate):
        for row in db.session.scalars(select(model).where(model.author_id == user_id)):
            html = markup.render_markdown(row.body)
            if html != row.body_html:
                row.body_html = html
            if isinstance(row, Proposal):
                terms = textsearch.index_terms(row.title, row.body)
                if terms != row.search_terms:
                    row.search_terms = terms
    db.session.flush()
