"""Document-level translation: document choice, the three decoders' prompts, scores with known answers, and
batched generation on a tiny real model (the same output whether a prompt is generated alone or in a batch)."""

from __future__ import annotations

import pytest

from eval import doc_translation as dt


def _doc(sentences, references, doc_id="d1"):
    return dt.Document(doc_id, "bible_en_es", "English", "Spanish", tuple(sentences), tuple(references))


def _record(doc_id, pairs, source="bible_en_es"):
    meta = {"pairs": pairs, "source_lang": "English", "target_lang": "Spanish"}
    return {"id": doc_id, "source": source, "meta": meta, "text": ""}


def test_documents_are_cut_to_their_first_sentences_and_chosen_by_seed():
    records = [_record(f"c{i}", [[f"s{i}.{j}", f"t{i}.{j}"] for j in range(6)]) for i in range(5)]
    records += [_record("short", [["only", "uno"]]), _record("other", [["a", "b"], ["c", "d"]], source="gettext_fr")]
    docs = dt.documents_from_corpus(records, "bible_en_es", count=3, sentences=4, seed=0)
    assert len(docs) == 3 and all(d.source == "bible_en_es" for d in docs)
    assert [d.id for d in docs] == sorted(d.id for d in docs)
    assert all(d.sentences == tuple(f"s{d.id[1]}.{j}" for j in range(4)) for d in docs)  # consecutive, from the start
    assert docs == dt.documents_from_corpus(list(reversed(records)), "bible_en_es", 3, 4, seed=0)
    assert dt.documents_from_corpus(records, "bible_en_es", 10, 4) and "short" not in {
        d.id for d in dt.documents_from_corpus(records, "bible_en_es", 10, 4)
    }


def test_the_sentence_prompt_is_the_sentence_level_tasks_prompt_with_its_few_shot_pairs():
    doc = _doc(["In the beginning.", "God said."], ["En el principio.", "Dijo Dios."])
    fewshot = [("Hello.", "Hola."), ("Thanks.", "Gracias.")]
    assert dt.sentence_prompt(doc, 1, fewshot) == (
        "Translate from English to Spanish.\nEnglish: Hello.\nSpanish: Hola.\n\n"
        "Translate from English to Spanish.\nEnglish: Thanks.\nSpanish: Gracias.\n\n"
        "Translate from English to Spanish.\nEnglish: God said.\nSpanish:"
    )
    with_context = dt.sentence_prompt(doc, 1, fewshot[:1], [("In the beginning.", "MODEL-0")])
    assert with_context.endswith(
        "Translate from English to Spanish.\nEnglish: In the beginning.\nSpanish: MODEL-0\nEnglish: God said.\nSpanish:"
    )


