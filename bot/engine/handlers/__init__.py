"""Turn handlers, in the order they are tried (first that applies answers)."""

from bot.engine.handlers.complaint import ComplaintFlowHandler, ComplaintHandler
from bot.engine.handlers.events import EventsHandler
from bot.engine.handlers.fallback import FallbackHandler, NonTextHandler
from bot.engine.handlers.faq import ClarifyChoiceHandler, FaqHandler
from bot.engine.handlers.handoff import HandoffHandler
from bot.engine.handlers.scrm import ScrmHandler, ScrmObserver
from bot.engine.handlers.smalltalk import SmalltalkHandler
from bot.engine.handlers.survey import SurveyHandler
from bot.engine.router import Handler, Observer


def default_handlers() -> list[Handler]:
    return [
        ScrmHandler(),  # answers only 退订 / NPS answers
        EventsHandler(),
        ComplaintFlowHandler(),
        SurveyHandler(),
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
