"""Backups and restores (issue 5): `flask backup` while the site runs, `flask restore` into
a fresh install, which then holds the same rows and photos and passes the ballot and audit
verifiers; what a restore refuses (a site with data, a damaged archive, another site's key)
it refuses before changing anything. On SQLite, and on PostgreSQL with TEST_DATABASE_URL."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import tarfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from community import audit
from crypto import passwords
from tests.ballots import conftest as rounds
from tests.ballots.conftest import T0, close
from tests.conftest import (
    IsolatedClient,
    _empty_postgres,
    _migrate,
    drop_postgres_database,
    login,
    new_postgres_database,
)

DURING = T0 + timedelta(hours=1)
PASSPHRASE = "staple battery horse correct"

# The voting rounds' fixtures (tests/ballots/conftest.py): Sunny Garden and its rounds.
estate = rounds.estate
make_round = rounds.make_round


@pytest.fixture
def app_config(app_config):
    # The passphrase's Argon2id cost: the smallest, as for passwords in tests.
    return dict(app_config, BACKUP_PASSPHRASE_COST=passwords.MINIMAL)


# ---------------------------------------------------------------- a second, fresh install


@pytest.fixture(scope="session")
def fresh_database(database_template):
    """An empty, migrated database for the install a backup is restored into."""
    if database_template["kind"] != "postgresql":
        yield database_template
        return
    url = make_url(database_template["uri"])
    name = f"{url.database}_restore"
    uri = new_postgres_database(url, name)
    _migrate(uri, database_template["instance"])
    yield {"kind": "postgresql", "uri": uri}
    drop_postgres_database(url, name)


@pytest.fixture
def fresh_site(fresh_database, app_config, tmp_path):
    """A factory: a new install (empty database, no uploads) with the same configuration
    as the test's site unless overridden."""
    from app import create_app
    from web.extensions import db

    if fresh_database["kind"] == "postgresql":
        _empty_postgres(fresh_database["uri"])
        uri = fresh_database["uri"]
    else:
        target = tmp_path / "fresh" / "yishi.db"
        target.parent.mkdir()
        shutil.copyfile(fresh_database["path"], target)
        uri = f"sqlite:///{target}"
    made = []

    def factory(**overrides):
        config = dict(
            app_config, SQLALCHEMY_DATABASE_URI=uri, UPLOAD_DIR=str(tmp_path / "fresh-uploads")
        )
        site = create_app(dict(config, **overrides))
        site.test_client_class = IsolatedClient
        made.append(site)
        return site

    yield factory
    for site in made:
        with site.app_context():
            db.session.remove()
            db.engine.dispose()


def invoke(site, *args):
    """Run a `flask` command on a site, as an operator would in a shell of its own."""
    from web.extensions import db

    db.session.commit()  # the test's own transaction must not hold a lock the command needs
    with site.app_context():  # the command's own context (it would use an active one)
        result = site.test_cli_runner().invoke(args=[str(a) for a in args])
        db.session.remove()
    return result


def archive_in(folder: Path) -> Path:
    (found,) = folder.glob("yishi-backup-*.tar.gz")
    return found


# ---------------------------------------------------------------- reading a site


def table_rows(site) -> dict[str, list[tuple]]:
    """Every row of every table of the site's models, in key order."""
    from web.extensions import db

    with site.app_context():
        rows = {}
        for table in db.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [
                tuple(r) for r in db.session.execute(select(table).order_by(*order))
            ]
        db.session.remove()
    return rows


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def count(site, model) -> int:
    from web.extensions import db

    with site.app_context():
        found = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
    return found


# ---------------------------------------------------------------- a site with some history


def cast_now(db, user, round_, choice: str):
    from ballots import services

    ballot = services.cast_ballot(user, round_, {"q1": [choice]}, services.new_nonce(), now=DURING)
    db.session.commit()
    return ballot


def paper_ballot(db, committee, round_, voter_user, choice: str):
    from ballots import services
    from ballots.models import Voter

    voter = db.session.scalar(
        select(Voter).where(Voter.round_id == round_.id, Voter.slot == f"u:{voter_user.id}")
    )
    ballot = services.record_paper_ballot(
        committee,
        round_,
        voter.id,
        {"q1": [choice]},
        channel="paper",
        witness="Neighbour Li",
        nonce=services.new_nonce(),
        now=DURING,
    )
    db.session.commit()
    return ballot


