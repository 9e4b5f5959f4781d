"""Secrets at rest (issue 5): the round keys' and custodial credentials' seeds are sealed
with a key derived from SECRET_KEY or read from YISHI_KEY_FILE (crypto/sealed.py,
ballots/keys.py); nothing in the database gives a seed away, a sealed seed opens only in
its own row, a wrong key is an operator's error rather than wrong signatures, revision
0008 seals what was stored in plain text, and a backup brings the key file back. On SQLite,
and on PostgreSQL with TEST_DATABASE_URL."""

from __future__ import annotations

import logging
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from crypto import passwords, sealed
from tests.ballots import conftest as rounds
from tests.ballots.conftest import T0, close, yes_no
from tests.conftest import drop_postgres_database, new_postgres_database

DURING = T0 + timedelta(hours=1)
PASSPHRASE = "staple battery horse correct"

estate = rounds.estate
make_round = rounds.make_round
cast = rounds.cast


def seeds_of(round_) -> dict[str, bytes]:
    """Every seed the site holds for the round, opened through ballots/keys.py, by the
    public key each belongs to (checked against it)."""
    from ballots import keys
    from ballots.models import Credential
    from crypto import board
    from web.extensions import db

    found = {round_.public_key: keys.round_seed(round_)}
    for credential in db.session.scalars(
        select(Credential).where(Credential.round_id == round_.id, Credential.seed.is_not(None))
    ):
        found[credential.public_key] = keys.credential_seed(credential)
    for public_key, seed in found.items():
        assert board.public_key(seed) == public_key
    return found


def all_text(db) -> str:
    """Every value of every row of every table, as text."""
    rows = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            rows.extend(str(value) for value in row)
    return "\n".join(rows)


def raw_seeds(db, round_id: int) -> list[str]:
    """The stored values of the seed columns, as the database holds them."""
    key_seed = db.session.execute(
        text("SELECT key_seed FROM rounds WHERE id = :id"), {"id": round_id}
    ).scalar_one()
    seeds = db.session.execute(
        text("SELECT seed FROM round_credentials WHERE round_id = :id AND seed IS NOT NULL"),
        {"id": round_id},
    ).scalars()
    return [key_seed, *seeds]


def write_key_file(path, key: bytes, form: str = "hex", mode: int = 0o600):
    path.write_bytes(key.hex().encode("ascii") + b"\n" if form == "hex" else key)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- the database holds no seed


def test_no_seed_is_stored_in_plain_text(db, estate, make_round, cast):
    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["no"]})
    cast(estate.voters[1], round_, {"q1": ["yes"]}, now=DURING + timedelta(minutes=5))
    db.session.commit()

    seeds = seeds_of(round_)
    stored = all_text(db)

    assert len(seeds) == 3  # the round key and two custodial credentials
    for seed in seeds.values():
        assert seed.hex() not in stored and seed.hex().upper() not in stored
    values = raw_seeds(db, round_.id)
    assert len(values) == 3 and all(v.startswith("s1:") for v in values)


def test_the_board_of_a_round_closed_after_sealing_verifies(db, estate, make_round, cast):
    from ballots import services
    from crypto.verify import verify_board

    round_ = make_round([yes_no(), yes_no("Plant trees?", rule="two_thirds")])
    first = cast(estate.voters[0], round_, {"q1": ["yes"], "q2": ["no"]})
    cast(estate.voters[1], round_, {"q1": ["no"], "q2": ["yes"]})
    cast(estate.voters[1], round_, {"q1": ["yes"], "q2": ["yes"]}, now=DURING)  # re-vote
    close(db, round_)

    report = verify_board(services.board_document(round_))

    assert report.ok, report.problems
    assert services.check_receipt(round_, first.receipt).ok


# ---------------------------------------------------------------- a seed opens in its row only


