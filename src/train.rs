//! The training loop, written once for every backend: evaluate, ask the stop rules, update.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::backend::{ChunkEntry, ChunkRule, ChunkStart, Evaluation, Session};
use crate::early_bird::{EarlyBird, EarlyBirdReport, Watch};
use crate::error::{Error, Result};
use crate::metrics::{Metric, Metrics};
use crate::stop::{Decision, Step, StopEngine, StopReason, StopRule};

/// Which rows the stop rules watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    Train,
    Val,
}

impl Monitor {
    /// The watched set's metrics: the validation rows' where watched and present, else the
    /// training rows'.
    pub fn pick(self, train: Metrics, val: Option<Metrics>) -> Metrics {
        match (self, val) {
            (Monitor::Val, Some(v)) => v,
            _ => train,
        }
    }
}

/// When the host reads the metrics back from a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// After every iteration.
    Every,
    /// Once per chunk of iterations; the stop rule runs on the device in between.
    Chunk,
}

/// How to train: the rules, what they watch, and which weights to return.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub rule: StopRule,
    pub monitor: Monitor,
    /// Return the weights of the best check instead of the last ones.
    pub restore_best: bool,
    pub sync: SyncMode,
    /// Iterations per chunk with `SyncMode::Chunk`; `None` adapts.
    pub chunk: Option<u32>,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current iteration or chunk, with
    /// reason `interrupted` and the weights of that iteration.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Stop with `mask_stable` once the magnitude mask has settled (checked at checks where
    /// the engine's rules went on).
    pub early_bird: Option<EarlyBird>,
}

impl PartialEq for TrainOptions {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.rule,
            self.monitor,
            self.restore_best,
            self.sync,
            self.chunk,
            &self.early_bird,
        ) == (
            &o.rule,
            o.monitor,
            o.restore_best,
            o.sync,
            o.chunk,
            &o.early_bird,
        )
    }
}

impl TrainOptions {
    pub fn new(rule: StopRule) -> Self {
        TrainOptions {
            rule,
            monitor: Monitor::Train,
            restore_best: false,
            sync: SyncMode::Chunk,
            chunk: None,
            interrupt: None,
            early_bird: None,
        }
    }
}

/// One checked iteration: what the log records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckRecord {
    pub iteration: u64,
    /// Seconds since the first iteration began.
    pub elapsed_s: f64,
    pub train: Metrics,
    pub val: Option<Metrics>,
}

/// How and why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StopInfo {
    pub reason: StopReason,
    /// Updates the returned weights received.
    pub iteration: u64,
    /// The iteration at which the rule fired (differs from `iteration` with `--restore-best`
    /// and for `non_finite`).
    pub stopped_at: u64,
    /// `iteration` in epochs: updates ÷ updates per epoch (⌈N / B⌉; 1 at full batch).
    pub epoch: f64,
    pub metric: Metric,
    pub monitor: Monitor,
    /// The monitored metric of the returned weights.
    pub value: f64,
    /// The monitored metric at `stopped_at`.
    pub value_at_stop: f64,
    pub threshold: Option<f64>,
    /// The last check that counted as an improvement, and its value (null if none did).
    pub best_iteration: Option<u64>,
    pub best_value: Option<f64>,
    /// The returned weights are the best check's.
    pub restored_best: bool,
    /// For `non_finite`: the iteration whose loss was not finite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_finite_at: Option<u64>,
    /// With the early-bird rule: its settings and where its mask stood.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_bird: Option<EarlyBirdReport>,
}

/// The result of a run: the weights the rules chose and their metrics.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stop: StopInfo,
    /// Metrics of the returned weights on the training rows.
    pub metrics: Metrics,
    /// ... and on the validation rows, if any.
    pub val_metrics: Option<Metrics>,
    /// The loss sum and confusion matrix those metrics come from.
    pub counts: Evaluation,
    pub params: Vec<f32>,
    /// Forward passes run, t = 0 included.
    pub evaluations: u64,
    /// Updates run.
    pub updates: u64,
    pub train_s: f64,
}

/// Iterations in the first chunk of an adaptive `SyncMode::Chunk` run (and after a pause).
const FIRST_CHUNK: u32 = 4;
/// Adaptive chunks stop growing once one takes this long, so that `max_time` and the log
/// stay timely.
const CHUNK_SECONDS: f64 = 0.1;

