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


@demo_seeded.connect
def seed_implementations(sender, compound, users, **_extra) -> None:
    """Two decided proposals, so the accountability board and the timeline have a story:
    one completed and rated, one in progress with an overdue milestone. Their votes are
    not part of the demo (the demo round is still open), so they are decided directly."""
    from datetime import timedelta

    from sqlalchemy import update

    from community.models import utcnow
    from deliberation import implementation
    from deliberation.lifecycle import Status
    from deliberation.models import Proposal

    now = utcnow()

    def decided(title: str, body: str, category: str, cost: str, days_ago: int) -> Proposal:
        proposal = services.submit_proposal(
            users["owner"],
            compound,
            services.ProposalDraft(title, body, category, cost),
            publish=True,
        )
        services.db.session.execute(
            update(Proposal).where(Proposal.id == proposal.id).values(status=Status.VOTING.value)
        )
        services.db.session.refresh(proposal)
        implementation.decide(
            proposal,
            True,
            decided_at=now - timedelta(days=days_ago),
            summary="演示数据：经业主大会表决通过（参与表决的专有部分面积和人数均过半数同意）。",
            round_title="2026年第三季度业主大会（演示）",
        )
        return implementation.implementation_of(proposal)

    gate = decided(
        "修复北门道闸", "北门道闸经常失灵，车辆排队。建议更换控制器。", "facilities", "8000", 60
    )
    implementation.plan(
        users["committee"],
        gate,
        implementation.PlanDraft(
            responsible="阳光物业服务有限公司",
            budget="8000",
            budget_source="公共收益",
            milestones=[
                ("采购控制器", (now - timedelta(days=45)).date()),
                ("安装调试", (now - timedelta(days=30)).date()),
            ],
        ),
        now=now - timedelta(days=58),
    )
    implementation.post_update(
        users["committee"],
        gate,
        implementation.UpdateDraft(
            "控制器已到货。", 40, "in_progress", milestone_id=gate.milestones[0].id, spent="5200"
        ),
        now=now - timedelta(days=46),
    )
    implementation.post_update(
        users["committee"],
        gate,
        implementation.UpdateDraft(
            "安装调试完成，道闸恢复正常。",
            100,
            "completed",
            milestone_id=gate.milestones[1].id,
            spent="7600",
        ),
        now=now - timedelta(days=31),
    )
    implementation.rate(users["owner"], gate, 4, as_decided="yes", comment="好多了。")
    lights = decided(
        "楼道照明改造", "楼道灯太暗，老人晚上看不清台阶。建议换成感应灯。", "safety", "15000", 20
    )
    implementation.plan(
        users["committee"],
        lights,
        implementation.PlanDraft(
            responsible="业委会 王主任",
            responsible_user_id=users["committee"].id,
            budget="15000",
            budget_source="专项维修资金",
            milestones=[
                ("1号楼更换", (now - timedelta(days=3)).date()),
                ("2、3号楼更换", (now + timedelta(days=20)).date()),
            ],
        ),
        now=now - timedelta(days=18),
    )
    implementation.post_update(
        users["committee"],
        lights,
        implementation.UpdateDraft("已订购感应灯，1号楼下周开始更换。", 15, "in_progress"),
        now=now - timedelta(days=10),
    )
