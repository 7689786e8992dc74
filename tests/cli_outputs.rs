//! End-to-end tests of the outputs (`--save`, `--log`, `--plot`, `predict --out`): devices,
//! FIFOs, sockets and descriptors are written to, symlinks written through, modes kept;
//! colliding paths and unwritable folders are refused before anything runs; a write that fails
//! at the end still prints the report; model files are the same bytes run to run.
//!
//! The read-only folder runs in a private mount namespace (`unshare -rm`), skipped with a loud
//! message where the platform cannot make one. Everything trains on the CPU.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cli::{
    Fixtures, ab_csv, assert_contains_all, bin, fails, json, mkfifo, ok, output, signal_and_wait,
    skipped, text, train_fails, wgtrain_std,
};

/// Flags of a short CPU run on `data`: 30 iterations.
fn quick(data: &str) -> Vec<&str> {
    run_of(data, "30")
}

/// Flags of a CPU run of `iterations` on `data`.
fn run_of<'a>(data: &'a str, iterations: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--backend",
        "cpu",
        "--threshold",
        "none",
        "--max-iter",
        iterations,
    ]
}

/// A fixture folder with `train.csv` and a model trained on it (`model.safetensors`).
fn with_model() -> (Fixtures, String, String) {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let model = f.path("model.safetensors");
    ok(&[quick(&data), vec!["--save", &model]].concat());
    (f, data, model)
}

fn predict_args<'a>(model: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "predict",
        "--model",
        model,
        "--data",
        data,
        "--backend",
        "cpu",
    ]
}

fn mode(p: &str) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn is_char_device(p: &str) -> bool {
    fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

// ---------------------------------------------------------------------------------------
// Devices, descriptors, FIFOs, sockets

#[test]
fn out_to_stdout_streams_the_csv_as_without_out() {
    let (_f, data, model) = with_model();
    let plain = output(&predict_args(&model, &data));
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(text(&plain.stdout).starts_with("probability,predicted\n"));
    for out in ["/dev/stdout", "-", "/proc/self/fd/1", "/dev/fd/1"] {
        let got = output(&[predict_args(&model, &data), vec!["--out", out]].concat());
        assert!(got.status.success(), "{out}: {}", text(&got.stderr));
        assert_eq!(text(&got.stdout), text(&plain.stdout), "--out {out}");
        assert_eq!(text(&got.stderr), text(&plain.stderr), "--out {out}");
    }
    // /dev/stdout is still what it was, not a file the run left.
    let m = fs::symlink_metadata("/dev/stdout").unwrap();
    assert!(
        !m.file_type().is_file(),
        "/dev/stdout became a regular file"
    );
}

#[test]
fn a_descriptor_that_is_not_open_is_an_error_before_anything_runs() {
    let (_f, data, model) = with_model();
    let err = fails(&[predict_args(&model, &data), vec!["--out", "/dev/fd/9"]].concat());
    assert_contains_all(&err, &["--out /dev/fd/9", "file descriptor 9 is not open"]);
}

#[test]
fn dev_null_stays_a_device_and_may_be_named_twice() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    assert!(is_char_device("/dev/null"));
    let (out, _) = ok(&[
        quick(&data),
        vec![
            "--save",
            "/dev/null",
            "--plot",
            "/dev/null",
            "--log",
            "/dev/null",
        ],
    ]
    .concat());
    assert!(out.contains("saved:   /dev/null"), "{out}");
    assert!(is_char_device("/dev/null"), "/dev/null was replaced");
    assert_eq!(f.names(), ["train.csv"]);
}

#[test]
fn out_to_dev_full_fails() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let (f, data, model) = with_model();
    let err = fails(&[predict_args(&model, &data), vec!["--out", "/dev/full"]].concat());
    assert_contains_all(&err, &["--out /dev/full", "No space left on device"]);
    assert!(is_char_device("/dev/full"));
    assert_eq!(f.names(), ["model.safetensors", "train.csv"]);
}

