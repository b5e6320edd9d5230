#!/usr/bin/env python3
"""The TLoRA study's grid (issue 14): which recipe makes TLoRA learn best, and how it compares per
trainable parameter, under one protocol that never selects on GLUE dev.

Protocol (docs/results.md): every run holds out a validation split of its training set
(tlora-glue --validation-split 0.1, at most 1,000 examples, seeded), which picks the epoch; the
learning rates are picked by the validation score too; dev is reported once, for the selected run,
with the dev-picked epoch beside it (the paper's way). 6 epochs, max length 128, seed 1 in phase 1.

    phase 1a  head-only learning-rate sweep per task: fixes each task's head learning rate
    phase 1b  every method's learning-rate sweep, with the task's head learning rate
    phase 3   TLoRA's design space from its phase-1b best (seed 1): rank 8-128, each at three
              learning rates around the best (extended along the ladder while a rank's best is at
              an end of what ran); then, from the best rank and rate, one factor at a
              time: orthonormal A and B, no dropout, a fixed α, all six linears of each layer at
              about the same trainable count; on MRPC and STS-B only (RTE takes MRPC's recipe:
              nothing beat chance on RTE's validation split in phase 1b)
    phase 2   the table: every method at its selected configuration with seeds 2 and 3 (seed 1 is
              in the ledger), TLoRA at its best recipe from phases 1b and 3, and at its best rank
              up to r=32 (a fifth of LoRA r=8's parameters, the paper's claim) with the dropout of
              the best recipe, seeds 1-3; LoRA also at r=1, r=4
    phase 4   paper-length runs on MRPC and RTE (30 epochs, seed 1): the paper preset as it is, and
              LoRA r=8 at its selected rates
    phase 5   the final configurations on CoLA and a fixed SST-2 subset (its first 20,000
              sentences), seed 1: a head-only sweep for each task's head rate, then every method at
              the configuration MRPC selected (TLoRA at MRPC's best recipe)

Phase 3 runs before phase 2 because phase 2 takes TLoRA's recipe from it. Tasks run side by side,
each through its own phases 1b to 4, so a task never waits for another's slow runs (MRPC and STS-B
first, RTE, where nothing beats chance in phase 1b, last), each job on one core.

The ledger: every finished run's results.json, metrics.jsonl and config.json are copied to
--ledger (results/study/ by default, committed as they land); a run whose files are there is
skipped, an interrupted one resumed from its checkpoint in --runs-dir. Run it from a build of a
fixed commit (--binary), so that rebuilding the tree does not change the binary under running
jobs:

    # the first build (commit 68d689e: phases 1a and 1b)
    git worktree add ../study-build 68d689e && (cd ../study-build && scripts/build.sh tlora-glue)
    # the build of commit a53ca52 (--init and --train-scale for phase 3; faster dropout masks and
    # allocator; the first build's numbers for phase 1b's options, checked to the last digit of
    # the training loss), frozen with its libraries beside it and a wrapper that puts them on
    # LD_LIBRARY_PATH (exec "$here/tlora-glue.bin" "$@")
    git worktree add ../study-a53ca52 a53ca52 && (cd ../study-a53ca52 && scripts/build.sh tlora-glue)
    mkdir -p ../study-bin/a53ca52/lib && cp ../study-a53ca52/build/examples/glue/tlora-glue ../study-bin/a53ca52/tlora-glue.bin \
        && cp ../study-a53ca52/build/src/libtlora_*.so ../study-bin/a53ca52/lib/
    # every new run on the new build; a run the first build started resumes with it (tlora-glue
    # resumes only runs with its own settings digest)
    ~/.cache/tlora/venv/bin/python tools/study.py --binary ../study-bin/a53ca52/tlora-glue \
        --design-binary ../study-bin/a53ca52/tlora-glue --resume-binary ../study-build/build/examples/glue/tlora-glue --jobs 2
    ~/.cache/tlora/venv/bin/python tools/study.py --report     # the tables of what has landed
"""
import argparse
import concurrent.futures
import math
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = ["mrpc", "rte", "stsb"]
PIPELINE_ORDER = ["mrpc", "stsb", "rte"]
LENGTH_TASKS = ["mrpc", "rte"]  # phase 4
# Phase 3 on RTE would rank noise: in phase 1b nothing beat chance on its validation split (every
# method at 48-55% but LoRA at 2e-3, 57.8%, on 249 examples), so RTE takes MRPC's TLoRA recipe.
RECIPE_SOURCE = {"rte": "mrpc"}
FINAL_TASKS = {"cola": [], "sst2": ["--max-train-samples", "20000"]}  # phase 5, with their own options
FINAL_HEAD_LRS = [3e-3, 1e-2, 3e-2]  # phases 2-3: where phase 1b tells the methods apart first
COMMON = ["--epochs", "6", "--max-seq-length", "128", "--validation-split", "0.1"]
# STS-B's head still improved at the top of each sweep (3e-2, then 0.3), so its sweep goes on upwards.
HEAD_LRS = {"mrpc": [3e-3, 1e-2, 3e-2], "rte": [3e-3, 1e-2, 3e-2], "stsb": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]}
# Phase 1b's sweeps; each method at its tlora-glue defaults otherwise (TLoRA r=32 with dropout
# 0.5 on its output, LoRA r=8, VeRA r=256, LoRA-XS r=32).
SWEEPS = {
    "tlora": [3e-3, 1e-2, 3e-2, 1e-1],
    "lora": [5e-4, 2e-3, 5e-3],
    "loraxs": [1e-3, 3e-3, 1e-2],
    "vera": [4e-3, 1e-2, 2e-2],
    "full": [3e-5],
}
FILES = ["results.json", "metrics.jsonl", "config.json"]
# Learning rates of phase 3's rank sweep: the best rate at r=32 and its neighbours on this ladder.
LR_LADDER = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
RANKS = [8, 16, 64, 128]
# The paper's claim is about small adapters: within 2 points of LoRA r=8 with at most a fifth of its
# trainable parameters (74,498 on MRPC: r=32's 13,070 fits, r=64's 49,934 does not). Phase 2 also
# runs the best rank up to this one with the dropout phase 3 found best at the best rank.
BUDGET_RANK = 32
ALL_LINEARS = ["query", "key", "value", "output.dense", "intermediate.dense"]
# TLoRA on all six linears of a layer (query, key, value, attention output, intermediate, output)
# at rank r/√3 trains about what query,value at rank r do: at r=32, 36 × (18² + 1) = 11,700
# against 12 × (32² + 1) = 12,300 adapter parameters.


