"""Label-free adaptation: fine-tune a collection's embedder on its own documents
(``ragstack.adaptation``) and adopt the result through the live re-embed, only when a check it
was not trained on says it is better.

The adapted model is a sentence-transformers directory under
``<data dir>/models/adapted/<collection>-<UTC time>/``; the collection keeps its backend (the
default int8 ONNX graph, the fp32 one, torch), so after adoption it pins
``local:<that name>`` with the same suffix and serves without torch when it did before.
Training needs torch (the ``torch`` extra); serving an adopted int8 model does not.

Only documents every caller may read (``public``, no tenant) are trained on unless asked
otherwise: the model is shared by every reader of the collection, so what it learnt must not
come from documents an ACL hides from some of them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragstack.adaptation import ADAPTED_DIR, AdaptConfig, Adapted, Passage, Progress
from ragstack.embedding import BACKEND_SUFFIXES, packaged_minilm_path, split_model_id
from ragstack.errors import InputError
from ragstack.extras import require
from ragstack.service.reembed import ReembedMixin
from ragstack.store.shadow import ReembedRun


@dataclass(frozen=True)
class AdaptResult:
    collection: str
    model_dir: Path
    model_id: str  # what the collection pins if the model is adopted
    pairs: dict[str, int]
    gate_kind: str
    gate_before: float
    gate_after: float
    gate_passed: bool
    gate_independent: bool  # of a pair kind training did not read
    adopted: bool
    reason: str
    train_s: float
    total_s: float
    run: ReembedRun | None  # the live re-embed that adopted it

    @property
    def gate_delta(self) -> float:
        return self.gate_after - self.gate_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "model_dir": str(self.model_dir),
            "model_id": self.model_id,
            "pairs": self.pairs,
            "gate": {
                "kind": self.gate_kind,
                "before": round(self.gate_before, 4),
                "after": round(self.gate_after, 4),
                "delta": round(self.gate_delta, 4),
                "passed": self.gate_passed,
                "independent": self.gate_independent,
            },
            "adopted": self.adopted,
            "reason": self.reason,
            "train_s": round(self.train_s, 1),
            "total_s": round(self.total_s, 1),
            "reembed": self.run.to_dict() if self.run is not None else None,
        }


_BACKENDS = {suffix: backend for backend, suffix in BACKEND_SUFFIXES.items()}


class AdaptMixin(ReembedMixin):
    def adapt(
        self,
        collection: str,
        config: AdaptConfig | None = None,
        *,
        adopt: bool | None = None,
        force: bool = False,
        all_documents: bool = False,
        progress: Progress | None = None,
        reembed_progress: Callable[[int, int], None] | None = None,
    ) -> AdaptResult:
        """Fine-tune ``collection``'s embedder on pairs its documents carry, write it under
        the data dir, and adopt it by live re-embed if its gate passed and adoption is on
        (``adopt``, default ``RAGSTACK_ADAPT_ADOPT``), or whatever the gate says (``force``).
        """
        from ragstack import adaptation

        started = time.perf_counter()
        info = self.store.get_collection(collection)
        settings = self.settings
        cfg = config or AdaptConfig(
            margin=settings.adapt_margin, max_pairs=settings.adapt_max_pairs
        )
        if info.embedder_id.startswith("hashing-"):
            raise InputError(
                f"collection {collection!r} uses the hashing embedder, which has nothing to "
                "train: re-embed it with a real model first (`ragstack reembed`)"
            )
        require("sentence_transformers", "fine-tuning an embedder (`ragstack adapt`)", "torch")
        model = self.c.models.get(info.embedder_id)
        base = getattr(model.embedder, "model_path", None) or packaged_minilm_path()
        rows = self.store.training_chunks(info.id, public_only=not all_documents)
        if not rows:
            raise InputError(
                f"collection {collection!r} has no documents every caller may read to train "
                "on (give all_documents / --all-documents to train on every document)"
            )
        passages = [Passage(*row) for row in rows]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', collection).strip('.-') or 'c'}-{stamp}"
        out = settings.data_dir / ADAPTED_DIR / name
        n = 1
        while out.exists():  # two runs in one second
            n += 1
            out = settings.data_dir / ADAPTED_DIR / f"{name}-{n}"
        backend = _BACKENDS.get(split_model_id(info.embedder_id)[1], "sentence-transformers")
        result: Adapted = adaptation.adapt(
            passages,
            Path(base),
            out,
            cfg,
            base_id=info.embedder_id,
            about={"collection": collection, "all_documents": all_documents},
            progress=progress,
        )
        target = self.c.model_id_for(backend, out)
        gate = result.gate
        wanted = settings.adapt_adopt if adopt is None else adopt
        if force:
            go, reason = True, "forced (the gate was not consulted)"
        elif not wanted:
            go, reason = False, "adoption is off (RAGSTACK_ADAPT_ADOPT, --adopt)"
        elif gate.passed:
            go, reason = True, f"the gate rose by {gate.delta:+.4f} (>= {gate.margin})"
        elif not gate.independent:
            go, reason = (
                False,
                (
                    f"no independent check: the documents carry no pair kind it did not train on "
                    f"(its own task on unseen documents moved {gate.delta:+.4f}): kept"
                ),
            )
        else:
            go, reason = False, f"the gate moved {gate.delta:+.4f} (< {gate.margin}): kept"
        run = None
        if go:
            run = self.reembed(collection, backend, model_path=out, progress=reembed_progress)
            go = run.status == "completed"
            if not go:
                reason = f"the re-embed {run.status}: {run.message or ''}".strip()
        record = {**result.record, "adoption": {"adopted": go, "reason": reason,
                  "model_id": target, "reembed_run": run.id if run else None}}  # fmt: skip
        (out / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return AdaptResult(
            collection=collection,
            model_dir=out,
            model_id=target,
            pairs=result.pairs,
            gate_kind=gate.kind,
            gate_before=gate.before,
            gate_after=gate.after,
            gate_passed=gate.passed,
            gate_independent=gate.independent,
            adopted=go,
            reason=reason,
            train_s=result.train_s,
            total_s=time.perf_counter() - started,
            run=run,
        )