#[test]
fn a_failed_save_still_prints_the_report_then_exits_1() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let svg = f.path("run.svg");
    // JSON: the report, with the failed file named in `write_errors`.
    let got = output(
        &[
            quick(&data),
            vec!["--save", "/dev/full", "--plot", &svg, "--json"],
        ]
        .concat(),
    );
    assert_eq!(got.status.code(), Some(1), "{}", text(&got.stderr));
    let r = json(&text(&got.stdout));
    assert_eq!(r["stop"]["reason"], "max_iter");
    assert_eq!(r["write_errors"][0]["flag"], "--save");
    assert_eq!(r["write_errors"][0]["path"], "/dev/full");
    let why = r["write_errors"][0]["error"].as_str().unwrap();
    assert!(why.contains("No space left on device"), "{why}");
    assert_eq!(r["write_errors"].as_array().unwrap().len(), 1);
    assert_contains_all(
        &text(&got.stderr),
        &["wgtrain: error: --save /dev/full: No space left on device"],
    );
    // The other output was written.
    assert!(fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // Human: the report, a line naming the failed file, the plot's line.
    let got = output(&[quick(&data), vec!["--save", "/dev/full", "--plot", &svg]].concat());
    assert_eq!(got.status.code(), Some(1));
    let out = text(&got.stdout);
    assert_contains_all(
        &out,
        &[
            "result:",
            "saved:   FAILED --save /dev/full: No space left on device",
            &format!("plot:    {svg}"),
        ],
    );
    assert!(!out.contains("saved:   /dev/full"), "{out}");
    // A successful run has no `write_errors`.
    let got = output(&[quick(&data), vec!["--json"]].concat());
    assert!(got.status.success());
    assert!(json(&text(&got.stdout)).get("write_errors").is_none());
}

#[test]
fn a_failed_plot_still_prints_the_report() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let model = f.path("m.safetensors");
    let got = output(
        &[
            quick(&data),
            vec!["--save", &model, "--plot", "/dev/full", "--json"],
        ]
        .concat(),
    );
    assert_eq!(got.status.code(), Some(1));
    let r = json(&text(&got.stdout));
    assert_eq!(r["write_errors"][0]["flag"], "--plot");
    assert!(wgtrain::modelfile::load(Path::new(&model)).is_ok());
}

#[test]
fn out_into_a_fifo_is_written_not_replaced() {
    let (f, data, model) = with_model();
    let fifo = f.path("pipe");
    if !mkfifo(&fifo) {
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
    };
    let (out, _) = ok(&[predict_args(&model, &data), vec!["--out", &fifo]].concat());
    assert!(out.contains("wrote 40 predictions"), "{out}");
    let csv = reader.join().unwrap();
    assert!(csv.starts_with("probability,predicted\n"), "{csv}");
    assert_eq!(csv.lines().count(), 41);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(f.names(), ["model.safetensors", "pipe", "train.csv"]);
}

#[test]
fn out_to_a_socket_is_sent() {
    let (f, data, model) = with_model();
    let sock = f.path("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // The check before the run connects once and sends nothing; the CSV comes next.
    let reader = std::thread::spawn(move || {
        loop {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            if !got.is_empty() {
                return got;
            }
        }
    });
    ok(&[predict_args(&model, &data), vec!["--out", &sock]].concat());
    let csv = reader.join().unwrap();
    assert_eq!(csv.lines().count(), 41, "{csv}");
    assert!(fs::metadata(&sock).unwrap().file_type().is_socket());
}

#[test]
fn the_log_goes_to_stdout_before_the_report() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let (out, _) = ok(&[quick(&data), vec!["--log", "-"]].concat());
    assert!(out.starts_with("iteration,elapsed_s,train_loss"), "{out}");
    let start = out.find("\ndata:").expect("the report follows the log");
    assert_eq!(out[..start].lines().count(), 1 + 31);
    assert!(
        out[start..].contains("result:  ran all 30 iterations"),
        "{out}"
    );
}

#[test]
fn an_output_that_would_mix_with_the_report_on_stdout_is_refused() {
    let f = Fixtures::new();
    // Not a CSV: the refusal comes before the data is read.
    let data = f.file("train.csv", "this is not\"a CSV\n");
    for (flag, path) in [("--save", "-"), ("--log", "-"), ("--plot", "/dev/stdout")] {
        let err = train_fails(&["--data", &data, flag, path, "--json"]);
        assert_contains_all(
            &err,
            &[
                &format!("{flag} {path} and --json both write to stdout"),
                "the JSON could not be parsed",
            ],
        );
    }
    for (flag, path, what) in [
        ("--save", "-", "the model file"),
        ("--plot", "/dev/fd/1", "the chart"),
    ] {
        let err = train_fails(&["--data", &data, flag, path]);
        assert_contains_all(
            &err,
            &[&format!(
                "{flag} {path}: {what} would go to stdout followed by the report"
            )],
        );
    }
    // The file stdout is redirected to, named as an output.
    let report = f.path("report.txt");
    for flag in ["--save", "--log"] {
        let got = wgtrain_std()
            .args(["train", "--data", &data, flag, &report])
            .stdout(fs::File::create(&report).unwrap())
            .output()
            .unwrap();
        assert_eq!(got.status.code(), Some(1));
        assert_contains_all(
            &text(&got.stderr),
            &[&format!("{flag} {report} is the file stdout goes to")],
        );
        assert_eq!(fs::read(&report).unwrap(), b"", "nothing was written");
    }
}