def test_a_sealed_seed_does_not_open_in_another_row_or_column(db, estate, make_round, cast):
    from ballots import keys
    from ballots.models import Credential, Round
    from community.sealing import StorageKeyError

    first, second = make_round(), make_round()
    cast(estate.voters[0], first, {"q1": ["yes"]})
    cast(estate.voters[1], first, {"q1": ["no"]})
    credential_a, credential_b = db.session.scalars(
        select(Credential).where(Credential.round_id == first.id).order_by(Credential.id)
    ).all()

    moved = {
        "a round key into another round": (Round, second.id, "key_seed", first.key_seed),
        "a seed into another credential": (Credential, credential_b.id, "seed", credential_a.seed),
        "a credential's seed into a round": (Round, second.id, "key_seed", credential_a.seed),
    }
    for what, (model, row_id, column, value) in moved.items():
        db.session.execute(update(model).where(model.id == row_id).values({column: value}))
        db.session.expire_all()
        with pytest.raises(StorageKeyError, match="does not open") as refused:
            if model is Round:
                keys.round_seed(db.session.get(Round, row_id))
            else:
                keys.credential_seed(db.session.get(Credential, row_id))
        assert "moved from another row" in str(refused.value), what
        db.session.rollback()
    assert keys.round_seed(second)  # as it was


def test_a_sealed_value_is_bound_to_its_place_and_key():
    key, other = sealed.derive_key("one secret"), sealed.derive_key("another secret")
    value = sealed.seal(key, b"\x07" * 32, "rounds.key_seed:ab")

    assert sealed.unseal(key, value, "rounds.key_seed:ab") == b"\x07" * 32
    assert len(value) == 99 and sealed.is_sealed(value)
    for wrong_key, place in [
        (key, "rounds.key_seed:cd"),
        (key, "round_credentials.seed:ab"),
        (other, "rounds.key_seed:ab"),
    ]:
        with pytest.raises(sealed.SealError):
            sealed.unseal(wrong_key, value, place)
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    for damaged in [flipped, value[:20], "s1:not base64!", "07" * 32]:
        with pytest.raises(sealed.SealError):
            sealed.unseal(key, damaged, "rounds.key_seed:ab")
    assert sealed.derive_key("one secret") != sealed.derive_key(b"one secret\x00")


# ---------------------------------------------------------------- the wrong key


def test_a_changed_secret_key_is_a_clear_error_not_a_wrong_signature(
    app, db, estate, make_round, cast
):
    from ballots import services
    from ballots.models import BoardEntry
    from community.sealing import StorageKeyError

    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    entries = db.session.scalar(select(func.count()).select_from(BoardEntry))
    original = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "a-secret-key-that-is-not-the-one"
    try:
        for voter in (estate.voters[0], estate.voters[1]):  # a re-vote, a first ballot
            with pytest.raises(StorageKeyError) as refused:
                cast(voter, round_, {"q1": ["no"]})
            db.session.rollback()
            message = str(refused.value)
            assert "does not open with this site's storage key (from SECRET_KEY" in message
            assert "SECRET_KEY or YISHI_KEY_FILE is not the one it was sealed with" in message
        with pytest.raises(StorageKeyError):
            services.board_document(round_, released_only=False)
        assert db.session.scalar(select(func.count()).select_from(BoardEntry)) == entries
    finally:
        app.config["SECRET_KEY"] = original
    assert cast(estate.voters[1], round_, {"q1": ["no"]}).receipt  # the right key: fine


def test_a_seed_left_in_plain_text_is_refused(db, estate, make_round):
    from ballots import keys
    from ballots.models import Round
    from community.sealing import StorageKeyError

    round_ = make_round(opened=False)
    db.session.execute(update(Round).where(Round.id == round_.id).values(key_seed="00" * 32))
    db.session.expire_all()

    with pytest.raises(StorageKeyError, match="not sealed: run `flask db upgrade`"):
        keys.round_seed(db.session.get(Round, round_.id))


def test_a_seed_written_in_the_clear_by_the_previous_version_still_works(
    db, estate, make_round, cast
):
    """During an upgrade a worker of the previous version may still write a round key in
    the clear, after the migration: the seed of the row's own public key is taken as it
    is, so that round can be voted in and closed."""
    from ballots import keys
    from ballots.models import Round

    round_ = make_round()
    seed = keys.round_seed(round_)
    db.session.execute(update(Round).where(Round.id == round_.id).values(key_seed=seed.hex()))
    db.session.commit()
    db.session.expire_all()
    round_ = db.session.get(Round, round_.id)

    assert keys.round_seed(round_) == seed
    assert cast(estate.voters[0], round_, {"q1": ["yes"]}).receipt
    assert close(db, round_)
    assert round_.status == "closed"


# ---------------------------------------------------------------- YISHI_KEY_FILE


