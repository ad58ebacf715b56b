"""A tiny DistributedDataParallel training loop on CPU (gloo): every rank prints its rank and the world size, the
ranks check that an all-reduce sees all of them, and local rank 0 of each node prints one
``performance: <samples/s> samples_per_second`` line (one perf row per node)."""

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    node_rank = int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "0")))
    print(f"dummy_torchrun: rank {rank} of world {world} (local_rank {local_rank}, node_rank {node_rank})", flush=True)
    total = torch.tensor([rank], dtype=torch.int64)
    dist.all_reduce(total)
    expected = world * (world - 1) // 2
    if int(total.item()) != expected:
        raise SystemExit(f"all_reduce of ranks gave {int(total.item())}, expected {expected}")

    torch.manual_seed(rank)
    model = DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                                        torch.nn.Linear(32, 1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for _ in range(args.steps):
        x = torch.randn(args.batch_size, 16)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.barrier()
    elapsed = time.perf_counter() - start
    samples_per_second = args.steps * args.batch_size * world / elapsed
    if local_rank == 0:
        print(f"dummy_torchrun: node_rank {node_rank} world {world} all_reduce ok loss {loss.item():.4f}", flush=True)
        print(f"performance: {samples_per_second:.1f} samples_per_second", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