/// Trains until a rule stops it. `on_check` sees every checked iteration and the last one.
///
/// Iteration t means the weights after t updates. The metrics of those weights are produced
/// before update t + 1 is applied, so the returned weights are exactly those of the reported
/// iteration: the one where the rule fired, the best check's with `restore_best`, or for a
/// non-finite loss at t the weights of t − 1 (of t = 0 if it happens there).
///
/// With `SyncMode::Chunk` on a backend that supports it, iterations run in chunks with the
/// rules judged on the device; this engine replays each chunk's history and stays the judge,
/// so the stop, the reason and the weights are the same as with `SyncMode::Every`. Only
/// `max_time` is looked at between chunks rather than between iterations. With
/// `early_bird` the host reads the weights at every check, so chunks hold one evaluated
/// iteration each.
pub fn train(
    session: &mut dyn Session,
    opts: &TrainOptions,
    on_check: impl FnMut(&CheckRecord) -> Result<()>,
) -> Result<Outcome> {
    let run = Run {
        opts,
        engine: StopEngine::new(opts.rule.clone()),
        start: Instant::now(),
        last: None,
        best: None,
        last_eval: None,
        best_eval: None,
        last_t: 0,
        evaluations: 0,
        per_epoch: session.mini_batches().unwrap_or(1),
        watch: opts.early_bird.clone().map(Watch::new).transpose()?,
        on_check,
    };
    let chunk_rule = ChunkRule {
        rule: opts.rule.clone(),
        monitor_val: opts.monitor == Monitor::Val,
        restore_best: opts.restore_best,
    };
    let mini = session.mini_batches().is_some();
    let chunks = match opts.sync {
        SyncMode::Chunk => session.max_chunk(&chunk_rule).map(|max| {
            let max = if run.watch.is_some() { 1 } else { max };
            (&chunk_rule, max)
        }),
        SyncMode::Every => None,
    };
    run.run(session, mini, chunks)
}

/// What a chunk's replay ended with.
enum Replayed {
    /// A stop at iteration t, for the reason, with its metrics and counts.
    Stop(Box<(u64, StopReason, Pair, Evaluation)>),
    /// No stop: the last entry's iteration, and whether the host counted it an improvement.
    Ran(u64, bool),
}

/// The metrics of one iteration on both sets.
type Pair = (Metrics, Option<Metrics>);

/// Whether the loss of every set is finite.
fn losses_finite((train, val): &Pair) -> bool {
    train.loss.is_finite() && val.is_none_or(|v| v.loss.is_finite())
}

/// A run in progress: the engine and what the loop remembers between iterations.
struct Run<'a, F> {
    opts: &'a TrainOptions,
    engine: StopEngine,
    start: Instant,
    /// The metrics of the previous iteration.
    last: Option<Pair>,
    /// The metrics of the best check.
    best: Option<Pair>,
    /// The counts behind `last` and `best`.
    last_eval: Option<Evaluation>,
    best_eval: Option<Evaluation>,
    /// The iteration of `last`.
    last_t: u64,
    evaluations: u64,
    /// Updates per epoch (1 at full batch).
    per_epoch: u64,
    /// The early-bird rule's state, if it is on.
    watch: Option<Watch>,
    on_check: F,
}

