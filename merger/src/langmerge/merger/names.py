"""The merge methods' names and the options each takes, and the precisions a model is scored
in, importable without torch (the CLI's --help and choices, the search grid's validation);
methods.py registers one method per name and checks at import that the registry agrees."""

METHOD_NAMES = (
    "cat",
    "dare-linear",
    "dare-ties",
    "knots-dare-ties",
    "knots-ties",
    "linear",
    "ties",
)

# The options beyond weights and lambda (which every method takes): density for the methods
# that trim (TIES) or drop (DARE), seed for DARE's random drop.
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "cat": (),
    "dare-linear": ("density", "seed"),
    "dare-ties": ("density", "seed"),
    "knots-dare-ties": ("density", "seed"),
    "knots-ties": ("density",),
    "linear": (),
    "ties": ("density",),
}

# The model's weights while scoring (langmerge.merger.evaluate): fp32 is exact; bf16 holds them
# in bfloat16, an adapter's update folded in (langmerge.merger.folding).
EVAL_PRECISIONS = ("fp32", "bf16")
