"""The merge methods' names, importable without torch (the CLI's --help and choices);
methods.py registers one method per name and checks the two agree at import."""

METHOD_NAMES = (
    "cat",
    "dare-linear",
    "dare-ties",
    "knots-dare-ties",
    "knots-ties",
    "linear",
    "ties",
)
