/* sim_judge.h - the simulated judge model: a model whose name contains "judge" (e.g.
 * sim-judge) scores an answer for an eval as one JSON object,
 *   {"relevance":4,"tonality":5,"reason":"..."}
 * from the last user message, which holds the sections "QUESTION:", "REFERENCE:" (may be empty)
 * and "ANSWER:" (trilemma-eval's judge prompt; the rubric is the system prompt and is not read).
 * Deterministic rules over the words (docs/sim.md, "The judge"), so an eval's judge scores are
 * the same on every run. */
#ifndef TRILEMMA_SIM_JUDGE_H
#define TRILEMMA_SIM_JUDGE_H

#include <stddef.h>

#include "base/buf.h"

/* Append the judge's JSON for the message text t[0..n) to out. */
void sim_judge_answer(struct buf *out, const char *t, size_t n);

/* The scores alone (1-5 each), for tests; reason (may be NULL) gets a short text. */
void sim_judge_scores(const char *t, size_t n, int *relevance, int *tonality, struct buf *reason);

#endif