@pytest.fixture
def history(db, estate, make_round, login_as, app):
    """Sunny Garden after a tallied round (online and paper ballots), with a second round
    open, a proposal with a photo, and the audit log's head signed for the day. Returns the
    login of the photo's author."""
    from tests.deliberation.test_uploads import image, submit

    first = make_round()
    for voter, choice in zip(estate.voters[:3], ("yes", "yes", "no"), strict=True):
        cast_now(db, voter, first, choice)
    paper_ballot(db, estate.committee, first, estate.voters[3], "abstain")
    close(db, first)
    second = make_round()
    cast_now(db, estate.voters[0], second, "no")
    author = estate.voters[1]
    response = submit(login_as(author), estate.community, [(image("PNG"), "swing.png")])
    assert response.status_code == 302
    assert audit.sign_daily_head(T0 + timedelta(days=8)) == 1
    db.session.commit()
    return author.phone  # the photo's author logs in with it


# ---------------------------------------------------------------- round trip


def test_restore_brings_a_fresh_install_back_to_the_same_state(
    app, db, history, fresh_site, tmp_path
):
    from deliberation.models import Photo

    backups = tmp_path / "backups"
    backups.mkdir()
    before, uploads = table_rows(app), files_in(Path(app.config["UPLOAD_DIR"]))
    assert len(uploads) == 2  # the photo and its thumbnail
    made = invoke(app, "backup", backups)
    assert made.exit_code == 0, made.output
    archive = archive_in(backups)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert "SECRET_KEY is NOT in the archive" in made.output
    # The site's audit log says a backup was taken (after the snapshot: not in it).
    with app.app_context():
        [taken] = db.session.scalars(
            select(audit.AuditEntry).where(audit.AuditEntry.action == "site.backup")
        ).all()
        assert json.loads(taken.details)["archive"] == archive.name

    fresh = fresh_site()
    restored = invoke(fresh, "restore", archive)

    assert restored.exit_code == 0, restored.output
    assert "OK     audit log:" in restored.output
    assert "OK     round 1 (closed): " in restored.output
    assert "OK     round 2 (open): " in restored.output
    assert "Everything verifies." in restored.output
    assert table_rows(fresh) == before
    assert files_in(Path(fresh.config["UPLOAD_DIR"])) == uploads
    with fresh.app_context():
        photo = db.session.scalar(select(Photo))
        browser = fresh.test_client()
        login(browser, history)  # the password hash came back too
        shown = browser.get(f"/photos/{photo.stored_name}")
        assert shown.status_code == 200
        assert shown.data == uploads[photo.stored_name]
        db.session.remove()


def test_restore_refuses_a_site_with_data_unless_forced(app, db, estate, make_round, tmp_path):
    from ballots.models import Ballot

    round_ = make_round()
    cast_now(db, estate.voters[0], round_, "yes")
    archive = tmp_path / "site.tar.gz"
    assert invoke(app, "backup", archive).exit_code == 0
    cast_now(db, estate.voters[1], round_, "no")  # after the backup

    refused = invoke(app, "restore", archive)

    assert refused.exit_code == 1
    assert "This site is not empty" in refused.output
    assert "--force" in refused.output
    assert count(app, Ballot) == 2, "nothing was changed"

    forced = invoke(app, "restore", archive, "--force")

    assert forced.exit_code == 0, forced.output
    assert count(app, Ballot) == 1, "back to the state of the backup"


# ---------------------------------------------------------------- damaged archives


def rewritten(archive: Path, change) -> Path:
    """A copy of the archive with `change(name, data)` applied to each member's bytes
    (None drops the member); the manifest stays as it was."""
    target = archive.with_name("changed.tar.gz")
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for info in source:
            data = change(info.name, source.extractfile(info).read())
            if data is None:
                continue
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target


def flip_photo(name: str, data: bytes) -> bytes:
    if name.startswith("uploads/") and not name.startswith("uploads/thumb-"):
        return data[:-1] + bytes([data[-1] ^ 1])
    return data


def drop_thumbnail(name: str, data: bytes) -> bytes | None:
    return None if name.startswith("uploads/thumb-") else data


def truncate(archive: Path) -> Path:
    target = archive.with_name("truncated.tar.gz")
    target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: rewritten(a, flip_photo), "does not match its SHA-256 in the manifest"),
        (lambda a: rewritten(a, drop_thumbnail), "is missing"),
        (truncate, "is not a readable Yishi backup"),
    ],
    ids=["changed member", "missing member", "truncated"],
)
def test_a_damaged_archive_is_refused_and_nothing_is_restored(
    app, db, history, fresh_site, tmp_path, damage, message
):
    from community.models import User

    archive = tmp_path / "site.tar.gz"
    assert invoke(app, "backup", archive).exit_code == 0
    fresh = fresh_site()

    refused = invoke(fresh, "restore", damage(archive))

    assert refused.exit_code == 1
    assert message in refused.output
    assert "Nothing was restored" in refused.output or "not a readable" in refused.output
    assert count(fresh, User) == 0
    assert files_in(Path(fresh.config["UPLOAD_DIR"])) == {}