// ---------------------------------------------------------------------------------------
// Regular files: symlinks, modes, no temporaries

#[test]
fn symlinks_are_written_through_and_modes_kept() {
    let (f, data, model) = with_model();
    // predict --out: a 0600 file through a link stays 0600, the link stays a link.
    let real = f.file("real.csv", "old\n");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let link = f.path("link.csv");
    symlink("real.csv", &link).unwrap();
    ok(&[predict_args(&model, &data), vec!["--out", &link]].concat());
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::read_to_string(&real)
            .unwrap()
            .starts_with("probability,")
    );
    assert_eq!(mode(&real), 0o600);
    // --save and --plot over 0600 and 0640 files.
    let m = f.file("m.safetensors", "old");
    fs::set_permissions(&m, fs::Permissions::from_mode(0o600)).unwrap();
    let svg = f.file("p.svg", "old");
    fs::set_permissions(&svg, fs::Permissions::from_mode(0o640)).unwrap();
    let log = f.file("log.csv", "old");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o604)).unwrap();
    ok(&[
        quick(&data),
        vec!["--save", &m, "--plot", &svg, "--log", &log],
    ]
    .concat());
    assert_eq!((mode(&m), mode(&svg), mode(&log)), (0o600, 0o640, 0o604));
    assert!(wgtrain::modelfile::load(Path::new(&m)).is_ok());
    assert!(fs::read_to_string(&log).unwrap().starts_with("iteration,"));
    // A dangling link creates its target.
    let dangling = f.path("dangling.safetensors");
    symlink("made.safetensors", &dangling).unwrap();
    ok(&[quick(&data), vec!["--save", &dangling]].concat());
    assert!(
        fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(wgtrain::modelfile::load(Path::new(&f.path("made.safetensors"))).is_ok());
    assert_eq!(
        f.names(),
        [
            "dangling.safetensors",
            "link.csv",
            "log.csv",
            "m.safetensors",
            "made.safetensors",
            "model.safetensors",
            "p.svg",
            "real.csv",
            "train.csv"
        ]
    );
}

