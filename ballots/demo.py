"""A demo voting round for `flask seed-demo`, open from the first start for a week."""

from __future__ import annotations

from datetime import timedelta

from ballots import services
from community.demo import demo_seeded
from community.models import utcnow


@demo_seeded.connect
def seed_round(sender, compound, users, **_extra) -> None:
    now = utcnow()
    draft = services.RoundDraft(
        title="2027年小区公共事务表决",
        explanation="请对以下事项表决。投票截止前可以修改，以最后一次为准。",
        scope="阳光花园小区 1–3号楼",
        opens_at=now,
        closes_at=now + timedelta(days=7),
        electorate="households",
        secrecy="secret",
        objection_days=7,
        questions=[
            services.QuestionDraft(
                title="是否同意更换小区门禁系统？", method="yes_no_abstain", rule="art278_ordinary"
            ),
            services.QuestionDraft(
                title="公共收益优先用于哪些项目？（最多选两项）",
                method="approval",
                options=["修缮健身器材", "增加绿化", "楼道照明改造", "增设休息座椅"],
                max_choices=2,
                rule="simple_majority",
            ),
        ],
    )
    round_ = services.create_round(users["committee"], compound, draft, now=now)
    services.open_round(round_.id, now)
