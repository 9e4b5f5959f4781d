"""Photos attached to proposals, through the form: checked by content, stored under the
configured upload directory with random names, served with the right type, nosniff and a
restrictive CSP, and only to those who may read the proposal (RELIABILITY.md T32). What
is refused is refused cleanly: 400 with a message, nothing stored, the typed text kept."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import select

from deliberation import services
from deliberation.models import Photo, Proposal
from tests.conftest import post_form
from tests.deliberation.test_photos import located_exif, png_claiming
from tests.deliberation.test_proposals import (
    assert_inert,
    build_compound,
    count,
)
from web.extensions import db

FIELDS = {
    "title": "Broken swing in the playground",
    "body": "The chain of the **left swing** is broken.",
    "category": "elderly_children",
    "action": "publish",
}


@pytest.fixture
def compound(make_community):
    return build_compound(make_community)


def image(format: str, size=(640, 480), color="tomato", **options) -> bytes:
    output = BytesIO()
    Image.new("RGB", size, color).save(output, format, **options)
    return output.getvalue()


def submit(client, community, files: list[tuple[bytes, str]], **fields):
    path = f"/c/{community.id}/proposals/new"
    data = dict(FIELDS, **fields)
    data["photos"] = [(BytesIO(content), name) for content, name in files]
    return post_form(client, path, data, token_from=path, content_type="multipart/form-data")


def stored_files(uploads) -> list[str]:
    return sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []


def photos() -> list[Photo]:
    db.session.commit()
    return list(db.session.scalars(select(Photo).order_by(Photo.position)))


# ---------------------------------------------------------------- accepted


def test_photos_are_stored_and_served_to_neighbours(db, compound, make_member, login_as, uploads):
    client = login_as(make_member(compound))
    files = [
        (image("JPEG", exif=located_exif()), "swing.jpg"),
        (image("PNG"), "chain.png"),
        (image("WEBP"), "park.webp"),
    ]
    response = submit(client, compound, files)
    assert response.status_code == 302
    stored = photos()
    assert [(p.mime, p.display_name) for p in stored] == [
        ("image/jpeg", "swing.jpg"),
        ("image/png", "chain.png"),
        ("image/webp", "park.webp"),
    ]
    assert len(stored_files(uploads)) == 6  # each photo and its thumbnail
    proposal = db.session.scalar(select(Proposal))
    neighbour = login_as(make_member(compound))
    text = neighbour.get(f"/p/{proposal.id}").get_data(as_text=True)

    for photo, format in zip(stored, ("JPEG", "PNG", "WEBP"), strict=True):
        assert photo.stored_name not in ("swing.jpg", "chain.png", "park.webp")
        assert f'src="/photos/{photo.stored_name}/thumb"' in text
        assert f'alt="Photo: {photo.display_name}"' in text
        for suffix, longest in (("", 1600), ("/thumb", 320)):
            served = neighbour.get(f"/photos/{photo.stored_name}{suffix}")
            assert served.status_code == 200
            assert served.headers["Content-Type"] == photo.mime
            assert served.headers["X-Content-Type-Options"] == "nosniff"
            policy = served.headers["Content-Security-Policy"]
            assert policy == "default-src 'none'; frame-ancestors 'none'; sandbox"
            assert served.headers["Cache-Control"] == "private, max-age=3600"
            picture = Image.open(BytesIO(served.data))
            assert picture.format == format and max(picture.size) <= longest
            assert not picture.getexif()  # no GPS position or camera left


def test_six_photos_are_accepted_and_seven_refused(db, compound, make_member, login_as, uploads):
    client = login_as(make_member(compound))
    seven = [(image("PNG", size=(40, 30)), f"p{n}.png") for n in range(7)]
    response = submit(client, compound, seven)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Please attach at most 6 photos." in text
    assert "Broken swing in the playground" in text and "left swing" in text
    assert count(Proposal) == 0 and photos() == [] and stored_files(uploads) == []

    assert submit(client, compound, seven[:6]).status_code == 302
    assert [p.position for p in photos()] == list(range(6))


def test_a_png_named_jpg_is_accepted_as_a_png(db, compound, make_member, login_as, uploads):
    client = login_as(make_member(compound))
    assert submit(client, compound, [(image("PNG"), "holiday.jpg")]).status_code == 302
    [photo] = photos()
    assert (photo.mime, photo.display_name) == ("image/png", "holiday.jpg")
    assert photo.stored_name.endswith(".png")
    served = client.get(f"/photos/{photo.stored_name}")
    assert served.headers["Content-Type"] == "image/png"


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("content", "name", "why"),
    [
        (b"Dear committee, this is not a photo.", "letter.jpg", "is not a photo"),
        (image("GIF"), "animation.jpg", "is not a JPEG, PNG or WebP photo"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * (8 * 1024 * 1024 + 16), "huge.jpg", "is larger than 8 MB"),
        (png_claiming(50000, 50000), "bomb.png", "has too many pixels"),
        (image("JPEG")[:200], "cut.jpg", "is damaged or incomplete"),
    ],
    ids=["text", "gif", "oversized", "bomb", "truncated"],
)
def test_bad_files_are_refused_cleanly_and_the_text_is_kept(
    db, compound, make_member, login_as, uploads, content, name, why
):
    client = login_as(make_member(compound))
    files = [(image("PNG"), "good.png"), (content, name)]
    response = submit(client, compound, files)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f"The file &#34;{name}&#34; {why}. Please choose your photos again." in text
    assert 'value="Broken swing in the playground"' in text
    assert "The chain of the **left swing** is broken." in text
    assert count(Proposal) == 0 and photos() == [] and stored_files(uploads) == []


def test_hostile_file_names_are_shown_escaped_and_without_their_path(
    db, compound, make_member, login_as, uploads
):
    client = login_as(make_member(compound))
    files = [
        (image("JPEG"), "<img src=x onerror=alert(1)>.jpg"),
        (image("JPEG"), "<script>alert(1)</script>.jpg"),  # the "/" splits it
        (image("JPEG"), "../../etc/passwd"),
        (image("JPEG"), "..\\..\\windows\\win.ini"),
        (image("JPEG"), "evil\u202egpj.exe"),
    ]
    assert submit(client, compound, files).status_code == 302
    names = [p.display_name for p in photos()]
    assert names[:3] == ["<img src=x onerror=alert(1)>.jpg", "script>.jpg", "passwd"]
    assert names[4] == "evilgpj.exe"  # without the right-to-left override
    assert not any(separator in name for name in names for separator in "/\\")
    assert all(len(p.stored_name) == 36 for p in photos())  # 32 hex digits and an extension
    assert all("/" not in f and ".." not in f for f in stored_files(uploads))
    assert not (uploads.parent / "etc").exists()

    proposal = db.session.scalar(select(Proposal))
    text = client.get(f"/p/{proposal.id}").get_data(as_text=True)
    assert 'alt="Photo: &lt;img src=x onerror=alert(1)&gt;.jpg"' in text
    assert 'alt="Photo: passwd"' in text and "etc/passwd" not in text
    assert_inert(text, "photo names")


def test_a_refused_file_with_a_hostile_name_is_named_escaped(
    db, compound, make_member, login_as, uploads
):
    client = login_as(make_member(compound))
    response = submit(client, compound, [(b"not a photo", "<img src=x onerror=alert(1)>.jpg")])
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in text
    assert_inert(text, "refusal message")


# ---------------------------------------------------------------- who may see them (T32)


def test_photos_are_served_only_to_those_who_may_read_the_proposal(
    db, app, compound, make_member, make_user, make_community, login_as, uploads
):
    author = make_member(compound)
    client = login_as(author)
    assert submit(client, compound, [(image("JPEG"), "swing.jpg")]).status_code == 302
    assert submit(client, compound, [(image("PNG"), "d.png")], action="draft").status_code == 302
    published, draft = photos()
    paths = [f"/photos/{p.stored_name}{s}" for p in (published, draft) for s in ("", "/thumb")]

    for reader in (author, make_member(compound), make_member(compound.parent)):
        visible = {path: login_as(reader).get(path).status_code for path in paths[:2]}
        assert visible == dict.fromkeys(paths[:2], 200)
    assert {p: client.get(p).status_code for p in paths[2:]} == dict.fromkeys(paths[2:], 200)

    outsiders = {
        "non-member": make_user(),
        "pending": make_member(compound, status="pending"),
        "other community": make_member(make_community("Maple Court")),
        "neighbour, for the draft": make_member(compound),
    }
    for who, user in outsiders.items():
        outsider = login_as(user)
        checked = paths[2:] if who.endswith("draft") else paths
        assert {p: outsider.get(p).status_code for p in checked} == dict.fromkeys(checked, 404)
    visitor = app.test_client().get(paths[0])
    assert visitor.status_code == 302 and "/auth/login" in visitor.headers["Location"]

    moderator = make_member(compound, role="moderator")
    services.hide_proposal(moderator, published.proposal, "Faces of children")
    db.session.commit()
    assert login_as(make_member(compound)).get(paths[0]).status_code == 404
    # The author and the moderators still see the hidden page, photos included.
    for user in (author, moderator):
        assert login_as(user).get(paths[1]).status_code == 200


@pytest.mark.parametrize(
    "name", ["nothing-here.jpg", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "thumb-x.jpg"]
)
def test_unknown_photo_names_are_404(db, compound, make_member, login_as, name):
    client = login_as(make_member(compound))
    assert client.get(f"/photos/{name}").status_code == 404
