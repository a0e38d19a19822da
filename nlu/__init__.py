"""Natural-language understanding: intents, FAQ retrieval, entities, sentiment.

Independent of bot, scrm and models: plain texts and data classes in, plain results out.
"""

from nlu.types import Entity, FaqDoc, FaqHit, ParseResult

__all__ = ["Entity", "FaqDoc", "FaqHit", "ParseResult"]
