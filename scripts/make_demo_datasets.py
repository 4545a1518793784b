"""Write the shipped examples' data under services/cli/trivium/cli/demo_datasets/.

    python scripts/make_demo_datasets.py [--pubmedqa ../shared/data/pubmedqa]

`triage-eval.jsonl` comes from the tickets in the repository; the PubMedQA files from
`ori_pqal.json` and its LICENSE in the given folder (skipped when it is not given). Running it
again writes the same bytes (tests/unit/test_demo_data.py checks the triage file and the
PubMedQA subset's selection).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from trivium.cli.demo_data import (
    PUBMEDQA_RERANK_TRAINING,
    encode_jsonl,
    pubmedqa_rerank_training,
    pubmedqa_subset,
    triage_eval_rows,
)

OUT = Path(__file__).resolve().parents[1] / "services/cli/trivium/cli/demo_datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubmedqa", type=Path, help="folder with ori_pqal.json and LICENSE")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "triage-eval.jsonl").write_bytes(encode_jsonl(triage_eval_rows()))
    if args.pubmedqa is not None:
        source = json.loads((args.pubmedqa / "ori_pqal.json").read_text(encoding="utf-8"))
        rows, documents = pubmedqa_subset(source)
        folder = OUT / "pubmedqa"
        folder.mkdir(exist_ok=True)
        (folder / "pubmedqa-eval.jsonl").write_bytes(encode_jsonl(rows))
        (folder / "documents.jsonl").write_bytes(encode_jsonl(documents))
        training = pubmedqa_rerank_training(source)
        (OUT.joinpath(*PUBMEDQA_RERANK_TRAINING)).write_bytes(encode_jsonl(training))
        shutil.copyfile(args.pubmedqa / "LICENSE", folder / "LICENSE")
        print(
            f"pubmedqa: {len(rows)} questions, {len(documents)} documents;"
            f" {len(training)} other questions for the re-ranker"
        )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