def run_name(task, method, lr, seed, variant=""):
    return f"{task}-{method}{variant}-lr{lr:g}-seed{seed}"


class Recipe:
    """A TLoRA configuration of phase 3: its tlora-glue options and the variant in its run name."""

    def __init__(self, rank=32, lr=None, init="paper", dropout=0.5, train_scale=True, targets=None):
        self.rank, self.lr, self.init, self.dropout = rank, lr, init, dropout
        self.train_scale, self.targets = train_scale, targets

    def replace(self, **changes):
        r = Recipe(self.rank, self.lr, self.init, self.dropout, self.train_scale, self.targets)
        for key, value in changes.items():
            setattr(r, key, value)
        return r

    def is_default(self):
        """What phase 1b ran: tlora-glue's TLoRA at r=32, which the old binary runs too."""
        return (self.rank, self.init, self.dropout, self.train_scale, self.targets) == (32, "paper", 0.5, True, None)

    def variant(self):
        if self.is_default():
            return ""
        v = f"-r{self.rank}"
        if self.init != "paper":
            v += f"-{self.init}"
        if self.dropout != 0.5:
            v += f"-dropout{self.dropout:g}"
        if not self.train_scale:
            v += "-fixedscale"
        if self.targets:
            v += "-all"
        return v

    def options(self):
        o = ["--method", "tlora", "--lr", str(self.lr)]
        if self.is_default():
            return o
        o += ["--rank", str(self.rank), "--init", self.init, "--dropout", str(self.dropout),
              "--train-scale", "true" if self.train_scale else "false"]
        if self.targets:
            o += ["--targets", ",".join(self.targets)]
        return o


def score(results, key="validation_metrics"):
    metrics = results[key]
    names = {"mrpc": ["accuracy", "f1"], "rte": ["accuracy"], "stsb": ["pearson", "spearman"],
             "cola": ["mcc"], "sst2": ["accuracy"]}[results["task"]]
    return sum(metrics[n] for n in names) / len(names)


