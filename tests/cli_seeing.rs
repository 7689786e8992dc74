//! End-to-end tests of "seeing a run": `--plot`, the progress bar's silence off a terminal,
//! and Ctrl-C (SIGINT), which stops after the current iteration and still writes everything.
//!
//! Everything runs on the CPU.

mod common;

use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

use common::cli::{Fixtures, mkfifo, signal_and_wait, wgtrain, wgtrain_std};

#[test]
fn plot_draws_the_run_and_stderr_stays_clean_off_a_terminal() {
    let f = Fixtures::new();
    let svg = f.path("curve.svg");
    let out = wgtrain()
        .args([
            "train",
            "--demo",
            "moons",
            "--rows",
            "600",
            "--hidden",
            "8",
            "--lr",
            "0.5",
            "--val-split",
            "0.25",
            "--threshold",
            "0.95",
            "--max-iter",
            "400",
            "--backend",
            "cpu",
            "--json",
            "--plot",
            &svg,
        ])
        .assert()
        .success()
        // stderr is a pipe here: no progress bar, nothing else either.
        .stderr(predicate::str::is_empty())
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    let stopped_at = report["stop"]["stopped_at"].as_u64().unwrap();
    let reason = report["stop"]["reason"].as_str().unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(text.trim_end().ends_with("</svg>"));
    for want in [
        format!("val accuracy: stopped at iteration {stopped_at} ({reason})"),
        "train accuracy".into(),
        "val accuracy (monitored)".into(),
        "train loss".into(),
        "val loss".into(),
        "threshold 0.95".into(),
        format!("stop @ {stopped_at}: {reason}"),
        "iteration".into(),
    ] {
        assert!(text.contains(&want), "the chart has no \"{want}\"");
    }
    // Written atomically: no temporary file is left next to it.
    assert_eq!(f.names(), vec!["curve.svg".to_string()]);
}

#[test]
fn plot_of_the_loss_has_one_panel_and_human_output_names_the_file() {
    let f = Fixtures::new();
    let svg = f.path("loss.svg");
    wgtrain()
        .args([
            "train",
            "--demo",
            "blobs",
            "--rows",
            "300",
            "--metric",
            "loss",
            "--threshold",
            "0.2",
            "--max-iter",
            "300",
            "--backend",
            "cpu",
            "--quiet",
            "--plot",
            &svg,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("plot:    {svg}")));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("train loss (monitored)"));
    assert!(text.contains("threshold 0.2"));
    assert!(!text.contains("accuracy"));
}

#[test]
fn plot_into_a_missing_folder_fails_before_training() {
    let f = Fixtures::new();
    let svg = f.path("no-such-folder/curve.svg");
    wgtrain()
        .args([
            "train",
            "--demo",
            "moons",
            "--backend",
            "cpu",
            "--plot",
            &svg,
        ])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("--plot").and(predicate::str::contains("does not exist")))
        .stdout(predicate::str::is_empty());
}

/// SIGINT mid-run: the run stops after the current iteration with reason `interrupted` and
/// exit status 130, and the model, the log, the plot and the report are all written.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_after_the_iteration_and_still_writes_everything() {
    signal_stops_after_the_iteration("INT", 130);
}

/// SIGTERM (what `timeout`, Docker and Slurm send) is handled like the first Ctrl-C, with
/// exit status 143.
#[cfg(unix)]
#[test]
fn sigterm_stops_after_the_iteration_and_still_writes_everything() {
    signal_stops_after_the_iteration("TERM", 143);
}

