#!/usr/bin/env python3
"""Writes GLUE tasks as chat instructions for tlora-sft: one JSONL line per example,
{"messages": [{"role": "user", "content": <instruction and text>}, {"role": "assistant",
"content": <one answer word>}]}, from the GLUE folders in ../shared/data/glue.

    python3 tools/glue_to_sft.py --task sst2 --out data/sft      # data/sft/sst2_{train,dev}.jsonl
    python3 tools/glue_to_sft.py --task mrpc --out data/sft
"""
import argparse
import csv
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLUE = os.path.join(REPO, "..", "shared", "data", "glue")

TASKS = {
    "sst2": ("SST-2", lambda r: ("Is the sentiment of this movie review positive or negative? Answer with one word.\n"
                                 f"Review: {r['sentence']}", ["negative", "positive"][int(r["label"])])),
    "mrpc": ("MRPC", lambda r: ("Do these two sentences mean the same thing? Answer yes or no.\n"
                                f"Sentence 1: {r['#1 String']}\nSentence 2: {r['#2 String']}",
                                ["no", "yes"][int(r["\ufeffQuality"] if "\ufeffQuality" in r else r["Quality"])])),
    "rte": ("RTE", lambda r: ("Does the first text imply the second? Answer yes or no.\n"
                              f"Text: {r['sentence1']}\nHypothesis: {r['sentence2']}",
                              "yes" if r["label"] == "entailment" else "no")),
}


def convert(task, split, out):
    folder, make = TASKS[task]
    path = os.path.join(GLUE, folder, f"{split}.tsv")
    target = os.path.join(out, f"{task}_{split}.jsonl")
    count = 0
    with open(path, newline="", encoding="utf-8") as f, open(target, "w", encoding="utf-8") as w:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            question, answer = make(row)
            w.write(json.dumps({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}, ensure_ascii=False) + "\n")
            count += 1
    print(f"{target}: {count} examples")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(TASKS), required=True)
    ap.add_argument("--out", default=os.path.join(REPO, "data", "sft"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for split in ["train", "dev"]:
        convert(args.task, split, args.out)


if __name__ == "__main__":
    main()