class Recorder:
    """A stand-in for a model in the decoding loop: answers each prompt with a tag of the sentence it ends on."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, budgets, stop):
        self.calls.append((list(prompts), list(budgets), stop))
        return [" T(" + p.rsplit("English: ", 1)[1].split("\n")[0] + ")" for p in prompts]


def test_incremental_decoding_shows_the_window_of_the_models_own_translations():
    docs = [_doc(["a1 x", "a2 x", "a3 x", "a4 x"], ["r"] * 4, "a"), _doc(["b1 x", "b2 x"], ["r"] * 2, "b")]
    recorder = Recorder()
    hypotheses = dt.decode_incremental(docs, 2, [], recorder)
    assert hypotheses == [["T(a1 x)", "T(a2 x)", "T(a3 x)", "T(a4 x)"], ["T(b1 x)", "T(b2 x)"]]
    assert [len(prompts) for prompts, _, _ in recorder.calls] == [2, 2, 1, 1]  # position i of every document
    last = recorder.calls[3][0][0]
    assert "English: a2 x\nSpanish: T(a2 x)\nEnglish: a3 x\nSpanish: T(a3 x)\nEnglish: a4 x" in last
    assert "a1 x" not in last  # outside the window of 2
    assert all(stop == "\n" for _, _, stop in recorder.calls)
    long = _doc(["one two three four five six seven eight", "short"], ["r"] * 2, "c")
    recorder = Recorder()
    dt.decode_incremental([long, docs[1]], 1, [], recorder)
    assert recorder.calls[0][1] == [dt.token_budget(long.sentences[0]), dt.token_budget("b1 x")]  # each its own
    assert recorder.calls[0][1][0] > recorder.calls[0][1][1]

    recorder = Recorder()
    assert dt.decode_incremental(docs, 0, [], recorder) == hypotheses  # this stand-in ignores context
    assert len(recorder.calls) == 1 and len(recorder.calls[0][0]) == 6  # independent sentences: one call


def test_whole_document_decoding_reads_a_line_per_sentence():
    docs = [_doc(["one", "two", "three"], ["uno", "dos", "tres"])]

    def two_lines(prompts, budgets, stop):
        assert stop == "\n\n" and prompts[0].endswith("English:\none\ntwo\nthree\nSpanish:\n")
        return ["uno\n\n dos  "]

    assert dt.decode_document(docs, [("hi", "hola")], two_lines) == [["uno", "dos", ""]]
    assert dt.decode_document(docs, [], lambda p, b, s: ["a\nb\nc\nd"]) == [["a", "b", "c"]]


def test_scores_of_a_perfect_translation_and_of_copying():
    doc = _doc(["Moses spoke to the people.", "Then Moses left."], ["Moisés habló al pueblo.", "Luego Moisés salió."])
    perfect = dt.score([doc], [list(doc.references)])
    assert perfect["chrf"] == pytest.approx(100) and perfect["d_bleu"] == pytest.approx(100)
    assert perfect["per_item"] == pytest.approx([100, 100]) and perfect["sentences"] == 2
    copy = dt.copy_baseline([doc])
    assert copy["chrf"] < 50 and copy["d_bleu"] < 20


def test_repeated_terms_pair_a_source_name_with_its_reference_rendering():
    doc = _doc(
        ["And Moses went up.", "The people saw Moses.", "Israel wept.", "Then all Israel sang."],
        ["Y Moisés subió.", "El pueblo vio a Moisés.", "Israel lloró.", "Entonces todo Israel cantó."],
    )
    terms = dt.repeated_terms(doc)
    assert ("Moses", "Moisés", (0, 1)) in terms and ("Israel", "Israel", (2, 3)) in terms
    assert all(term not in {"And", "The", "Then"} for term, _, _ in terms)  # only sentence-initial: not names


def test_consistency_counts_a_term_rendered_two_ways_and_accuracy_counts_the_reference_rendering():
    doc = _doc(
        ["And Moses went up.", "The people saw Moses.", "Then Moses spoke."],
        ["Y Moisés subió.", "El pueblo vio a Moisés.", "Entonces Moisés habló."],
    )
    mixed = [["Y Moisés subió.", "El pueblo vio a Moses.", "Entonces Moisés habló."]]
    assert dt.term_consistency([doc], mixed) == {"terms": 1, "consistent": 0, "occurrences": 3, "correct": 2}
    steady = [["Y Moses subió.", "El pueblo vio a Moses.", "Entonces Moses habló."]]
    assert dt.term_consistency([doc], steady) == {"terms": 1, "consistent": 1, "occurrences": 3, "correct": 0}
    scores = dt.score([doc], steady)
    assert scores["consistency"] == 1.0 and scores["term_accuracy"] == 0.0
    lost = [["Y subió.", "El pueblo vio.", "Entonces habló."]]  # never rendered: not judged for consistency
    assert dt.score([doc], lost)["consistency"] is None


def test_batched_generation_matches_one_prompt_at_a_time(tiny_model):
    from eval.generation import HFGenerator
    from stages.lib.modeling import load_model, load_tokenizer

    model, tokenizer = load_model(str(tiny_model)), load_tokenizer(str(tiny_model))
    prompts = ["Permission is hereby granted", "The", "Redistribution and use in source and binary forms, with"]
    batched = HFGenerator(model, tokenizer, batch_size=3)
    together = batched(prompts, [12, 5, 8], "\n")
    alone = [
        HFGenerator(model, tokenizer, batch_size=1)([p], [n], "\n")[0] for p, n in zip(prompts, [12, 5, 8], strict=True)
    ]
    assert together == alone
    assert 0 < batched.generated_tokens <= 12 + 5 + 8
    with pytest.raises(ValueError, match="exceeds the model's context of 16 tokens"):
        HFGenerator(model, tokenizer, max_context=16)(["Permission is hereby granted, free of charge"], [12], "\n")


def test_generation_stops_on_the_generated_text_only_not_across_the_prompts_end(tiny_model):
    """A prompt ending in a newline must not stop a blank-line stop at the first generated newline (vllm's rule)."""
    import torch

    from eval.generation import StopInGenerated
    from stages.lib.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    prompt = tokenizer("English:\none\nSpanish:\n", add_special_tokens=False)["input_ids"]
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    words = tokenizer("uno", add_special_tokens=False)["input_ids"]
    stop = StopInGenerated(tokenizer, len(prompt), "\n\n")
    rows = [prompt + newline + words, prompt + words + newline + newline]
    width = max(len(r) for r in rows)
    padded = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    assert stop(padded[:1, : len(rows[0])], None).tolist() == [False]  # the prompt's newline is not counted
    assert stop(padded[1:], None).tolist() == [True]


def test_translation_instructions_in_the_target_language_change_only_the_sft_prompts():
    from stages.lib.task_builders import translation

    def chapter(i):
        pairs = [
            [f"The king spoke to the people number {i} {j}.", f"El rey habló al pueblo número {i} {j}."]
            for j in range(4)
        ]
        return {"id": f"c{i}", "meta": {"pairs": pairs, "source_lang": "English", "target_lang": "Spanish"}}

    train, held_out = [chapter(i) for i in range(6)], [chapter(i) for i in range(6, 9)]
    source = translation(train, held_out, seed=0, max_pairs=5, max_items=4)
    target = translation(train, held_out, seed=0, max_pairs=5, max_items=4, instructions="target")
    assert target.eval_items == source.eval_items and target.fewshot_items == source.fewshot_items
    prompts = [pair["prompt"][0]["content"] for pair in target.sft_pairs]
    assert all(p.startswith("Traduce del inglés al español:\nThe king") for p in prompts)
    assert all(
        pair["prompt"][0]["content"].startswith("Translate from English to Spanish:\n") for pair in source.sft_pairs
    )
    assert [p["completion"] for p in target.sft_pairs] == [p["completion"] for p in source.sft_pairs]
    with pytest.raises(ValueError, match="no German instruction"):
        german = [{**doc, "meta": {**doc["meta"], "target_lang": "German"}} for doc in train + held_out]
        translation(german[:6], german[6:], 0, 5, 4, instructions="target")


def test_a_rendering_is_a_word_close_to_the_references_not_any_word_sharing_two_letters():
    assert dt.rendering("y pasaron el Jordan a pie", "Jordán") == "Jordan"
    assert dt.rendering("habló Moses al pueblo", "Moisés") == "Moses"
    assert dt.rendering("el hijo de la casa", "Dios") is None
