"""The demo community that `make run` seeds on first start."""

from __future__ import annotations

from decimal import Decimal

from blinker import Namespace
from sqlalchemy import select

from community import services
from community.models import Membership, User
from community.permissions import MembershipStatus, Role
from crypto import passwords
from web.extensions import db

# Demo logins, printed by `flask seed-demo` and listed in README.md. Local demo only.
DEMO_ACCOUNTS = [
    # (role, display name, phone, password, unit, private area)
    (Role.RESIDENT, "李阿姨", "13800000001", "demo-resident", "3号楼 502室", None),
    (Role.OWNER, "王先生", "13800000002", "demo-owner", "3号楼 301室", Decimal("89.50")),
    (Role.MODERATOR, "张主任", "13800000003", "demo-moderator", None, None),
    (Role.COMMITTEE, "陈委员", "13800000004", "demo-committee", "1号楼 101室", Decimal("120.00")),
    (Role.ADMIN, "管理员", "13800000005", "demo-admin", None, None),
]

# Sent after the community demo exists, so other packages can add their own demo data.
demo_seeded = Namespace().signal("demo-seeded")

ROLL_CSV = """unit,owner_name,phone,private_area
1号楼 101室,陈委员,13800000004,120.00
1号楼 102室,赵大爷,13900000102,95.20
2号楼 201室,孙奶奶,13900000201,76.80
3号楼 301室,王先生,13800000002,89.50
3号楼 502室,李建国,13900000502,102.35
"""


def demo_present() -> bool:
    return db.session.scalar(select(User.id).where(User.phone == DEMO_ACCOUNTS[-1][2])) is not None


def seed_demo(cost: passwords.Cost) -> list[tuple[str, str, str]]:
    """Create the demo tree and accounts. Returns (role, login, password) rows."""
    users = {}
    for role, name, phone, password, _unit, _area in DEMO_ACCOUNTS:
        users[role] = services.register(name, phone, password, cost=cost, locale="zh")
    admin = users[Role.ADMIN]
    admin.is_admin = True
    db.session.flush()

    street = services.create_community(admin, "幸福街道", "street", None)
    community = services.create_community(admin, "幸福社区", "community", street)
    compound = services.create_community(admin, "阳光花园小区", "compound", community)
    for building in ("1号楼", "2号楼", "3号楼"):
        services.create_community(admin, building, "building", compound)
    village = services.create_community(admin, "桃源村", "village", street)
    services.create_community(admin, "第一村民小组", "village_group", village)
    services.create_community(admin, "第二村民小组", "village_group", village)

    for role, _name, _phone, _password, unit, area in DEMO_ACCOUNTS:
        db.session.add(
            Membership(
                user=users[role],
                community=compound,
                role=role.value,
                status=MembershipStatus.VERIFIED.value,
                unit=unit,
                private_area=area,
                how_joined="demo",
            )
        )
    db.session.flush()
    services.import_roll(None, compound, ROLL_CSV, "demo-roll.csv")
    # A pending request, so the moderator's queue has something in it.
    newcomer = services.register("刘小红", "13800000006", "demo-newcomer", cost=cost, locale="zh")
    services.request_join(newcomer, compound, "2号楼 201室")
    db.session.flush()
    demo_seeded.send(
        "community", compound=compound, users={role.value: user for role, user in users.items()}
    )
    db.session.commit()
    return demo_logins()


def demo_logins() -> list[tuple[str, str, str]]:
    return [(role.value, phone, password) for role, _n, phone, password, _u, _a in DEMO_ACCOUNTS]
