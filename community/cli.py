"""`flask seed-demo`, `flask create-admin`, `flask import-roll`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app

from community import demo, services
from web.errors import DomainError
from web.extensions import db


def _print_logins(rows) -> None:
    click.echo("")
    click.echo("Demo logins (phone / password) — http://127.0.0.1:5000/auth/login")
    for role, login, password in rows:
        click.echo(f"  {role:<10} {login}  /  {password}")
    click.echo("")


def register(app) -> None:
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
