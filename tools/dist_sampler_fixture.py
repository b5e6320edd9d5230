#!/usr/bin/env python3
"""Writes tests/fixtures/dist/sampler.json: the indices torch.utils.data.DistributedSampler gives
every rank, for tlora::dist::DistributedSampler to match index for index."""
import argparse
import json

import torch
from torch.utils.data import DistributedSampler

CASES = [  # size, world_size, shuffle, seed, epoch, drop_last
    (10, 3, True, 0, 0, False),
    (10, 3, True, 0, 1, False),
    (10, 3, True, 42, 5, True),
    (7, 2, False, 0, 0, False),
    (3, 5, True, 1, 2, False),  # padding longer than the dataset
    (1000, 4, True, 123, 7, False),
    (9, 4, False, 0, 0, True),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="tests/fixtures/dist/sampler.json")
    args = parser.parse_args()
    cases = []
    for size, world, shuffle, seed, epoch, drop_last in CASES:
        ranks = []
        for rank in range(world):
            sampler = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=shuffle,
                                         seed=seed, drop_last=drop_last)
            sampler.set_epoch(epoch)
            ranks.append(list(sampler))
        cases.append(dict(size=size, world_size=world, shuffle=shuffle, seed=seed, epoch=epoch,
                          drop_last=drop_last, indices=ranks))
    with open(args.out, "w") as f:
        json.dump(dict(torch=torch.__version__, cases=cases), f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