@pytest.mark.parametrize("form", ["hex", "raw"])
def test_the_key_file_takes_precedence_over_secret_key(
    app, db, estate, make_round, cast, tmp_path, form
):
    from ballots import keys
    from community.sealing import StorageKeyError

    key = os.urandom(32)
    app.config["YISHI_KEY_FILE"] = str(write_key_file(tmp_path / "storage.key", key, form))
    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    seeds = seeds_of(round_)

    key_seed, credential_seed = raw_seeds(db, round_.id)
    place = keys.round_place(round_.public_key)
    assert sealed.unseal(key, key_seed, place) == seeds[round_.public_key]
    with pytest.raises(sealed.SealError):
        sealed.unseal(sealed.derive_key(app.config["SECRET_KEY"]), key_seed, place)
    app.config["YISHI_KEY_FILE"] = None  # back to the key derived from SECRET_KEY
    with pytest.raises(StorageKeyError, match="does not open with this site's storage key"):
        keys.round_seed(round_)


def test_a_missing_or_malformed_key_file_is_named(app, db, estate, make_round, tmp_path):
    from community.sealing import StorageKeyError

    app.config["YISHI_KEY_FILE"] = str(tmp_path / "nowhere.key")
    with pytest.raises(StorageKeyError, match="YISHI_KEY_FILE: cannot read the key file"):
        make_round(opened=False)
    db.session.rollback()
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    app.config["YISHI_KEY_FILE"] = str(short)
    with pytest.raises(StorageKeyError, match="must hold 32 random bytes"):
        make_round(opened=False)