#[test]
fn sigkill_during_a_save_leaves_no_temporary_file() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let model = f.path("big.safetensors");
    // 600k parameters (2.4 MB): the write takes a while; kills land before, during and after.
    let args = [
        run_of(&data, "1"),
        vec!["--hidden", "768,768", "--save", &model],
    ]
    .concat();
    let start = Instant::now();
    let whole = output(&args);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let took = start.elapsed();
    fs::remove_file(&model).unwrap();
    for i in 0..16u32 {
        let mut child = wgtrain_std()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took.mul_f64(0.5 + 0.05 * f64::from(i)));
        let _ = child.kill();
        let _ = child.wait();
        let names = f.names();
        assert!(
            names
                .iter()
                .all(|n| n == "train.csv" || n == "big.safetensors"),
            "try {i}: {names:?}"
        );
        if Path::new(&model).exists() {
            assert!(
                wgtrain::modelfile::load(Path::new(&model)).is_ok(),
                "try {i}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Collisions

#[test]
fn two_outputs_naming_one_file_are_refused_before_anything_runs() {
    let f = Fixtures::new();
    // Not a CSV: a collision is found before the data is read.
    let data = f.file("train.csv", "this is not\"a CSV\n");
    let x = f.path("x.out");
    for (a, b) in [
        ("--save", "--plot"),
        ("--save", "--log"),
        ("--log", "--plot"),
    ] {
        let err = train_fails(&["--data", &data, a, &x, b, &x]);
        assert_contains_all(
            &err,
            &[
                &format!("{a} {x} and {b} {x} are the same file"),
                "a file of its own",
            ],
        );
    }
    // The same file under another spelling, existing or not.
    let dotted = format!("{}/./x.out", f.path(""));
    let err = train_fails(&["--data", &data, "--save", &x, "--plot", &dotted]);
    assert_contains_all(&err, &[&format!("--save {x} and --plot {dotted}")]);
    fs::write(&x, "keep").unwrap();
    let err = train_fails(&["--data", &data, "--save", &x, "--log", &dotted]);
    assert_contains_all(&err, &[&format!("--save {x} and --log {dotted}")]);
    assert_eq!(fs::read_to_string(&x).unwrap(), "keep");
    // Two outputs into one pipe (stdout here) would mix.
    let err = train_fails(&["--data", &data, "--log", "/dev/stdout", "--plot", "-"]);
    assert_contains_all(&err, &["--log /dev/stdout and --plot - are the same file"]);
    assert_eq!(f.names(), ["train.csv", "x.out"]);
}

#[test]
fn an_output_naming_an_input_is_refused() {
    let (f, data, model) = with_model();
    let val = f.file("val.csv", &ab_csv(10));
    let before = fs::read(&model).unwrap();
    let link = f.path("link.csv");
    symlink("train.csv", &link).unwrap();
    let hard = f.path("hard.csv");
    fs::hard_link(&val, &hard).unwrap();
    let base = [
        "--data",
        &data,
        "--val",
        &val,
        "--init-weights",
        &model,
        "--backend",
        "cpu",
    ];
    for (out, path, input, typed) in [
        ("--log", data.as_str(), "--data", data.as_str()),
        ("--save", model.as_str(), "--init-weights", model.as_str()),
        ("--plot", val.as_str(), "--val", val.as_str()),
        ("--save", link.as_str(), "--data", data.as_str()),
        ("--log", hard.as_str(), "--val", val.as_str()),
    ] {
        let err = train_fails(&[&base[..], &[out, path]].concat());
        assert_contains_all(
            &err,
            &[&format!("{out} {path}: the same file as {input} {typed}")],
        );
    }
    assert_eq!(fs::read(&model).unwrap(), before);
    assert_eq!(fs::read_to_string(&data).unwrap(), ab_csv(40));
    // predict: --out may be neither the model nor the data.
    for (path, input) in [(&data, "--data"), (&model, "--model")] {
        let err = fails(&[predict_args(&model, &data), vec!["--out", path]].concat());
        assert_contains_all(
            &err,
            &[&format!("--out {path}: the same file as {input} {path}")],
        );
    }
    assert_eq!(fs::read(&model).unwrap(), before);
    assert_eq!(fs::read_to_string(&data).unwrap(), ab_csv(40));
}

// ---------------------------------------------------------------------------------------
// Writability, before the first iteration

/// Flags of a run that would take hours if it trained.
fn endless(data: &str) -> Vec<&str> {
    run_of(data, "1000000000")
}

#[test]
fn a_folder_that_is_a_file_fails_at_once() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let file = f.file("file.txt", "");
    for flag in ["--save", "--plot", "--log"] {
        let target = format!("{file}/out");
        let start = Instant::now();
        let err = fails(&[endless(&data), vec![flag, &target]].concat());
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_contains_all(&err, &[&format!("{flag} {target}"), "is not a folder"]);
    }
    let err = fails(&[endless(&data), vec!["--save", &f.path("")]].concat());
    assert_contains_all(&err, &["--save", "a file name is needed, not a folder"]);
    assert_eq!(f.names(), ["file.txt", "train.csv"]);
}

/// Runs `bin ARGS` in a private mount namespace with a read-only tmpfs on `ro`; `None` (after a
/// loud message) where the platform cannot make one.
fn with_read_only_folder(ro: &str, args: &[&str]) -> Option<Output> {
    let probe = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o ro tmpfs \"$1\"",
            "sh",
            ro,
        ])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skipped("unshare -rm cannot mount a read-only tmpfs here (no user namespaces?)");
        return None;
    }
    let bin = bin();
    let script = "mount -t tmpfs -o ro tmpfs \"$1\" && shift && exec timeout 120 \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script, "sh", ro])
        .arg(bin)
        .args(args);
    Some(cmd.output().expect("unshare runs"))
}