impl<F: FnMut(&CheckRecord) -> Result<()>> Run<'_, F> {
    /// Judges iteration t. `clock` is what the engine's `max_time` sees; `elapsed_s` is logged.
    fn judge(
        &mut self,
        t: u64,
        e: &Evaluation,
        clock: f64,
        elapsed_s: f64,
    ) -> Result<(Step, Pair)> {
        let (train, val) = self.evaluated(e);
        let monitored = match (self.opts.monitor, &val) {
            (Monitor::Train, _) => &train,
            (Monitor::Val, Some(v)) => v,
            (Monitor::Val, None) => {
                return Err(Error::Config(
                    "--monitor val needs validation data (--val FILE.csv or --val-split F)".into(),
                ));
            }
        };
        let finite = losses_finite(&(train, val));
        let value = monitored.get(self.opts.rule.metric);
        let step = self.engine.observe(t, value, finite, clock);
        if step.improved {
            self.best = Some((train, val));
            self.best_eval = Some(e.clone());
        }
        if step.checked || step.decision != Decision::Continue {
            self.log(t, elapsed_s, (train, val))?;
        }
        Ok((step, (train, val)))
    }

    /// The metrics of an evaluation, counted.
    fn evaluated(&mut self, e: &Evaluation) -> Pair {
        self.evaluations += 1;
        (
            Metrics::from_counts(&e.train),
            e.val.as_ref().map(Metrics::from_counts),
        )
    }

    /// Hands iteration t's metrics to `on_check`.
    fn log(&mut self, t: u64, elapsed_s: f64, (train, val): Pair) -> Result<()> {
        (self.on_check)(&CheckRecord {
            iteration: t,
            elapsed_s,
            train,
            val,
        })
    }

    /// The loop. At full batch every iteration is evaluated (its forward pass is the
    /// gradient's). With mini-batches (`mini`) updates run over the batches and the weights
    /// are evaluated (on every training and validation row) at checks only; between checks
    /// only `max_time` and an interrupt can stop the run, and the weights are then evaluated
    /// for the report (a non-finite loss there stops as `non_finite`, with the last check's
    /// weights). Without `chunks` each evaluation is read back on its own; with them,
    /// evaluations go in chunks of at most `max`, judged on the device, which pauses wherever
    /// a rule may fire.
    fn run(
        mut self,
        session: &mut dyn Session,
        mini: bool,
        chunks: Option<(&ChunkRule, u32)>,
    ) -> Result<Outcome> {
        let opts = self.opts;
        let mut k = chunks.map_or(1, |(_, max)| {
            opts.chunk.unwrap_or(FIRST_CHUNK).clamp(1, max.max(1))
        });
        let mut adopt = false;
        let mut t = 0u64;
        loop {
            if !mini || opts.rule.is_check(t) {
                match chunks {
                    None => {
                        let e = session.evaluate()?;
                        let elapsed = self.start.elapsed().as_secs_f64();
                        let (step, now) = self.judge(t, &e, elapsed, elapsed)?;
                        if step.improved {
                            session.save_best()?;
                        }
                        let decision = self.early_bird(session, step)?;
                        if let Decision::Stop(reason) = self.interrupted(decision) {
                            return self.finish(session, t, reason, now, e);
                        }
                        self.last = Some(now);
                        self.last_eval = Some(e);
                        self.last_t = t;
                    }
                    Some((chunk_rule, max)) => {
                        let start = ChunkStart {
                            t,
                            has_best: self.engine.best().is_some(),
                            wait: self.engine.wait(),
                            adopt_candidate: adopt,
                        };
                        let left = if mini {
                            let r = &opts.rule;
                            r.check_number(r.max_iter) - r.check_number(t) + 1
                        } else {
                            opts.rule.max_iter.saturating_sub(t).saturating_add(1)
                        };
                        let began = self.start.elapsed().as_secs_f64();
                        let entries =
                            session.run_chunk(chunk_rule, &start, left.min(u64::from(k)) as u32)?;
                        let elapsed = self.start.elapsed().as_secs_f64();
                        let paused = entries.last().is_some_and(|e| e.paused);
                        let (last_t, improved_last) =
                            match self.replay(session, entries, t, mini, elapsed)? {
                                Replayed::Stop(stop) => {
                                    let (t, reason, now, e) = *stop;
                                    return self.finish(session, t, reason, now, e);
                                }
                                Replayed::Ran(t, improved) => (t, improved),
                            };
                        t = last_t;
                        adopt = paused && improved_last;
                        if opts.chunk.is_none() {
                            k = if paused {
                                FIRST_CHUNK.min(max.max(1))
                            } else if elapsed - began < CHUNK_SECONDS {
                                (k * 2).min(max.max(1))
                            } else {
                                k
                            };
                        }
                    }
                }
            } else {
                let elapsed = self.start.elapsed().as_secs_f64();
                let step = self.engine.pass(t, elapsed);
                if let Decision::Stop(reason) = self.interrupted(step.decision) {
                    let e = session.evaluate()?;
                    let now = self.report_only(t, &e, elapsed)?;
                    // Weights gone non-finite since the last check are not returned: that
                    // check's are, as at a check.
                    let reason = if losses_finite(&now) {
                        reason
                    } else {
                        StopReason::NonFinite
                    };
                    return self.finish(session, t, reason, now, e);
                }
            }
            session.update()?;
            t += 1;
        }
    }

    /// The metrics of iteration t, evaluated for the report only (the rules do not see them).
    fn report_only(&mut self, t: u64, e: &Evaluation, elapsed_s: f64) -> Result<Pair> {
        let now = self.evaluated(e);
        self.log(t, elapsed_s, now)?;
        Ok(now)
    }

    /// Replays a chunk's entries from iteration `t` (the next evaluated iteration after each:
    /// t + 1, or with mini-batches the next check, the iterations between passed) through
    /// the engine, which stays the judge: the device must agree with it wherever it did not
    /// pause. `max_time` and an interrupt are looked at on the last entry only.
    fn replay(
        &mut self,
        session: &mut dyn Session,
        entries: Vec<ChunkEntry>,
        mut t: u64,
        mini: bool,
        elapsed: f64,
    ) -> Result<Replayed> {
        let tracking = self.opts.rule.patience.is_some() || self.opts.restore_best;
        let n = entries.len();
        let mut improved_last = false;
        for (i, en) in entries.into_iter().enumerate() {
            let last = i + 1 == n;
            if i > 0 {
                t += 1;
                while mini && !self.opts.rule.is_check(t) {
                    self.engine.pass(t, 0.0);
                    t += 1;
                }
            }
            let clock = if last { elapsed } else { 0.0 };
            let (step, now) = self.judge(t, &en.eval, clock, elapsed)?;
            let agrees = en.t == t
                && (last || step.decision == Decision::Continue)
                && (last || !en.paused)
                && (en.paused || en.checked == step.checked)
                && (!tracking || last || en.improved == step.improved);
            if !agrees {
                return Err(Error::Gpu(format!(
                    "the device stop rule disagreed with the host at iteration {t} \
                     (device {en:?}, host {step:?}); --sync every avoids it"
                )));
            }
            if step.improved && !en.improved {
                session.save_best()?;
            }
            let decision = if last {
                let d = self.early_bird(session, step)?;
                self.interrupted(d)
            } else if self.watch.is_some() && step.checked {
                return Err(Error::Gpu(format!(
                    "a chunk held a check before its last iteration ({t}); the early-bird rule \
                     needs the weights of every check"
                )));
            } else {
                step.decision
            };
            if let Decision::Stop(reason) = decision {
                return Ok(Replayed::Stop(Box::new((t, reason, now, en.eval))));
            }
            improved_last = step.improved;
            self.last = Some(now);
            self.last_eval = Some(en.eval);
            self.last_t = t;
        }
        Ok(Replayed::Ran(t, improved_last))
    }

    /// `step`'s decision, or at a check where the engine went on, a stop with `mask_stable`
    /// when the early-bird rule holds for the session's weights (those of the check).
    fn early_bird(&mut self, session: &mut dyn Session, step: Step) -> Result<Decision> {
        match &mut self.watch {
            Some(w) if step.checked && step.decision == Decision::Continue => {
                Ok(if w.observe(&session.params()?)? {
                    Decision::Stop(StopReason::MaskStable)
                } else {
                    Decision::Continue
                })
            }
            _ => Ok(step.decision),
        }
    }

    /// `decision`, or a stop with `interrupted` once the interrupt flag is set.
    fn interrupted(&self, decision: Decision) -> Decision {
        let flag = self
            .opts
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed));
        if decision == Decision::Continue && flag {
            Decision::Stop(StopReason::Interrupted)
        } else {
            decision
        }
    }

    /// The outcome of a stop at iteration t with the metrics `now`.
    fn finish(
        self,
        session: &mut dyn Session,
        t: u64,
        reason: StopReason,
        now: Pair,
        now_eval: Evaluation,
    ) -> Result<Outcome> {
        let rule = &self.opts.rule;
        let restored = self
            .opts
            .restore_best
            .then(|| self.engine.best().zip(self.best))
            .flatten();
        let (iteration, (m, vm), counts, params) = match (restored, reason, self.last) {
            (Some(((bi, _), b)), _, _) => (
                bi,
                b,
                self.best_eval.clone().unwrap_or_default(),
                session.best_params()?,
            ),
            (None, StopReason::NonFinite, Some(prev)) => (
                self.last_t,
                prev,
                self.last_eval.clone().unwrap_or_default(),
                session.previous_params()?,
            ),
            _ => (t, now, now_eval, session.params()?),
        };
        let watched = |(train, val): Pair| self.opts.monitor.pick(train, val);
        Ok(Outcome {
            stop: StopInfo {
                reason,
                iteration,
                stopped_at: t,
                epoch: iteration as f64 / self.per_epoch as f64,
                metric: rule.metric,
                monitor: self.opts.monitor,
                value: watched((m, vm)).get(rule.metric),
                value_at_stop: watched(now).get(rule.metric),
                threshold: rule.threshold,
                best_iteration: self.engine.best().map(|b| b.0),
                best_value: self.engine.best().map(|b| b.1),
                restored_best: restored.is_some(),
                non_finite_at: (reason == StopReason::NonFinite).then_some(t),
                early_bird: self.watch.as_ref().map(Watch::report),
            },
            metrics: m,
            val_metrics: vm,
            counts,
            params,
            evaluations: self.evaluations,
            updates: t,
            train_s: self.start.elapsed().as_secs_f64(),
        })
    }
}
