"""`hwofa` command line: a thin layer over hwofa.pipeline and the stage packages.

Exit codes: 0 success; 2 user error (one paragraph, no traceback); 1 internal error or a
failed verification.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence

from hwofa.common import UserError


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of milliseconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"the latency budget must be a positive number of ms, got {text}")
    return value


class _Once(argparse.Action):
    """Store a single-valued option; a repeat is remembered and refused by `check_repeats` (argparse
    would silently keep the last value)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        seen = getattr(ns, "once_seen", None) or set()
        if self.dest in seen:
            ns.repeated = [*(getattr(ns, "repeated", None) or []), (option_string, getattr(ns, self.dest), values)]
        ns.once_seen = seen | {self.dest}
        setattr(ns, self.dest, values)


def check_repeats(args: argparse.Namespace) -> None:
    """One paragraph for an option given twice, and for a --device D=MS where a command takes no budget."""
    for option, first, second in getattr(args, "repeated", None) or []:
        if option == "--latency-ms":
            raise UserError(f"--latency-ms is given twice ({first:g} and {second:g}); it is the budget of every "
                            "device named without its own. Give a device its own budget with --device D=MS.")
        if option == "--device":
            raise UserError(f"--device is given twice ('{first}' and '{second}'); `hwofa {args.command}` handles one "
                            "device (`hwofa search` and `hwofa run` take several).")
        raise UserError(f"{option} is given twice ('{first}' and '{second}'); give it once.")
    device = getattr(args, "device", None)
    if args.command == "export" and isinstance(device, str) and "=" in device:
        raise UserError(f"--device '{device}': `hwofa export` takes no budget (--device D=MS is for `hwofa search` "
                        f"and `hwofa run`); the budget comes from --search. Give --device {device.split('=')[0]}.")


TRUST_HELP = ("run the external command of a device profile that does not ship with hwofa (a profile's command is "
              "code: read it first; `hwofa devices` and the refusal show it)")


