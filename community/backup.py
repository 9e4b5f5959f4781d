"""Backups and restores (docs/operations.md, "Backups"): `flask backup` writes one
tar.gz archive with a consistent snapshot of the database (SQLite's online backup API;
`pg_dump` from an exported snapshot on PostgreSQL), the uploaded photos and, sealed with
a passphrase when one is given, the site's SECRET_KEY (and the YISHI_KEY_FILE key, when the
site seals its secrets at rest with one); `manifest.json` (the last member)
lists the format, the schema revision, the row count of every table and the SHA-256 of
every member. `flask restore` checks all of that before it changes anything, restores,
compares the row counts, and runs the audit verifier and every verifier connected to
`restored` (the ballots package checks each round's board)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from blinker import Namespace
from flask import current_app
from nacl import pwhash
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from nacl.utils import random as random_bytes
from sqlalchemy.engine import make_url

from community import audit, sealing
from crypto import passwords, sealed
from web.database import begin_writing, read_only
from web.extensions import db

FORMAT = "yishi-backup"
VERSION = 1
MANIFEST = "manifest.json"
DATABASE = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
SEALED_KEYS = "keys.sealed"
UPLOADS = "uploads/"

# The passphrase that seals SECRET_KEY is stretched with Argon2id at libsodium's
# "moderate" cost (256 MiB, once per backup or restore); BACKUP_PASSPHRASE_COST overrides.
MODERATE = passwords.Cost(pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE)
_MOST = passwords.Cost(pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE)

# Sent after a restore, with the application as sender. A receiver checks what its package
# can check on the restored data and returns a list of `Verification`.
restored = Namespace().signal("backup-restored")


class BackupError(Exception):
    """A backup or restore refused, with what to do about it; nothing was changed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Verification:
    name: str
    ok: bool
    detail: str


@dataclass
class Backup:
    path: Path
    manifest: dict


@dataclass
class Restore:
    manifest: dict
    upgraded_to: str | None = None  # the schema revision after `db upgrade`, if it ran
    key_installed: bool = False  # SECRET_KEY was unsealed into instance/secret_key
    key_file_installed: bool = False  # the storage key was unsealed into YISHI_KEY_FILE
    checks: list[Verification] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


# ---------------------------------------------------------------- where things are


def upload_dir() -> Path:
    """The uploaded photos (the folder deliberation's views write to)."""
    configured = current_app.config.get("UPLOAD_DIR")
    return Path(configured or Path(current_app.instance_path) / "uploads")


def _engine_name() -> str:
    name = db.engine.dialect.name
    if name not in DATABASE:
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {name}.")
    return name


def _sqlite_path() -> Path:
    database = db.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("The SQLite database must be a file to be backed up or restored.")
    return Path(database)


def _key_file() -> Path:
    return Path(current_app.instance_path) / "secret_key"  # where app.py keeps a made key


def _site_secrets() -> dict:
    """What the site cannot run (or verify its audit log, or open its sealed round keys)
    without, besides the database."""
    found = {"SECRET_KEY": current_app.config["SECRET_KEY"]}
    if sealing.key_file():
        found[sealing.KEY_FILE] = _storage_key().hex()
    return found


def _storage_key() -> bytes:
    try:
        return sealing.storage_key()
    except sealing.StorageKeyError as error:
        raise BackupError(str(error)) from error


