"""Stage `quotes`: verbatim quotes with timestamps, grounded in the transcript (LLM or offline engine)."""

from __future__ import annotations

from temporalio import activity

from activities.breaker import gate_for
from activities.runtime import StageDeps, StageRun, run_stage, settings_for
from clipper.job.messages import QuotesOutput, TextStageInput
from clipper.job.outputs import Transcript
from clipper.job.status import StageProgress

STAGE = "quotes"


class QuotesActivity:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=STAGE)
    async def run(self, request: TextStageInput) -> QuotesOutput:
        return await run_stage(self.deps, STAGE, request, QuotesOutput, lambda run: self._quotes(request, run))

    def _quotes(self, request: TextStageInput, run: StageRun) -> QuotesOutput:
        from clipper.llm import get_text_engine
        from clipper.llm.budget import fit, tokens_noted
        from clipper.text.formats import quotes_markdown
        from clipper.text.quotes import extract_quotes

        store, job = self.deps.store, request.job_id
        transcript = store.read_model(job, request.transcript, Transcript)
        settings = settings_for(self.deps.settings, request.options)
        gate = gate_for(self.deps.breakers, run, waits=settings.llm_fallback != "offline")
        engine = get_text_engine(settings, request.options.text_engine, gate)
        run.progress = StageProgress(unit="chunks")
        # The chunk budget in the model's tokens where its server counts them; tokens arriving are progress (in
        # the heartbeat), and a cancel closes the request being read.
        settings = fit(settings, engine, transcript, run.stop.is_set, tokens_noted(run.progress))
        quotes = extract_quotes(transcript, engine, settings, on_chunk_done=run.count_chunk, should_stop=run.stop.is_set)
        run.log.info("quotes.done", engine=quotes.engine, count=len(quotes.quotes), candidates=quotes.candidates,
                     ungrounded=quotes.ungrounded, failed_chunks=quotes.failed_chunks)
        return QuotesOutput(
            quotes=store.put_model(job, "quotes.json", quotes, STAGE),
            markdown=store.put_text(job, "quotes.md", quotes_markdown(quotes), STAGE, "text/markdown"),
            count=len(quotes.quotes),
            candidates=quotes.candidates,
            ungrounded=quotes.ungrounded,
            failed_chunks=quotes.failed_chunks,
        )
