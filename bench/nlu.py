"""NLU benchmark: every figure of the NLU issue in one table, Rasa side by side when `.venv-rasa` exists.

Embedded engine: SMP2017 intents (train -> dev), FAQ retrieval on LCQMC dev (no pairs) and on an
AFQMC 90/10 split by text_a (seed 0) with and without training pairs, waimai_10k sentiment
80/20 (seed 0), anger F1 on CLUEmotion valid, parse latency of a 500-FAQ / 40-intent model,
loaded-model memory, training time on 2,300 examples.
Rasa 3.6.21 (JiebaTokenizer + word/char_wb counts + LogisticRegression; BENCH_RASA_DIET=1 adds DIET):
accuracy on SMP2017 dev, training time, /model/parse latency over HTTP, server memory.

BENCH_QUICK=1: subsets, no Rasa. Reads ../shared/datasets (test data, never shipped).
"""

from __future__ import annotations

import gc
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlu.config import load_affect_data, load_training_data  # noqa: E402
from nlu.data import TrainingData, load_intent_examples, load_pairs, read_tsv  # noqa: E402
from nlu.evaluate import eval_binary, eval_faq, eval_intents, split_pairs_by_text_a, split_rows  # noqa: E402
from nlu.model import NluModel  # noqa: E402
from nlu.sentiment import anger_model  # noqa: E402
from nlu.types import FaqDoc  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
DATA = Path(os.environ.get("HUIKE_DATASETS", ROOT.parent / "shared" / "datasets")) / "dev"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"


def labelled(path: Path, positive: str | None = None) -> list[tuple[str, int]]:
    rows = read_tsv(path, ("text", "label"))
    return [(t, int(y) if positive is None else int(y == positive)) for t, y in rows]


def intents() -> dict[str, Any]:
    train = load_intent_examples(DATA / "intent" / "smp2017_train.tsv")
    dev = load_intent_examples(DATA / "intent" / "smp2017_dev.tsv")
    return eval_intents(train, dev).summary()


def faq() -> dict[str, Any]:
    lcqmc = load_pairs(DATA / "matching" / "lcqmc_dev.tsv")
    if QUICK:
        lcqmc = lcqmc[:2000]
    out = {"lcqmc": eval_faq(lcqmc).summary()}
    afqmc = load_pairs(DATA / "matching" / "afqmc_train.tsv")
    train, test = split_pairs_by_text_a(afqmc, 0.1, 0)
    if QUICK:
        train = train[:5000]
    out["afqmc_no_pairs"] = eval_faq(test).summary()
    out["afqmc_with_pairs"] = eval_faq(test, train).summary()
    return out


def affect() -> dict[str, Any]:
    waimai = labelled(DATA / "sentiment" / "waimai_10k.tsv")
    train, test = split_rows(waimai, 0.2, 0)
    seed = load_affect_data()
    emotions = labelled(DATA / "sentiment" / "cluemotion_valid.tsv", "anger")
    return {
        "sentiment_waimai_80_20": eval_binary(train, test).summary(),
        "sentiment_seed_on_waimai": eval_binary(seed.sentiment, waimai if not QUICK else waimai[:3000]).summary(),
        "anger_seed_on_cluemotion": eval_binary(seed.anger, emotions, model=anger_model()).summary(),
    }


def latency_and_memory() -> dict[str, Any]:
    """A 500-FAQ model (LCQMC questions + paraphrases) with SMP2017 + shipped intents (40+)."""
    pairs = load_pairs(DATA / "matching" / "lcqmc_dev.tsv")
    by_q: dict[str, list[str]] = {}
    for a, b, label in pairs:
        if label == 1:
            by_q.setdefault(a, []).append(b)
    questions = list(by_q)[:500]
    faqs = [FaqDoc(id=n, question=q, similar=tuple(by_q[q][:2]), answer=f"答案{n}") for n, q in enumerate(questions)]
    smp = load_intent_examples(DATA / "intent" / "smp2017_train.tsv")
    data = load_training_data().merge(TrainingData(examples=[e for e in smp.examples if e[1] != "chat"]))
    started = time.perf_counter()
    model = NluModel.train(data, faqs, (), load_affect_data())
    train_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.pkl"
        model.save(path)
        file_mb = path.stat().st_size / 1e6
        memory = model_memory(path)
    queries = [b for a, b, _ in pairs if a not in by_q or a in questions][: 300 if QUICK else 2000]
    for q in queries[:50]:
        model.parse(q)
    gc.collect()
    gc.freeze()  # as NluService does after a swap: the model's big dicts leave the cyclic GC's scans
    times = []
    for q in queries:
        t0 = time.perf_counter()
        model.parse(q)
        times.append((time.perf_counter() - t0) * 1000)
    smp_model_started = time.perf_counter()
    NluModel.train(smp, (), (), None)
    return {
        "n_faq": len(faqs),
        "n_intents": len(model.intents.classes),
        "parse_ms_p50": round(float(np.percentile(times, 50)), 3),
        "parse_ms_p99": round(float(np.percentile(times, 99)), 3),
        "train_500faq_seconds": round(train_seconds, 2),
        "train_smp2300_seconds": round(time.perf_counter() - smp_model_started, 2),
        "model_file_mb": round(file_mb, 1),
        **memory,
    }


