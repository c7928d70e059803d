"""Real batched generation for transformers models: one padded ``generate()`` call for several requests.

Prompts are left-padded (decoder-only models continue from the right edge) with an attention mask, so
each sequence sees only its own tokens. Every request shares the batch's submission time and token
arrival times, so its TTFT is the batch's first step; its own end is the step where that sequence
produced EOS, hit a stop string or reached its token budget — what a user of a batching server waits for.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..backend import Message, SamplingParams, encode_within_context, first_line
from ..events import Done, DoneExtra, Event, StopReason, Submitted, now_ns
from ..reply import Reply
from .hf_worker import END, TimestampStreamer, start_generation

if TYPE_CHECKING:
    from .hf import HFModel


@dataclass
class _Sequence:
    """One request inside the batch: its events so far and its own reply."""

    events: list[Event]
    prompt_len: int
    reply: Reply
    finished: bool = False
    extra: DoneExtra = field(default_factory=DoneExtra)  # its Done's extra: batch size, then the batch's GPU figures

    def finish(self, t_ns: int, reason: StopReason, error: str | None = None) -> None:
        self.events.extend(self.reply.end(reason, self.prompt_len, error=error, extra=self.extra, t_ns=t_ns))
        self.finished = True


def _prepare(model: HFModel, conversations: list[list[Message]],
             streams: list[list[Event]]) -> tuple[list[int], list[list[int]]]:
    """Encode every request; those that cannot run end at once with an error Done."""
    slots, prompts = [], []
    for i, messages in enumerate(conversations):
        ids = encode_within_context(model.encode, messages, model.max_positions)
        if isinstance(ids, Done):
            streams[i].append(ids)
            continue
        slots.append(i)
        prompts.append(ids)
    return slots, prompts


def generate_batch(model: HFModel, conversations: list[list[Message]], params: SamplingParams,
                   cancel: threading.Event | None = None) -> list[list[Event]]:
    """Run the requests as one left-padded batch; returns one complete event list per request."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    submitted = now_ns()
    streams: list[list[Event]] = [[Submitted(submitted)] for _ in conversations]
    slots, prompts = _prepare(model, conversations, streams)
    if not slots:
        return streams
    width = max(len(p) for p in prompts)
    max_new = min(params.max_tokens, model.max_positions - width)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else next(iter(model.eos_ids), 0)
    sequences = [_Sequence(streams[i], len(p), model.reply(params, p),
                           extra=DoneExtra(batch_size=len(prompts), **model.thread_figures(batched=True)))
                 for i, p in zip(slots, prompts, strict=True)]
    device = model.model.device

    class Finished(StoppingCriteria):
        """Ends sequences that hit a stop string, and the whole batch on cancel."""

        def __call__(self, input_ids, scores, **kwargs):
            flags = [s.finished or (cancel is not None and cancel.is_set()) for s in sequences]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    streamer = TimestampStreamer()
    model.probe.start()
    generated, failure = start_generation(  # a failure is reported in every unfinished request's Done
        model.worker, model.model, params, streamer, model.torch_threads(batched=True),
        input_ids=torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device),
        attention_mask=torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device),
        max_new_tokens=max_new, pad_token_id=pad,
        stopping_criteria=StoppingCriteriaList([Finished()]),
    )
    while (item := streamer.queue.get()) is not END:
        t, ids = item
        for seq, tok in zip(sequences, ids, strict=True):
            if not seq.finished:
                _step(seq, tok, t, model.eos_ids, max_new)
    generated.wait()
    end = now_ns()
    gpu = model.probe.finish()
    for seq in sequences:
        if not seq.finished:
            if failure:
                seq.finish(end, "error", f"generation failed: {first_line(failure[0])}")
            else:
                seq.finish(end, "cancelled" if cancel is not None and cancel.is_set() else "length")
        seq.extra.update(gpu)  # the batch's GPU figures, shared by all its requests
    return streams


def _step(seq: _Sequence, tok: int, t_ns: int, eos_ids: set[int], max_new: int) -> None:
    """Feed one step's token to its sequence; finish it on EOS, a stop string or its budget."""
    if tok in eos_ids:
        seq.finish(t_ns, "eos")
        return
    seq.events.extend(seq.reply.token(t_ns, tok))
    if seq.reply.stopped:
        seq.finish(t_ns, "stop")
    elif seq.reply.produced >= max_new:
        seq.finish(t_ns, "length")
