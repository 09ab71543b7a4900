"""Copy pre-training: well-formed synthetic sequences, and a model that learns to copy."""

import random

import pytest

from knowgen.agents.copy_pretrain import (
    CopyTask,
    copy_accuracy,
    copy_batch,
    copy_sequence,
    ordinary_token_ids,
    pretrain_copying,
)
from knowgen.errors import ConfigError


def test_every_trained_token_continues_an_earlier_occurrence():
    rng, task = random.Random(0), CopyTask(length=96, span_min=2, span_max=6)
    for _ in range(50):
        ids, mask = copy_sequence(rng, list(range(100, 400)), task)
        assert len(ids) == len(mask) == 96 and set(ids) <= set(range(100, 400))
        assert mask[0] == 0 and 0.1 < sum(mask) / len(mask) < 0.8
        for t, trained in enumerate(mask):
            if trained:  # the pair (previous token, this token) occurred before
                assert any(ids[s - 1] == ids[t - 1] and ids[s] == ids[t] for s in range(1, t))


def test_batch_labels_ignore_unpredictable_tokens():
    ids, labels = copy_batch(random.Random(1), list(range(5, 50)), 3, CopyTask(length=40))
    assert ids.shape == labels.shape == (3, 40)
    kept = labels != -100
    assert kept.any() and (labels[kept] == ids[kept]).all()


@pytest.mark.slow
def test_a_tiny_model_learns_to_copy():
    """The tiny preset's shape (2 layers, 64 wide) forms the copying circuit: accuracy on
    repeated spans goes from chance (1/2000) to a large share (measured: 0.6 after 1,000 steps)."""
    from knowgen.agents.tiny import build_tiny_model, train_tokenizer
    from knowgen.world.data import load_world

    tokenizer = train_tokenizer([p.text for p in load_world().pages.values()], 2048)
    token_ids = ordinary_token_ids(tokenizer)
    assert tokenizer.eos_token_id not in token_ids and len(token_ids) > 2000
    model = build_tiny_model(tokenizer, hidden=64, layers=2, heads=2)
    task = CopyTask(length=48, span_min=3, span_max=8)
    stats = pretrain_copying(model, token_ids, steps=1500, batch=32, task=task,
                             learning_rate=2e-3, eval_every=750, log_every=0)
    assert stats["loss_last"] < stats["loss_first"]
    assert stats["copy_accuracy_before"] < 0.05 and stats["copy_accuracy_after"] > 0.3, stats
    assert [row[0] for row in stats["curve"]] == [750, 1500]
    assert copy_accuracy(model, token_ids, task) == pytest.approx(stats["copy_accuracy_after"], abs=1e-4)


def test_zero_steps_and_bad_arguments(tmp_path):
    from knowgen.agents.tiny import build_tiny_model, train_tokenizer

    tokenizer = train_tokenizer(["one two three four"] * 10, 300)
    model = build_tiny_model(tokenizer, hidden=32, layers=1, heads=2)
    stats = pretrain_copying(model, ordinary_token_ids(tokenizer), steps=0)
    assert stats["steps"] == 0 and stats["copy_accuracy_after"] == stats["copy_accuracy_before"]
    with pytest.raises(ConfigError, match=">= 0"):
        pretrain_copying(model, [1, 2], steps=-1)
    with pytest.raises(ConfigError, match="two token ids"):
        pretrain_copying(model, [1], steps=1)
