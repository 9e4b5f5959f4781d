"""`flask seed-demo`, `flask create-admin`, `flask import-roll`, `flask audit …`
(and `flask backup`, `flask restore` from backup_cli)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from community import audit, backup_cli, demo, services
from web.errors import DomainError
from web.extensions import db


def _print_logins(rows) -> None:
    click.echo("")
    click.echo("Demo logins (phone / password) — http://127.0.0.1:5000/auth/login")
    for role, login, password in rows:
        click.echo(f"  {role:<10} {login}  /  {password}")
    click.echo("")


def register(app) -> None:
    backup_cli.register(app)

    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="Only seed when the database has no demo yet.")
    def seed_demo(if_empty: bool):
        """Create the demo community and one login per role."""
        if demo.demo_present():
            if not if_empty:
                raise click.ClickException("The demo is already seeded.")
            _print_logins(demo.demo_logins())
            return
        rows = demo.seed_demo(current_app.config["PASSWORD_COST"])
        click.echo("Seeded the demo community 幸福街道 › 幸福社区 › 阳光花园小区.")
        _print_logins(rows)

    @app.cli.command("create-admin")
    @click.option("--name", prompt=True)
    @click.option("--contact", prompt="Mobile number or email")
    @click.password_option()
    def create_admin(name: str, contact: str, password: str):
        """Create a site administrator (who can create top-level communities)."""
        try:
            user = services.register(
                name, contact, password, cost=current_app.config["PASSWORD_COST"]
            )
        except DomainError as error:
            raise click.ClickException(str(error.message)) from error
        user.is_admin = True
        db.session.commit()
        click.echo(f"Administrator {user.display_name} created.")

    @app.cli.command("import-roll")
    @click.argument("community_id", type=int)
    @click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--invites", is_flag=True, help="Also issue invitation codes and print them.")
    def import_roll(community_id: int, csv_file: Path, invites: bool):
        """Import a voter roll CSV (unit, owner_name, phone, private_area) into a community."""
        try:
            community = services.get_community(community_id)
            text = csv_file.read_bytes().decode("utf-8-sig")
            report = services.import_roll(None, community, text, csv_file.name)
        except services.RollRejected as error:
            for problem in error.problems:
                click.echo(f"line {problem.line}: {problem.message}", err=True)
            raise click.ClickException("Nothing was imported.") from error
        except (DomainError, UnicodeDecodeError) as error:
            raise click.ClickException(str(getattr(error, "message", error))) from error
        issued = services.issue_invites(None, community) if invites else []
        db.session.commit()
        click.echo(
            f"Imported: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged."
        )
        for entry, code in issued:
            click.echo(f"{entry.unit}\t{code}")

    audit_group = AppGroup("audit", help="The hash-chained audit log: verify, show, export.")

    @audit_group.command("verify")
    def audit_verify():
        """Check the chain, the stored head and the signed daily heads; exit 1 on a problem."""
        report = audit.verify()
        if report.ok:
            click.echo(f"OK: {report.count} entries, head {report.head}")
            return
        click.echo(f"FAILED: {report.problem}", err=True)
        raise SystemExit(1)

    @audit_group.command("show")
    @click.option("--community", "community_id", type=int, help="Only this community's entries.")
    @click.option("--limit", default=50, show_default=True, help="How many of the newest.")
    def audit_show(community_id: int | None, limit: int):
        """Print the newest entries, one a line."""
        query = select(audit.AuditEntry).order_by(audit.AuditEntry.n.desc()).limit(limit)
        if community_id is not None:
            query = query.where(audit.AuditEntry.community_id == community_id)
        for e in db.session.scalars(query):
            click.echo(
                f"{e.n}\t{e.at.isoformat()}\t{e.community_id or '-'}\t{e.actor_id or '-'}\t"
                f"{e.action}\t{e.subject_kind}:{e.subject_id or ''}\t{e.details}"
            )

    @audit_group.command("key")
    def audit_key():
        """Print the site public key that signs the daily heads."""
        click.echo(audit.site_public_key())

    @audit_group.command("export")
    @click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
    def audit_export(output: Path):
        """Write the log as JSON for `python -m crypto.audit` (docs/audit-format.md)."""
        output.write_text(json.dumps(audit.log_document(), ensure_ascii=True, indent=1))
        click.echo(f"Wrote {output}")

    app.cli.add_command(audit_group)