#[test]
fn a_read_only_folder_fails_before_the_first_iteration() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    fs::create_dir(f.path("ro")).unwrap();
    for flag in ["--save", "--plot", "--log"] {
        let target = f.path("ro/out");
        let start = Instant::now();
        let args = [&endless(&data)[..], &[flag, &target, "--json"]].concat();
        let Some(got) = with_read_only_folder(&f.path("ro"), &args) else {
            return;
        };
        assert!(start.elapsed() < Duration::from_secs(60), "{flag}: trained");
        assert_eq!(got.status.code(), Some(1), "{flag}: {}", text(&got.stderr));
        assert_contains_all(
            &text(&got.stderr),
            &[&format!("{flag} {target}"), "Read-only file system"],
        );
        assert!(got.stdout.is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// The log

#[test]
fn a_log_on_a_full_device_says_it_is_incomplete() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let err = fails(&[endless(&data), vec!["--log", "/dev/full"]].concat());
    assert_contains_all(
        &err,
        &[
            "--log /dev/full",
            "No space left on device",
            "the log /dev/full is incomplete",
        ],
    );
}

#[test]
fn a_log_cut_by_a_full_disk_says_so_and_the_run_goes_on() {
    use std::os::unix::process::CommandExt;
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let log = f.path("log.csv");
    let model = f.path("m.safetensors");
    let mut cmd = wgtrain_std();
    cmd.args(run_of(&data, "300"))
        .args(["--log", &log, "--save", &model, "--json"]);
    // Files may grow to 8 KiB: the log (about 130 bytes a row) hits it, the model does not.
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 8192,
                rlim_max: 8192,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let got = cmd.output().unwrap();
    assert_eq!(got.status.code(), Some(1), "{}", text(&got.stderr));
    let err = text(&got.stderr);
    assert_contains_all(
        &err,
        &[
            &format!("--log {log}: writing the row of iteration"),
            &format!("the log {log} is incomplete (its last complete row is of iteration"),
            "training goes on without the log",
        ],
    );
    let r: Value = json(&text(&got.stdout));
    assert_eq!(r["stop"]["stopped_at"], 300, "the run went on");
    assert_eq!(r["write_errors"][0]["flag"], "--log");
    assert_eq!(r["write_errors"].as_array().unwrap().len(), 1);
    let written = fs::read(&log).unwrap();
    assert!(written.len() <= 8192);
    assert!(written.len() > 4096);
    assert!(wgtrain::modelfile::load(Path::new(&model)).is_ok());
}

// ---------------------------------------------------------------------------------------
// Reproducible model files

#[test]
fn the_same_run_saves_the_same_bytes() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let (a, b) = (f.path("a.safetensors"), f.path("b.safetensors"));
    let args = [
        quick(&data),
        vec!["--hidden", "3", "--val-split", "0.25", "--save"],
    ]
    .concat();
    ok(&[&args[..], &[&a]].concat());
    ok(&[&args[..], &[&b]].concat());
    let (x, y) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert!(x == y, "two runs saved different bytes");
    let report = wgtrain::modelfile::load(Path::new(&a))
        .unwrap()
        .report
        .unwrap();
    assert!(report.get("timing").is_none(), "{report}");
    assert_eq!(report["stop"]["stopped_at"], 30);
    // --save-timings keeps them.
    ok(&[&args[..], &[&a, "--save-timings"]].concat());
    let report = wgtrain::modelfile::load(Path::new(&a))
        .unwrap()
        .report
        .unwrap();
    assert!(report["timing"]["train_s"].is_number(), "{report}");
    let err = train_fails(&["--data", &data, "--save-timings"]);
    assert_contains_all(&err, &["--save-timings", "--save"]);
}

// ---------------------------------------------------------------------------------------
// stdout and stderr that cannot be written

/// Runs wgtrain with `args` and stderr on /dev/full; its output and exit status.
fn with_full_stderr(args: &[&str]) -> Output {
    wgtrain_std()
        .args(args)
        .stderr(fs::File::options().write(true).open("/dev/full").unwrap())
        .output()
        .expect("wgtrain runs")
}