def _devices_and_budgets(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("devices and budgets")
    g.add_argument("--device", required=True, action="append", metavar="D[=MS]",
                   help="a device, with its own latency budget in ms after '='; repeat for several devices")
    g.add_argument("--latency-ms", action=_Once, type=_budget, metavar="X",
                   help="the budget of every device named without its own")
    g.add_argument("--finalists", action=_Once, type=int, default=3, metavar="K",
                   help="how many of the front's most accurate points under the budget are measured on the device "
                   "before one is chosen (default 3)")
    g.add_argument("--fronts", action=_Once, metavar="search.json",
                   help="answer the budgets from the Pareto fronts kept in an earlier search.json instead of "
                   "searching again (a device whose LUT changed since is searched again)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwofa", description="Hardware-aware once-for-all: profile a device, "
                                "search a subnet under a latency budget, export verified ONNX.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("devices", help="list device profiles and whether they run on this machine")
    sp = sub.add_parser("space", help="print the SearchSpace JSON")
    sp.add_argument("--supernet", action=_Once, metavar="RUN", help="supernet run folder (default: the shipped one)")

    tr = sub.add_parser("train", help="train a supernet with progressive shrinking")
    g = tr.add_argument_group("data")
    g.add_argument("--dataset", action=_Once, required=True, choices=["fashion-mnist", "cifar10", "imagefolder"])
    g.add_argument("--data-dir", action=_Once, metavar="D")
    g = tr.add_argument_group("run")
    g.add_argument("--recipe", action=_Once, metavar="YAML",
                   help="training recipe: a YAML file or a shipped recipe's name (cifar10, imagefolder, "
                   "fashion_mnist (the shipped supernet's, the default), fashion_mnist_ps, fashion_mnist_short)")
    g.add_argument("--out", action=_Once, required=True, metavar="RUN")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    g.add_argument("--torch-device", action=_Once, default="cpu", metavar="DEV",
                   help="where to train: cpu (default) or cuda[:N]; under torchrun: cpu (gloo) or cuda (NCCL, the "
                   "GPU of each process's LOCAL_RANK)")
    g.add_argument("--amp", action="store_true", help="bf16 autocast on a CUDA GPU (refused on the CPU)")

    pr = sub.add_parser("predictor", help="build the accuracy predictor of a supernet")
    pr.add_argument("--supernet", action=_Once, required=True, metavar="RUN")
    pr.add_argument("--subnets", action=_Once, type=int, default=1000,
                    help="random subnets to evaluate (default 1000: 800 to fit, 200 held out, as shipped)")
    pr.add_argument("--data-dir", action=_Once, metavar="D")
    pr.add_argument("--seed", action=_Once, type=int, default=0)
    pr.add_argument("--model", action=_Once, choices=("gp-ard", "trees"), default="gp-ard",
                    help="gp-ard: a Gaussian process with a length scale per slot feature (default, shipped; best by "
                    "CV on the shipped supernet; ~20 min to fit and cross-validate 800 subnets on one core; memory "
                    "grows with the square of --subnets, time faster); trees: gradient-boosted trees (seconds to fit; "
                    "held-out tau 0.715 against the GP's 0.741)")

    pf = sub.add_parser("profile", help="measure a device's latency lookup table (cached, resumable)")
    pf.add_argument("--device", action=_Once, required=True, metavar="D")
    pf.add_argument("--supernet", action=_Once, metavar="RUN")
    pf.add_argument("--lut", action=_Once, metavar="PATH",
                    help="where to write the LUT (default: $HWOFA_HOME/luts/...)")
    pf.add_argument("--rebuild", action="store_true", help="measure again even if a fresh LUT exists")
    pf.add_argument("--trust-device-command", action="store_true", help=TRUST_HELP)

    se = sub.add_parser("search", help="Pareto front per device, finalists measured, one subnet chosen per budget")
    _devices_and_budgets(se)
    se.add_argument("--supernet", action=_Once, metavar="RUN")
    se.add_argument("--out", action=_Once, required=True, metavar="search.json")
    se.add_argument("--seed", action=_Once, type=int, default=0)
    se.add_argument("--data-dir", action=_Once, metavar="D", help="the dataset (int8 finalists are calibrated on it)")
    se.add_argument("--trust-device-command", action="store_true", help=TRUST_HELP)

    ex = sub.add_parser("export", help="export a subnet to verified ONNX")
    src = ex.add_mutually_exclusive_group(required=True)
    src.add_argument("--search", action=_Once, metavar="search.json")
    src.add_argument("--arch", action=_Once, metavar="arch.json")
    ex.add_argument("--device", action=_Once, required=True, metavar="D")
    ex.add_argument("--out", action=_Once, required=True, metavar="DIR")
    ex.add_argument("--supernet", action=_Once, metavar="RUN")
    ex.add_argument("--data-dir", action=_Once, metavar="D")
    ex.add_argument("--trust-device-command", action="store_true", help=TRUST_HELP)

    rn = sub.add_parser("run", help="profile (cached) + search + export for each device, and the cross-device report")
    _devices_and_budgets(rn)
    rn.add_argument("--out", action=_Once, required=True, metavar="DIR",
                    help="one device: its bundle; several: <DIR>/<device>/ bundles and report.md, report.json, "
                    "fronts.png, search.json")
    rn.add_argument("--seed", action=_Once, type=int, default=0)
    rn.add_argument("--data-dir", action=_Once, metavar="D")
    rn.add_argument("--supernet", action=_Once, metavar="RUN",
                    help="another supernet run folder (default: the shipped one)")
    rn.add_argument("--trust-device-command", action="store_true", help=TRUST_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from export import CheckFailed
    from hwofa import commands

    try:
        check_repeats(args)
        return getattr(commands, f"cmd_{args.command}")(args)
    except UserError as exc:
        print(f"hwofa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"hwofa {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hwofa {args.command}: interrupted; finished work is saved (rerun to resume).", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 1 with a short message
        if os.environ.get("HWOFA_DEBUG"):
            traceback.print_exc()
        print(f"hwofa {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(set HWOFA_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def echo(obj: object) -> None:
    print(json.dumps(obj, indent=2) if not isinstance(obj, str) else obj)


def elapsed(t0: float) -> str:
    return f"{time.time() - t0:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
