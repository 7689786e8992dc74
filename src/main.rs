//! The command line: the clap structs of `cli` → typed job → library call → report printer.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Parser;

use wgtrain::backend::gpu;
use wgtrain::cli::{ApplyArgs, Cli, Command, EvalArgs, PredictArgs, PruneArgs, TrainArgs};
use wgtrain::job;
use wgtrain::model::Head;
use wgtrain::stop::StopReason;
use wgtrain::{atomic, modelfile, outputs, plot, predict, progress, prune, signals};

/// Trains; the exit status is 130 when Ctrl-C stopped the run, 143 for SIGTERM.
fn train(args: &TrainArgs) -> Result<ExitCode> {
    let mut job = args.job()?;
    // Before any data is read: no output is another or an input, and each can be written.
    let checked = outputs::check_train(&job, args.plot.as_deref())?;
    outputs::check_report_stdout(&job, args.plot.as_deref(), args.json)?;
    let signals = job.interrupt.clone().map(signals::install);
    job.started = signals.as_ref().map(signals::StopSignals::started);
    let mut bar = progress::Progress::new(&job.rule, args.monitor, progress::wanted(args.quiet));
    let mut curve = args
        .plot
        .as_ref()
        .map(|_| plot::Curve::new(&job.rule, args.monitor));
    // `--max-epochs` is settled once the rows are known, before the first check.
    let settled = std::cell::Cell::new(None);
    let on_settled = |rule: &wgtrain::stop::StopRule| settled.set(Some(rule.max_iter));
    let result = job::run(&job, &checked, on_settled, |c| {
        if let Some(s) = &signals {
            s.training();
        }
        if let Some(max_iter) = settled.take() {
            bar.set_max_iter(max_iter);
        }
        bar.observe(c);
        if let Some(curve) = curve.as_mut() {
            curve.push(c);
        }
    });
    bar.finish();
    let mut result = result?;
    if let Some(s) = &signals {
        s.writing();
    }
    if let Some(n) = &result.notice {
        say(&format!("wgtrain: {n}"));
    }
    let mut pending = Vec::new();
    // `--save` is written here with `--plot`, after the run (see `Pending`).
    if let Some(p) = &job.save {
        let opt = result.optimizer.as_ref();
        match modelfile::to_bytes_full(&result.model, opt, Some(&result.report), job.save_timings) {
            Ok(bytes) => pending.push(Pending::new("--save", p, bytes)),
            Err(e) => result
                .write_errors
                .push(outputs::WriteError::new("--save", p, &e)),
        }
    }
    if let (Some(p), Some(curve)) = (&args.plot, &curve) {
        match curve.svg(&result.report.stop.info) {
            Ok(svg) => pending.push(Pending::new("--plot", p, svg.into_bytes())),
            Err(e) => {
                let e = wgtrain::error::Error::Io {
                    path: p.clone(),
                    err: std::io::Error::other(format!("drawing the chart: {e}")),
                };
                result
                    .write_errors
                    .push(outputs::WriteError::new("--plot", p, &e));
            }
        }
    }
    // Files and devices first; FIFOs wait for their reader, so they come after the report.
    let (later, now): (Vec<Pending>, Vec<Pending>) = pending
        .into_iter()
        .partition(|o| atomic::waits_for_reader(o.path));
    let never = std::sync::Arc::default();
    let stop = job.interrupt.as_ref().unwrap_or(&never);
    for o in &now {
        if let Err(e) = checked.write(o.path, &o.bytes, stop) {
            result
                .write_errors
                .push(outputs::WriteError::new(o.flag, o.path, &e));
        }
    }
    // The report is printed even when a file could not be written; the exit status then is 1.
    let printed = print_out("the report", &train_report(args, &result, &later));
    // A signal while a FIFO waits for its reader, or for room, gives up that output.
    let mut gave_up = false;
    for o in &later {
        if let Err(e) = checked.write(o.path, &o.bytes, stop) {
            gave_up |= matches!(&e, wgtrain::error::Error::Io { err, .. }
                if err.kind() == std::io::ErrorKind::Interrupted);
            result
                .write_errors
                .push(outputs::WriteError::new(o.flag, o.path, &e));
        }
    }
    // A failed `--log` was said when it failed, during the run.
    for w in result.write_errors.iter().filter(|w| w.flag != "--log") {
        say(&format!("wgtrain: error: {w}"));
    }
    printed?;
    let by_signal = signals.as_ref().and_then(|s| s.exit_status());
    let interrupted = result.report.stop.info.reason == StopReason::Interrupted;
    Ok(match by_signal {
        Some(code) if gave_up => ExitCode::from(code),
        _ if !result.write_errors.is_empty() => ExitCode::FAILURE,
        Some(code) if interrupted => ExitCode::from(code),
        _ => ExitCode::SUCCESS,
    })
}

