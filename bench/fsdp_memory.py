"""Memory per rank under DDP and FSDP2 (parallel.py): a table computed from byte counts for Qwen2.5-0.5B/1.5B/7B on 8
GPUs, and the bytes a small model's parameters, gradients and AdamW state take per rank, measured on 2 CPU ranks.

    python bench/fsdp_memory.py --table          # the README's table; the models are built on the meta device from
                                                 # their published config.json values (below), nothing is downloaded
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 bench/fsdp_memory.py    # one AdamW step under DDP,
                                                 # then under FSDP (gloo): the tensors each rank holds afterwards

The table's bytes per parameter: fp32 weights 4, gradients 4, AdamW's two moments 8. FSDP2 shards all 16 over the
ranks and, while a Block runs, holds it whole in bf16 (and its gradient until the reduce-scatter); the root unit
(embedding, final norm, head) stays gathered in fp32 for the whole step. Counted as a working set: the root's fp32
weights and gradients (8 B each root parameter) and two Blocks (the one running and the one prefetched) at about 8 B
per parameter (bf16 weights and gradients, the fp32 copy reduced). Activations, the KV cache of a rollout and the
allocator's slack come on top of every column; so does DDP's gradient bucket (another 4 B/param by default).
"""

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model import GPT, GPTConfig  # noqa: E402

# config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B}-Instruct: hidden, layers, intermediate, heads, kv heads, vocab, tied
QWEN25 = {"Qwen2.5-0.5B": (896, 24, 4864, 14, 2, 151936, True),
          "Qwen2.5-1.5B": (1536, 28, 8960, 12, 2, 151936, True),
          "Qwen2.5-7B": (3584, 28, 18944, 28, 4, 152064, False)}
GB = 1e9


def qwen(hidden, layers, inter, heads, kv, vocab, tied):
    with torch.device("meta"):
        return GPT(GPTConfig(vocab_size=vocab, n_layer=layers, n_head=heads, n_kv_head=kv, n_embd=hidden,
                             intermediate_size=inter, block_size=32768, qkv_bias=True, tie_embeddings=tied))


def table(world=8):
    rows = ["| model | params | DDP: 16 B/param | FSDP2 x8: shards (16 B/param / 8) | + root in fp32 and 2 Blocks | "
            "FSDP2 x8 total | rl.py rollout: all Blocks gathered in bf16 |",
            "|---|---|---|---|---|---|---|"]
    for name, spec in QWEN25.items():
        model = qwen(*spec)
        n = sum(p.numel() for p in model.parameters())
        block = sum(p.numel() for p in model.blocks[0].parameters())
        root = n - block * len(model.blocks)
        shards, working = 16 * n / world, 8 * root + 2 * 8 * block
        rows.append(f"| {name} | {n / 1e9:.2f}B | {16 * n / GB:.1f} GB | {shards / GB:.1f} GB | "
                    f"{working / GB:.1f} GB | {(shards + working) / GB:.1f} GB | "
                    f"+{2 * block * len(model.blocks) / GB:.1f} GB |")
    print("\n".join(rows))


def measure():
    """One AdamW step of a small model under DDP, then under FSDP, on the torchrun ranks: the bytes each rank holds."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import parallel
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = lambda t: t.to_local() if hasattr(t, "to_local") else t  # noqa: E731
    nbytes = lambda ts: sum(local(t).numel() * local(t).element_size() for t in ts)  # noqa: E731
    if rank == 0:
        print("| mode | rank | params | weights | gradients | AdamW state | total | bytes/param |\n"
              "|---|---|---|---|---|---|---|---|")
    for mode in ("DDP", "FSDP"):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=258, n_layer=4, n_head=4, n_embd=256, block_size=256))
        if mode == "FSDP":
            wrapped = parallel.shard(model, torch.float32)
        else:
            wrapped = DDP(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        idx = torch.randint(0, 258, (4, 64), generator=torch.Generator().manual_seed(rank))
        wrapped(idx, idx)[1].backward()
        optimizer.step()
        params = nbytes(model.parameters())
        grads = nbytes(p.grad for p in model.parameters())
        state = nbytes(t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim())
        sizes = torch.tensor([params, grads, state], dtype=torch.float64)
        everyone = [torch.zeros(3, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(everyone, sizes)
        if rank == 0:
            total = sum(p.numel() for p in model.parameters())
            for r, (p, g, s) in enumerate(t.tolist() for t in everyone):
                print(f"| {mode} | {r} | {total / 1e6:.2f}M | {p / 2**20:.2f} MiB | {g / 2**20:.2f} MiB | "
                      f"{s / 2**20:.2f} MiB | {(p + g + s) / 2**20:.2f} MiB | {(p + g + s) / total:.1f} |")
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", action="store_true", help="print the computed table for Qwen2.5 on 8 GPUs and exit")
    if p.parse_args().table:
        table()
    else:
        measure()