#[cfg(unix)]
fn signal_stops_after_the_iteration(signal: &str, code: i32) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let f = Fixtures::new();
    let (model, log, svg) = (
        f.path("m.safetensors"),
        f.path("log.csv"),
        f.path("curve.svg"),
    );
    let mut child = wgtrain_std()
        .args([
            "train",
            "--demo",
            "hyperplane",
            "--rows",
            "20000",
            "--hidden",
            "64",
            "--threshold",
            "none",
            "--max-iter",
            "100000000",
            "--backend",
            "cpu",
            "--save",
            &model,
            "--log",
            &log,
            "--plot",
            &svg,
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wgtrain starts");
    // The handler is installed before the log is created; wait for a few rows.
    let start = Instant::now();
    loop {
        let rows = std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
        if rows >= 4 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("wgtrain ended before it was interrupted: {status}");
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("no log rows after 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = signal_and_wait(
        &mut child,
        signal,
        Duration::from_secs(120),
        "wgtrain did not stop",
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(code), "stderr: {stderr}");
    let said = if signal == "TERM" {
        "terminated (SIGTERM)"
    } else {
        "interrupted (SIGINT)"
    };
    assert!(stderr.contains(said), "stderr: {stderr}");

    let report: Value = serde_json::from_slice(&out.stdout).expect("the JSON report");
    assert_eq!(report["stop"]["reason"], "interrupted");
    let stopped_at = report["stop"]["stopped_at"].as_u64().unwrap();
    assert!(stopped_at >= 3, "stopped at {stopped_at}");
    assert!(stopped_at < 100_000_000);

    let file = wgtrain::modelfile::load(Path::new(&model)).expect("the model loads");
    assert_eq!(file.model.spec.layers, vec![8, 64, 1]);
    let saved = file.report.expect("the model file holds the report");
    assert_eq!(saved["stop"]["reason"], "interrupted");
    assert_eq!(saved["model"]["checksum"], report["model"]["checksum"]);

    // Every iteration is checked: the log's last row is the iteration the run stopped at.
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    let t: u64 = last.split(',').next().unwrap().parse().unwrap();
    assert_eq!(t, stopped_at);

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains(&format!("stop @ {stopped_at}: interrupted")));
    // Nothing half-written is left behind.
    assert_eq!(f.names(), vec!["curve.svg", "log.csv", "m.safetensors"]);
}

/// A signal while the data is still being opened or read (here a FIFO nobody writes to, on
/// which open() blocks) ends the run at once: there is nothing to save yet.
#[cfg(unix)]
#[test]
fn a_signal_before_training_ends_the_run_at_once() {
    use std::process::Stdio;
    use std::time::Duration;

    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let f = Fixtures::new();
        let fifo = f.path("rows.csv");
        if !mkfifo(&fifo) {
            return;
        }
        let mut child = wgtrain_std()
            .args(["train", "--data", &fifo, "--backend", "cpu"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wgtrain starts");
        // Give it time to install the handlers and block in open().
        std::thread::sleep(Duration::from_millis(500));
        assert!(child.try_wait().unwrap().is_none(), "wgtrain ended early");
        let status = signal_and_wait(
            &mut child,
            signal,
            Duration::from_secs(10),
            "wgtrain blocked on the FIFO ignored the signal",
        );
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(code), "stderr: {stderr}");
        assert!(stderr.contains("before training began"), "stderr: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// A signal after `--log` has been created (so truncated to its header) but before the first
/// check stops the run gracefully at that check: the log gets its rows, the model and the
/// report are written, as for any signal during training.
#[cfg(unix)]
#[test]
fn a_signal_once_the_log_exists_stops_at_the_first_check() {
    use std::process::{Command as Std, Stdio};
    use std::time::{Duration, Instant};

    let f = Fixtures::new();
    let (model, log) = (f.path("m.safetensors"), f.path("log.csv"));
    // About a second per iteration on the CPU: the header is there well before the first row.
    let mut child = wgtrain_std()
        .args([
            "train",
            "--demo",
            "hyperplane",
            "--rows",
            "4000",
            "--hidden",
            "512,512",
            "--threshold",
            "none",
            "--max-iter",
            "1000",
            "--backend",
            "cpu",
            "--save",
            &model,
            "--log",
            &log,
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wgtrain starts");
    let start = Instant::now();
    let rows = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.starts_with("iteration,") {
            break text.lines().count() - 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("wgtrain ended before it was interrupted: {status}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("no log header after 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let kill = Std::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(
        !stderr.contains("before training began"),
        "stderr: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the JSON report");
    assert_eq!(report["stop"]["reason"], "interrupted");
    let stopped_at = report["stop"]["stopped_at"].as_u64().unwrap();
    // Signalled with `rows` rows in the log (0 unless this machine raced ahead).
    assert!(stopped_at <= rows as u64 + 2, "stopped at {stopped_at}");
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert_eq!(last.split(',').next().unwrap(), stopped_at.to_string());
    let file = wgtrain::modelfile::load(Path::new(&model)).expect("the model loads");
    assert_eq!(file.report.unwrap()["stop"]["reason"], "interrupted");
}
