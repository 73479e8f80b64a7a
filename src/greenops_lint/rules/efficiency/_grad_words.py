"""GO503's vocabulary: names of evaluation code, and framework hooks that run
under `no_grad` already."""

from __future__ import annotations

EVAL_WORDS = frozenset(
    {
        "eval",
        "evaluate",
        "evaluation",
        "evaluator",
        "validate",
        "validation",
        "valid",
        "val",
        "test",
        "testing",
        "predict",
        "prediction",
        "predictions",
        "infer",
        "inference",
        "sample",
        "sampling",
        "generate",
        "generation",
    }
)
# Lightning runs these under no_grad/inference_mode.
FRAMEWORK_NO_GRAD = frozenset(
    {
        "validation_step",
        "test_step",
        "predict_step",
        "validation_epoch_end",
        "test_epoch_end",
        "on_validation_epoch_end",
        "on_test_epoch_end",
        "on_predict_epoch_end",
        "on_validation_batch_end",
    }
)
# Hugging Face Trainer methods (in a Trainer subclass) that run under no_grad.


def is_eval_name(name: str) -> bool:
    return any(word in EVAL_WORDS for word in name.lower().split("_"))