class Grid:
    def __init__(self, args):
        self.args = args
        self.ledger = Path(args.ledger)
        self.runs = Path(args.runs_dir)
        self.runs.mkdir(parents=True, exist_ok=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
        self.recipes = {}  # task -> TLoRA's best recipe (phases 1b and 3)
        self.budget_recipes = {}  # task -> TLoRA's best recipe within BUDGET_RANK
        self.designed = {t: threading.Event() for t in TASKS}  # set once self.recipes[t] is final

    def landed(self, name):
        path = self.ledger / name / "results.json"
        return json.loads(path.read_text()) if path.exists() else None

    def run(self, name, options, binary=None):
        """Runs one configuration (or finds it in the ledger) and returns its results.json."""
        if (done := self.landed(name)) is not None:
            return done
        out = self.runs / name
        common = COMMON if "--epochs" not in options else [o for o in COMMON if o not in ("--epochs", "6")]
        binary = binary or self.args.binary
        if (out / "checkpoint").exists():
            # tlora-glue resumes only runs its own settings digest wrote: one started by a build
            # from before --init (no "init" in its config.json) goes on with that build.
            if self.args.resume_binary and "init" not in json.loads((out / "config.json").read_text()):
                binary = self.args.resume_binary
        command = [binary, *options, *common, "--precision", self.args.precision,
                   "--threads", str(self.args.threads), "--output-dir", str(out)]
        if (out / "checkpoint").exists():
            command.append("--resume")
        elif out.exists():
            shutil.rmtree(out)  # started but never checkpointed: start again
        log = self.runs / f"{name}.log"
        print(f"start {name}", flush=True)
        with open(log, "w") as f:
            code = subprocess.run([str(c) for c in command], stdout=f, stderr=subprocess.STDOUT).returncode
        if code != 0:
            print(f"FAILED {name} (exit {code}); see {log}", flush=True)
            return None
        target = self.ledger / name
        target.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            shutil.copy(out / file, target / file)
        results = json.loads((target / "results.json").read_text())
        print(f"done {name}: validation {score(results):.4f}, dev {score(results, 'metrics'):.4f}, "
              f"{results['train_seconds']:.0f} s", flush=True)
        return results

    def run_all(self, jobs, binary=None):
        """Runs (name, options) or (name, options, binary) jobs on the shared pool and waits for them.
        Landed runs are read here, not queued behind running jobs, so a task's pipeline gets to its
        next runs at once."""
        landed = {job[0]: self.landed(job[0]) for job in jobs}
        futures = {job[0]: self.pool.submit(self.run, job[0], job[1], job[2] if len(job) > 2 else binary)
                   for job in jobs if landed[job[0]] is None}
        return {name: landed[name] if name not in futures else futures[name].result() for name in landed}

    def head_lrs(self):
        """Phase 1a: each task's head learning rate, by head-only validation score."""
        jobs = [(run_name(t, "head-only", lr, 1), ["--task", t, "--method", "head-only", "--lr", str(lr), "--seed", "1"])
                for t in TASKS for lr in HEAD_LRS[t]]
        results = self.run_all(jobs)
        chosen = {}
        for t in TASKS:
            done = [(score(results[run_name(t, "head-only", lr, 1)]), lr) for lr in HEAD_LRS[t]
                    if results[run_name(t, "head-only", lr, 1)] is not None]
            if len(done) == len(HEAD_LRS[t]):
                chosen[t] = max(done)[1]
        return chosen

    def sweep(self, task, head_lr):
        """Phase 1b for one task: every method's learning rates at the task's head learning rate."""
        jobs = [(run_name(task, m, lr, 1),
                 ["--task", task, "--method", m, "--lr", str(lr), "--head-lr", str(head_lr), "--seed", "1"])
                for m, lrs in SWEEPS.items() for lr in lrs]
        return self.run_all(jobs)

    def best(self, results):
        """The (score, key) of the best landed result by validation score, or None."""
        scored = [(score(r), key) for key, r in results.items() if r is not None]
        return max(scored, key=lambda s: s[0]) if scored else None

    def selected_lr(self, task, method, lrs):
        found = self.best({lr: self.landed(run_name(task, method, lr, 1)) for lr in lrs})
        return found[1] if found else None

    def tlora_job(self, task, recipe, head_lr, seed=1):
        """A TLoRA run; recipes beyond phase 1b's need the design binary's options."""
        return (run_name(task, "tlora", recipe.lr, seed, recipe.variant()),
                [*recipe.options(), "--task", task, "--head-lr", str(head_lr), "--seed", str(seed)],
                None if recipe.is_default() else self.args.design_binary)

    def tlora_runs(self, task, recipes, head_lr):
        jobs = [self.tlora_job(task, r, head_lr) for r in recipes]
        results = self.run_all(jobs)
        return {r: results[job[0]] for r, job in zip(recipes, jobs)}

    def rank_sweep(self, task, base, rank, head_lr):
        """One rank's learning rates: the ladder's three around `base`'s rate, extended one step at
        a time while the best of them is at an end of what ran (the rate moves with the rank)."""
        i = LR_LADDER.index(base.lr)
        lo, hi = max(i - 1, 0), min(i + 1, len(LR_LADDER) - 1)
        while True:
            found = self.tlora_runs(task, [base.replace(rank=rank, lr=x) for x in LR_LADDER[lo:hi + 1]], head_lr)
            best = self.best(found)
            j = LR_LADDER.index(best[1].lr) if best else None
            if j is not None and j == hi and hi + 1 < len(LR_LADDER):
                hi += 1
            elif j is not None and j == lo and lo > 0:
                lo -= 1
            else:
                return found

    def design(self, task, head_lr):
        """Phase 3 for one task; returns TLoRA's best recipe (phase 1b's r=32 included)."""
        lr = self.selected_lr(task, "tlora", SWEEPS["tlora"])
        if lr is None:
            return None
        base = Recipe(lr=lr)
        with concurrent.futures.ThreadPoolExecutor(len(RANKS)) as ranks:
            found = {}
            for runs in ranks.map(lambda r: self.rank_sweep(task, base, r, head_lr), RANKS):
                found.update(runs)
        found.update({base.replace(lr=x): self.landed(run_name(task, "tlora", x, 1)) for x in SWEEPS["tlora"]})
        if self.best(found) is None:
            return None
        best = self.best(found)[1]
        factors = [best.replace(init="orthonormal"), best.replace(dropout=0.0), best.replace(train_scale=False),
                   best.replace(targets=ALL_LINEARS, rank=max(1, round(best.rank / math.sqrt(3))))]
        found.update(self.tlora_runs(task, factors, head_lr))
        small = self.best({r: res for r, res in found.items() if r.rank <= BUDGET_RANK and r.variant() in ("", f"-r{r.rank}")})
        if small:
            self.budget_recipes[task] = small[1].replace(dropout=self.best(found)[1].dropout)
        return self.best(found)[1]

    def table(self, task, head_lr, tlora_recipe, budget_recipe=None):
        """Phase 2 for one task: seeds 2 and 3 at each selected configuration, LoRA r=1 and r=4
        (TLoRA's seed 1 too where its recipe came from another task), and TLoRA's best recipe
        within BUDGET_RANK with seeds 1-3."""
        seeds = [2, 3]
        jobs = [self.tlora_job(task, tlora_recipe, head_lr, s) for s in [1, *seeds]] if tlora_recipe else []
        if budget_recipe:
            jobs += [self.tlora_job(task, budget_recipe, head_lr, s) for s in [1, *seeds]]
        jobs += [(run_name(task, "head-only", head_lr, s), ["--task", task, "--method", "head-only", "--lr",
                                                          str(head_lr), "--seed", str(s)]) for s in seeds]
        for method in ["lora", "loraxs", "vera", "full"]:  # full last: the slowest by far
            lr = self.selected_lr(task, method, SWEEPS[method])
            if lr is None:
                continue
            jobs += [(run_name(task, method, lr, s), ["--task", task, "--method", method, "--lr", str(lr),
                                                      "--head-lr", str(head_lr), "--seed", str(s)]) for s in seeds]
            if method == "lora":
                jobs += [(run_name(task, method, lr, s, f"-r{r}"),
                          ["--task", task, "--method", method, "--rank", str(r), "--lr", str(lr),
                           "--head-lr", str(head_lr), "--seed", str(s)]) for r in (1, 4) for s in [1, *seeds]]
        self.run_all(jobs)

    def length(self, task, head_lr):
        """Phase 4: does length close the gap? The paper preset and LoRA r=8, 30 epochs, seed 1."""
        lora_lr = self.selected_lr(task, "lora", SWEEPS["lora"])
        jobs = [(f"{task}-tlora-paper-epochs30-seed1",
                 ["--task", task, "--method", "tlora", "--preset", "paper", "--epochs", "30", "--seed", "1"])]
        if lora_lr is not None:
            jobs.append((run_name(task, "lora", lora_lr, 1, "-epochs30"),
                         ["--task", task, "--method", "lora", "--lr", str(lora_lr), "--head-lr", str(head_lr),
                          "--epochs", "30", "--seed", "1"]))
        self.run_all(jobs)

    def pipeline(self, task, head_lr):
        """Phases 1b, 3, 2 and 4 of one task: a task waits only for its own runs (RTE also for MRPC's recipe)."""
        self.sweep(task, head_lr)
        if task in RECIPE_SOURCE:
            self.designed[RECIPE_SOURCE[task]].wait()
            recipe = self.recipes.get(RECIPE_SOURCE[task])
            self.budget_recipes[task] = self.budget_recipes.get(RECIPE_SOURCE[task])
        else:
            try:
                self.recipes[task] = self.design(task, head_lr)
            finally:  # a task waiting for this recipe must not hang when phase 3 fails
                self.designed[task].set()
            recipe = self.recipes.get(task)
        print(f"{task}: TLoRA's recipe {recipe.variant() or '(r=32, phase 1b)'} at lr {recipe.lr:g}"
              if recipe else f"{task}: no TLoRA recipe selected", flush=True)
        self.recipes[task] = recipe
        budget = self.budget_recipes.get(task)
        if budget:
            print(f"{task}: TLoRA's recipe within r={BUDGET_RANK} {budget.variant() or '(r=32, phase 1b)'} "
                  f"at lr {budget.lr:g}", flush=True)
        self.table(task, head_lr, recipe, budget)
        if task in LENGTH_TASKS:
            self.length(task, head_lr)

    def final(self, source="mrpc"):
        """Phase 5: CoLA and the SST-2 subset at the configurations `source` selected, seed 1."""
        jobs = [(run_name(t, "head-only", lr, 1), ["--task", t, "--method", "head-only", "--lr", str(lr), "--seed", "1",
                                                   *extra]) for t, extra in FINAL_TASKS.items() for lr in FINAL_HEAD_LRS]
        results = self.run_all(jobs)
        for task, extra in FINAL_TASKS.items():
            found = self.best({lr: results[run_name(task, "head-only", lr, 1)] for lr in FINAL_HEAD_LRS})
            if found is None:
                continue
            head_lr = found[1]
            jobs = []
            if self.recipes.get(source):
                name, options, binary = self.tlora_job(task, self.recipes[source], head_lr)
                jobs.append((name, [*options, *extra], binary))
            for method in ["lora", "loraxs", "vera", "full"]:
                lr = self.selected_lr(source, method, SWEEPS[method])
                if lr is not None:
                    jobs.append((run_name(task, method, lr, 1), ["--task", task, "--method", method, "--lr", str(lr),
                                                                 "--head-lr", str(head_lr), "--seed", "1", *extra]))
            self.run_all(jobs)


def describe(config):
    """A run's method and its options beyond phase 1b's, e.g. "tlora r=64 orthonormal"."""
    parts = [config["method"]]
    if config.get("rank"):
        parts.append(f"r={config['rank']}")
    if config.get("init", "paper") != "paper":
        parts.append(config["init"])
    if config["method"] == "tlora" and config.get("dropout") != 0.5:
        parts.append(f"dropout {config['dropout']:g}")
    if not config.get("train_scale", True):
        parts.append("fixed α")
    if config.get("targets") and config["targets"] != ["query", "value"]:
        parts.append("all linears")
    return " ".join(parts)


def report(ledger):
    """The tables of the ledger: validation and dev scores of every run."""
    rows = []
    for path in sorted(Path(ledger).glob("*/results.json")):
        r = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text())
        rows.append((r["task"], describe(config), config["seed"], config["lr"], config["head_lr"],
                     r["trainable_params"], score(r), r["best_epoch"], score(r, "metrics"), r["best_dev_epoch"],
                     score(r, "best_dev_metrics"), r["train_seconds"]))
    print("| task | configuration | seed | lr | head lr | trainable | validation score (epoch) | dev at that epoch | "
          "dev, epoch picked on dev (paper's way) | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t, c, seed, lr, hlr, n, v, e, d, de, dd, s in rows:
        print(f"| {t} | {c} | {seed} | {lr:g} | {hlr:g} | {n:,} | {100 * v:.1f} ({e}) | {100 * d:.1f} | "
              f"{100 * dd:.1f} ({de}) | {s:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=str(REPO / "build/examples/glue/tlora-glue"))
    p.add_argument("--design-binary", help="tlora-glue for phase 3's options (default: --binary)")
    p.add_argument("--resume-binary", help="tlora-glue that resumes runs a build from before --init started")
    p.add_argument("--runs-dir", default=str(REPO / "runs/study"))
    p.add_argument("--ledger", default=str(REPO / "results/study"))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (give each a core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--precision", default="bf16-mixed",
                   help="tlora-glue --precision (bf16-mixed: docs/results.md shows it scores as fp32)")
    p.add_argument("--report", action="store_true", help="print the tables of the ledger and stop")
    args = p.parse_args()
    if args.report:
        report(args.ledger)
        return 0
    grid = Grid(args)
    head_lrs = grid.head_lrs()
    print(f"head learning rates: {head_lrs}", flush=True)
    args.design_binary = args.design_binary or args.binary
    drivers = [threading.Thread(target=grid.pipeline, args=(t, head_lrs[t])) for t in PIPELINE_ORDER if t in head_lrs]
    for d in drivers:
        d.start()
    for d in drivers:
        d.join()
    grid.final()
    grid.pool.shutdown()
    report(args.ledger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
