"""Hand-written vocabularies and templates of the research quickstart (examples/research),
one module per task, each language in its own words. hack/make_research_data.py composes
them into the datasets; tests/unit/test_research_data.py checks the rules the research's
reading depends on (no cue shared across languages gives a label away; no template or
sentence is shared between train and eval)."""
