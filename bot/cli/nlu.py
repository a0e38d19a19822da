"""`huike nlu …`: evaluate, train and export the NLU; import agent-confirmed pairs.

The evaluation commands are pure (files in, figures out); `train`, `export` and
`import-pairs` read the FAQ (and confirmed pairs) from the configured database.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.core import load_settings

app = typer.Typer(help="NLU: evaluation, training, Rasa export, labelled pairs", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="nlu")


def _print_json_last(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, ensure_ascii=False))


def _table(title: str, figures: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


@app.command("eval-intents")
def eval_intents(
    train: Path = typer.Option(..., exists=True, help="TSV text<TAB>intent or Rasa nlu.yml"),
    test: Path = typer.Option(..., exists=True, help="TSV text<TAB>intent or Rasa nlu.yml"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Train the default intent engine on TRAIN only and report accuracy / macro-F1 on TEST."""
    from nlu.data import load_intent_examples
    from nlu.evaluate import eval_intents as run

    report = run(load_intent_examples(train), load_intent_examples(test))
    if not as_json:
        console.print(report.per_intent)
        if report.confusions:
            worst = Table(title="worst confusions")
            for col in ("gold", "predicted", "count"):
                worst.add_column(col)
            for gold, pred, n in report.confusions:
                worst.add_row(gold, pred, str(n))
            console.print(worst)
    console.print(_table("intents", report.summary())) if not as_json else None
    if as_json:
        _print_json_last(report.summary())


