"""`flask backup PATH` and `flask restore PATH` (community/backup.py, docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import click

from community import backup

# Exit codes of `flask restore`: 1 refused (nothing changed), 3 restored but not verified.
RESTORED_UNVERIFIED = 3

_PASSPHRASE = click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="YISHI_BACKUP_PASSPHRASE_FILE",
    help="A file whose first line is the passphrase that seals SECRET_KEY in the archive "
    "(env YISHI_BACKUP_PASSPHRASE_FILE).",
)


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    lines = path.read_bytes().splitlines()
    phrase = lines[0].strip() if lines else b""
    if len(phrase) < 12:
        raise click.ClickException(f"The passphrase in {path} is shorter than 12 characters.")
    return phrase


def register(app) -> None:
    @app.cli.command("backup")
    @click.argument("path", type=click.Path(path_type=Path))
    @_PASSPHRASE
    def backup_command(path: Path, passphrase_file: Path | None):
        """Write a consistent snapshot of the database, the uploads and (sealed with a
        passphrase) SECRET_KEY to PATH, a .tar.gz file (or a dated file in the folder PATH),
        while the site runs."""
        try:
            done = backup.create_backup(path, passphrase=_passphrase(passphrase_file))
        except backup.BackupError as error:
            raise click.ClickException(error.message) from error
        manifest = done.manifest
        tables = manifest["tables"]
        size = done.path.stat().st_size
        click.echo(
            f"Wrote {done.path} ({size / 1024:,.0f} KiB): {manifest['engine']} database at "
            f"revision {manifest['alembic_revision']}, {sum(tables.values())} rows in "
            f"{len(tables)} tables, {manifest['uploads']} uploaded files."
        )
        key_file = manifest["storage_key"]["source"] == "YISHI_KEY_FILE"
        if manifest["keys"]:
            what = "SECRET_KEY and the YISHI_KEY_FILE key are" if key_file else "SECRET_KEY is"
            click.echo(f"{what} in the archive, sealed with the passphrase.")
        else:
            nor, them = (", nor the YISHI_KEY_FILE key", "them") if key_file else ("", "it")
            click.echo(
                f"SECRET_KEY is NOT in the archive{nor}: keep {them} safe separately (site "
                f"key {manifest['site_key']}), or back up with --passphrase-file.",
                err=True,
            )

    @app.cli.command("restore")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace a database (and uploads) with data.")
    @_PASSPHRASE
    def restore_command(path: Path, force: bool, passphrase_file: Path | None):
        """Restore a `flask backup` archive into this (fresh) install, then run the audit and
        ballot verifiers on it; exit 3 when anything fails to verify. Stop the site first."""
        try:
            done = backup.restore_backup(path, force=force, passphrase=_passphrase(passphrase_file))
        except backup.BackupError as error:
            raise click.ClickException(error.message) from error
        manifest = done.manifest
        click.echo(
            f"Restored the backup of {manifest['created_at']} ({manifest['engine']}, revision "
            f"{manifest['alembic_revision']}, {manifest['uploads']} uploaded files)."
        )
        if done.key_installed:
            click.echo("Put the backed-up SECRET_KEY in instance/secret_key.")
        if done.key_file_installed:
            click.echo("Put the backed-up storage key in YISHI_KEY_FILE.")
        if done.upgraded_to:
            click.echo(f"Upgraded the schema to revision {done.upgraded_to}.")
        for check in done.checks:
            click.echo(f"{'OK    ' if check.ok else 'FAILED'} {check.name}: {check.detail}")
        if not done.ok:
            click.echo("The restored data does NOT verify.", err=True)
            raise SystemExit(RESTORED_UNVERIFIED)
        click.echo("Everything verifies.")