MEMORY_PROBE = """
import gc, os, sys, psutil
sys.path.insert(0, {root!r})
from nlu.text import shared_tokenizer
from nlu.model import NluModel  # libraries (numpy, scipy, scikit-learn) are not the model
proc = psutil.Process()
base = proc.memory_info().rss
shared_tokenizer().tagged("预热")  # the word dictionary (jieba's, compact): shared process state
jieba = proc.memory_info().rss
m = NluModel.load(__import__("pathlib").Path({path!r}))
gc.collect()
print(round((jieba - base) / 1e6, 1), round((proc.memory_info().rss - jieba) / 1e6, 1))
"""


def model_memory(path: Path) -> dict[str, float]:
    """RSS growth of a fresh process loading the model (word dictionary reported apart, and the total)."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE.format(root=str(ROOT), path=str(path))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    dictionary, model = float(out[0]), float(out[1])
    return {"jieba_dict_mb": dictionary, "model_loaded_mb": model, "loaded_total_mb": round(dictionary + model, 1)}


# ---- Rasa side by side -------------------------------------------------------------------------
RASA_LR_CONFIG = """recipe: default.v1
language: zh
assistant_id: huike-bench
pipeline:
- name: JiebaTokenizer
- name: CountVectorsFeaturizer
- name: CountVectorsFeaturizer
  analyzer: char_wb
  min_ngram: 1
  max_ngram: 4
- name: LogisticRegressionClassifier
policies: []
"""
RASA_DIET_CONFIG = RASA_LR_CONFIG.replace(
    "- name: LogisticRegressionClassifier", "- name: DIETClassifier\n  epochs: 100"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mb(proc: psutil.Process) -> float:
    procs = [proc, *proc.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs if p.is_running()) / 1e6


def rasa(pipeline: str, config: str) -> dict[str, Any]:
    import httpx
    import yaml

    train = load_intent_examples(DATA / "intent" / "smp2017_train.tsv")
    dev = load_intent_examples(DATA / "intent" / "smp2017_dev.tsv")
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        grouped: dict[str, list[str]] = {}
        for text, intent in train.examples:
            grouped.setdefault(intent, []).append(" ".join(text.split()))
        nlu = {
            "version": "3.1",
            "nlu": [
                {"intent": i, "examples": "".join(f"- {t}\n" for t in dict.fromkeys(ts))} for i, ts in grouped.items()
            ],
        }
        (work / "nlu.yml").write_text(yaml.safe_dump(nlu, allow_unicode=True), encoding="utf-8")
        (work / "config.yml").write_text(config, encoding="utf-8")
        (work / "domain.yml").write_text(
            yaml.safe_dump({"version": "3.1", "intents": sorted(grouped)}), encoding="utf-8"
        )
        started = time.perf_counter()
        trainer = psutil.Popen(
            [
                str(RASA),
                "train",
                "nlu",
                "--config",
                "config.yml",
                "--nlu",
                "nlu.yml",
                "--domain",
                "domain.yml",
                "--out",
                "models",
                "--fixed-model-name",
                "m",
            ],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0.0
        while trainer.poll() is None:
            peak = max(peak, tree_rss_mb(trainer))
            time.sleep(0.5)
        train_seconds = time.perf_counter() - started
        if trainer.returncode != 0:
            return {"pipeline": pipeline, "error": f"rasa train exited {trainer.returncode}"}
        port = free_port()
        server = psutil.Popen(
            [str(RASA), "run", "--enable-api", "-m", "models/m.tar.gz", "-i", "127.0.0.1", "-p", str(port)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/status", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(1)
            correct, times = 0, []
            with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
                for text, gold in dev.examples:
                    t0 = time.perf_counter()
                    body = client.post("/model/parse", json={"text": text}).json()
                    times.append((time.perf_counter() - t0) * 1000)
                    correct += int(body["intent"]["name"] == gold)
            server_mb = tree_rss_mb(server)
        finally:
            server.terminate()
            server.wait(30)
    return {
        "pipeline": pipeline,
        "accuracy": round(correct / len(dev.examples), 4),
        "train_seconds": round(train_seconds, 1),
        "train_peak_mb": round(peak),
        "parse_ms_p50": round(float(np.percentile(times, 50)), 2),
        "parse_ms_p99": round(float(np.percentile(times, 99)), 2),
        "server_mb": round(server_mb),
    }


def main() -> None:
    random.seed(0)
    figures: dict[str, Any] = {"bench": "nlu", "quick": QUICK}
    figures["intents_smp2017"] = intents()
    figures["faq"] = faq()
    figures["affect"] = affect()
    gc.collect()
    figures["runtime"] = latency_and_memory()
    if RASA.exists() and not QUICK:
        figures["rasa"] = [rasa("jieba+char_wb+LogisticRegression", RASA_LR_CONFIG)]
        if os.environ.get("BENCH_RASA_DIET") == "1":
            figures["rasa"].append(rasa("jieba+char_wb+DIET(100 epochs)", RASA_DIET_CONFIG))
    print_table(figures)
    print(json.dumps(figures, ensure_ascii=False))


def print_table(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Huike NLU" + (" (BENCH_QUICK)" if QUICK else ""))
    table.add_column("area")
    table.add_column("metric")
    table.add_column("value", justify="right")

    def rows(area: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                rows(f"{area}/{key}", value)
            else:
                table.add_row(area, key, str(value))

    for area, values in figures.items():
        if isinstance(values, dict):
            rows(area, values)
        elif isinstance(values, list):
            for item in values:
                rows(f"{area}/{item.get('pipeline', '')}", item)
    Console().print(table)


if __name__ == "__main__":
    main()