#[test]
fn a_full_stderr_keeps_the_exit_status_and_never_panics() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let (f, data, model) = with_model();
    // An error message, a notice, predict's metrics, bench's progress lines.
    let bom = f.file("bom.csv", "\u{feff}");
    let cases: [(Vec<&str>, i32); 5] = [
        (vec!["train", "--data", &bom, "--backend", "cpu"], 1),
        ([quick(&data), vec!["-q", "--chunk", "5"]].concat(), 0),
        (predict_args(&model, &data), 0),
        (
            vec![
                "train",
                "--demo",
                "moons",
                "--backend",
                "auto",
                "--adapter",
                "zzz",
            ],
            1,
        ),
        (
            vec![
                "bench",
                "--rows",
                "500",
                "--features",
                "3",
                "--iters",
                "5",
                "--backends",
                "cpu",
            ],
            0,
        ),
    ];
    for (args, code) in cases {
        let got = with_full_stderr(&args);
        assert_eq!(got.status.code(), Some(code), "{args:?}");
    }
    let got = with_full_stderr(&predict_args(&model, &data));
    assert!(text(&got.stdout).starts_with("probability,predicted\n"));
}

#[test]
fn a_closed_stdout_ends_predict_quietly_with_status_141() {
    let (f, _data, model) = with_model();
    // Far more than a pipe holds, so the write meets the closed pipe.
    let big = f.file("big.csv", &ab_csv(20_000));
    let script = format!(
        "{} predict --model {model} --data {big} --backend cpu 2>&1 | head -1; \
         echo \"status ${{PIPESTATUS[0]}}\"",
        bin().display()
    );
    let got = Command::new("bash").args(["-c", &script]).output().unwrap();
    let out = text(&got.stdout);
    assert_eq!(out, "probability,predicted\nstatus 141\n", "{out}");
}

