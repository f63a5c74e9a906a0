"""`quantdesk search`, `quantdesk files` and `quantdesk download`: the Hub from a terminal.

The same core functions as the Discover page (quantdesk.core.hub.client, quantdesk.core.hub.downloads); heavy imports
happen inside the commands so `quantdesk info` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quantdesk.core.errors import UsageError
from quantdesk.core.units import human_params


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search the Hugging Face Hub for models")
    p.add_argument("query", nargs="?", default="", help="words in the model's name")
    p.add_argument("--gguf", action="store_true", help="only repos with GGUF files")
    p.add_argument("--safetensors", action="store_true", help="only repos with safetensors checkpoints")
    p.add_argument("--sort", choices=["downloads", "likes", "trending", "updated"], default="downloads")
    p.add_argument("--limit", type=int, default=20, help="how many results (default 20)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run_search)

    p = sub.add_parser("files", help="a Hub repo's files, grouped by quant level, with what fits this machine")
    p.add_argument("repo", help="author/name")
    p.add_argument("--context", type=int, default=0, help="context length to assess memory for (default 4096)")
    p.add_argument("--json", action="store_true", help="print the groups as JSON")
    p.set_defaults(func=run_files)

    p = sub.add_parser("download", help="download model files from the Hub (resumable, verified)")
    p.add_argument("repo", help="author/name")
    p.add_argument(
        "--include",
        nargs="+",
        metavar="PATTERN",
        default=None,
        help="file name patterns, e.g. '*Q4_K_M*'; default: the recommended quant level",
    )
    p.add_argument("--dest", type=Path, default=None, help="folder to put the files in (default: the models folder)")
    p.set_defaults(func=run_download)


def run_search(args: argparse.Namespace) -> int:
    from quantdesk.core.hub import client as hub

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    q = hub.SearchQuery(
        text=args.query, gguf=args.gguf, safetensors=args.safetensors, sort=args.sort, page_size=args.limit
    )
    page = hub.search(q)
    if args.json:
        print(json.dumps([r.as_dict() for r in page.results], indent=2))
        return 0
    if not page.results:
        print("No models found.")
        return 0
    width = max(len(r.repo_id) for r in page.results)
    print(f"{'MODEL':{width}}  {'DOWNLOADS':>9}  {'LIKES':>6}  {'UPDATED':10}  {'PARAMS':>6}  LICENSE")
    for r in page.results:
        updated = r.last_modified.strftime("%Y-%m-%d") if r.last_modified else ""
        gated = "  (gated)" if r.gated else ""
        print(
            f"{r.repo_id:{width}}  {r.downloads:>9,}  {r.likes:>6,}  {updated:10}  "
            f"{human_params(r.parameters):>6}  {r.license}{gated}"
        )
    return 0


def run_files(args: argparse.Namespace) -> int:
    from quantdesk.core.fit import default_context
    from quantdesk.core.hub import client as hub
    from quantdesk.core.units import human_bytes

    view = hub.load_repo_view(args.repo)
    context = args.context or default_context(view.shape)
    assessed = hub.assess(view.groups, view.shape, context)
    if args.json:
        print(
            json.dumps(
                {
                    "repo": view.details.repo_id,
                    "revision": view.details.sha,
                    "context": context,
                    "shape_source": "estimate" if view.shape.estimated else "config.json",
                    "groups": [
                        {
                            "label": a.group.label,
                            "kind": a.group.kind,
                            "size": a.group.size,
                            "files": a.group.paths,
                            "complete": a.group.complete,
                            "fit": a.fit.verdict.words,
                            "need_bytes": a.fit.need_bytes,
                            "recommended": a.recommended,
                        }
                        for a in assessed
                    ],
                    "other_files": [f.path for f in view.other_files],
                },
                indent=2,
            )
        )
        return 0
    d = view.details
    print(
        f"{d.repo_id}  ·  {d.license or 'no licence given'}"
        + (f"  ·  gated ({d.gated}): accept its terms on {hub.web_url(d.repo_id)} and add a token" if d.gated else "")
    )
    how = "estimated" if view.shape.estimated else "from config.json"
    print(f"Memory for {context:,} tokens of context (KV cache {how}):")
    if not assessed:
        print("  no GGUF files or safetensors checkpoints in this repo")
    width = max((len(a.group.label) for a in assessed), default=10)
    for a in assessed:
        star = "★" if a.recommended else " "
        parts = f" ({a.group.shards} parts)" if a.group.shards > 1 else ""
        missing = "  INCOMPLETE: parts missing" if not a.group.complete else ""
        print(
            f" {star} {a.group.label:{width}}  {human_bytes(a.group.size):>9}  {a.fit.verdict.words:10} "
            f"needs {human_bytes(a.fit.need_bytes)}{parts}{missing}"
        )
    if any(a.recommended for a in assessed):
        print("★ recommended for this machine")
    if view.other_files:
        print(
            f"Other files: {', '.join(f.path for f in view.other_files[:12])}"
            + (" …" if len(view.other_files) > 12 else "")
        )
    return 0


def run_download(args: argparse.Namespace) -> int:
    from quantdesk.cli.progress import run_job
    from quantdesk.core.hub import downloads
    from quantdesk.core.jobs import Cancelled

    spec = downloads.plan(args.repo, include=args.include, dest=args.dest)
    # An earlier, interrupted download of the same thing continues from the same commit.
    earlier = next(
        (
            p
            for p in downloads.pending()
            if p.repo_id == spec.repo_id
            and p.dest == spec.dest
            and sorted(f.path for f in p.files) == sorted(f.path for f in spec.files)
        ),
        None,
    )
    if earlier is not None:
        spec = earlier
        print(f"Resuming {spec.title}: {downloads.describe(spec)}", file=sys.stderr)
    else:
        print(f"Downloading {spec.title}: {downloads.describe(spec)}", file=sys.stderr)
    job = downloads.DownloadJob(spec)
    try:
        paths = run_job(job)
    except (KeyboardInterrupt, Cancelled):
        print("Stopped; what was downloaded is kept. Run the same command again to resume.", file=sys.stderr)
        raise KeyboardInterrupt from None
    for p in paths:
        print(p)
    return 0
