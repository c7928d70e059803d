"""The task sets replayed over MMLU questions, their prompts (all in this one place) and `mc` scoring.

A task is a TaskSpec (runtime/config.py): a template over one question, a token budget and whether its
replies are scored. The three built-in sets follow Conde et al. (arXiv 2502.16721); users add their own
under [tasks.NAME] in the config. Rules and prompts are documented in docs/TASKS.md.
"""
from __future__ import annotations

import re
import string

from .backend import Message
from .config import TaskSpec
from .errors import DataError
from .mmlu import LETTERS, Question

BUILTIN: dict[str, TaskSpec] = {
    task.name: task
    for task in (
        TaskSpec(
            "mc",
            "{question}\n\nA. {A}\nB. {B}\nC. {C}\nD. {D}\n\nSelect the right answer (A, B, C, D) only.",
            max_tokens=16,
            scored=True,
            description="answer the multiple-choice question with the letter only",
        ),
        TaskSpec(
            "paraphrase",
            "Paraphrase the following question. Do not answer it.\n\n{question}",
            max_tokens=256,
            description="paraphrase the question without the answer choices",
        ),
        TaskSpec(
            "explain",
            "{question}\n\nA. {A}\nB. {B}\nC. {C}\nD. {D}\n\n"
            "Answer the question and explain why the answer is correct.",
            max_tokens=512,
            description="answer the question and explain why the answer is correct",
        ),
    )
}

# What a base model (no chat template) is asked to continue after the task text.
COMPLETION_CUES = {"mc": "Answer:", "paraphrase": "Paraphrase:", "explain": "Answer and explanation:"}
DEFAULT_CUE = "Response:"
FIELDS = ("question", "subject", "A", "B", "C", "D", "choices")


def all_tasks(configured: dict[str, TaskSpec] | None = None) -> dict[str, TaskSpec]:
    return {**BUILTIN, **(configured or {})}


def check_template(task: TaskSpec) -> None:
    """Reject a template naming a field that does not exist, before any model is loaded."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(task.template) if name is not None}
    except ValueError as exc:
        raise DataError(f"task {task.name!r}: bad template ({exc})", "write literal braces as {{ and }}") from None
    unknown = sorted(n for n in names if n not in FIELDS)
    if unknown:
        raise DataError(f"task {task.name!r}: unknown template field(s) {', '.join(unknown)}",
                        f"use {{{'}, {'.join(FIELDS)}}}")


def resolve(names: list[str], configured: dict[str, TaskSpec] | None = None) -> list[TaskSpec]:
    known = all_tasks(configured)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"unknown task(s): {', '.join(unknown)}", f"use some of: {', '.join(known)}")
    if not names:
        raise DataError("no task names given", f"pass --tasks with some of: {', '.join(known)}")
    tasks = [known[n] for n in dict.fromkeys(names)]
    for task in tasks:
        check_template(task)
    return tasks


def render(task: TaskSpec, question: Question) -> str:
    choices = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, question.choices, strict=False))
    return task.template.format(question=question.question, subject=question.subject.replace("_", " "),
                                choices=choices, **dict(zip(LETTERS, question.choices, strict=False)))


def messages(task: TaskSpec, question: Question, chat: bool) -> list[Message]:
    """A chat turn for chat models; for base models the backends join message contents into one plain
    prompt, so the text gets a completion cue to continue from."""
    text = render(task, question)
    if not chat:
        text = f"{text}\n\n{COMPLETION_CUES.get(task.name, DEFAULT_CUE)}"
    return [{"role": "user", "content": text}]


# An explicit statement ("the answer is C", "Answer: (B)") wins over a letter that merely appears first.
_STATED = re.compile(r"(?i:answer\s*(?:is)?)\s*[:\-]?[\s(\[*]*([ABCD])(?![A-Za-z0-9])")
_LONE = re.compile(r"(?<![A-Za-z0-9])([ABCD])(?![A-Za-z0-9])")
_ARTICLE = re.compile(r"A\s+[a-z]")


def extract_letter(reply: str, choices: tuple[str, ...] | None = None) -> str | None:
    """The answer letter of an `mc` reply, or None (see docs/TASKS.md for the rule).

    1. the first "answer is X" / "answer: X" (any case, X a capital A-D, optionally in brackets or bold);
    2. else the first capital A-D standing alone (not inside a word), skipping the article "A" as in
       "A good …";
    3. else, when exactly one choice's text occurs in the reply, that choice's letter.
    """
    stated = _STATED.search(reply)
    if stated:
        return stated.group(1)
    for match in _LONE.finditer(reply):
        if match.group(1) == "A" and _ARTICLE.match(reply, match.start()):
            continue
        return match.group(1)
    if choices:
        lowered = reply.lower()
        found = [letter for letter, text in zip(LETTERS, choices, strict=False)
                 if text.strip() and text.strip().lower() in lowered]
        if len(found) == 1:
            return found[0]
    return None
