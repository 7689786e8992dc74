//! The command line: the clap structs of `cli` → typed job → library call → report printer.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use wgtrain::backend::gpu;
use wgtrain::cli::{ApplyArgs, Cli, Command, EvalArgs, PredictArgs, TrainArgs};
use wgtrain::job;
use wgtrain::stop::StopReason;
use wgtrain::{atomic, modelfile, outputs, plot, predict, progress, signals};

/// Trains; the exit status is 130 when Ctrl-C stopped the run, 143 for SIGTERM.
fn train(args: &TrainArgs) -> Result<ExitCode> {
    let job = args.job()?;
    // Before any data is read: no output is another or an input, and each can be written.
    outputs::check_train(&job, args.plot.as_deref())?;
    let signals = job.interrupt.clone().map(signals::install);
    let mut bar = progress::Progress::new(&job.rule, args.monitor, progress::wanted(args.quiet));
    let mut curve = args
        .plot
        .as_ref()
        .map(|_| plot::Curve::new(&job.rule, args.monitor));
    let result = job::run(&job, |c| {
        if let Some(s) = &signals {
            s.training();
        }
        bar.observe(c);
        if let Some(curve) = curve.as_mut() {
            curve.push(c);
        }
    });
    bar.finish();
    let mut result = result?;
    if let Some(n) = &result.notice {
        eprintln!("wgtrain: {n}");
    }
    if let (Some(p), Some(curve)) = (&args.plot, &curve) {
        if let Err(e) = curve.write(p, &result.report.stop.info) {
            result
                .write_errors
                .push(outputs::WriteError::new("--plot", p, &e));
        }
    }
    // The report is printed even when a file could not be written; the exit status then is 1.
    let failed = |flag: &str| result.write_errors.iter().any(|w| w.flag == flag);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            outputs::report_json(&result.report, &result.write_errors)
        )?;
    } else {
        writeln!(out, "{}", result.report.human())?;
        if let Some(p) = args.save.as_ref().filter(|_| !failed("--save")) {
            writeln!(out, "saved:   {}", p.display())?;
        }
        if let Some(p) = args.plot.as_ref().filter(|_| !failed("--plot")) {
            writeln!(out, "plot:    {}", p.display())?;
        }
    }
    drop(out);
    if !result.write_errors.is_empty() {
        for w in &result.write_errors {
            eprintln!("wgtrain: error: {w}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let by_signal = signals.as_ref().and_then(|s| s.exit_status());
    Ok(match by_signal {
        Some(code) if result.report.stop.info.reason == StopReason::Interrupted => {
            ExitCode::from(code)
        }
        _ => ExitCode::SUCCESS,
    })
}

/// Loads the model and the rows and runs the forward pass.
fn apply_model(
    a: &ApplyArgs,
    need_label: bool,
) -> Result<(modelfile::Model, predict::Rows, predict::Prediction)> {
    wgtrain::cli::check_adapter(a.backend, a.adapter.as_deref())?;
    let model = modelfile::load(&a.model)?.model;
    let rows = predict::load_rows(&a.data, &model, a.delimiter.unwrap_or(b','))?;
    if need_label && !rows.labelled {
        bail!(
            "{}: no column \"{}\" (the model's label); eval needs the labels (predict works without them)",
            a.data.display(),
            model.label.column
        );
    }
    let pred = predict::predict(&model, &rows, a.backend, a.adapter.as_deref())?;
    if let Some(n) = &pred.notice {
        eprintln!("wgtrain: {n}");
    }
    Ok((model, rows, pred))
}

fn predict_cmd(args: &PredictArgs) -> Result<()> {
    let a = &args.apply;
    outputs::check_predict(&a.model, &a.data, args.out.as_deref())?;
    // `--out -` and `--out /dev/stdout` stream the CSV to stdout, as without --out.
    let to = args.out.as_deref().filter(|p| !outputs::is_stdout(p));
    let (model, rows, pred) = apply_model(&args.apply, false)?;
    let csv = predict::to_csv(&pred.logits, &model.label);
    match to {
        Some(p) => {
            atomic::write_atomic(p, csv.as_bytes())
                .map_err(|e| anyhow!("{}", outputs::WriteError::new("--out", p, &e)))?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "wrote {} predictions to {}",
                rows.data.rows,
                p.display()
            )?;
            if let Some(m) = &pred.metrics {
                writeln!(out, "{}", predict::metrics_text(m))?;
            }
        }
        None => {
            std::io::stdout()
                .lock()
                .write_all(csv.as_bytes())
                .context("writing to stdout")?;
            if let Some(m) = &pred.metrics {
                eprintln!("{}", predict::metrics_text(m));
            }
        }
    }
    Ok(())
}

fn eval_cmd(args: &EvalArgs) -> Result<()> {
    let (model, rows, pred) = apply_model(&args.apply, true)?;
    let m = pred.metrics.expect("labelled rows have metrics");
    let d = &rows.data;
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "model": args.apply.model.display().to_string(),
            "data": d.source,
            "rows": d.rows,
            "positives": d.positives(),
            "label_mapping": model.label,
            "backend": if pred.adapter.is_some() { "gpu" } else { "cpu" },
            "adapter": pred.adapter,
            "metrics": m,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "data:    {}: {} rows, {} positive (label \"{}\": {} = positive, {} = negative)\n{}",
            d.source,
            d.rows,
            d.positives(),
            model.label.column,
            model.label.positive,
            model.label.negative,
            predict::metrics_text(&m)
        )?;
    }
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let adapters = gpu::list_adapters();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&adapters)?)?;
        return Ok(());
    }
    if adapters.is_empty() {
        writeln!(out, "{}", gpu::NO_ADAPTER_HELP)?;
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        writeln!(
            out,
            "{i}: {}\n   api {}, type {}, driver {}",
            a.name, a.api, a.device_type, a.driver
        )
        .context("writing to stdout")?;
    }
    Ok(())
}

fn bench(args: &wgtrain::bench::BenchArgs) -> Result<()> {
    let (spec, notice) = args.spec()?;
    if let Some(n) = notice {
        eprintln!("wgtrain: {n}");
    }
    let quiet = args.quiet;
    let report = wgtrain::bench::run(&spec, |line| {
        if !quiet {
            eprintln!("wgtrain bench: {line}");
        }
    })?;
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        report.to_json()
    } else if args.markdown {
        report.markdown()
    } else {
        report.human()
    };
    writeln!(out, "{text}").context("writing to stdout")?;
    Ok(())
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
        Command::Predict(args) => predict_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Eval(args) => eval_cmd(args).map(|()| ExitCode::SUCCESS),
        Command::Devices { json } => devices(*json).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wgtrain: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
