"""The verdict on constructed rows whose right answer is known by hand: each cause of a task-time gap dominates
in turn (TTFT with equal tokens, saying more, writing slower, thinking, a finer tokenizer), causes that offset,
the residual of unpaired replies, the interval that decides whether an order stands, and replies cut short."""
from __future__ import annotations

import pytest

from taskclock.runtime import summary, verdict
from taskclock.runtime.stats import excludes_zero, samples_needed, spread, t_quantile

QIDS = ("q/0", "q/1", "q/2", "q/3")
JITTER = (0.0, 0.01, -0.01, 0.005)  # per question: a spread small enough that the gaps below stand


def row(model: str, qid: str, *, ttft: float, tokens: int, pace_ms: float, words: int | None = None,
        thinking_s: float | None = None, thinking_tokens: int | None = None, stop: str = "eos",
        prefill: float | None = None, task: str = "mc") -> dict:
    """A reply: TTFT, then thinking, then ``tokens`` answer tokens ``pace_ms`` apart (decode tok/s from the pace)."""
    writing = tokens * pace_ms / 1000
    task_s = ttft + (thinking_s or 0.0) + writing
    out = tokens + (thinking_tokens or 0)
    return {"kind": "result", "model": model, "backend": "llamacpp", "task": task, "qid": qid, "batch_size": 1,
            "repeat": 0, "input_tokens": 40, "output_tokens": out,
            "output_words": words if words is not None else tokens,
            "output_chars": 5 * tokens, "ttft_s": ttft, "decode_tps": 1000 / pace_ms, "task_time_s": task_s,
            "stop_reason": stop, "error": None, "reply": "r", "thinking_s": thinking_s,
            "ttfa_s": ttft + thinking_s if thinking_s is not None else None,
            "thinking_tokens": thinking_tokens, "thinking_words": thinking_tokens, "backend_prefill_s": prefill,
            "cut": True if stop == "length" else None}


def rows_of(model: str, **figures) -> list[dict]:
    """One row per question, the TTFT jittered a little per question."""
    ttft = figures.pop("ttft")
    return [row(model, qid, ttft=ttft + jitter, **figures) for qid, jitter in zip(QIDS, JITTER, strict=True)]


def judge(*rows: list[dict], caps: dict[str, int] | None = None) -> summary.TaskRanking:
    flat = [r for model_rows in rows for r in model_rows]
    models = list(dict.fromkeys(r["model"] for r in flat))
    tasks = list(dict.fromkeys(r["task"] for r in flat))
    cells = summary.summarize(flat, models, tasks, set(), caps=caps)
    (group,) = [g for g in summary.rankings(cells, flat) if g.task == tasks[0]]
    return group


def marks(group: summary.TaskRanking) -> dict[str, str]:
    return {r.model: r.mark for r in group.ranks}


def test_equal_tokens_and_a_later_first_token_blame_the_ttft():
    """The issue's case: both write the 16-token cap; the one faster per token waits 0.30 s longer for its first
    token, so it finishes later, and a writing-speed advantage offsets part of that (a negative share)."""
    fast = rows_of("fast", ttft=0.90, tokens=16, pace_ms=20.0, stop="length")  # 50 tok/s, 1.22 s
    early = rows_of("early", ttft=0.60, tokens=16, pace_ms=25.0, stop="length")  # 40 tok/s, 1.00 s
    group = judge(fast, early, caps={"mc": 16})
    assert group.verdict.startswith("mc: fast is 1st by tok/s but 2nd by task time: it starts 0.30 s later "
                                    "(TTFT, 136% of the gap); 0.22 s ± 0.00 s (n=4): gap 0.22 s = TTFT +0.30 s "
                                    "(136%) + saying more +0.00 s (0%) + writing slower -0.08 s (-36%), "
                                    "residual +0.00 s")
    assert "fast hit the 16-token cap in 4 of 4 replies: its real task time is longer" in group.verdict
    assert marks(group) == {"fast": summary.DISAGREE, "early": summary.DISAGREE}


def test_more_words_at_a_higher_rate_blame_saying_more():
    verbose = rows_of("verbose", ttft=0.10, tokens=400, words=300, pace_ms=10.0)  # 100 tok/s, 4.1 s
    terse = rows_of("terse", ttft=0.10, tokens=50, words=40, pace_ms=20.0)  # 50 tok/s, 1.1 s
    verdict_line = judge(verbose, terse).verdict
    # saying more: 350 extra tokens at verbose's 10 ms = 3.5 s; writing slower: 50 tokens × (10 − 20) ms = −0.5 s
    assert verdict_line.startswith("mc: verbose is 1st by tok/s but 2nd by task time: it writes 7.5× more words "
                                   "(300 vs 40; 117% of the gap)")
    assert "saying more +3.50 s (117%) + writing slower -0.50 s (-17%)" in verdict_line


def test_the_same_tokens_at_a_lower_rate_blame_writing_slower_when_the_rankings_agree():
    quick = rows_of("quick", ttft=0.20, tokens=100, pace_ms=10.0)
    slow = rows_of("slow", ttft=0.20, tokens=100, pace_ms=30.0)
    verdict_line = judge(quick, slow).verdict
    assert verdict_line.startswith("mc: rankings agree on this run (quick is 1st by tok/s and by task time); slow "
                                   "finishes later: it writes slower (30.0 vs 10.0 ms a token, decode 33.3 vs 100.0 "
                                   "tok/s; 100% of the gap)")
    assert marks(judge(quick, slow)) == {"quick": "", "slow": ""}