def test_a_restore_whose_data_does_not_verify_says_so_and_fails(
    app, db, estate, make_round, fresh_site, tmp_path
):
    import json

    from sqlalchemy import update

    from ballots.models import BoardEntry

    round_ = make_round()
    ballot = cast_now(db, estate.voters[0], round_, "yes")
    close(db, round_)
    entry = db.session.scalar(
        select(BoardEntry).where(BoardEntry.round_id == round_.id, BoardEntry.n == ballot.board_n)
    )
    payload = json.loads(entry.payload)
    payload["ballot"]["answers"]["q1"] = ["no"]  # someone changed the ballot in the database
    db.session.execute(
        update(BoardEntry)
        .where(BoardEntry.id == entry.id)
        .values(payload=json.dumps(payload, sort_keys=True, separators=(",", ":")))
    )
    db.session.commit()
    archive = tmp_path / "site.tar.gz"
    assert invoke(app, "backup", archive).exit_code == 0

    restored = invoke(fresh_site(), "restore", archive)

    assert restored.exit_code == 3
    assert f"FAILED round {round_.id} (closed): {ballot.board_n}:" in restored.output
    assert "OK     audit log:" in restored.output
    assert "The restored data does NOT verify." in restored.output


# ---------------------------------------------------------------- the site's key


def test_a_site_with_another_key_is_refused_without_the_backed_up_key(
    app, db, history, fresh_site, tmp_path
):
    from community.models import User

    archive = tmp_path / "site.tar.gz"
    assert invoke(app, "backup", archive).exit_code == 0
    fresh = fresh_site(SECRET_KEY="another-sites-secret-key")

    refused = invoke(fresh, "restore", archive)

    assert refused.exit_code == 1
    assert "SECRET_KEY is not the one the backup was taken with" in refused.output
    assert "The archive holds no key" in refused.output
    assert count(fresh, User) == 0


def test_the_sealed_key_brings_back_a_site_whose_key_was_lost(
    app, db, history, fresh_site, tmp_path, monkeypatch
):
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "site.tar.gz"
    made = invoke(app, "backup", archive, "--passphrase-file", passphrase)
    assert made.exit_code == 0, made.output
    assert "SECRET_KEY is in the archive, sealed" in made.output
    assert app.config["SECRET_KEY"].encode() not in gzip.decompress(archive.read_bytes())
    # A new machine: its install made itself a new key in instance/secret_key.
    instance = tmp_path / "new-instance"
    monkeypatch.setenv("YISHI_INSTANCE_PATH", str(instance))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    fresh = fresh_site(SECRET_KEY=None)
    assert fresh.config["SECRET_KEY"] != app.config["SECRET_KEY"]

    without = invoke(fresh, "restore", archive)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all")
    mistyped = invoke(fresh, "restore", archive, "--passphrase-file", wrong)
    restored = invoke(fresh, "restore", archive, "--passphrase-file", passphrase)

    assert without.exit_code == 1 and "give the backup passphrase" in without.output
    assert mistyped.exit_code == 1 and "does not open" in mistyped.output
    assert restored.exit_code == 0, restored.output
    assert "OK     audit log:" in restored.output  # the daily head's signature checks
    key_file = instance / "secret_key"
    assert key_file.read_text() == app.config["SECRET_KEY"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert fresh_site(SECRET_KEY=None).config["SECRET_KEY"] == app.config["SECRET_KEY"]


# ---------------------------------------------------------------- backup during a burst of votes


class Burst:
    """Threads that keep voting (online re-votes, and the committee re-entering a paper
    ballot, which the audit log records) until stopped; every acknowledged ballot is kept
    with the moment its receipt came back."""

    def __init__(self, app, round_id: int, voters: list[int], committee_id: int, paper_for):
        self.app, self.round_id = app, round_id
        self.stop = threading.Event()
        self.changed = threading.Condition()
        # (when, ballot id, receipt, entered on paper)
        self.acknowledged: list[tuple[float, int, str, bool]] = []
        self.errors: list[BaseException] = []
        jobs = [(self._online, user_id) for user_id in voters]
        jobs.append((self._paper, (committee_id, paper_for)))
        self.threads = [threading.Thread(target=self._run, args=job, daemon=True) for job in jobs]

    def _run(self, job, argument) -> None:
        from ballots.models import Round
        from web.database import write_intent
        from web.extensions import db

        token = write_intent.set(True)  # like a POST request
        try:
            with self.app.app_context():
                n = 0
                while not self.stop.is_set():
                    round_ = db.session.get(Round, self.round_id)
                    ballot = job(db, round_, argument, ("yes", "no", "abstain")[n % 3])
                    paper = job == self._paper
                    with self.changed:
                        self.acknowledged.append(
                            (time.monotonic(), ballot.id, ballot.receipt, paper)
                        )
                        self.changed.notify_all()
                    n += 1
                db.session.remove()
        except BaseException as error:  # reported by the test
            self.errors.append(error)
            with self.changed:
                self.changed.notify_all()
        finally:
            write_intent.reset(token)

    @staticmethod
    def _online(db, round_, user_id, choice):
        from community.models import User

        return cast_now(db, db.session.get(User, user_id), round_, choice)

    @staticmethod
    def _paper(db, round_, users, choice):
        from community.models import User

        committee, voter = (db.session.get(User, i) for i in users)
        return paper_ballot(db, committee, round_, voter, choice)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_for(self, count: int, after: float = 0.0, papers: int = 0) -> None:
        """Until `count` ballots (`papers` of them on paper) were acknowledged after `after`."""

        def enough() -> bool:
            later = [paper for when, _id, _receipt, paper in self.acknowledged if when > after]
            return len(later) >= count and sum(later) >= papers

        with self.changed:
            done = self.changed.wait_for(lambda: self.errors or enough(), timeout=60)
        assert done and not self.errors, self.errors or "the burst stalled"

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), "a voting thread hung"
        assert not self.errors, self.errors


