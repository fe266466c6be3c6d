"""``vggkit fuse``: fuse saved posteriors of several runs without re-running the nets.

Example (the paper's D + E fusion, Table 7, from two earlier test runs)::

    python -m vggkit.commands.fuse d.npz e.npz --out fused.json
    python -m vggkit.commands.fuse d.npz:dense e.npz:multicrop
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from vggkit.commands import check_output_file, run_command
from vggkit.fileio import atomic_write_json

if TYPE_CHECKING:  # the evaluation imports torch: the bodies import it, the parser does not
    from vggkit.evaluation import Posteriors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vggkit fuse", description="Average the softmax posteriors saved by "
        "'vggkit test --save-posteriors' (model fusion) and report top-1/top-5 error.")
    p.add_argument("files", nargs="+", metavar="FILE[:STRATEGY]",
                   help="posteriors files; ':STRATEGY' picks one strategy's posteriors from a "
                   "file (then all files are fused into one 'fusion' entry); without it, "
                   "each strategy present in every file is fused separately")
    return add_outputs(p, "write the fused posteriors (.npz)")


# -- the outputs of this tool and of tools/test.py ------------------------------------
def add_outputs(p: argparse.ArgumentParser, posteriors: str) -> argparse.ArgumentParser:
    """``--out`` (the results as JSON) and ``--save-posteriors`` (described by ``posteriors``)."""
    p.add_argument("--out", metavar="FILE", help="write the results as JSON")
    p.add_argument("--save-posteriors", metavar="FILE", help=posteriors)
    return p


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse output files in missing directories before any work."""
    check_output_file(args.out, "--out")
    check_output_file(args.save_posteriors, "--save-posteriors")


def write_outputs(args: argparse.Namespace, results: dict[str, Any], post: Posteriors) -> None:
    """Print the error table; write the results and the posteriors where asked."""
    from vggkit.evaluation import format_results, save_posteriors
    print(format_results(results))
    if args.out:
        atomic_write_json(args.out, results)
        print(f"results written to {args.out}")
    if args.save_posteriors:
        save_posteriors(args.save_posteriors, post)
        print(f"posteriors written to {args.save_posteriors}")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``'a.npz:dense'`` -> ``('a.npz', 'dense')``; an existing path is never split."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, key = spec.rsplit(":", 1)
    return path, key


def fuse_files(specs: list[str]) -> Posteriors:
    """Fused posteriors of ``specs`` (see the ``files`` argument)."""
    from vggkit.evaluation import Posteriors, fuse, load_posteriors
    parsed = [parse_spec(s) for s in specs]
    loaded = []
    for path, key in parsed:
        post = load_posteriors(path)
        post.meta["source"] = path
        loaded.append((post, key))
    if any(key is not None for _, key in parsed):
        parts = [(p, k if k is not None else _only(p)) for p, k in loaded]
        return fuse(parts, "fusion")
    common = [k for k in loaded[0][0].scores if "/" not in k
              and all(k in p.scores for p, _ in loaded)]
    if not common:
        raise ValueError(f"the files share no strategy ({[sorted(p.scores) for p, _ in loaded]}); "
                         "pick one per file with FILE:STRATEGY")
    fused = [fuse([(p, k) for p, _ in loaded], k) for k in common]
    first = fused[0]
    return Posteriors(first.ids, first.labels, first.classes,
                      {k: f.scores[k] for k, f in zip(common, fused)}, {"fused": specs})


def _only(post: Posteriors) -> str:
    keys = [k for k in post.scores if "/" not in k]
    if len(keys) != 1:
        raise ValueError(f"{post.meta.get('source')} holds posteriors {sorted(post.scores)}; "
                         "name one with FILE:STRATEGY")
    return keys[0]


def main(argv: list[str] | None = None) -> int:
    return run_command("vggkit fuse", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    check_outputs(args)
    from vggkit.evaluation import errors
    post = fuse_files(args.files)
    write_outputs(args, {"num_images": len(post.ids), "fused": args.files,
                         "fusion": {k: errors(v, post.labels) for k, v in post.scores.items()}},
                  post)
    return 0


if __name__ == "__main__":
    sys.exit(main())