/// `wgtrain prune`: the rounds, then the model, the log and the chart, then the report.
fn prune_cmd(args: &PruneArgs) -> Result<ExitCode> {
    let mut job = args.job()?;
    let t = &args.train;
    let checked = outputs::check_train(&job.train, t.plot.as_deref())?;
    outputs::check_report_stdout(&job.train, t.plot.as_deref(), t.json)?;
    let signals = job.train.interrupt.clone().map(signals::install);
    job.train.started = signals.as_ref().map(signals::StopSignals::started);
    let quiet = t.quiet || !std::io::stderr().is_terminal();
    let outcome = prune::run(&job, &checked, |r| {
        if !quiet {
            progress::eprintln_above(&format!(
                "wgtrain: round {}: sparsity {:.4}, {} weights kept, {:.4} after pruning, {:.4} after {} updates{}",
                r.round,
                r.sparsity,
                r.weights_kept,
                r.metric_after_pruning,
                r.metric_after_finetune,
                r.updates,
                if r.met { "" } else { " (missed)" }
            ));
        }
    })?;
    if let Some(s) = &signals {
        s.writing();
    }
    if let Some(n) = &outcome.notice {
        say(&format!("wgtrain: {n}"));
    }
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    if let Some(p) = &job.train.save {
        let meta = serde_json::to_string(&outcome.meta)?;
        match modelfile::to_bytes_extra(&outcome.saved, &[(modelfile::PRUNING, meta)]) {
            Ok(bytes) => pending.push(Pending::new("--save", p, bytes)),
            Err(e) => errors.push(outputs::WriteError::new("--save", p, &e)),
        }
    }
    if let Some(p) = &t.log {
        let csv = prune::output::log_csv(&outcome.report.rounds);
        pending.push(Pending::new("--log", p, csv.into_bytes()));
    }
    if let Some(p) = &t.plot {
        match prune::output::svg(&outcome.report) {
            Ok(svg) => pending.push(Pending::new("--plot", p, svg.into_bytes())),
            Err(e) => {
                let e = wgtrain::error::Error::Io {
                    path: p.clone(),
                    err: std::io::Error::other(format!("drawing the chart: {e}")),
                };
                errors.push(outputs::WriteError::new("--plot", p, &e));
            }
        }
    }
    let never = std::sync::Arc::default();
    let stop = job.train.interrupt.as_ref().unwrap_or(&never);
    for o in &pending {
        if let Err(e) = checked.write(o.path, &o.bytes, stop) {
            errors.push(outputs::WriteError::new(o.flag, o.path, &e));
        }
    }
    let text = if t.json {
        serde_json::to_string_pretty(&outcome.report)?
    } else {
        let mut s = prune::output::human(&outcome.report);
        for o in &pending {
            if !errors.iter().any(|e| e.flag == o.flag) {
                s.push_str(&format!("\nwrote {} ({})", o.path.display(), o.flag));
            }
        }
        s
    };
    let printed = print_out("the report", &format!("{text}\n"));
    for w in &errors {
        say(&format!("wgtrain: error: {w}"));
    }
    printed?;
    let by_signal = signals.as_ref().and_then(|s| s.exit_status());
    Ok(match by_signal {
        _ if !errors.is_empty() => ExitCode::FAILURE,
        Some(code) if outcome.report.ended == "interrupted" => ExitCode::from(code),
        _ => ExitCode::SUCCESS,
    })
}

