"""Per-request timing files from other tools turned into session logs that taskclock can replay, and back:
sessions and run folders written in those tools' own forms (``export --format vllm|llama``), so one mapping
serves both directions and an exported run re-imports to the same figures.

vLLM's serving benchmark (`vllm bench serve --save-result --save-detailed`, formerly benchmark_serving.py)
writes one JSON object whose per-request lists line up by index: ``ttfts`` (s), ``itls`` (a list of gaps
in s per request, one per chunk after the first), ``output_lens``, ``input_lens``, ``generated_texts``,
``errors`` and, in newer versions, ``e2els``. GenAI-Perf's ``profile_export.json`` (perf_analyzer's format)
holds ``experiments[].requests[]``, each with a ``timestamp`` and ``response_timestamps`` in ns and the
matching ``response_outputs``. Each request's send time (vLLM's ``start_times``, GenAI-Perf's ``timestamp``) is
kept as ``arrival_s``, so `taskclock load --trace` can replay the schedule. llama.cpp's server puts a ``timings``
object (prompt_n, prompt_ms, predicted_n, predicted_ms, ...) in each completion; the ``llama`` form is one such
completion per line. Field mapping: docs/REPLAY.md.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import metrics, storage, values
from .errors import DataError
from .events import Done, Event, Submitted, Token
from .record import turn_fields
from .replay import finite_number, placeholder_for, replayable, split_text, whole_count
from .sessions import to_jsonl
from .untrusted import parse_json, safe_line

FORMATS = ("vllm", "genai-perf", "llama")
REQUIRED = ("ttfts", "itls", "output_lens")


def _lists(data: dict[str, Any], source: str) -> dict[str, list]:
    missing = [key for key in REQUIRED if not isinstance(data.get(key), list)]
    if missing:
        raise DataError(f"{source} has no per-request {', '.join(missing)}",
                        "pass a result saved with `vllm bench serve --save-result --save-detailed`")
    size = len(data["ttfts"])
    lists = {key: value for key, value in data.items() if isinstance(value, list) and len(value) == size}
    short = [key for key in REQUIRED if key not in lists]
    if short:
        raise DataError(f"{source}: {', '.join(short)} do not have one entry per request like ttfts",
                        "the file is damaged")
    return lists


def _request_events(ttft: float, gaps: list[float], output_len: int, input_len: int | None, text: str,
                    e2el: float | None) -> list[Event]:
    """One Token per chunk: the first at ``ttft``, each next one a gap later; Done at e2el (else the last chunk).
    Done carries ``output_len``, so decode_tps is (output_len - 1) over the chunks' span, as vLLM's TPOT."""
    times = [ttft]
    for gap in gaps:
        times.append(times[-1] + gap)
    token_ns = [round(t * metrics.NS) for t in times]
    end = max(round(e2el * metrics.NS) if e2el is not None else 0, token_ns[-1])
    pieces = split_text(text, len(token_ns))
    return [Submitted(0), *(Token(t, p) for t, p in zip(token_ns, pieces, strict=True)),
            Done(end, "eos", input_tokens=input_len, output_tokens=output_len)]


def _vllm_date(value: Any) -> str | None:
    """vLLM stamps results "%Y%m%d-%H%M%S" (local time); session records use ISO 8601."""
    try:
        return datetime.strptime(value, "%Y%m%d-%H%M%S").isoformat() if isinstance(value, str) else None
    except ValueError:
        return None


def vllm_records(data: Any, source: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Session records for every successful request; also how many were skipped and whether text was made up."""
    if not isinstance(data, dict):
        raise DataError(f"{source} is not a vLLM benchmark result (not a JSON object)", "pass the saved result file")
    lists = _lists(data, source)
    texts, errors, inputs, e2els = (lists.get(k, []) for k in ("generated_texts", "errors", "input_lens", "e2els"))
    model = safe_line(data.get("model_id") or "vllm")
    when = _vllm_date(data.get("date"))
    arrivals = _offsets([finite_number(t) for t in lists.get("start_times", [])])
    records, skipped, placeholder_any = [], 0, False
    for index, (ttft, gaps, output_len) in enumerate(zip(lists["ttfts"], lists["itls"], lists["output_lens"],
                                                         strict=True)):
        output_len = whole_count(output_len)
        e2el = finite_number(e2els[index]) if e2els else None  # not a number: left out, as vLLM's older files
        failed = bool(errors[index]) if errors else False
        # seconds a recorded turn may take (values.RECORDED_MAX_S): 1e300 would overflow the clock in ns
        times_ok = values.recorded(ttft) and isinstance(gaps, list) and all(map(values.recorded, gaps)) and \
            (e2el is None or values.recorded(e2el))
        if failed or not times_ok or not output_len or output_len > values.TOKENS_MAX:
            skipped += 1
            continue
        text = texts[index] if texts and isinstance(texts[index], str) else None
        placeholder_any |= text is None
        events = _request_events(ttft, gaps, output_len,
                                 whole_count(inputs[index]) if inputs else None,
                                 text if text is not None else placeholder_for(output_len), e2el)
        records.append(_record(events, model, "vllm-bench", "", source, index, text is None, when,
                               arrivals[index] if arrivals else None))
    return records, skipped, placeholder_any


