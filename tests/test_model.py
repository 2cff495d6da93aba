"""model.py details that the parity tests (test_convert) and attention tests do not reach."""
import pytest
import torch

from model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rope_frequencies_stay_float32_under_model_to_bf16():
    cfg = GPTConfig(vocab_size=61, n_layer=1, n_head=2, n_embd=32, block_size=64, rope_theta=500000.0)
    model = GPT(cfg).to(torch.bfloat16)
    assert model.inv_freq.dtype == torch.float32
    assert model.embed.weight.dtype == torch.bfloat16
