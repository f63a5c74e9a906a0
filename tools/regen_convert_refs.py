"""Regenerate the reference GGUFs of the convert tests with llama.cpp's own convert_hf_to_gguf.py.

Needs a Python with torch, transformers, sentencepiece and numpy (NOT the app's venv), and the
llama-cpp-python 0.3.36 sdist unpacked (its vendor/llama.cpp holds the script):

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch==2.13.0 transformers sentencepiece safetensors numpy gguf
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/sdist   # then untar
    /work/refvenv/bin/python tools/regen_convert_refs.py --llama-cpp /path/to/vendor/llama.cpp \
        --starter "$(.venv/bin/python -c 'from quantdesk.core.starter import starter_model_path as p; print(p())')"

It trains tests/data/convert/spm/tokenizer.model if missing (--retrain-spm to redo it), builds
each checkpoint of tests/data/convert/recipes.py in a temporary folder named as the recipe (the
folder name feeds general.name), runs the script once per output type and writes
tests/data/convert/refs/<recipe>.<outtype>.gguf. The tests then compare our converter's output
with those files. Also written (all under tests/data/convert/):
- fingerprints/<recipe>.<outtype>.json for the recipes whose tokenizer comes from the sdist's
  vocab GGUFs (real Llama 3 and Qwen2 tokenizers; too big to check in as GGUF files);
- special_vocab_expected.json: what llama.cpp's own gguf-py SpecialVocab reads from a set of
  tokenizer configurations (only on a full run);
- llama3_rope_factors.json: rope_freqs as the reference's own code computes it (only on a full run).
Everything is deterministic: a second run rewrites identical files.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the recipes read the starter GGUF with quantdesk.core.gguf.index
RECIPES_FILE = ROOT / "tests" / "data" / "convert" / "recipes.py"


def load_recipes():
    spec = importlib.util.spec_from_file_location("convert_recipes", RECIPES_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train_spm(recipes, force: bool) -> None:
    target = recipes.SPM_MODEL
    if target.is_file() and not force:
        return
    import sentencepiece as spm

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(recipes.spm_training_text(), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "m"),
            vocab_size=320,
            model_type="bpe",
            byte_fallback=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            hard_vocab_limit=False,
            num_threads=1,
            character_coverage=1.0,
            split_digits=True,
            minloglevel=2,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
        )
        shutil.copyfile(Path(tmp) / "m.model", target)
    print(f"trained {target} ({target.stat().st_size} bytes)")


def regen_special_vocab(recipes, llama_cpp: Path) -> None:
    """What llama.cpp's own gguf-py SpecialVocab reads from each tokenizer configuration."""
    sys.path.insert(0, str(llama_cpp / "gguf-py"))
    import gguf  # llama.cpp's copy, newer than the PyPI release

    expected = {}
    for name in recipes.SPECIAL_VOCAB_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            recipes.special_vocab_case(Path(tmp), name)
            sv = gguf.SpecialVocab(Path(tmp), load_merges=True, n_vocab=8)
            expected[name] = {
                "merges": sv.merges,
                "special_token_ids": sv.special_token_ids,
                "add_special_token": sv.add_special_token,
                "chat_template": sv.chat_template,
                "normalizer_lowercase": sv.normalizer_lowercase,
                "normalizer_strip_accents": sv.normalizer_strip_accents,
            }
    import json

    recipes.SPECIAL_VOCAB_EXPECTED.write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {recipes.SPECIAL_VOCAB_EXPECTED}")


ROPE_CASES = [  # real Llama 3.x RoPE settings (theta, factor, head_dim)
    (500000.0, 32.0, 64),
    (500000.0, 32.0, 128),
    (500000.0, 8.0, 128),
    (500000.0, 16.0, 128),
    (500000.0, 8.0, 64),
]


def regen_rope_factors(recipes, llama_cpp: Path) -> None:
    """rope_freqs values exactly as the reference computes them: its own
    LlamaModel.generate_extra_tensors, called on a stand-in object that carries only the hparams."""
    import json
    from types import SimpleNamespace

    sys.path.insert(0, str(llama_cpp / "gguf-py"))
    sys.path.insert(0, str(llama_cpp))
    from conversion.llama import LlamaModel

    cases = []
    for theta, factor, dim in ROPE_CASES:
        rope = {
            "rope_theta": theta,
            "factor": factor,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        }
        stand_in = SimpleNamespace(
            rope_parameters=rope, hparams={"head_dim": dim}, format_tensor_name=lambda *a, **k: "rope_freqs.weight"
        )
        [(_, tensor)] = list(LlamaModel.generate_extra_tensors(stand_in))
        cases.append({"rope": rope, "head_dim": dim, "float32_hex": tensor.numpy().tobytes().hex()})
    path = recipes.HERE / "llama3_rope_factors.json"
    path.write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-cpp", type=Path, required=True, help="vendor/llama.cpp of the llama-cpp-python sdist")
    ap.add_argument("--starter", type=Path, required=True, help="the starter model GGUF (SmolLM2 tokenizer source)")
    ap.add_argument("--retrain-spm", action="store_true")
    ap.add_argument("--out", type=Path, help="write the references here instead of tests/data/convert/refs")
    ap.add_argument("only", nargs="*", help="recipe names (default: all)")
    args = ap.parse_args(argv)
    recipes = load_recipes()
    train_spm(recipes, args.retrain_spm)
    if not args.only and not args.out:
        regen_special_vocab(recipes, args.llama_cpp)
        regen_rope_factors(recipes, args.llama_cpp)
    out_dir = args.out or recipes.REFS
    out_dir.mkdir(parents=True, exist_ok=True)
    script = args.llama_cpp / "convert_hf_to_gguf.py"
    for name, (build, outtypes) in recipes.RECIPES.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / name
            build(folder, args.starter)
            for outtype in outtypes:
                out = out_dir / recipes.ref_path(name, outtype).name
                cmd = [sys.executable, str(script), str(folder), "--outfile", str(out), "--outtype", outtype]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
                    raise SystemExit(f"convert_hf_to_gguf.py failed for {name} ({outtype})")
                print(f"wrote {out} ({out.stat().st_size} bytes)")
    regen_fingerprints(recipes, script, args.llama_cpp, args.only, args.out)
    return 0


def regen_fingerprints(recipes, script: Path, llama_cpp: Path, only: list[str], out: Path | None) -> None:
    """Recipes whose tokenizer comes from the sdist's vocab GGUFs: keep a fingerprint of the output."""
    import json

    target = out or recipes.FINGERPRINTS
    target.mkdir(parents=True, exist_ok=True)
    for name, (build, outtype) in recipes.SDIST_RECIPES.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / name
            build(folder, llama_cpp)
            gguf_out = Path(tmp) / "out.gguf"
            cmd = [sys.executable, str(script), str(folder), "--outfile", str(gguf_out), "--outtype", outtype]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stdout[-3000:], res.stderr[-3000:], sep="\n")
                raise SystemExit(f"convert_hf_to_gguf.py failed for {name} ({outtype})")
            path = target / f"{name}.{outtype}.json"
            path.write_text(json.dumps(recipes.fingerprint(gguf_out), indent=0) + "\n", encoding="utf-8")
            print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