def test_a_key_file_others_can_read_is_warned_about(app, db, estate, make_round, tmp_path, caplog):
    path = write_key_file(tmp_path / "storage.key", os.urandom(32), mode=0o644)
    app.config["YISHI_KEY_FILE"] = str(path)

    with caplog.at_level(logging.WARNING, logger="yishi.security"):
        make_round(opened=False)

    assert any("key_file_permissions" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- revision 0008


@pytest.fixture
def scratch(app, app_config, database_template, tmp_path):
    """An app on a database of its own, migrated to the head, its context above the test
    app's (the factories then write to it): the test moves its schema."""
    from flask_migrate import upgrade

    from app import create_app
    from web.extensions import db

    url, name = None, None
    if database_template["kind"] == "postgresql":
        url = make_url(database_template["uri"])
        name = f"{url.database}_sealing"
        uri = new_postgres_database(url, name)
    else:
        uri = f"sqlite:///{tmp_path / 'scratch.db'}"
    site = create_app(dict(app_config, SQLALCHEMY_DATABASE_URI=uri))
    with site.app_context():
        upgrade()
        yield site
        db.session.remove()
        db.engine.dispose()
    if name is not None:
        drop_postgres_database(url, name)


def _revision(db) -> str:
    return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_the_migration_seals_seeds_stored_in_plain_text(
    scratch, make_community, make_member, tmp_path
):
    from decimal import Decimal

    from flask_migrate import downgrade, upgrade

    from ballots import services
    from ballots.models import Round
    from community.models import User
    from crypto.verify import verify_board
    from web.extensions import db

    community = make_community("Riverside")
    committee = make_member(community, role="committee", area=Decimal("90.00"))
    voters = [make_member(community, role="owner", area=Decimal("80.00")) for _ in range(3)]
    draft = services.RoundDraft(
        title="Lift repairs",
        opens_at=T0,
        closes_at=rounds.T1,
        electorate="owners",
        secrecy="secret",
        objection_days=7,
        questions=[yes_no()],
    )
    round_ = services.create_round(committee, community, draft, now=T0 - timedelta(days=1))
    db.session.commit()
    assert services.open_round(round_.id, T0)
    db.session.commit()
    for voter in voters[:2]:
        services.cast_ballot(voter, round_, {"q1": ["yes"]}, services.new_nonce(), now=DURING)
        db.session.commit()
    seeds = seeds_of(round_)
    voter_ids = [voter.id for voter in voters]
    db.session.remove()

    # Revision 0007: the seeds as the code before sealing stored them, 64 hex digits.
    downgrade(revision="0007_privacy")
    assert _revision(db) == "0007_privacy"
    legacy = raw_seeds(db, round_.id)
    assert sorted(legacy) == sorted(seed.hex() for seed in seeds.values())
    db.session.remove()

    upgrade()

    assert _revision(db) == "0008_sealed_secrets"
    if db.engine.dialect.name == "sqlite":  # the tables rebuilt keep every reference
        assert db.session.execute(text("PRAGMA foreign_key_check")).all() == []
    stored = raw_seeds(db, round_.id)
    assert all(value.startswith("s1:") for value in stored)
    everything = all_text(db)
    assert not [seed for seed in seeds.values() if seed.hex() in everything]
    round_ = db.session.get(Round, round_.id)
    assert seeds_of(round_) == seeds
    voters = [db.session.get(User, voter_id) for voter_id in voter_ids]
    services.cast_ballot(voters[0], round_, {"q1": ["no"]}, services.new_nonce(), now=DURING)
    services.cast_ballot(voters[2], round_, {"q1": ["no"]}, services.new_nonce(), now=DURING)
    db.session.commit()
    assert services.close_round(round_.id, rounds.T1)
    db.session.commit()
    report = verify_board(services.board_document(db.session.get(Round, round_.id)))
    assert report.ok, report.problems


def test_the_migration_needs_no_key_when_there_are_no_seeds(scratch, tmp_path):
    from flask_migrate import downgrade, upgrade

    from web.extensions import db

    downgrade(revision="0007_privacy")
    scratch.config["YISHI_KEY_FILE"] = str(tmp_path / "not-there-yet.key")
    db.session.remove()

    upgrade()

    assert _revision(db) == "0008_sealed_secrets"


# ---------------------------------------------------------------- backups carry the key file


def invoke(site, *args):
    """Run a `flask` command on a site, as an operator would in a shell of its own."""
    from web.extensions import db

    db.session.commit()
    with site.app_context():
        result = site.test_cli_runner().invoke(args=[str(a) for a in args])
        db.session.remove()
    return result


def test_a_restore_brings_back_a_lost_key_file(app, db, estate, make_round, cast, tmp_path):
    import json
    import tarfile

    from ballots import keys
    from ballots.models import Ballot, Round

    app.config["BACKUP_PASSPHRASE_COST"] = passwords.MINIMAL
    key = os.urandom(32)
    (tmp_path / "keys").mkdir()
    key_file = write_key_file(tmp_path / "keys" / "storage.key", key)
    app.config["YISHI_KEY_FILE"] = str(key_file)
    round_ = make_round()
    cast(estate.voters[0], round_, {"q1": ["yes"]})
    seeds = seeds_of(round_)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "site.tar.gz"

    made = invoke(app, "backup", archive, "--passphrase-file", passphrase)

    assert made.exit_code == 0, made.output
    assert "SECRET_KEY and the YISHI_KEY_FILE key are in the archive, sealed" in made.output
    with tarfile.open(archive) as opened:
        manifest = json.loads(opened.extractfile("manifest.json").read())
        everything = b"".join(
            opened.extractfile(m).read() for m in opened.getmembers() if m.isfile()
        )
    assert manifest["storage_key"] == {"source": "YISHI_KEY_FILE", "id": sealed.key_id(key)}
    assert key.hex().encode() not in everything and key not in everything

    cast(estate.voters[1], round_, {"q1": ["no"]})  # after the backup
    key_file.unlink()  # the machine is lost; a new one has no key file yet
    without = invoke(app, "restore", archive, "--force")
    assert without.exit_code == 1
    assert "is missing; the archive holds its key sealed" in without.output
    assert db.session.scalar(select(func.count()).select_from(Ballot)) == 2, "nothing changed"

    restored = invoke(app, "restore", archive, "--force", "--passphrase-file", passphrase)

    assert restored.exit_code == 0, restored.output
    assert "Put the backed-up storage key in YISHI_KEY_FILE." in restored.output
    assert sealed.read_key_file(key_file) == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    round_ = db.session.get(Round, round_.id)
    assert db.session.scalar(select(func.count()).select_from(Ballot)) == 1
    assert keys.round_seed(round_) == seeds[round_.public_key]
    assert cast(estate.voters[1], round_, {"q1": ["no"]}).receipt

    write_key_file(key_file, os.urandom(32))  # someone else's key in the file
    other = invoke(app, "restore", archive, "--force", "--passphrase-file", passphrase)
    assert other.exit_code == 1
    assert "holds another key" in other.output
    app.config["YISHI_KEY_FILE"] = None
    unset = invoke(app, "restore", archive, "--force", "--passphrase-file", passphrase)
    assert unset.exit_code == 1 and "set YISHI_KEY_FILE" in unset.output
