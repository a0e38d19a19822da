"""Train an NluModel in a child process: `python -m nlu.train` reads the pickled
(training data, affect data, FAQ, pairs) on stdin and writes the pickled model on stdout.

scikit-learn and scipy (~100 MB of a process's memory) are imported by training only; trained
here, they leave with the child, and the serving process unpickles a model of numpy arrays.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from nlu.data import TrainingData
from nlu.model import AffectData, NluModel
from nlu.types import FaqDoc

ROOT = Path(__file__).resolve().parent.parent


class TrainingFailed(RuntimeError):
    """The training process exited with an error (its stderr is in the message)."""


def train_in_child(
    data: TrainingData, faqs: Sequence[FaqDoc], pairs: Sequence[tuple[str, int]], affect: AffectData | None
) -> NluModel:
    """`NluModel.train(...)` in a fresh Python process (blocking: call it from a thread)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "nlu.train"],
        input=pickle.dumps((data, list(faqs), list(pairs), affect), protocol=pickle.HIGHEST_PROTOCOL),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise TrainingFailed(f"NLU training process exited with {done.returncode}: {tail}")
    model = pickle.loads(done.stdout)  # our own child's output
    if not isinstance(model, NluModel):
        raise TrainingFailed("NLU training process returned no model")
    return model


def main() -> None:
    data, faqs, pairs, affect = pickle.load(sys.stdin.buffer)
    model = NluModel.train(data, faqs, pairs, affect)
    pickle.dump(model, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