#[test]
fn a_full_stdout_is_named_in_the_error() {
    if !Path::new("/dev/full").exists() {
        return skipped("no /dev/full");
    }
    let (_f, data, model) = with_model();
    let eval = [vec!["eval"], predict_args(&model, &data)[1..].to_vec()].concat();
    for (args, what) in [
        (quick(&data), "the report"),
        ([quick(&data), vec!["--json"]].concat(), "the report"),
        (eval, "the metrics"),
        (vec!["devices"], "the adapter list"),
    ] {
        let got = wgtrain_std()
            .args(&args)
            .stdout(fs::File::options().write(true).open("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(got.status.code(), Some(1), "{args:?}");
        assert_contains_all(
            &text(&got.stderr),
            &[&format!(
                "wgtrain: error: writing {what} to stdout: No space left on device"
            )],
        );
    }
}

// ---------------------------------------------------------------------------------------
// FIFOs after the report; setuid bits

#[test]
fn a_fifo_without_a_reader_is_given_up_on_a_signal_after_the_report() {
    use std::io::BufRead;
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let fifo = f.path("fo");
    if !mkfifo(&fifo) {
        return;
    }
    let svg = f.path("p.svg");
    let mut child = wgtrain_std()
        .args(quick(&data))
        .args(["--save", &fifo, "--plot", &svg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The report comes while the FIFO still waits for a reader.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut report = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let last = line.starts_with("plot:");
            report.push_str(&line);
            report.push('\n');
            if last {
                break;
            }
        }
        let _ = tx.send(report);
    });
    let Ok(report) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("no report while the FIFO waited for a reader");
    };
    assert_contains_all(
        &report,
        &[
            "result:",
            &format!("saved:   {fifo} (a FIFO: written after this report)"),
            &format!("plot:    {svg}"),
        ],
    );
    assert!(fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let status = signal_and_wait(
        &mut child,
        "TERM",
        Duration::from_secs(20),
        "the first SIGTERM did not end the wait",
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert_contains_all(
        &err,
        &[&format!(
            "wgtrain: error: --save {fifo}: no reader opened the FIFO before the signal"
        )],
    );
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // With a reader the model arrives whole.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let (out, _) = ok(&[quick(&data), vec!["--save", &fifo]].concat());
    assert!(out.contains("(a FIFO: written after this report)"), "{out}");
    let bytes = reader.join().unwrap();
    assert!(wgtrain::modelfile::from_bytes("fo", &bytes).is_ok());
}

#[test]
fn a_replaced_file_loses_its_setuid_bit() {
    let (f, data, model) = with_model();
    let out = f.file("s4", "old");
    fs::set_permissions(&out, fs::Permissions::from_mode(0o4755)).unwrap();
    ok(&[predict_args(&model, &data), vec!["--out", &out]].concat());
    assert_eq!(mode(&out), 0o755);
    fs::set_permissions(&model, fs::Permissions::from_mode(0o6750)).unwrap();
    ok(&[quick(&data), vec!["--save", &model]].concat());
    assert_eq!(mode(&model), 0o750);
}

// ---------------------------------------------------------------------------------------
// Second review: stdin as an input, predict's stdout, sockets, the log's setuid bit, one
// message for a failed log

/// Runs wgtrain with `stdin` as its standard input.
fn with_stdin(args: &[&str], stdin: &str) -> Output {
    wgtrain_std()
        .args(args)
        .stdin(fs::File::open(stdin).unwrap())
        .output()
        .unwrap()
}

#[test]
fn an_output_that_is_the_file_stdin_reads_is_refused() {
    let (f, data, model) = with_model();
    let val = f.file("val.csv", &ab_csv(20));
    let before = fs::read(&data).unwrap();
    let base = ["train", "--backend", "cpu", "--max-iter", "5"];
    for (args, stdin, out, input) in [
        (
            vec!["--data", "-", "--save", &data],
            &data,
            "--save",
            "--data",
        ),
        (
            vec!["--data", "-", "--log", &data],
            &data,
            "--log",
            "--data",
        ),
        (
            vec!["--data", &data, "--val", "-", "--log", &val],
            &val,
            "--log",
            "--val",
        ),
    ] {
        let got = with_stdin(&[&base[..], &args].concat(), stdin);
        assert_eq!(got.status.code(), Some(1), "{args:?}");
        assert_contains_all(
            &text(&got.stderr),
            &[&format!("{out} {stdin}: the same file as {input} -")],
        );
    }
    let got = with_stdin(
        &[
            "predict",
            "--model",
            &model,
            "--data",
            "-",
            "--out",
            &data,
            "--backend",
            "cpu",
        ],
        &data,
    );
    assert_eq!(got.status.code(), Some(1));
    assert_contains_all(&text(&got.stderr), &["--out", "the same file as --data -"]);
    assert_eq!(fs::read(&data).unwrap(), before);
    assert_eq!(fs::read_to_string(&val).unwrap(), ab_csv(20));
}

#[test]
fn predict_out_may_not_be_where_the_summary_or_the_messages_go() {
    let (f, data, model) = with_model();
    let r = f.file("r.txt", "");
    let got = wgtrain_std()
        .args([predict_args(&model, &data), vec!["--out", &r]].concat())
        .stdout(fs::File::create(&r).unwrap())
        .output()
        .unwrap();
    assert_eq!(got.status.code(), Some(1));
    assert_contains_all(
        &text(&got.stderr),
        &[&format!("--out {r} is the file stdout goes to")],
    );
    let e = fails(&[predict_args(&model, &data), vec!["--out", "/dev/stderr"]].concat());
    assert_contains_all(&e, &["--out /dev/stderr is stderr"]);
    // Through descriptor 1, however spelled, the CSV streams to stdout.
    let (out, _) = ok(&[predict_args(&model, &data), vec!["--out", "/dev/./stdout"]].concat());
    assert!(out.starts_with("probability,predicted\n"), "{out}");
}

#[test]
fn a_socket_nobody_listens_on_is_refused_before_the_run() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let sock = f.path("sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let e = fails(&[run_of(&data, "100000"), vec!["--save", &sock]].concat());
    assert_contains_all(
        &e,
        &[&format!("--save {sock}: cannot connect to the socket")],
    );
    assert!(!e.contains("result:"), "{e}");
}

#[test]
fn a_log_into_a_setuid_file_loses_the_bit() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    let log = f.file("log.csv", "old");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o6755)).unwrap();
    ok(&[quick(&data), vec!["--log", &log]].concat());
    assert_eq!(mode(&log), 0o755);
    assert!(fs::read_to_string(&log).unwrap().starts_with("iteration,"));
}

#[test]
fn a_failed_log_on_stdout_is_said_once() {
    let f = Fixtures::new();
    let data = f.file("train.csv", &ab_csv(40));
    // A pipe whose reader is gone before the run starts.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let got = wgtrain_std()
        .args([quick(&data), vec!["--log", "-"]].concat())
        .stdout(writer)
        .output()
        .unwrap();
    let err = text(&got.stderr);
    assert_ne!(got.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("--log -:").count(), 1, "{err}");
}
