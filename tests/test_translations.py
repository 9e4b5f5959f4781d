"""Every UI string has a Chinese translation with the same placeholders."""

import re
from pathlib import Path

from babel.messages.pofile import read_po

CATALOG = Path(__file__).resolve().parent.parent / "translations/zh/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)\w")


def test_every_message_is_translated_with_its_placeholders():
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if not text:
                problems.append(f"untranslated: {source!r}")
            elif set(PLACEHOLDER.findall(source)) != set(PLACEHOLDER.findall(text)):
                problems.append(f"placeholders differ: {source!r} -> {text!r}")
        if message.fuzzy:
            problems.append(f"fuzzy: {source!r}")
    assert not problems, "\n".join(problems)


def test_templates_follow_a_locale_forced_in_the_middle_of_a_request(app):
    """Templates look the translations up once per locale (web.i18n._translations), and
    still follow force_locale (used for mails and result statements) in and out."""
    from flask import render_template_string
    from flask_babel import force_locale

    page = "{{ _('Saved.') }} {% trans %}Saved.{% endtrans %}"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert render_template_string(page) == "Saved. Saved."
        with force_locale("zh"):
            assert render_template_string(page) == "已保存。 已保存。"
            with force_locale("en"):
                assert render_template_string(page) == "Saved. Saved."
            assert render_template_string(page) == "已保存。 已保存。"
        assert render_template_string(page) == "Saved. Saved."