def test_a_reasoning_models_thinking_is_a_cause_of_its_own():
    thinker = rows_of("thinker", ttft=0.10, tokens=20, pace_ms=10.0, thinking_s=3.0, thinking_tokens=300)
    plain = rows_of("plain", ttft=0.10, tokens=20, pace_ms=20.0)
    verdict_line = judge(thinker, plain).verdict
    assert "thinker is 1st by tok/s but 2nd by task time: it thinks 3.00 s longer (thinking, 107% of the gap)" \
        in verdict_line
    assert "TTFT +0.00 s (0%) + thinking +3.00 s (107%) + saying more +0.00 s (0%) + writing slower -0.20 s (-7%)" \
        in verdict_line


def test_a_finer_tokenizer_spends_more_tokens_on_the_same_words():
    fine = rows_of("fine-cut", ttft=0.10, tokens=300, words=150, pace_ms=10.0)
    coarse = rows_of("coarse", ttft=0.10, tokens=150, words=150, pace_ms=15.0)
    assert ": it spends 2.0× more tokens on 1.0× the words (300 vs 150 tokens; " in judge(fine, coarse).verdict


def test_the_backends_prefill_splits_the_ttft():
    late = rows_of("late", ttft=0.50, tokens=10, pace_ms=10.0, prefill=0.35)
    soon = rows_of("soon", ttft=0.10, tokens=10, pace_ms=20.0, prefill=0.05)
    assert "TTFT +0.40 s (" in judge(late, soon).verdict
    assert "[prefill +0.30 s, before prefill +0.10 s]" in judge(late, soon).verdict


def test_a_reply_without_a_partner_is_the_residual():
    a = rows_of("a", ttft=0.50, tokens=10, pace_ms=10.0)
    b = rows_of("b", ttft=0.10, tokens=10, pace_ms=20.0)
    lonely = row("a", "q/9", ttft=2.50, tokens=10, pace_ms=10.0)  # only a answered it: it moves a's mean only
    verdict_line = judge(a + [lonely], b).verdict
    # a's mean task time rises by (2.6 − 0.6025) / 5 = 0.3995 s over the paired questions' 0.6025
    assert "residual +0.40 s" in verdict_line


def test_a_flip_within_the_runs_noise_is_called_noise_with_how_many_questions_would_tell():
    # a finishes later on average, but not on every question
    a = [row("a", qid, ttft=t, tokens=10, pace_ms=10.0) for qid, t in zip(QIDS, (0.4, 0.1, 0.35, 0.15), strict=True)]
    b = [row("b", qid, ttft=0.13, tokens=10, pace_ms=12.0) for qid in QIDS]
    group = judge(a, b)
    differences = spread([x["task_time_s"] - y["task_time_s"] for x, y in zip(a, b, strict=True)])
    assert differences.mean > 0 and not excludes_zero(differences)
    noise = f"within noise (n=4, ±{differences.ci95:.2f} s)"
    assert marks(group) == {"a": noise, "b": noise}  # not "disagree"
    assert group.verdict.startswith(f"mc: a is 1st by tok/s but 2nd by task time, {noise}: this run cannot tell a "
                                    f"and b apart on task time (about {samples_needed(differences)} questions or "
                                    f"repeats would, at this spread); of the {differences.mean:.2f} s it measured, a "
                                    "starts")


def test_tok_s_ranks_within_noise_are_said_so():
    a = [row("a", qid, ttft=0.1, tokens=10, pace_ms=p) for qid, p in zip(QIDS, (10, 30, 10, 30), strict=True)]
    b = [row("b", qid, ttft=0.1, tokens=10, pace_ms=p) for qid, p in zip(QIDS, (31, 11, 29, 12), strict=True)]
    tps = spread([1000 / y - 1000 / x for x, y in zip((10, 30, 10, 30), (31, 11, 29, 12), strict=True)])
    assert not excludes_zero(tps)
    assert judge(a, b).verdict.startswith("mc: rankings agree on this run (a is 1st by tok/s and by task time; their "
                                          f"tok/s differ within noise (n=4, ±{tps.ci95:.1f} tok/s)); b finishes later")


def test_the_interval_helpers():
    assert excludes_zero(spread([1.0, 1.1, 0.9])) and not excludes_zero(spread([1.0, -1.0, 0.5]))
    assert not excludes_zero(spread([5.0]))  # one sample has no interval
    assert samples_needed(spread([5.0])) is None
    assert samples_needed(spread([0.1, -0.1])) is None  # no gap at all
    needed = samples_needed(spread([0.3, -0.1, 0.2, 0.0]))
    assert needed is not None and needed > 4
    # the fewest samples of the same mean and sd whose interval leaves 0 out: one fewer would not
    seen = spread([0.3, -0.1, 0.2, 0.0])
    assert t_quantile(needed - 1) * seen.sd / needed ** 0.5 < seen.mean <= t_quantile(needed - 2) * seen.sd / \
        (needed - 1) ** 0.5


def test_a_cut_reply_is_marked_and_its_phrase_names_the_cap():
    cut = verdict.cuts("gemma3-270m", [row("g", q, ttft=0.1, tokens=384, pace_ms=10, stop="length") for q in QIDS]
                       * 2, 384)
    assert (cut.mark(), cut.phrase()) == ("cut 8/8", "gemma3-270m hit the 384-token cap in 8 of 8 replies: its real "
                                                     "task time is longer")
    assert verdict.cuts("m", [row("m", "q", ttft=0.1, tokens=3, pace_ms=10)], 16).mark() == ""


@pytest.mark.parametrize("n", [1, 21, 101])
def test_ordinals(n):
    assert verdict.ordinal(n) == {1: "1st", 21: "21st", 101: "101st"}[n]
