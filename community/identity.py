"""Pure normalization of what people type: names, phone numbers, emails, unit labels."""

from __future__ import annotations

import re
import unicodedata

# Latin look-alikes from Cyrillic and Greek, enough to make "аdmin" (Cyrillic а) collide
# with "admin". Names mixing these scripts with Latin are refused outright.
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "е": "e", "ё": "e", "һ": "h", "і": "i", "ј": "j",
        "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y",
        "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w", "α": "a", "β": "b", "ε": "e", "η": "n",
        "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        "ɑ": "a", "ı": "i", "ɡ": "g", "ʏ": "y", "ɩ": "i", "ꞵ": "b", "ⅼ": "l", "ℓ": "l",
        "0": "o", "1": "l", "|": "l",
    }
)  # fmt: skip


class BadValue(ValueError):
    """A value a person typed that cannot be used; the message says why."""


def _scripts(text: str) -> set[str]:
    scripts = set()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        for script in ("LATIN", "CYRILLIC", "GREEK", "CJK", "HIRAGANA", "KATAKANA", "HANGUL"):
            if name.startswith(script):
                scripts.add(script)
                break
        else:
            scripts.add("OTHER")
    return scripts


def clean_display_name(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw or "").strip()
    name = re.sub(r"\s+", " ", name)
    if not name:
        raise BadValue("empty")
    if len(name) > 40:
        raise BadValue("too_long")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise BadValue("invisible")
    scripts = _scripts(name)
    if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
        raise BadValue("mixed_scripts")
    if name_skeleton(name) in _RESERVED:
        raise BadValue("reserved")
    return name


def name_skeleton(name: str) -> str:
    """The key under which two display names count as the same name."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = "".join(ch for ch in folded if not ch.isspace() and ch not in "._-·")
    return folded.translate(_CONFUSABLES)


# What deleted accounts are shown as (community/privacy.py), in every language: nobody may
# take it as their name and pass for a deleted member.
_RESERVED = frozenset(name_skeleton(n) for n in ("former resident", "已注销居民"))


def normalize_phone(raw: str) -> str:
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if digits.startswith("+"):
        if not re.fullmatch(r"\+[1-9]\d{6,14}", digits):
            raise BadValue("phone")
        return digits
    if not re.fullmatch(r"\d{6,15}", digits):
        raise BadValue("phone")
    return digits


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def normalize_email(raw: str) -> str:
    email = (raw or "").strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise BadValue("email")
    # Stored lower-case: "Wang.Fang@Example.COM" and "wang.fang@example.com" are one person.
    return email.lower()


def split_contact(raw: str) -> tuple[str | None, str | None]:
    """Read a login or registration contact as (phone, email)."""
    value = (raw or "").strip()
    if "@" in value:
        return None, normalize_email(value)
    return normalize_phone(value), None


def unit_key(unit: str) -> str:
    """Units typed differently ("3栋502", "3 栋 502") are the same household."""
    text = unicodedata.normalize("NFKC", unit or "").casefold()
    return re.sub(r"[\s,，.。·\-_/#]", "", text)
