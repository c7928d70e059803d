"""Task prompts, user task sets and the `mc` letter-extraction rule (docs/TASKS.md)."""
from __future__ import annotations

import pytest

from taskclock.runtime import tasks
from taskclock.runtime.config import TaskSpec
from taskclock.runtime.errors import DataError
from taskclock.runtime.mmlu import Question
from taskclock.runtime.values import InvalidValue

QUESTION = Question("astronomy", 7, "Which planet is largest?", ("Mars", "Jupiter", "Venus", "Earth"), "B")


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"),
    ("B.", "B"),
    ("(C) because it is", "C"),
    ("**D**", "D"),
    ("The answer is D.", "D"),
    ("Answer: (B)", "B"),
    ("**Answer:** C", "C"),
    ("answer: C", "C"),
    ("The correct answer is: A) Mars", "A"),
    ("A good guess would be C", "C"),  # the article "A" is not an answer
    ("I think B. Final answer: C", "C"),  # a stated answer wins over an earlier letter
    ("ABCD", None),  # letters inside a word do not count
    ("a b c d", None),  # lower case does not count
    ("I don't know", None),
    ("", None),
])
def test_letter_extraction(reply, letter):
    assert tasks.extract_letter(reply) == letter


def test_choice_text_fallback_needs_exactly_one_match():
    assert tasks.extract_letter("it is jupiter, clearly", QUESTION.choices) == "B"
    assert tasks.extract_letter("mars or jupiter", QUESTION.choices) is None


def test_builtin_prompts():
    mc = tasks.render(tasks.BUILTIN["mc"], QUESTION)
    assert "Which planet is largest?" in mc and "B. Jupiter" in mc and "(A, B, C, D) only" in mc
    para = tasks.render(tasks.BUILTIN["paraphrase"], QUESTION)
    assert "Which planet is largest?" in para and "Jupiter" not in para
    assert "explain why" in tasks.render(tasks.BUILTIN["explain"], QUESTION)
    assert tasks.BUILTIN["mc"].scored and not tasks.BUILTIN["explain"].scored


def test_chat_and_completion_messages():
    chat = tasks.messages(tasks.BUILTIN["mc"], QUESTION, chat=True)
    base = tasks.messages(tasks.BUILTIN["mc"], QUESTION, chat=False)
    assert chat[0]["role"] == "user" and not chat[0]["content"].endswith("Answer:")
    assert base[0]["content"].endswith("\n\nAnswer:")


def test_user_task_sets():
    mine = TaskSpec("subject_first", "[{subject}] {question}\n{choices}", max_tokens=8, scored=True)
    resolved = tasks.resolve(["mc", "subject_first"], {"subject_first": mine})
    assert [t.name for t in resolved] == ["mc", "subject_first"]
    text = tasks.render(mine, QUESTION)
    assert text.startswith("[astronomy] Which planet") and "D. Earth" in text
    assert tasks.messages(mine, QUESTION, chat=False)[0]["content"].endswith(tasks.DEFAULT_CUE)


def test_unknown_task_and_bad_templates():
    with pytest.raises(DataError, match="unknown task"):
        tasks.resolve(["mc", "translate"])
    with pytest.raises(DataError, match="unknown template field"):
        tasks.resolve(["x"], {"x": TaskSpec("x", "{question} {answer}")})
    with pytest.raises(DataError, match="bad template"):
        tasks.resolve(["x"], {"x": TaskSpec("x", "{question")})
    with pytest.raises(InvalidValue, match="max_tokens must be at least 1"):  # runtime/values.py, at build time
        TaskSpec("x", "{question}", max_tokens=0)
