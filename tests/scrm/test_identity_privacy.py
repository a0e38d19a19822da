"""One customer across Official Account and WeCom: merge by unionid / phone, undo; privacy export/erase."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from models import AuditLog, ChannelIdentity, Customer, Message
from models.scrm import MergeRecord, Order
from scrm.audit import Actor
from scrm.identity import bind_phone, merge_by_unionid, undo_merge
from scrm.privacy import erase_customer, export_customer, mask_name, mask_phone, mask_text
from scrm.tags import add_tag, customer_tags
from tests.scrm.conftest import NOW, Factory, days_ago

ADMIN = Actor(id=None, name="admin", role="admin")


def test_masking() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_phone("") == ""
    assert mask_name("张三丰") == "张**" and mask_name("张三") == "张*" and mask_name("A") == "A*"
    assert mask_text("请联系13812345678谢谢") == "请联系138****5678谢谢"


async def test_merge_official_account_and_wecom_by_unionid_then_undo(db, make: Factory) -> None:
    oa = await make.customer(channel="wechat_oa", unionid="U1", name="小明", birthday=None)
    wecom = await make.customer(channel="wecom", unionid="U1", phone="13900000000", region="杭州", points=50)
    await make.order(wecom.id, 99, days_ago(3), no="W-1")
    await make.message(wecom.id, "企业微信里的话", days_ago(1), channel="wecom")
    async with db() as s, s.begin():
        await add_tag(s, customer_id=oa.id, tag_name="VIP", actor=ADMIN)
        await add_tag(s, customer_id=wecom.id, tag_name="VIP", actor=ADMIN)  # same tag on both: stays behind
        await add_tag(s, customer_id=wecom.id, tag_name="企微", actor=ADMIN)
    async with db() as s, s.begin():
        [record] = await merge_by_unionid(s, unionid="U1", actor=ADMIN)
    assert (record.source_id, record.target_id, record.reason) == (wecom.id, oa.id, "unionid")
    async with db() as s:
        target = await s.get(Customer, oa.id)
        source = await s.get(Customer, wecom.id)
        channels = sorted(
            (await s.exec(select(ChannelIdentity.channel).where(ChannelIdentity.customer_id == oa.id))).all()
        )
        order = (await s.exec(select(Order))).one()
        msg = (await s.exec(select(Message))).one()
        tags = {t["name"] for t in await customer_tags(s, oa.id)}
        audit = (await s.exec(select(AuditLog.action).where(AuditLog.action == "customer.merge"))).all()
    assert channels == ["wechat_oa", "wecom"]
    assert (target.phone, target.region, target.points, target.name) == ("13900000000", "杭州", 50, "小明")
    assert source.merged_into_id == oa.id
    assert order.customer_id == oa.id and msg.customer_id == oa.id
    assert tags == {"VIP", "企微"} and audit == ["customer.merge"]

    async with db() as s, s.begin():
        await undo_merge(s, merge_id=record.id, actor=ADMIN)
    async with db() as s:
        target = await s.get(Customer, oa.id)
        source = await s.get(Customer, wecom.id)
        by_customer = dict((await s.exec(select(ChannelIdentity.channel, ChannelIdentity.customer_id))).all())
        order = (await s.exec(select(Order))).one()
        record = await s.get(MergeRecord, record.id)
        wecom_tags = {t["name"] for t in await customer_tags(s, wecom.id)}
    assert by_customer == {"wechat_oa": oa.id, "wecom": wecom.id}
    assert (target.phone, target.region, target.points) == (None, None, 0)
    assert source.merged_into_id is None and order.customer_id == wecom.id
    assert record.undone_at is not None and wecom_tags == {"VIP", "企微"}


async def test_verified_phone_merges_but_unverified_does_not(db, make: Factory) -> None:
    a = await make.customer(phone="13800000001", phone_verified=True)
    b = await make.customer(channel="wecom")
    async with db() as s, s.begin():
        assert await bind_phone(s, customer_id=b.id, phone="13800000001", verified=False, actor=ADMIN) is None
    async with db() as s, s.begin():
        record = await bind_phone(s, customer_id=b.id, phone="13800000001", verified=True, actor=ADMIN)
    assert record is not None and (record.source_id, record.target_id) == (b.id, a.id)


async def test_export_and_erase_keep_anonymous_statistics(db, make: Factory) -> None:
    c = await make.customer(name="隐私", phone="13811112222", region="北京", attributes={"wx": "abc"})
    await make.order(c.id, 88, days_ago(2), no="P-1")
    await make.message(c.id, "我的地址是某某路 1 号", NOW)
    async with db() as s, s.begin():
        data = await export_customer(s, customer_id=c.id, actor=ADMIN)
    assert data["customer"]["phone"] == "13811112222"
    assert data["customer_order"][0]["order_no"] == "P-1"
    assert data["message"][0]["text"] == "我的地址是某某路 1 号"
    assert data["channelidentity"][0]["external_id"]
    async with db() as s, s.begin():
        counts = await erase_customer(s, customer_id=c.id, actor=ADMIN)
    assert counts["message"] == 1 and counts["channelidentity"] == 1
    async with db() as s:
        erased = await s.get(Customer, c.id)
        msg = (await s.exec(select(Message))).one()
        orders = (await s.execute(sa.select(sa.func.count(), sa.func.sum(Order.amount)))).one()
        actions = sorted((await s.exec(select(AuditLog.action).where(AuditLog.action.like("privacy.%")))).all())
        identities = (await s.exec(select(ChannelIdentity))).all()
    assert (erased.name, erased.phone, erased.region, erased.attributes) == (None, None, None, {})
    assert erased.erased_at is not None and msg.text == "" and identities == []
    assert orders == (1, 88)  # statistics survive
    assert actions == ["privacy.erase", "privacy.export"]
