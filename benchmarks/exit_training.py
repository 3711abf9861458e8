"""Frozen-backbone against joint exit training, at equal budget, from the same trained backbone.

Both routes start from ``--init-from`` (a supernet trained by progressive shrinking; its exit
heads, if any, are discarded) and run ``--epochs`` exit-stage epochs on ``--train-limit``
training images (same seed, same batches). Reported on the test split with BN recalibrated for
the uniform-width subnets: every exit's accuracy and the final exit's, and how much the
backbone moved (the frozen route cannot move it).

Run from the repository root (about 10 min at the defaults)::

    .venv/bin/python benchmarks/exit_training.py --dataset cifar10:../shared/datasets/cifar10 \\
        --init-from runs/cifar-default/supernet.safetensors
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from supernet.checkpoint import write_json
from supernet.data import load_dataset
from supernet.evaluate import exit_accuracies, subnet_model
from supernet.train import TrainConfig, Trainer

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", type=Path, default=Path("supernet/pretrained/cifar10-cnn.safetensors"))
    ap.add_argument("--dataset", default="cifar10:../shared/datasets/cifar10")
    ap.add_argument("--preset", default="cifar-default")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "exit_training.json")
    args = ap.parse_args()
    full = load_dataset(args.dataset)
    data = load_dataset(args.dataset, train_limit=args.train_limit)
    out = {"init_from": str(args.init_from), "epochs": args.epochs, "train_limit": args.train_limit,
           "seed": args.seed, "routes": {}}
    backbone = None
    for route in ("frozen", "joint"):
        cfg = TrainConfig(preset=args.preset, dataset=args.dataset, stage_epochs=(), init_from=str(args.init_from),
                          exit_epochs=args.epochs, exit_route=route, seed=args.seed, n_random=1,
                          train_limit=args.train_limit)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            trainer = Trainer(cfg, Path(tmp), data=data)
            start = {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("exits.")}
            backbone = backbone or start
            trainer.run()
            seconds = time.perf_counter() - t0
        model = trainer.model.eval()
        moved = max(float((model.state_dict()[k].float() - v.float()).abs().max()) for k, v in start.items()
                    if v.is_floating_point())
        space = model.space
        rows = []
        for j, w in enumerate(space.width_choices):
            sub = space.uniform(j)
            static = subnet_model(model, sub, full, "recal", seed=args.seed)
            accs = exit_accuracies(static, full.x_test, full.y_test)
            rows.append({"width": w, "exit_test_acc": accs[:-1], "final_test_acc": accs[-1]})
            print(f"{route} α={w:g}: exits {[round(a, 4) for a in accs[:-1]]} final {accs[-1]:.4f}", flush=True)
        out["routes"][route] = {"uniform": rows, "seconds": seconds, "backbone_max_abs_change": moved,
                                "history": trainer.history}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
