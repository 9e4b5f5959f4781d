"""Demo proposals for `flask seed-demo`: connected to the community demo's signal."""

from __future__ import annotations

from community.demo import demo_seeded
from deliberation import services


@demo_seeded.connect
def seed_proposals(sender, compound, users, **_extra) -> None:
    services.update_settings(users["admin"], compound, threshold=3, percent=None, window_days=30)
    lift = services.submit_proposal(
        users["resident"],
        compound,
        services.ProposalDraft(
            "3号楼加装电梯",
            "3号楼住着很多老人，上下楼很困难。建议申请老旧小区改造补贴，**加装一部电梯**。\n\n"
            "- 费用由补贴和住户分摊\n- 施工期间保证通行",
            "elderly_children",
            "680000",
        ),
        publish=True,
    )
    services.support(users["owner"], lift)
    services.post_comment(users["owner"], lift, "支持！我家老人每天都要下楼买菜。", "for")
    question = services.post_comment(
        users["committee"], lift, "低楼层住户要分摊多少费用？需要先做个测算。", "question"
    )
    services.post_comment(
        users["resident"], lift, "可以参考隔壁小区的分摊办法。", "neutral", question
    )
    services.submit_proposal(
        users["owner"],
        compound,
        services.ProposalDraft(
            "增设电动车充电桩",
            "楼道里给电动车充电很危险。建议在车棚增设带计费的充电桩。",
            "safety",
            "45000",
        ),
        publish=True,
    )
