"""Turn handlers for free text in a bot state, in the order they are tried (first that applies answers).

Commands, survey / NPS answers and every message while queued or with an agent are decided by the
state table in `bot.engine.states` before these are asked."""

from bot.engine.handlers.complaint import ComplaintFlowHandler, ComplaintHandler
from bot.engine.handlers.events import EventsHandler
from bot.engine.handlers.fallback import FallbackHandler, NonTextHandler
from bot.engine.handlers.faq import ClarifyChoiceHandler, FaqHandler
from bot.engine.handlers.handoff import HandoffHandler
from bot.engine.handlers.scrm import ScrmObserver
from bot.engine.handlers.smalltalk import SmalltalkHandler
from bot.engine.router import Handler, Observer


def default_handlers() -> list[Handler]:
    return [
        EventsHandler(),
        ComplaintFlowHandler(),
        NonTextHandler(),
        HandoffHandler(),
        ComplaintHandler(),
        ClarifyChoiceHandler(),
        FaqHandler(),
        SmalltalkHandler(),
        FallbackHandler(),
    ]


def default_observers() -> list[Observer]:
    """Run on every customer message before routing, also when an agent owns the conversation."""
    return [ScrmObserver()]
