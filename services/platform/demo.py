"""Demo projects and donations for `make run`, taken from the seed article.

The figures in the article (86 meal points, 10 charity entities, 100 charity
spaces) inspire the projects; the goals and gifts below are illustrative.
"""

from __future__ import annotations

import random
import time
import zlib
from typing import Any

import httpx

DEMO_PROJECTS: list[dict[str, Any]] = [
    {
        "project_id": "elderly-meals",
        "name": "乐龄助餐点 · 老人助餐",
        "name_en": "Meal points for the elderly",
        "purpose": "为社区86个助餐点的高龄、独居老人提供营养午餐补贴",
        "beneficiaries": "80周岁以上及经济困难老人",
        "goal_fen": 50_000_000,
    },
    {
        "project_id": "child-protection",
        "name": "SiP童行家 · 未成年人关爱",
        "name_en": "SiP child protection centre",
        "purpose": "支持区级未成年人救助保护中心和5个街道未保站的关爱活动",
        "beneficiaries": "困境儿童及其家庭",
        "goal_fen": 30_000_000,
    },
    {
        "project_id": "community-embedded",
        "name": "社区嵌入式服务设施",
        "name_en": "Community embedded services",
        "purpose": "为社区“乐龄之家”添置按摩椅、AED等健康守护设备",
        "beneficiaries": "20个试点社区的常住居民",
        "goal_fen": 20_000_000,
    },
    {
        "project_id": "veterans-care",
        "name": "退役军人关爱行动",
        "name_en": "Care for veterans",
        "purpose": "“四访四送”慰问困难退役军人及其家庭",
        "beneficiaries": "困难退役军人家庭",
        "goal_fen": 10_000_000,
    },
    {
        "project_id": "charity-plants",
        "name": "慈善植造社 · 义卖助学",
        "name_en": "Charity botanic garden sales",
        "purpose": "二手书、绿植义卖和小火车收入用于资助困境学生",
        "beneficiaries": "困境家庭学生",
        "goal_fen": 5_000_000,
    },
]

DONORS = ["王小明", "李娜", "张伟", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴芳"]
ANONYMITY = ["masked", "masked", "anonymous", "excluded"]
MESSAGES = [None, None, None, "愿长者吃得暖、吃得好", "加油！", "一点心意", "希望孩子们健康成长"]


def project_payload(p: dict[str, Any]) -> dict[str, Any]:
    return {
        **p,
        "organisation": "苏州工业园区慈善总会",
        "certificate_no": f"CSZ-2026-{zlib.crc32(p['project_id'].encode()) % 10_000:04d}",
        "currency": "CNY",
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "use_of_funds": p["purpose"],
        "cost_cap_bp": 1000,
        "leftover_handling": "结余资金转入同类慈善项目",
    }


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def load_demo(api_url: str, sandbox_url: str, token: str) -> None:
    """Register, approve and open the demo projects, then give a few gifts."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=15) as http:
        for p in DEMO_PROJECTS:
            http.post("/api/projects", json=project_payload(p)).raise_for_status()
        for p in DEMO_PROJECTS:
            pid = p["project_id"]
            if not wait_until(lambda pid=pid: http.get(f"/api/projects/{pid}/totals").status_code == 200):
                raise RuntimeError(f"the ledger did not register {pid} in time")
            if http.get(f"/api/projects/{pid}/totals").json()["status"] == "registered":
                http.post(f"/api/projects/{pid}/approve").raise_for_status()
                wait_until(
                    lambda pid=pid: http.get(f"/api/projects/{pid}/totals").json()["status"] == "approved"
                )
            if http.get(f"/api/projects/{pid}/totals").json()["status"] == "approved":
                http.post(f"/api/projects/{pid}/open-fundraising").raise_for_status()
                wait_until(
                    lambda pid=pid: http.get(f"/api/projects/{pid}/totals").json()["status"] == "fundraising"
                )
    with (
        httpx.Client(base_url=api_url, timeout=15) as public,
        httpx.Client(base_url=sandbox_url, timeout=15) as pay,
    ):
        for _ in range(12):
            give_random_gift(public, pay)


def give_random_gift(api: httpx.Client, sandbox: httpx.Client, rng: random.Random | None = None) -> str:
    """A gift as a donor gives it: pledged through the public API, paid on the sandbox, which
    then notifies the API like the real provider. Returns the donation id."""
    rng = rng or random.Random()
    project = rng.choice(DEMO_PROJECTS)
    anonymity = rng.choice(ANONYMITY)
    made = api.post(
        "/api/donations",
        json={
            "project_id": project["project_id"],
            "amount_fen": rng.choice([1000, 2000, 5000, 10_000, 20_000, 52_000, 100_000]),
            "venue_id": rng.choice([None, "botanic-garden", "community-centre"]),
            "anonymity": anonymity,
            "display_name": rng.choice(DONORS) if anonymity == "masked" else None,
            "consent_to_show_name": anonymity == "masked",
            "message": rng.choice(MESSAGES),
        },
    )
    made.raise_for_status()
    donation_id: str = made.json()["donation_id"]
    sandbox.post(f"/sandbox/orders/{donation_id.replace('-', '')}/pay").raise_for_status()
    return donation_id