/// An output of `train` with its bytes, to be written once the run is over.
struct Pending<'a> {
    flag: &'static str,
    path: &'a Path,
    bytes: Vec<u8>,
}

impl<'a> Pending<'a> {
    fn new(flag: &'static str, path: &'a Path, bytes: Vec<u8>) -> Self {
        Pending { flag, path, bytes }
    }
}

/// The report as printed: JSON (with `write_errors` when a write failed), or the human text
/// with a line for each output: written, failed (naming the file and why), or a FIFO that is
/// written after the report (`later`).
fn train_report(args: &TrainArgs, result: &job::JobResult, later: &[Pending]) -> String {
    if args.json {
        return format!(
            "{}\n",
            outputs::report_json(&result.report, &result.write_errors)
        );
    }
    let mut text = format!("{}\n", result.report.human());
    for (flag, label, path) in [
        ("--save", "saved:  ", args.save.as_deref()),
        ("--plot", "plot:   ", args.plot.as_deref()),
        ("--log", "log:    ", None),
    ] {
        let failed: Vec<_> = result
            .write_errors
            .iter()
            .filter(|w| w.flag == flag)
            .collect();
        for w in &failed {
            text.push_str(&format!("{label} FAILED {w}\n"));
        }
        match path {
            Some(p) if failed.is_empty() && later.iter().any(|o| o.flag == flag) => {
                text.push_str(&format!(
                    "{label} {} (a FIFO: written after this report)\n",
                    p.display()
                ));
            }
            Some(p) if failed.is_empty() => {
                text.push_str(&format!("{label} {}\n", p.display()));
            }
            _ => {}
        }
    }
    text
}

/// Loads the model and the rows and runs the forward pass.
fn apply_model(
    a: &ApplyArgs,
    need_label: bool,
) -> Result<(modelfile::Model, predict::Rows, predict::Prediction)> {
    wgtrain::cli::check_adapter(a.backend, a.adapter.as_deref())?;
    // Before either is read: stdin (or one FIFO) cannot feed both.
    wgtrain::data::check_streams(&[("--model", &a.model), ("--data", &a.data)])?;
    let model = modelfile::load_flag("--model", &a.model)?.model;
    let rows = predict::load_rows(&a.data, &model, a.delimiter.unwrap_or(b','))?;
    if need_label && !rows.labelled {
        bail!(
            "{}: no column \"{}\" (the model's label); eval needs the labels (predict works without them)",
            rows.data.source,
            model.label.column
        );
    }
    let pred = predict::predict(&model, &rows, a.backend, a.adapter.as_deref())?;
    if let Some(n) = &pred.notice {
        say(&format!("wgtrain: {n}"));
    }
    Ok((model, rows, pred))
}

