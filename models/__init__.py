"""SQLModel tables. Importing this package registers every table on `SQLModel.metadata`."""

from models.audit import AuditLog, AuditLogRead
from models.base import aware, utcnow
from models.console import (
    CannedResponse,
    CannedResponseCreate,
    CannedResponseRead,
    FaqConfirmation,
    QuickReply,
    WidgetConfig,
    WidgetConfigBase,
)
from models.conversation import (
    Conversation,
    ConversationRead,
    ConversationState,
    Direction,
    InboundState,
    Message,
    MessageRead,
    Sender,
)
from models.customer import ChannelIdentity, Customer, CustomerCreate, CustomerRead, IdentityStatus
from models.faq import FaqEntry, FaqEntryCreate, FaqEntryRead, FaqEntryUpdate
from models.insight import ComplaintAlert, CustomerInsight, Persona, ProductRule  # noqa: F401
from models.outbox import OutboxMessage, OutboxStatus
from models.scrm import CareDelivery, CareRule, CustomerValue, Order, Segment, TagRule  # noqa: F401
from models.tag import CustomerTag, Tag, TagCreate, TagRead
from models.ticket import SurveyResponse, Ticket, TicketEvent  # noqa: F401
from models.user import Presence, Role, User, UserCreate, UserRead, UserSession, UserUpdate
from models.wechat import WeChatKfCursor  # noqa: F401

__all__ = [
    "AuditLog",
    "AuditLogRead",
    "CannedResponse",
    "CannedResponseCreate",
    "CannedResponseRead",
    "ChannelIdentity",
    "Conversation",
    "ConversationRead",
    "ConversationState",
    "Customer",
    "CustomerCreate",
    "CustomerRead",
    "CustomerTag",
    "Direction",
    "FaqConfirmation",
    "FaqEntry",
    "FaqEntryCreate",
    "FaqEntryRead",
    "FaqEntryUpdate",
    "IdentityStatus",
    "InboundState",
    "Message",
    "MessageRead",
    "OutboxMessage",
    "OutboxStatus",
    "Presence",
    "QuickReply",
    "Role",
    "Sender",
    "Tag",
    "TagCreate",
    "TagRead",
    "User",
    "UserCreate",
    "UserRead",
    "UserSession",
    "UserUpdate",
    "WidgetConfig",
    "WidgetConfigBase",
    "aware",
    "utcnow",
]
