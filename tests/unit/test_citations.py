"""Citations parsed from an answer, which passages become sources, and how follow-ups are retrieved."""

from __future__ import annotations

from ragchat.core.chat import cited_numbers, retrieval_query, retrieve_for_conversation, select_sources
from ragchat.domain import Passage
from ragchat.infra.llm import ChatMessage


def passage(n: int) -> Passage:
    return Passage(f"c{n}", f"d{n}", f"doc{n}.md", "default", ("H",), f"text {n}", 0, 6, 1.0 / n)


GIVEN = [passage(1), passage(2), passage(3)]


def test_cited_numbers_reads_single_lists_and_ranges_in_order() -> None:
    assert cited_numbers("A [2]. B [1, 3]; C [2-3] and [4\u20135]. D [x] [ ] [1]") == [2, 1, 3, 4, 5]


def test_sources_are_the_cited_passages_in_passage_order() -> None:
    sources = select_sources("Rotate it [3]; the old one lasts a day [1].", GIVEN)
    assert [(s.index, s.passage.chunk_id, s.cited) for s in sources] == [(1, "c1", True), (3, "c3", True)]


def test_a_number_that_matches_no_passage_is_never_a_source() -> None:
    sources = select_sources("See [2] and [7] and [0].", GIVEN)
    assert [(s.index, s.cited) for s in sources] == [(2, True)]


def test_an_answer_citing_nothing_valid_returns_every_passage_given_uncited() -> None:
    for answer in ("No citations here.", "Only [9] is cited."):
        sources = select_sources(answer, GIVEN)
        assert [(s.index, s.cited) for s in sources] == [(1, False), (2, False), (3, False)]


def test_snippet_is_one_line_and_cut_at_a_word() -> None:
    long = Passage("c", "d", "x.md", "default", (), "word\n" * 200, 0, 1000, 0.5)
    snippet = select_sources("[1]", [long])[0].snippet
    assert "\n" not in snippet and snippet.endswith("word…") and len(snippet) <= 241


def test_retrieval_query_is_the_question_after_the_two_previous_user_messages() -> None:
    turns = [
        ChatMessage("user", "one?"),
        ChatMessage("assistant", "a"),
        ChatMessage("user", "two?"),
        ChatMessage("assistant", "b"),
        ChatMessage("user", "three?"),
        ChatMessage("assistant", "c"),
        ChatMessage("user", "and that?"),
    ]
    assert retrieval_query(turns) == "two?\nthree?\nand that?"
    assert retrieval_query(turns[:1]) == "one?"


class ScriptedRetriever:
    """Rankings by query, as a search would return them (for the fusion logic alone)."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings

    async def search(self, query: str, *, collection: str, k: int, mode: str = "hybrid") -> list[Passage]:
        ids = self.rankings[query][:k]
        return [Passage(i, "d", "doc.md", collection, (), i, 0, 1, 1.0) for i in ids]


async def test_a_follow_up_fuses_rankings_that_go_deeper_than_k() -> None:
    conversation = [
        ChatMessage("user", "How do I release a build?"),
        ChatMessage("assistant", "Run `orbitctl release` [1]."),
        ChatMessage("user", "And how do I undo that?"),
    ]
    query = retrieval_query(conversation)
    # "both" is third in each ranking: past k = 2, yet the one passage both searches agree on.
    retriever = ScriptedRetriever(
        {"And how do I undo that?": ["a1", "a2", "both", "a4"], query: ["h1", "h2", "both", "h4"]}
    )
    used, passages = await retrieve_for_conversation(retriever, conversation, collection="c", k=2)
    assert used == query
    assert passages[0].chunk_id == "both"
    assert len(passages) == 2