fn predict_cmd(args: &PredictArgs) -> Result<()> {
    let a = &args.apply;
    let checked = outputs::check_predict(&a.model, &a.data, args.out.as_deref())?;
    outputs::check_predict_stdout(args.out.as_deref())?;
    // `--out -` and `--out /dev/stdout` stream the CSV to stdout, as without --out.
    let to = args.out.as_deref().filter(|p| !outputs::is_stdout(p));
    let (model, rows, pred) = apply_model(&args.apply, false)?;
    let csv = predict::to_csv(&pred.logits, &model.label, model.spec.head);
    match to {
        Some(p) => {
            checked
                .write(
                    p,
                    csv.as_bytes(),
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .map_err(|e| anyhow!("{}", outputs::WriteError::new("--out", p, &e)))?;
            let mut text = format!("wrote {} predictions to {}\n", rows.data.rows, p.display());
            if let Some(m) = &pred.metrics {
                text.push_str(&format!("{}\n", predict::metrics_text(m)));
            }
            print_out("the summary", &text)?;
        }
        None => {
            print_out("the predictions", &csv)?;
            if let Some(m) = &pred.metrics {
                say(&predict::metrics_text(m));
            }
        }
    }
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> Result<()> {
    let (model, rows, pred) = apply_model(&args.apply, true)?;
    let m = pred.metrics.expect("labelled rows have metrics");
    let d = &rows.data;
    let text = if args.json {
        let v = serde_json::json!({
            "model": args.apply.model.display().to_string(),
            "data": d.source,
            "rows": d.rows,
            "positives": d.binary_positives(),
            "classes": model.label.classes,
            "label_mapping": model.label.json(model.spec.head == Head::Softmax),
            "backend": if pred.adapter.is_some() { "gpu" } else { "cpu" },
            "adapter": pred.adapter,
            "metrics": m,
        });
        serde_json::to_string_pretty(&v)?
    } else {
        format!(
            "data:    {}: {} rows, {}\n{}",
            d.source,
            d.rows,
            wgtrain::report::label_text(
                &model.label.json(model.spec.head == Head::Softmax),
                d.binary_positives()
            ),
            predict::metrics_text(&m)
        )
    };
    print_out("the metrics", &format!("{text}\n"))
}

fn devices(json: bool) -> Result<()> {
    let adapters = gpu::list_adapters();
    let text = if json {
        serde_json::to_string_pretty(&adapters)?
    } else if adapters.is_empty() {
        gpu::NO_ADAPTER_HELP.to_string()
    } else {
        let lines: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "{i}: {}\n   api {}, type {}, driver {}",
                    a.name, a.api, a.device_type, a.driver
                )
            })
            .collect();
        lines.join("\n")
    };
    print_out("the adapter list", &format!("{text}\n"))
}

fn bench(args: &wgtrain::bench::BenchArgs) -> Result<()> {
    let (spec, notice) = args.spec()?;
    if let Some(n) = notice {
        say(&format!("wgtrain: {n}"));
    }
    let quiet = args.quiet;
    let report = wgtrain::bench::run(&spec, |line| {
        if !quiet {
            say(&format!("wgtrain bench: {line}"));
        }
    })?;
    let text = if args.json {
        report.to_json()
    } else if args.markdown {
        report.markdown()
    } else {
        report.human()
    };
    print_out("the bench report", &format!("{text}\n"))
}

/// A line on stderr (above the progress bar, if one shows); a failed write is ignored, as
/// there is nowhere left to report it.
fn say(line: &str) {
    progress::eprintln_above(line);
}

/// Stdout was closed before all was written (`| head`): the command ends quietly with the
/// status of a process killed by SIGPIPE.
#[derive(Debug)]
struct BrokenPipe;

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for BrokenPipe {}

/// The exit status after [`BrokenPipe`]: 128 + SIGPIPE, as shells report a killed `cat`.
const BROKEN_PIPE_STATUS: u8 = 141;

/// Writes `text` to stdout and flushes it; an error names stdout and `what` it was.
fn print_out(what: &str, text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(BrokenPipe),
            _ => anyhow!("writing {what} to stdout: {e}"),
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn,wgpu_hal=error,wgpu_core=error,naga=error",
        1 => "info,wgpu_hal=warn,wgpu_core=warn,naga=warn",
        _ => "debug",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if std::io::stderr().is_terminal() {
        // Log lines go above the progress bar. env_logger cannot tell that this pipe is a
        // terminal, so colours are asked for unless RUST_LOG_STYLE or NO_COLOR decide.
        logger.target(env_logger::Target::Pipe(Box::new(progress::LogWriter)));
        if std::env::var_os("RUST_LOG_STYLE").is_none() && std::env::var_os("NO_COLOR").is_none() {
            logger.write_style(env_logger::WriteStyle::Always);
        }
    }
    logger.init();
    let result = match &cli.command {
        Command::Train(args) => train(args),
        Command::Prune(args) => prune_cmd(args),
        Command::Predict(args) => predict_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Devices { json } => devices(*json).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<BrokenPipe>().is_some() => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            say(&format!("wgtrain: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
