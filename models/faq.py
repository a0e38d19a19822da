"""FAQ entries the bot answers from."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_at_field, datetime_field, json_field


class FaqEntryBase(SQLModel):
    question: str = Field(min_length=1, max_length=200)
    similar_questions: list[str] = json_field(list)
    answer: str = Field(min_length=1, max_length=4000)
    category: str = Field(default="", max_length=32, index=True)
    enabled: bool = True


class FaqEntry(FaqEntryBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class FaqEntryCreate(SQLModel):
    question: str = Field(min_length=1, max_length=200)
    similar_questions: list[str] = []
    answer: str = Field(min_length=1, max_length=4000)
    category: str = Field(default="", max_length=32)
    enabled: bool = True


class FaqEntryUpdate(SQLModel):
    question: str | None = Field(default=None, min_length=1, max_length=200)
    similar_questions: list[str] | None = None
    answer: str | None = Field(default=None, min_length=1, max_length=4000)
    category: str | None = Field(default=None, max_length=32)
    enabled: bool | None = None


class FaqEntryRead(SQLModel):
    id: int
    question: str
    similar_questions: list[str]
    answer: str
    category: str
    enabled: bool
