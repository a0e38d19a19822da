// Chinese labels for every status and enum the API sends (values stay English in the API).
(function () {
  "use strict";
  const TICKET_STATUS = { new: "新建", triaged: "待分配", assigned: "已分配", in_progress: "处理中",
    waiting_customer: "等待客户", resolved: "已解决", reopened: "已重开", closed: "已关闭" };
  const SEVERITY = { P1: "P1 紧急", P2: "P2 高", P3: "P3 中", P4: "P4 低" };
  const SEVERITY_CLASS = { P1: "bad", P2: "warn", P3: "", P4: "off" };
  const SLA = { ok: "正常", due_soon: "即将超时", breached: "已超时", paused: "等待客户（暂停计时）", done: "—" };
  const CHANNEL = { webchat: "网页", wechat_oa: "公众号", wecom: "企业微信", wechat_kf: "微信客服", api: "接口", import: "导入" };
  const CONTACT = { chat: "在会话中回复", phone: "电话联系", none: "无需联系" };
  const SENDER = { customer: "客户", bot: "智能客服", agent: "客服", system: "系统", note: "内部备注" };
  const PRESENCE = { online: "在线", busy: "忙碌", away: "离开", offline: "离线" };
  const STAGE = {};  // lifecycle stages are Chinese already
  const EVENT = { opened: "创建工单", triaged: "自动分诊", transition: "状态变更", assigned: "分配", reassigned: "改派", retriaged: "重新分诊",
    note: "内部备注", customer_message: "客户补充", first_response: "首次响应", sla_warning: "SLA 预警", escalated: "升级",
    survey: "满意度评价", reminder: "提醒客户", notified: "通知客户", notice_skipped: "未能通知客户", auto_closed: "自动关闭" };
  const NOTICE = { received: "已受理通知", handling: "处理中通知", resolved: "处理完毕通知（含满意度调查）", reopened: "重新打开通知",
    closed: "关闭通知", reminder: "等待回复提醒", auto_closed: "自动关闭通知" };
  const ACTORS = { system: "系统", triage: "自动分诊", assignment: "自动分配", sla: "SLA 监控", notify: "系统通知",
    auto_close: "自动关闭", customer: "客户", bot: "智能客服", "seed-demo": "演示数据", seed: "初始数据", cli: "命令行", test: "测试" };
  const DELIVERY = { pending: "待发送", sent: "已发送", failed: "发送失败", skipped: "已跳过", opted_out: "已退订", replied: "已回复" };
  const DELIVERY_REASON = { opt_out: "客户已退订", no_channel: "没有可用渠道", delivery_failed: "投递失败" };
  const ORDER_STATUS = { paid: "已支付", refunded: "已退款", cancelled: "已取消" };
  const TAG_SOURCE = { manual: "手动", rule: "规则", import: "导入", system: "系统", agent: "客服" };
  const CONSENT_PURPOSE = { care: "关怀消息", marketing: "营销消息", survey: "满意度调查", "*": "全部用途" };
  const IDENTITY_STATUS = { subscribed: "已关注", unsubscribed: "已取关", active: "正常", blocked: "已屏蔽" };
  const TIMELINE = { message: "消息", ticket: "工单", survey: "调查", order: "订单", care: "关怀", stage: "生命周期", tier: "价值分层",
    level: "会员等级" };

  const INTENT = { faq: "知识库问答", greet: "问候", goodbye: "告别", thanks: "感谢", affirm: "肯定", deny: "否定", human: "转人工",
    complaint: "投诉", order_status: "查询订单", refund: "退款", survey_satisfied: "满意", survey_unsatisfied: "不满意", nlu_fallback: "无法识别",
    out_of_scope: "超出范围" };
  const APP = { default: "默认账号" };

  function actor(name) { return ACTORS[name] || name; }
  function eventNote(e) {
    if (e.kind === "notified" || e.kind === "notice_skipped") return NOTICE[e.note] || e.note;
    return e.note;
  }

  window.HuikeLabels = { TICKET_STATUS, SEVERITY, SEVERITY_CLASS, SLA, CHANNEL, CONTACT, SENDER, PRESENCE, STAGE, EVENT, NOTICE,
    DELIVERY, DELIVERY_REASON, ORDER_STATUS, INTENT, APP, TAG_SOURCE, CONSENT_PURPOSE, IDENTITY_STATUS, TIMELINE, actor, eventNote };
})();