def test_a_backup_taken_during_a_burst_of_votes_keeps_every_acknowledged_ballot(
    app, db, estate, make_round, make_member, fresh_site, tmp_path
):
    from ballots import services
    from ballots.models import Ballot, Round

    paper_voter = make_member(estate.community, role="owner", name="Grandpa Zhao")
    round_ = make_round()
    burst = Burst(
        app, round_.id, [v.id for v in estate.voters], estate.committee.id, paper_voter.id
    )
    archive = tmp_path / "during.tar.gz"
    burst.start()
    try:
        burst.wait_for(10, papers=1)
        started = time.monotonic()
        with burst.changed:
            before = list(burst.acknowledged)
        made = invoke(app, "backup", archive)
        finished = time.monotonic()
        burst.wait_for(5, after=finished)  # the votes went on past the backup
    finally:
        burst.finish()
    assert made.exit_code == 0, made.output
    assert all(when < started for when, *_ in before) and len(before) >= 10
    papers_before = sum(paper for *_, paper in before)

    fresh = fresh_site()
    restored = invoke(fresh, "restore", archive)

    assert restored.exit_code == 0, restored.output
    assert f"OK     round {round_.id} (open): " in restored.output
    assert "OK     audit log:" in restored.output
    assert "Everything verifies." in restored.output
    with fresh.app_context():
        restored_round = db.session.get(Round, round_.id)
        stored = {b.id: b.receipt for b in db.session.scalars(select(Ballot))}
        missing = [
            ballot_id for _when, ballot_id, receipt, _ in before if stored.get(ballot_id) != receipt
        ]
        assert not missing, f"acknowledged before the backup, missing after restore: {missing}"
        for _when, _ballot_id, receipt, _paper in before:
            assert services.check_receipt(restored_round, receipt).ok
        entered = db.session.scalar(
            select(func.count(audit.AuditEntry.n)).where(
                audit.AuditEntry.action == "round.ballot_entered"
            )
        )
        assert entered >= papers_before >= 1  # each paper ballot is in the audit log
        db.session.remove()
    assert count(app, Ballot) > len(stored), "some ballots came after the snapshot"


def test_the_archive_lists_what_it_holds(app, db, history, tmp_path):
    import json

    from ballots.models import Ballot

    archive = tmp_path / "site.tar.gz"
    assert invoke(app, "backup", archive).exit_code == 0

    with tarfile.open(archive) as members:
        names = members.getnames()
        manifest = json.loads(members.extractfile("manifest.json").read())

    assert manifest["format"] == "yishi-backup" and manifest["version"] == 1
    assert manifest["engine"] == db.engine.dialect.name
    assert manifest["created_at"].endswith("Z")
    assert manifest["alembic_revision"]
    assert manifest["tables"]["ballots"] == count(app, Ballot)
    assert manifest["site_key"] == audit.site_public_key()
    assert manifest["keys"] is None
    assert sorted(manifest["members"]) == sorted(n for n in names if n != "manifest.json")
    assert all(len(m["sha256"]) == 64 for m in manifest["members"].values())