@app.command("eval-faq")
def eval_faq(
    pairs: Path = typer.Option(..., exists=True, help="TSV text_a<TAB>text_b<TAB>label"),
    train_pairs: Path | None = typer.Option(None, exists=True, help="labelled pairs to learn from first"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Index every distinct text_a as an FAQ; query the text_b of label-1 pairs; hit@1/hit@3/MRR."""
    from nlu.data import load_pairs
    from nlu.evaluate import eval_faq as run

    report = run(load_pairs(pairs), load_pairs(train_pairs) if train_pairs else ())
    if as_json:
        _print_json_last(report.summary())
    else:
        console.print(_table("FAQ retrieval", report.summary()))


def _labelled(path: Path, positive: str | None) -> list[tuple[str, int]]:
    from nlu.data import read_tsv

    rows = read_tsv(path, ("text", "label"))
    if positive is None:
        return [(t, int(y)) for t, y in rows]
    return [(t, int(y == positive)) for t, y in rows]


@app.command("eval-sentiment")
def eval_sentiment(
    data: Path = typer.Option(..., exists=True, help="TSV text<TAB>label (1 positive / 0 negative)"),
    test: Path | None = typer.Option(None, exists=True, help="separate test TSV; default: split DATA"),
    split: float = typer.Option(0.2, help="test fraction when no --test"),
    seed: int = typer.Option(0),
    shipped: bool = typer.Option(False, help="evaluate the shipped seed model on all of DATA instead"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sentiment accuracy: learn from a brand's labelled reviews (80/20 split) or the shipped seed set."""
    from nlu.config import load_affect_data
    from nlu.evaluate import eval_binary, split_rows

    rows = _labelled(data, None)
    if shipped:
        train, held = load_affect_data().sentiment, rows
    elif test is not None:
        train, held = rows, _labelled(test, None)
    else:
        train, held = split_rows(rows, split, seed)
    report = eval_binary(train, held).summary()
    report["source"] = "shipped seed set" if shipped else str(data.name)
    if as_json:
        _print_json_last(report)
    else:
        console.print(_table("sentiment", report))


@app.command("eval-anger")
def eval_anger(
    test: Path = typer.Option(..., exists=True, help="TSV text<TAB>label with emotion labels"),
    label: str = typer.Option("anger", help="the label that counts as angry"),
    train: Path | None = typer.Option(None, exists=True, help="learn from this TSV instead of the seed set"),
    threshold: float = typer.Option(0.5),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Anger vs rest F1 of the anger model (shipped seed set unless --train)."""
    from nlu.config import load_affect_data
    from nlu.evaluate import eval_binary
    from nlu.sentiment import anger_model

    train_rows = _labelled(train, label) if train else load_affect_data().anger
    report = eval_binary(train_rows, _labelled(test, label), model=anger_model(), threshold=threshold).summary()
    report["source"] = str(train.name) if train else "shipped seed set"
    if as_json:
        _print_json_last(report)
    else:
        console.print(_table("anger", report))


@app.command("eval-answers")
def eval_answers(
    questions: Path = typer.Option(..., exists=True, help="TSV text<TAB>label (the FAQ question, or none)"),
    faq_file: Path | None = typer.Option(None, exists=True, help="FAQ YAML (like config/demo_faq.yml) instead of DB"),
    misses: int = typer.Option(0, help="print this many questions that were not answered directly and rightly"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line"),
) -> None:
    """Run each question through the engine's decision (answer / clarify / fallback / hand over)
    against the FAQ and count what customers would get."""
    import time

    from bot.engine.evaluate import evaluate_answers
    from nlu.config import load_affect_data, load_training_data
    from nlu.data import read_tsv
    from nlu.model import NluModel
    from scrm.ticket_config import load_ticket_config

    settings = load_settings()
    pairs: list[tuple[str, int]] = []
    if faq_file is not None:
        docs = _faq_yaml(faq_file)
    else:
        docs, pairs = asyncio.run(_faq_and_pairs(settings.database_url))
    model = NluModel.train(load_training_data(), docs, pairs, load_affect_data())
    rows = [(t, y) for t, y in read_tsv(questions, ("text", "label"))]
    started = time.perf_counter()
    report = evaluate_answers(rows, model.parse, load_ticket_config(settings.tickets_config).detection)
    figures = report.summary()
    figures["parse_ms_mean"] = round((time.perf_counter() - started) * 1000 / max(len(rows), 1), 3)
    for miss in report.misses[:misses]:
        err.print(miss)
    if as_json:
        _print_json_last(figures)
    else:
        console.print(_table("answers", figures))


async def _faq_and_pairs(database_url: str) -> tuple[list[Any], list[tuple[str, int]]]:
    from sqlmodel import col, select

    from models import FaqConfirmation, FaqEntry
    from nlu.types import FaqDoc
    from scrm.db import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            entries = (await session.exec(select(FaqEntry).where(col(FaqEntry.enabled).is_(True)))).all()
            confirmed = (await session.exec(select(FaqConfirmation))).all()
    finally:
        await engine.dispose()
    docs = [
        FaqDoc(
            id=e.id or 0, question=e.question, similar=tuple(e.similar_questions), answer=e.answer, category=e.category
        )
        for e in entries
    ]
    known = {d.id for d in docs}
    return docs, [(c.text, c.faq_id) for c in confirmed if c.faq_id in known]


@app.command("train")
def train(
    out: Path | None = typer.Option(
        None, help="model file (default: HUIKE_NLU_MODEL_PATH or <data_dir>/nlu-model.pkl)"
    ),
    training_dir: Path | None = typer.Option(None, help="Rasa YAML training data (default: config/nlu)"),
) -> None:
    """Train the embedded model from config/nlu + the FAQ and confirmed pairs in the database."""
    from nlu.config import load_affect_data, load_training_data
    from nlu.model import NluModel

    settings = load_settings()
    docs, pairs = asyncio.run(_faq_and_pairs(settings.database_url))
    model = NluModel.train(load_training_data(training_dir), docs, pairs, load_affect_data(training_dir))
    path = out or settings.model_path
    model.save(path)
    console.print(
        f"trained in {model.train_seconds:.2f} s: {len(model.intents.classes)} intents, {len(docs)} FAQ, "
        f"{len(pairs)} confirmed pairs -> {path}"
    )


@app.command("export")
def export(
    fmt: str = typer.Option("rasa", "--format", help="only 'rasa'"),
    out: Path = typer.Option(Path("rasa-project"), help="directory for config.yml, domain.yml, data/nlu.yml"),
    epochs: int | None = typer.Option(None, help="override DIET/ResponseSelector epochs"),
    faq_file: Path | None = typer.Option(None, exists=True, help="FAQ YAML (like config/demo_faq.yml) instead of DB"),
    training_dir: Path | None = typer.Option(None),
) -> None:
    """Write Huike's intents and FAQ as a Rasa 3.x project (`rasa train nlu` works in OUT)."""
    from nlu.config import load_training_data
    from nlu.data import write_rasa_project

    if fmt != "rasa":
        err.print(f"[red]unknown format {fmt!r}; only 'rasa'[/red]")
        raise typer.Exit(2)
    if faq_file is not None:
        docs = _faq_yaml(faq_file)
    else:
        docs, _pairs = asyncio.run(_faq_and_pairs(load_settings().database_url))
    written = write_rasa_project(out, load_training_data(training_dir), docs, epochs=epochs)
    console.print(f"wrote {', '.join(str(p) for p in written)} ({len(docs)} FAQ)")


def _faq_yaml(path: Path) -> list[Any]:
    import yaml

    from nlu.types import FaqDoc

    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [
        FaqDoc(
            id=n,
            question=e["question"],
            similar=tuple(e.get("similar") or ()),
            answer=e.get("answer", ""),
            category=e.get("category", ""),
        )
        for n, e in enumerate(doc.get("entries") or [], start=1)
    ]


@app.command("import-pairs")
def import_pairs(file: Path = typer.Argument(..., exists=True, help="TSV text_a<TAB>text_b<TAB>label")) -> None:
    """Load labelled pairs (text_a = an FAQ question or similar question, text_b = a customer text);
    label-1 pairs become confirmed pairs the next training learns from."""
    from nlu.data import load_pairs

    rows = load_pairs(file)
    settings = load_settings()
    added, unknown, skipped = asyncio.run(_store_pairs(settings.database_url, rows))
    console.print(f"imported {added} pairs; {skipped} label-0 or duplicate skipped; {unknown} with unknown FAQ")
    if unknown and not added:
        raise typer.Exit(1)


async def _store_pairs(database_url: str, rows: list[tuple[str, str, int]]) -> tuple[int, int, int]:
    from sqlmodel import select

    from models import FaqConfirmation, FaqEntry
    from nlu.text import normalize
    from scrm.db import make_engine, make_session_factory, transaction

    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        async with transaction(factory) as session:
            by_text: dict[str, int] = {}
            for entry in (await session.exec(select(FaqEntry))).all():
                for text in (entry.question, *entry.similar_questions):
                    by_text.setdefault(normalize(text), entry.id or 0)
            existing = {(c.text, c.faq_id) for c in (await session.exec(select(FaqConfirmation))).all()}
            added = unknown = skipped = 0
            for text_a, text_b, label in rows:
                faq_id = by_text.get(normalize(text_a))
                if faq_id is None:
                    unknown += 1
                    continue
                if label != 1 or (text_b, faq_id) in existing:
                    skipped += 1
                    continue
                session.add(FaqConfirmation(text=text_b, faq_id=faq_id))
                existing.add((text_b, faq_id))
                added += 1
    finally:
        await engine.dispose()
    return added, unknown, skipped