def _storage_key_about() -> dict:
    """Where the key that seals the database's secrets comes from, and its fingerprint."""
    return {"source": sealing.key_source(), "id": sealed.key_id(_storage_key())}


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- reading a database


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_names(run, engine: str) -> list[str]:
    if engine == "sqlite":  # real tables only: not sqlite_*, not full-text tables
        # (sqlite_master, not PRAGMA table_list: SQLite before 3.37 ignores that pragma
        # and would report an empty database)
        rows = run("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
        return sorted(
            n
            for n, _sql in rows
            if not n.startswith("sqlite_")
            and n not in virtual
            and not any(n.startswith(f"{v}_") for v in virtual)
        )
    rows = run("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return sorted(r[0] for r in rows)


def _table_counts(run, engine: str) -> dict[str, int]:
    """Rows per table; `run(sql)` returns the rows of a statement."""
    return {
        name: run(f"SELECT count(*) FROM {_quoted(name)}")[0][0]  # noqa: S608  (catalog names)
        for name in _table_names(run, engine)
    }


def _revision(run, counts: dict) -> str | None:
    if "alembic_version" not in counts:
        return None
    rows = run("SELECT version_num FROM alembic_version")
    return rows[0][0] if rows else None


def _live_counts() -> dict[str, int]:
    engine = _engine_name()
    db.session.remove()
    with read_only(), db.engine.connect() as connection:
        counts = _table_counts(lambda sql: connection.exec_driver_sql(sql).fetchall(), engine)
        connection.rollback()
    return counts


# ---------------------------------------------------------------- PostgreSQL tools


def _pg_program(name: str) -> str:
    # PG_DUMP / PG_RESTORE in the configuration, else the one on PATH.
    found = current_app.config.get(name.upper()) or shutil.which(name) or f"/usr/bin/{name}"
    if not Path(found).is_file():
        raise BackupError(f"{name} was not found: install the PostgreSQL client programs.")
    return found


def _pg_connection_args() -> tuple[list[str], dict]:
    """Host, port, user and database of the site's URL as libpq arguments; the password
    (and sslmode) go through the environment, never the command line."""
    url = make_url(db.engine.url.render_as_string(hide_password=False))
    args = ["--no-password"]
    host = url.host or url.query.get("host")
    if host:
        args += ["--host", str(host)]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    args += ["--dbname", url.database or ""]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if url.query.get("sslmode"):
        env["PGSSLMODE"] = str(url.query["sslmode"])
    return args, env


def _run(command: list[str], env: dict, what: str) -> None:
    finished = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603
    if finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {' / '.join(lines[-3:]) or finished.returncode}")


# ---------------------------------------------------------------- snapshots


def _snapshot_sqlite(target: Path) -> tuple[dict, str | None]:
    """SQLite's online backup API: one step, under one read transaction, so the copy is
    the database as of one instant while writers go on (WAL)."""
    timeout = current_app.config.get("SQLITE_BUSY_TIMEOUT_MS", 5000) / 1000
    path = _sqlite_path()
    if not path.is_file():
        raise BackupError(f"There is no database at {path}.")
    with (
        closing(sqlite3.connect(path, timeout=timeout)) as source,
        closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        counts = _table_counts(lambda sql: copy.execute(sql).fetchall(), "sqlite")
        revision = _revision(lambda sql: copy.execute(sql).fetchall(), counts)
    return counts, revision


def _snapshot_postgresql(target: Path) -> tuple[dict, str | None]:
    """pg_dump reads the snapshot of a repeatable-read transaction that stays open while
    it runs; the counts and the revision are read in that transaction too."""
    program = _pg_program("pg_dump")
    args, env = _pg_connection_args()
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()

            def run(sql):
                return connection.exec_driver_sql(sql).fetchall()

            counts = _table_counts(run, "postgresql")
            revision = _revision(run, counts)
            command = [program, "--format=custom", f"--snapshot={snapshot}", "--file", str(target)]
            _run(command + args, env, "pg_dump")
    return counts, revision


# ---------------------------------------------------------------- sealing the keys


def _passphrase_key(passphrase: bytes, salt: bytes, cost: passwords.Cost) -> bytes:
    return pwhash.argon2id.kdf(
        SecretBox.KEY_SIZE, passphrase, salt, opslimit=cost.opslimit, memlimit=cost.memlimit
    )


def _seal(secrets_: dict, passphrase: bytes) -> tuple[bytes, dict]:
    cost = current_app.config.get("BACKUP_PASSPHRASE_COST") or MODERATE
    salt = random_bytes(pwhash.argon2id.SALTBYTES)
    box = SecretBox(_passphrase_key(passphrase, salt, cost))
    sealed = box.encrypt(json.dumps(secrets_, sort_keys=True).encode("utf-8"))
    about = {
        "member": SEALED_KEYS,
        "cipher": "xsalsa20poly1305",
        "kdf": "argon2id",
        "salt": salt.hex(),
        "opslimit": cost.opslimit,
        "memlimit": cost.memlimit,
    }
    return bytes(sealed), about


def _unseal(sealed: bytes, about: dict, passphrase: bytes) -> dict:
    try:
        cost = passwords.Cost(int(about["opslimit"]), int(about["memlimit"]))
        salt = bytes.fromhex(about["salt"])
    except (KeyError, TypeError, ValueError) as error:
        raise BackupError("The manifest's description of the sealed keys is damaged.") from error
    if cost.opslimit > _MOST.opslimit or cost.memlimit > _MOST.memlimit:
        raise BackupError("The sealed keys ask for an unreasonable passphrase cost.")
    try:
        box = SecretBox(_passphrase_key(passphrase, salt, cost))
        return json.loads(box.decrypt(sealed))
    except (CryptoError, ValueError) as error:
        raise BackupError(
            "The passphrase does not open the archive's sealed keys. Nothing was restored."
        ) from error


# ---------------------------------------------------------------- writing an archive


def default_name(now: datetime) -> str:
    return f"yishi-backup-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


class _Writer:
    """Members are added with their SHA-256 noted for the manifest."""

    def __init__(self, archive: tarfile.TarFile, mtime: float):
        self.archive = archive
        self.mtime = mtime
        self.members: dict[str, dict] = {}

    def add_bytes(self, name: str, data: bytes, *, listed: bool = True) -> None:
        self._add(name, io.BytesIO(data), len(data))
        if listed:
            self.members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def add_file(self, name: str, path: Path) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        size = path.stat().st_size
        with path.open("rb") as handle:
            self._add(name, handle, size)
        self.members[name] = {"sha256": digest.hexdigest(), "size": size}

    def _add(self, name: str, handle, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, self.mtime
        self.archive.addfile(info, handle)


def _upload_files(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found.append((PurePosixPath(*path.relative_to(root).parts).as_posix(), path))
    return found


def create_backup(
    target: Path, *, passphrase: bytes | None = None, now: datetime | None = None
) -> Backup:
    """Write the archive to `target` (or a dated file inside it, when it is a folder).
    The file is only ever readable by its owner (mode 0600): it holds every member's
    personal data and the round keys."""
    now = now or datetime.now(UTC)
    engine = _engine_name()
    storage_key = _storage_key_about()  # refused early when the site has no key to name
    target = Path(target)
    if target.is_dir():
        target = target / default_name(now)
    if target.exists():
        raise BackupError(f"{target} already exists; a backup never overwrites a file.")
    if not target.parent.is_dir():
        raise BackupError(f"There is no folder {target.parent}.")
    db.session.remove()  # no transaction of this process stays open around the snapshot
    work = Path(tempfile.mkdtemp(prefix=".yishi-backup-", dir=target.parent))
    partial = work / "archive.tar.gz"
    try:
        snapshot = work / DATABASE[engine]
        snapshot_of = _snapshot_sqlite if engine == "sqlite" else _snapshot_postgresql
        counts, revision = snapshot_of(snapshot)
        keys = None
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:
                writer = _Writer(archive, now.timestamp())
                writer.add_file(DATABASE[engine], snapshot)
                if passphrase:
                    sealed, keys = _seal(_site_secrets(), passphrase)
                    writer.add_bytes(SEALED_KEYS, sealed)
                # After the snapshot: every photo its rows name was written before they
                # were committed, so it is here (photos are never changed once written).
                uploads = _upload_files(upload_dir())
                for name, path in uploads:
                    with suppress(FileNotFoundError):
                        writer.add_bytes(UPLOADS + name, path.read_bytes())
                manifest = {
                    "format": FORMAT,
                    "version": VERSION,
                    "created_at": _now_text(now),
                    "engine": engine,
                    "alembic_revision": revision,
                    "site_key": audit.site_public_key(),
                    "storage_key": storage_key,
                    "keys": keys,
                    "tables": counts,
                    "uploads": sum(1 for n in writer.members if n.startswith(UPLOADS)),
                    "members": writer.members,
                }
                text = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=True)
                writer.add_bytes(MANIFEST, text.encode("ascii") + b"\n", listed=False)
            raw.flush()
            os.fsync(raw.fileno())
        try:
            os.link(partial, target)  # fails, unlike a rename, when the name was taken
        except FileExistsError as error:
            raise BackupError(
                f"{target} already exists; a backup never overwrites a file."
            ) from error
        except OSError:  # no hard links on this file system
            os.replace(partial, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # An archive is an export of every member's personal data: the audit log says when it
    # was taken and which file it is (after the snapshot, so not in it).
    db.session.remove()
    begin_writing()  # SQLite: with the write lock from the start, as the site's writers
    audit.record(
        "site.backup",
        details={
            "archive": target.name,
            "sha256": _file_sha256(target),
            "rows": sum(counts.values()),
            "sealed_keys": bool(keys),
        },
        now=now,
    )
    db.session.commit()
    return Backup(target, manifest)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading an archive


def _member_name(name: str) -> str | None:
    """The member's name when it is one a Yishi archive may hold, else None."""
    if name in (MANIFEST, SEALED_KEYS, *DATABASE.values()):
        return name
    if not name.startswith(UPLOADS):
        return None
    parts = PurePosixPath(name[len(UPLOADS) :]).parts
    if not parts or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        return None
    if name != UPLOADS + "/".join(parts):
        return None
    return name


def _damaged(detail: str) -> BackupError:
    return BackupError(f"The archive is damaged: {detail}. Nothing was restored.")


def _copy_hashing(handle, path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
            out.write(block)
    return digest.hexdigest(), size


def _unpack(source: Path, work: Path) -> tuple[dict, dict[str, Path]]:
    """Extract every member into `work`, check them against the manifest, return both."""
    manifest_bytes = None
    found: dict[str, tuple[Path, str, int]] = {}
    try:
        with tarfile.open(source, mode="r:gz") as archive:
            for info in archive:
                name = _member_name(info.name)
                if name is None or not info.isreg():
                    raise _damaged(f"it holds an unexpected member {info.name!r}")
                if name in found or (name == MANIFEST and manifest_bytes is not None):
                    raise _damaged(f"{name} is in it twice")
                if name == MANIFEST:
                    manifest_bytes = archive.extractfile(info).read(16 << 20)
                    continue
                path = work / f"{len(found)}"
                found[name] = (path, *_copy_hashing(archive.extractfile(info), path))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise BackupError(f"There is no file {source}.") from error
        raise BackupError(f"{source} is not a readable Yishi backup ({error}).") from error
    if manifest_bytes is None:
        raise BackupError(f"{source} is not a Yishi backup: it has no {MANIFEST}.")
    try:
        manifest = json.loads(manifest_bytes)
        members = manifest["members"]
        if manifest.get("format") != FORMAT or not isinstance(members, dict):
            raise ValueError("not the Yishi backup format")
    except (ValueError, KeyError, TypeError) as error:
        raise _damaged(f"its {MANIFEST} cannot be read ({error})") from error
    if manifest.get("version") != VERSION:
        raise BackupError(
            f"This archive has format version {manifest.get('version')!r}; this Yishi reads "
            f"version {VERSION}. Nothing was restored."
        )
    missing, extra = sorted(set(members) - set(found)), sorted(set(found) - set(members))
    if missing:
        raise _damaged(f"{missing[0]} is missing")
    if extra:
        raise _damaged(f"{extra[0]} is not in the manifest")
    for name, (_path, sha256, size) in sorted(found.items()):
        expected = members[name]
        if not isinstance(expected, dict) or expected.get("sha256") != sha256:
            raise _damaged(f"{name} does not match its SHA-256 in the manifest")
        if expected.get("size") != size:
            raise _damaged(f"{name} does not have the size the manifest gives")
    return manifest, {name: path for name, (path, _sha, _size) in found.items()}


# ---------------------------------------------------------------- restoring


def _schema_revisions() -> tuple[set[str], set[str]]:
    """All revisions this install's migrations know, and their heads."""
    from alembic.script import ScriptDirectory

    config = current_app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    return {r.revision for r in script.walk_revisions()}, set(script.get_heads())


def _has_data() -> str | None:
    """What this install already holds, in words, or None when it is fresh."""
    counts = _live_counts()
    rows = sum(n for table, n in counts.items() if table != "alembic_version")
    if rows:
        return f"its database has {rows} rows"
    if _upload_files(upload_dir()):
        return f"{upload_dir()} holds files"
    return None


def _key_to_install(manifest: dict, members: dict, passphrase: bytes | None) -> dict | None:
    """None when this site's SECRET_KEY is the backed-up one; the unsealed secrets when the
    archive holds them and this site's key may be replaced; else a refusal."""
    expected = manifest.get("site_key")
    if expected == audit.site_public_key():
        return None
    mismatch = (
        f"This site's SECRET_KEY is not the one the backup was taken with (its site key is "
        f"{expected}, this site's is {audit.site_public_key()})."
    )
    about = manifest.get("keys")
    if not about:
        raise BackupError(
            f"{mismatch} The archive holds no key: start the site with the backed-up "
            "SECRET_KEY (in the environment or instance/secret_key) and restore again. "
            "Nothing was restored."
        )
    if not passphrase:
        raise BackupError(
            f"{mismatch} The archive holds it sealed: give the backup passphrase "
            "(--passphrase-file). Nothing was restored."
        )
    secrets_ = _unseal(members[SEALED_KEYS].read_bytes(), about, passphrase)
    from crypto import audit as chain

    if chain.public_key(chain.site_seed(secrets_.get("SECRET_KEY", ""))) != expected:
        raise _damaged("the sealed SECRET_KEY is not the manifest's site key")
    if os.environ.get("SECRET_KEY"):
        raise BackupError(
            f"{mismatch} SECRET_KEY is set in the environment: set it to the backed-up key "
            "or unset it (the restore then puts the sealed key in instance/secret_key). "
            "Nothing was restored."
        )
    key_file = _key_file()
    if not key_file.is_file() or key_file.read_text().strip() != current_app.config["SECRET_KEY"]:
        raise BackupError(
            f"{mismatch} SECRET_KEY is given in the configuration: give the backed-up one "
            "there. Nothing was restored."
        )
    return secrets_


def _key_file_to_install(
    manifest: dict, members: dict, passphrase: bytes | None, secrets_: dict | None
) -> bytes | None:
    """None when this site opens the backup's sealed secrets with its own key (derived from
    the SECRET_KEY checked above, or in its YISHI_KEY_FILE); the key to write to
    YISHI_KEY_FILE when that file is missing and the archive holds the key sealed; else a
    refusal. Archives taken before secrets were sealed need nothing: `db upgrade` seals
    them with this site's key."""
    about = manifest.get("storage_key")
    if not about:
        return None
    path = sealing.key_file()
    if about.get("source") != sealing.KEY_FILE:
        if path:
            raise BackupError(
                "The backup's secrets are sealed with a key derived from SECRET_KEY, and this "
                "site reads YISHI_KEY_FILE: unset it and restore again. Nothing was restored."
            )
        return None
    expected = about.get("id")
    if not path:
        raise BackupError(
            "The backup's secrets are sealed with the key of a YISHI_KEY_FILE: set "
            "YISHI_KEY_FILE (when the file is missing, the restore writes the archive's key "
            "there) and restore again. Nothing was restored."
        )
    if Path(path).exists():
        try:
            key = sealed.read_key_file(path)
        except sealed.KeyFileError as error:
            raise BackupError(f"YISHI_KEY_FILE: {error}. Nothing was restored.") from error
        if sealed.key_id(key) != expected:
            raise BackupError(
                f"YISHI_KEY_FILE ({path}) holds another key (id {sealed.key_id(key)}) than "
                f"the one the backup's secrets are sealed with (id {expected}): put the "
                "backed-up key there, or remove the file to have the restore write the "
                "archive's key. Nothing was restored."
            )
        return None
    missing = f"YISHI_KEY_FILE ({path}) is missing"
    if not manifest.get("keys"):
        raise BackupError(
            f"{missing} and the archive holds no key: put the backed-up key file there and "
            "restore again. Nothing was restored."
        )
    if not passphrase:
        raise BackupError(
            f"{missing}; the archive holds its key sealed: give the backup passphrase "
            "(--passphrase-file). Nothing was restored."
        )
    if not os.access(Path(path).parent, os.W_OK):
        raise BackupError(
            f"{missing} and its folder is missing or not writable. Nothing was restored."
        )
    if secrets_ is None:
        secrets_ = _unseal(members[SEALED_KEYS].read_bytes(), manifest["keys"], passphrase)
    try:
        key = bytes.fromhex(secrets_.get(sealing.KEY_FILE) or "")
    except (TypeError, ValueError):
        key = b""
    if len(key) != sealed.KEY_SIZE or sealed.key_id(key) != expected:
        raise _damaged("the sealed YISHI_KEY_FILE key is not the manifest's storage key")
    return key


def _install_key_file(key: bytes) -> None:
    path = Path(sealing.key_file())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key.hex() + "\n")


def _install_key(secret_key: str) -> None:
    key_file = _key_file()
    partial = key_file.with_name(key_file.name + ".restoring")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret_key)
    os.replace(partial, key_file)
    current_app.config["SECRET_KEY"] = secret_key


def _restore_sqlite(snapshot: Path) -> None:
    target = _sqlite_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(snapshot, partial)
    if target.exists():
        shutil.copymode(target, partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    db.session.remove()
    db.engine.dispose()
    # A write-ahead log left from the old file would be replayed into the new one.
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(partial, target)


def _restore_postgresql(dump: Path) -> None:
    program = _pg_program("pg_restore")
    args, env = _pg_connection_args()
    # Wait at most this long for a table another connection holds: the site must be stopped.
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c lock_timeout=15000").strip()
    db.session.remove()
    db.engine.dispose()
    command = [program, "--clean", "--if-exists", "--no-owner", "--single-transaction"]
    try:
        _run(command + args + [str(dump)], env, "pg_restore")
    except BackupError as error:  # one transaction: rolled back, the database is as it was
        raise BackupError(f"{error.message}. Nothing was restored.") from error


def _restore_uploads(members: dict[str, Path]) -> None:
    root = upload_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name, path in members.items():
        if name.startswith(UPLOADS):
            destination = root / Path(*PurePosixPath(name[len(UPLOADS) :]).parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, destination)


def _counts_check(manifest: dict) -> Verification:
    counts = _live_counts()
    expected = manifest.get("tables") or {}
    different = [
        f"{table}: {counts.get(table)} (backed up: {n})"
        for table, n in sorted(expected.items())
        if counts.get(table) != n
    ]
    if different:
        return Verification("row counts", False, "; ".join(different))
    return Verification(
        "row counts", True, f"{sum(expected.values())} rows in {len(expected)} tables"
    )


def verify_restored() -> list[Verification]:
    """The audit verifier, then every package's verifier connected to `restored`."""
    db.session.remove()
    with read_only():
        report = audit.verify()
        detail = f"{report.count} entries, head {report.head}" if report.ok else report.problem
        checks = [Verification("audit log", report.ok, str(detail))]
        for _receiver, found in restored.send(current_app._get_current_object()):
            checks.extend(found or [])
        db.session.remove()
    return checks


def restore_backup(
    source: Path, *, force: bool = False, passphrase: bytes | None = None
) -> Restore:
    """Bring this install back to the archive's state, then verify it. Every refusal
    (`BackupError`) comes before anything is changed."""
    engine = _engine_name()
    upload_dir().parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".yishi-restore-", dir=upload_dir().parent))
    try:
        manifest, members = _unpack(Path(source), work)
        if manifest.get("engine") != engine:
            raise BackupError(
                f"The backup is of a {manifest.get('engine')} database; this site uses "
                f"{engine}. Nothing was restored."
            )
        if DATABASE[engine] not in members:
            raise _damaged("it holds no database")
        known, heads = _schema_revisions()
        revision = manifest.get("alembic_revision")
        if revision is not None and revision not in known:
            raise BackupError(
                f"The backup's schema revision {revision} is unknown to this Yishi (a newer "
                "version took it): upgrade Yishi first. Nothing was restored."
            )
        occupied = _has_data()
        if occupied and not force:
            raise BackupError(
                f"This site is not empty ({occupied}): restore into a fresh install, or "
                "pass --force to replace what is there. Nothing was restored."
            )
        secrets_ = _key_to_install(manifest, members, passphrase)
        storage_key = _key_file_to_install(manifest, members, passphrase, secrets_)
        if engine == "sqlite":
            _restore_sqlite(members[DATABASE[engine]])
        else:
            _restore_postgresql(members[DATABASE[engine]])
        _restore_uploads(members)
        result = Restore(manifest)
        if secrets_ is not None:
            _install_key(secrets_["SECRET_KEY"])
            result.key_installed = True
        if storage_key is not None:
            _install_key_file(storage_key)
            result.key_file_installed = True
        result.checks.append(_counts_check(manifest))
        if revision is not None and revision not in heads:
            from flask_migrate import upgrade

            upgrade()
            result.upgraded_to = ", ".join(sorted(heads))
        result.checks.extend(verify_restored())
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
