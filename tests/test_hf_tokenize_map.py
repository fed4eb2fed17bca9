"""The tokenizing map of HuggingFaceTrainer, as Ray Data's worker processes run it (unit tier:
no Ray, no servers): it imports what tokenizing needs, not the training stack."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pyarrow as pa
import text_data

from pinnacle_ray.trainers.huggingface_causal import TokenizeCausal
from pinnacle_ray.trainers.huggingface_rows import EMPTY_COLUMN, TRUNCATED_COLUMN, Tokenize
from pinnacle_ray.trainers.huggingface_tokens import TokenizeWords

_CHILD = textwrap.dedent(
    """
    import pickle, sys
    import pyarrow as pa
    tokenize, table = pickle.loads(sys.stdin.buffer.read())
    out = tokenize(table)
    heavy = sorted(m for m in ("torch", "ray.train", "transformers.trainer") if m in sys.modules)
    print(out.num_rows, heavy)
    """
)


def _run_in_a_fresh_process(tokenize: object, label: str = "label") -> str:
    table = pa.table({"text": ["great product", ""], label: ["pos", "neg"]})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps((tokenize, table)),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode().strip()


def test_the_tokenizing_map_runs_in_a_fresh_process_without_importing_torch_or_ray_train():
    tokenize = Tokenize(text_data.word_tokenizer(), ["text"], "label", ["neg", "pos"], 16)
    assert _run_in_a_fresh_process(tokenize) == "2 []"


def test_the_causal_lm_tokenizing_map_runs_without_importing_torch_or_ray_train():
    tokenize = TokenizeCausal(text_data.word_tokenizer(), "text", 16)
    assert _run_in_a_fresh_process(tokenize) == "2 []"


def test_the_token_classification_map_runs_without_importing_torch_or_ray_train():
    tokenize = TokenizeWords(text_data.word_tokenizer(), "text", "tags", ["pos", "neg"], 16)
    assert _run_in_a_fresh_process(tokenize, label="tags") == "2 []"


def test_the_tokenizing_map_gives_label_ids_and_flags_empty_and_truncated_rows():
    tokenize = Tokenize(text_data.word_tokenizer(), ["text"], "label", ["neg", "pos"], 4)
    out = tokenize(
        pa.table({"text": ["great product was fine", " ", "sad"], "label": ["pos", "neg", "x"]})
    )
    labels = out.column("labels").to_pylist()
    assert labels[:2] == [1.0, 0.0] and labels[2] != labels[2]  # an unknown label: NaN
    assert out.column(EMPTY_COLUMN).to_pylist() == [False, True, False]
    assert out.column(TRUNCATED_COLUMN).to_pylist() == [True, False, False]
    assert all(len(ids) <= 4 for ids in out.column("input_ids").to_pylist())