def _offsets(times: list[float | None]) -> list[float | None]:
    """Each request's arrival in seconds after the first one's (None where its time is not a number), or [] where
    the file holds no times: what `taskclock load --trace` replays."""
    known = [t for t in times if t is not None]
    if not known:
        return []
    first = min(known)
    return [None if t is None else t - first for t in times]


def _record(events: list[Event], model: str, backend: str, prompt: str, source: str, index: int,
            placeholder: bool, when: str | None = None, arrival_s: float | None = None) -> dict[str, Any]:
    """An imported request as a session record: the one turn record with a session's context (as
    runtime.sessions.turn_record writes it), plus where it came from, whether its text is placeholder and, where
    the tool recorded it, when the request was sent (``arrival_s``, after the run's first)."""
    return {
        "kind": "import", "time": when or datetime.now().astimezone().isoformat(timespec="seconds"),
        **turn_fields(model, backend, events), "prompt": prompt, "messages": [], "params": {},
        "cold": None,  # the tool that measured it did not say
        "source": safe_line(Path(source).name), "request": index, "placeholder_text": placeholder,
        **({"arrival_s": round(arrival_s, 6)} if arrival_s is not None else {}),
    }


def _chunk_text(output: Any) -> str | None:
    """The text of one GenAI-Perf response: Triton's ``text_output``, or an OpenAI SSE ``response`` line's
    delta (chat) or text (completions); None when it carries none (role-only chunk, usage, ``[DONE]``)."""
    if not isinstance(output, dict):
        return None
    if isinstance(output.get("text_output"), str):
        return output["text_output"] or None
    line = output.get("response")
    if not isinstance(line, str) or not line.strip().startswith("data:"):
        return None
    try:
        choice = parse_json(line.strip()[len("data:"):])["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    text = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
    text = text if isinstance(text, str) else choice.get("text") if isinstance(choice, dict) else None
    return text if isinstance(text, str) and text else None


def genai_perf_records(data: Any, source: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Session records for every request of every experiment that has responses; one Token per response
    that carries text (per response, if none does), so counts are chunks: the file stores no token counts."""
    experiments = data.get("experiments") if isinstance(data, dict) else None
    if not isinstance(experiments, list):
        raise DataError(f"{source} is not a GenAI-Perf profile export (no experiments list)",
                        "pass the profile_export.json of a GenAI-Perf run")
    requests = [r for e in experiments if isinstance(e, dict) and isinstance(e.get("requests"), list)
                for r in e["requests"]]
    records, skipped, placeholder_any = [], 0, False
    arrivals = _offsets([(stamp / 1e9 if (stamp := whole_count(r.get("timestamp"))) is not None else None)
                         if isinstance(r, dict) else None for r in requests])
    for index, request in enumerate(requests):
        start = whole_count(request.get("timestamp")) if isinstance(request, dict) else None
        stamps = request.get("response_timestamps") if isinstance(request, dict) else None
        if start is None or not isinstance(stamps, list) or not stamps or \
                any(whole_count(t) is None or t < start for t in stamps):
            skipped += 1
            continue
        outputs = request.get("response_outputs")
        texts = [_chunk_text(o) for o in outputs] if isinstance(outputs, list) and len(outputs) == len(stamps) \
            else [None] * len(stamps)
        placeholder = not any(texts)
        placeholder_any |= placeholder
        if placeholder:
            chunks = list(zip(stamps, split_text(placeholder_for(len(stamps)), len(stamps)), strict=True))
        else:
            chunks = [(t, text) for t, text in zip(stamps, texts, strict=True) if text]
        events: list[Event] = [Submitted(0), *(Token(t - start, text) for t, text in chunks),
                               Done(max(stamps) - start, "eos")]
        inputs = request.get("request_inputs")
        prompt = inputs.get("text_input") if isinstance(inputs, dict) else None
        records.append(_record(events, "genai-perf", "genai-perf", prompt if isinstance(prompt, str) else "",
                               source, index, placeholder, arrival_s=arrivals[index]))
    return records, skipped, placeholder_any


def llama_records(data: Any, source: str) -> tuple[list[dict[str, Any]], int, bool]:
    """Session records for every line of a ``llama`` file (a llama.cpp server completion per line: ``content``,
    ``timings``, and taskclock's ``e2e_ms``): timings hold no per-token times, so tokens come at even gaps, the
    first at prompt_ms, then predicted_ms / predicted_n apart; TTFT, decode tok/s, tokens and task time are the
    recorded ones, ITL percentiles are not real."""
    if not isinstance(data, list):
        raise DataError(f"{source} is not a llama.cpp timings file (one completion with timings per line)",
                        "pass a file written by `taskclock export --format llama`")
    records, skipped, made = [], 0, 0
    for index, line in enumerate(data):
        timings = line.get("timings") if isinstance(line, dict) else None
        if not isinstance(timings, dict):
            skipped += 1
            continue
        ttft_ms, span_ms = finite_number(timings.get("prompt_ms")), finite_number(timings.get("predicted_ms"))
        predicted, end = whole_count(timings.get("predicted_n")), finite_number(line.get("e2e_ms"))
        # the seconds (values.RECORDED_MAX_S) and tokens (values.TOKENS_MAX) a recorded turn may hold
        times_ok = all(values.recorded(ms / 1000) for ms in (ttft_ms, span_ms) if ms is not None) and \
            (end is None or values.recorded(end / 1000))
        if ttft_ms is None or span_ms is None or predicted is None or not times_ok or \
                predicted >= values.TOKENS_MAX or (predicted and not span_ms):
            skipped += 1
            continue
        made += predicted + 1  # each made-up arrival is an event held in memory: a few bytes of file must not
        if made > values.TOKENS_MAX:  # stand for millions of them
            raise DataError(f"{source} claims more than {values.TOKENS_MAX:,} tokens in all",
                            "split the file into smaller ones")
        gap_ns = span_ms * 1e6 / predicted if predicted else 0.0
        token_ns = [round(ttft_ms * 1e6 + i * gap_ns) for i in range(predicted + 1)]
        text = line.get("content") if isinstance(line.get("content"), str) else None
        pieces = split_text(text if text is not None else placeholder_for(predicted + 1), len(token_ns))
        prompt = line.get("prompt")
        events: list[Event] = [Submitted(0), *(Token(t, p) for t, p in zip(token_ns, pieces, strict=True)),
                               Done(max(round(end * 1e6) if end is not None else 0, token_ns[-1]),
                                    "length" if line.get("stop_type") == "limit" else "eos",
                                    input_tokens=whole_count(timings.get("prompt_n")),
                                    output_tokens=whole_count(line.get("tokens_predicted")) or predicted + 1)]
        records.append(_record(events, safe_line(line.get("model") or "llama.cpp"), "llama.cpp",
                               prompt if isinstance(prompt, str) else "", source, index, text is None))
    return records, skipped, any(r["placeholder_text"] for r in records)


IMPORTERS = {"vllm": vllm_records, "genai-perf": genai_perf_records, "llama": llama_records}


def import_file(path: Path, fmt: str, out: Path) -> tuple[int, int, bool]:
    """Write ``path`` (a ``fmt`` timing file) as the new session log ``out`` (its folder made if missing); never
    replaces a file.
    Returns (turns written, requests skipped, whether any text is placeholder)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown import format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    path, out = Path(path), Path(out)
    if out.exists():
        raise DataError(f"{safe_line(out)} already exists", "name a new file with -o; nothing was replaced")
    if fmt in LINE_FORMATS:  # a damaged line is None, which the importer counts as skipped
        data: Any = [record for _, record, _ in storage.read_lines(path, "timing file")]
    else:
        data = storage.read_json(path, "timing file", storage.JSON_MAX_BYTES)
    found, skipped, placeholder = IMPORTERS[fmt](data, str(path))
    records = [record for record in found if replayable(record)]  # what replay would refuse is not written
    skipped += len(found) - len(records)
    if not records:
        raise DataError(f"{safe_line(path)} has no successful request to import",
                        "pass a result with completed requests")
    storage.ensure_dir(out.parent)  # missing folders are made, as bench --out and --sessions make theirs
    storage.write_atomic(out, to_jsonl(records), replace=False)
    return len(records), skipped, placeholder


# ---- export: the same mappings the other way ------------------------------------------------------

LINE_FORMATS = ("llama",)  # one JSON object per line; the others are one JSON document
EXPORT_FORMATS = ("vllm", "llama")


def _arrivals_s(record: dict[str, Any]) -> list[float]:
    offsets = record.get("token_offsets_ms")
    return [value / 1000 for value in map(finite_number, offsets or []) if value is not None]


def _timed(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns that produced tokens, with their arrivals: what another tool counts as a completed request."""
    return [t for t in turns if _arrivals_s(t) and whole_count(t.get("output_tokens"))]


def _stats_ms(name: str, values_s: list[float]) -> dict[str, float]:
    """vLLM's summary keys (mean, median, p99 in ms) for one per-request figure."""
    if not values_s:
        return {}
    ordered = sorted(values_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {f"mean_{name}_ms": statistics.fmean(values_s) * 1000,
            f"median_{name}_ms": statistics.median(values_s) * 1000, f"p99_{name}_ms": p99 * 1000}


def to_vllm(turns: Sequence[dict[str, Any]]) -> str:
    """A `vllm bench serve --save-result --save-detailed` result: per-request lists in vLLM's names and units (s,
    tokens), which ``import --format vllm`` reads back to the same figures, and vLLM's summary keys over them."""
    timed = _timed(turns)
    arrivals = [_arrivals_s(t) for t in timed]
    figures = list(timed)
    ttfts = [a[0] for a in arrivals]
    e2els = [finite_number(f.get("task_time_s")) or a[-1] for f, a in zip(figures, arrivals, strict=True)]
    outputs = [f["output_tokens"] for f in figures]
    tpots = [(e - t) / (n - 1) for e, t, n in zip(e2els, ttfts, outputs, strict=True) if n > 1]
    itls = [[b - a for a, b in zip(times, times[1:], strict=False)] for times in arrivals]
    models = sorted({safe_line(t.get("model", "?")) for t in timed})
    result = {
        "date": datetime.now().strftime("%Y%m%d-%H%M%S"), "backend": "taskclock", "model_id": ", ".join(models),
        "num_prompts": len(timed), "completed": len(timed),
        "total_input_tokens": sum(f.get("input_tokens") or 0 for f in figures), "total_output_tokens": sum(outputs),
        **_stats_ms("ttft", ttfts), **_stats_ms("tpot", tpots), **_stats_ms("itl", [g for gaps in itls for g in gaps]),
        **_stats_ms("e2el", e2els),
        "input_lens": [f.get("input_tokens") for f in figures], "output_lens": outputs, "ttfts": ttfts,
        "itls": itls, "e2els": e2els, "generated_texts": [str(t.get("reply", "")) for t in timed],
        "errors": ["" for _ in timed],
    }
    return json.dumps(result, ensure_ascii=False, indent=1) + "\n"


def to_llama(turns: Sequence[dict[str, Any]]) -> str:
    """One llama.cpp server completion per line (``content``, ``timings`` with its key names and units), which
    ``import --format llama`` reads back: prompt_ms is the TTFT (as the client waited, not only the server's
    prefill), predicted_n the tokens after the first over predicted_ms from the first to the last, so
    predicted_per_second is taskclock's decode tok/s; ``e2e_ms`` (task time) is taskclock's own key."""
    lines = []
    for turn in _timed(turns):
        figures, arrivals = turn, _arrivals_s(turn)
        prompt_n, output = figures.get("input_tokens"), figures["output_tokens"]
        prompt_ms, span_ms = arrivals[0] * 1000, (arrivals[-1] - arrivals[0]) * 1000
        predicted_n = output - 1
        timings = {"prompt_n": prompt_n, "prompt_ms": prompt_ms,
                   "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else None,
                   "prompt_per_second": prompt_n / prompt_ms * 1000 if prompt_n and prompt_ms else None,
                   "predicted_n": predicted_n, "predicted_ms": span_ms,
                   "predicted_per_token_ms": span_ms / predicted_n if predicted_n else None,
                   "predicted_per_second": predicted_n / span_ms * 1000 if predicted_n and span_ms else None}
        task = finite_number(figures.get("task_time_s"))
        lines.append({"model": safe_line(turn.get("model", "?")), "prompt": str(turn.get("prompt", "")),
                      "content": str(turn.get("reply", "")), "tokens_predicted": output,
                      "tokens_evaluated": prompt_n, "stop_type": "limit" if turn.get("stop_reason") == "length"
                      else "eos", "timings": timings, "e2e_ms": task * 1000 if task is not None else None})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


EXPORTERS = {"vllm": to_vllm, "llama": to_llama}
EXPORT_SUFFIX = {"vllm": "vllm.json", "llama": "llama.jsonl"}
