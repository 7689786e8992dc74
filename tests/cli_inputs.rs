//! End-to-end tests of unusual CSV inputs: a UTF-8 BOM, devices and FIFOs read as streams,
//! exact numeric labels (beyond 2^53, across train, eval and --init-weights), and
//! `--delimiter` with the hint for semicolon- and tab-separated files.
//!
//! Everything runs on the CPU.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cli::{
    Fixtures, assert_contains_all, fails, mkfifo, ok, skipped, train_fails, train_json, uint,
    wgtrain,
};

#[test]
fn a_file_of_only_a_bom_and_whitespace_is_empty() {
    let f = Fixtures::new();
    for (i, text) in [
        "\u{feff}",
        "\u{feff}\n",
        "\u{feff}\r\n",
        "\u{feff}  \t\n \n",
    ]
    .iter()
    .enumerate()
    {
        let path = f.file(&format!("bom{i}.csv"), text);
        let err = train_fails(&["--data", &path, "--backend", "cpu"]);
        assert_contains_all(&err, &[&format!("{path}: "), "the file is empty"]);
    }
}

#[test]
fn a_bom_before_the_header_is_dropped() {
    let f = Fixtures::new();
    let path = f.file("bom.csv", "\u{feff}y,a\n0,1\n1,2\n0,1.5\n1,3\n");
    let r = train_json(&[
        "--data",
        &path,
        "--label",
        "y",
        "--max-iter",
        "3",
        "--backend",
        "cpu",
    ]);
    assert_eq!(r["data"]["label_mapping"]["column"], "y");
    assert_eq!(uint(&r["data"]["rows"], "rows"), 4);
}

/// Runs `train --data DEVICE`, which must fail within seconds; returns stderr.
fn device_fails(device: &str) -> Option<String> {
    if !Path::new(device).exists() {
        skipped(&format!("{device} does not exist on this platform"));
        return None;
    }
    let out = wgtrain()
        .args(["train", "--data", device, "--backend", "cpu"])
        .timeout(Duration::from_secs(30))
        .output()
        .expect("running wgtrain");
    assert!(!out.status.success(), "{device} was accepted");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    Some(err)
}

#[test]
fn dev_zero_fails_fast_on_its_first_line() {
    if let Some(err) = device_fails("/dev/zero") {
        assert_contains_all(
            &err,
            &["/dev/zero, line 1: ", "a record longer than 64.0 MiB"],
        );
    }
}

#[test]
fn dev_urandom_fails_fast_naming_a_line() {
    if let Some(err) = device_fails("/dev/urandom") {
        assert_contains_all(&err, &["/dev/urandom, line "]);
    }
}

#[test]
fn a_fifo_with_a_writer_is_read_as_a_stream() {
    let f = Fixtures::new();
    let fifo = f.path("rows.fifo");
    if !mkfifo(&fifo) {
        return;
    }
    let text: String = std::iter::once("a,b,y\n".to_string())
        .chain((0..200).map(|i| format!("{},{},{}\r\n", i % 7, i % 3, i % 2)))
        .collect();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, text))
    };
    let r = train_json(&["--data", &fifo, "--max-iter", "2", "--backend", "cpu"]);
    writer.join().unwrap().expect("writing the FIFO");
    assert_eq!(uint(&r["data"]["rows"], "rows"), 200);
    assert_eq!(uint(&r["data"]["positives"], "positives"), 100);

    // A bad line in a stream names the line, as for a file.
    std::fs::remove_file(&fifo).unwrap();
    assert!(mkfifo(&fifo));
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // The reader may stop at the error and close the FIFO: a broken pipe is fine.
            let _ = std::fs::write(&fifo, "a,b,y\n1,2,0\n\n3,x,1\n");
        })
    };
    let err = train_fails(&["--data", &fifo, "--backend", "cpu"]);
    writer.join().unwrap();
    assert_contains_all(&err, &[&format!("{fifo}, line 4, column 2 \"b\""), "\"x\""]);
}

#[test]
fn integer_labels_beyond_2_pow_53_stay_distinct() {
    let f = Fixtures::new();
    let three = f.file(
        "three.csv",
        "a,y\n1,5\n2,9007199254740992\n3,5\n4,9007199254740993\n5,5\n",
    );
    let r = train_json(&["--data", &three, "--max-iter", "1", "--backend", "cpu"]);
    assert_eq!(
        r["data"]["classes"],
        serde_json::json!(["5", "9007199254740992", "9007199254740993"])
    );

    let two = f.file(
        "two.csv",
        "a,y\n1,100000000000000000000\n2,100000000000000000001\n3,1e20\n4,100000000000000000001.0\n",
    );
    let r = train_json(&["--data", &two, "--max-iter", "2", "--backend", "cpu"]);
    let m = &r["data"]["label_mapping"];
    assert_eq!(m["positive"], "100000000000000000001");
    assert_eq!(m["negative"], "100000000000000000000");
    assert_eq!(uint(&r["data"]["positives"], "positives"), 2);

    // The same values in other spellings are the same labels; 0.1 and 0.10000000000000001
    // are not (they are one f64).
    let spelled = f.file("spelled.csv", "a,y\n1,1\n2,1.0\n3,+1e0\n4,0\n5,-0.0\n");
    let r = train_json(&["--data", &spelled, "--max-iter", "1", "--backend", "cpu"]);
    assert_eq!(uint(&r["data"]["positives"], "positives"), 3);
    let close = f.file("close.csv", "a,y\n1,0.1\n2,0.10000000000000001\n3,0.1\n");
    let r = train_json(&["--data", &close, "--max-iter", "1", "--backend", "cpu"]);
    assert_eq!(
        r["data"]["label_mapping"]["positive"],
        "0.10000000000000001"
    );
    assert_eq!(uint(&r["data"]["positives"], "positives"), 1);
}

#[test]
fn a_saved_mapping_compares_labels_exactly() {
    let f = Fixtures::new();
    let data = f.file(
        "big.csv",
        "a,y\n1,100000000000000000000\n2,100000000000000000001\n3,100000000000000000000\n",
    );
    let model = f.path("m.safetensors");
    ok(&[
        "train",
        "--data",
        &data,
        "--max-iter",
        "2",
        "--backend",
        "cpu",
        "--save",
        &model,
    ]);
    // Another spelling of a label is that label.
    let spelled = f.file("spelled.csv", "a,y\n1,1e20\n2,1.00000000000000000001e20\n");
    let (out, _) = ok(&[
        "eval",
        "--model",
        &model,
        "--data",
        &spelled,
        "--backend",
        "cpu",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(uint(&v["positives"], "positives"), 1);
    // A value one away from both is neither, though f64 would call it equal.
    let off = f.file(
        "off.csv",
        "a,y\n1,100000000000000000000\n2,100000000000000000002\n",
    );
    let err = fails(&[
        "eval",
        "--model",
        &model,
        "--data",
        &off,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &[
            &format!("{off}, line 3, column 2 \"y\""),
            "label \"100000000000000000002\" is neither",
        ],
    );
    // --init-weights: the data's mapping must be the model's, exactly.
    let err = train_fails(&[
        "--data",
        &off,
        "--init-weights",
        &model,
        "--max-iter",
        "1",
        "--backend",
        "cpu",
    ]);
    assert_contains_all(
        &err,
        &[
            "--init-weights",
            "100000000000000000001 = positive",
            "100000000000000000002 = positive",
        ],
    );
    train_json(&[
        "--data",
        &spelled,
        "--init-weights",
        &model,
        "--max-iter",
        "1",
        "--backend",
        "cpu",
    ]);
}

#[test]
fn a_semicolon_or_tab_file_gets_a_hint_and_delimiter_reads_it() {
    let f = Fixtures::new();
    let semi = f.file("semi.csv", "a;b;y\n1;2;0\n3;4;1\n2;2;0\n");
    let err = train_fails(&["--data", &semi, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{semi}, line 1: "),
            "looks semicolon-separated",
            "--delimiter ';'",
        ],
    );
    let tab = f.file("tab.tsv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n2\t2\t0\n");
    let err = train_fails(&["--data", &tab, "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{tab}, line 1: "),
            "looks tab-separated",
            "--delimiter tab",
        ],
    );

    let r = train_json(&[
        "--data",
        &semi,
        "--delimiter",
        ";",
        "--max-iter",
        "2",
        "--backend",
        "cpu",
    ]);
    assert_eq!(uint(&r["data"]["features"], "features"), 2);
    // The --val file is read with the same delimiter.
    let model = f.path("m.safetensors");
    let r = train_json(&[
        "--data",
        &tab,
        "--val",
        &tab,
        "--delimiter",
        "tab",
        "--max-iter",
        "2",
        "--backend",
        "cpu",
        "--save",
        &model,
    ]);
    assert_eq!(uint(&r["data"]["val"]["rows"], "val rows"), 3);
    for spelled in ["\\t", "\t"] {
        let (out, _) = ok(&[
            "predict",
            "--model",
            &model,
            "--data",
            &tab,
            "--delimiter",
            spelled,
            "--backend",
            "cpu",
        ]);
        assert_eq!(out.lines().count(), 4, "{out}");
    }
    // predict without the flag gets the hint too.
    let err = fails(&[
        "predict",
        "--model",
        &model,
        "--data",
        &tab,
        "--backend",
        "cpu",
    ]);
    assert_contains_all(&err, &[&format!("{tab}, line 1: "), "--delimiter tab"]);
    // A comma file read with --delimiter ';' is hinted back to commas.
    let comma = f.file("comma.csv", "a,b,y\n1,2,0\n");
    let err = train_fails(&["--data", &comma, "--delimiter", ";", "--backend", "cpu"]);
    assert_contains_all(&err, &["looks comma-separated", "--delimiter ','"]);
}

#[test]
fn a_bad_delimiter_is_refused_echoing_it() {
    let f = Fixtures::new();
    let data = f.file("d.csv", "a,y\n1,0\n2,1\n");
    for typed in ["ab", "", "\"", "é", "\n"] {
        let err = train_fails(&["--data", &data, "--delimiter", typed, "--backend", "cpu"]);
        assert_contains_all(&err, &["--delimiter"]);
        if !typed.is_empty() && typed != "\n" {
            assert_contains_all(&err, &[typed]);
        }
    }
    let err = train_fails(&["--demo", "xnor", "--delimiter", ";", "--backend", "cpu"]);
    assert_contains_all(&err, &["--delimiter ';'", "only with --data"]);
}

#[test]
fn no_feature_columns_names_the_file() {
    let f = Fixtures::new();
    let data = f.file("d.csv", "a,y\n1,0\n2,1\n");
    let err = train_fails(&["--data", &data, "--drop", "a", "--backend", "cpu"]);
    assert_contains_all(
        &err,
        &[
            &format!("{data}, line 1: "),
            "no feature columns left besides the label \"y\"",
            "--drop a",
        ],
    );
}

#[test]
fn a_double_bom_utf16_or_an_unclosed_quote_is_named() {
    let f = Fixtures::new();
    for (name, content, needles) in [
        (
            "bb.csv",
            &b"\xef\xbb\xbf\xef\xbb\xbfa,y\n1,0\n2,1\n"[..],
            &["line 1: the file starts with two byte order marks"][..],
        ),
        (
            "le.csv",
            b"\xff\xfea\0,\0y\0\n\0",
            &["line 1: the file is UTF-16", "save it as UTF-8"],
        ),
        (
            "be.csv",
            b"\xfe\xff\0a\0,\0y\0\n",
            &["line 1: the file is UTF-16", "save it as UTF-8"],
        ),
        (
            "quote.csv",
            b"a,y\n\"1,0\n2,1\n",
            &["line 2: the quote that opens a field on line 2 never closes"],
        ),
    ] {
        let path = f.path(name);
        std::fs::write(&path, content).unwrap();
        let err = train_fails(&["--data", &path, "--backend", "cpu"]);
        assert_contains_all(&err, &[&format!("{path}, ")]);
        assert_contains_all(&err, needles);
    }
}

#[test]
fn data_dash_reads_stdin_for_train_predict_and_eval() {
    let f = Fixtures::new();
    let csv = "a,b,y\n1,2,0\n3,4,1\n5,1,0\n2,7,1\n";
    let model = f.path("m.st");
    let out = wgtrain()
        .args([
            "train",
            "--data",
            "-",
            "--backend",
            "cpu",
            "--max-iter",
            "3",
        ])
        .args(["--save", &model, "--json"])
        .write_stdin(csv)
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(uint(&r["data"]["rows"], "rows"), 4);
    let data = f.file("d.csv", csv);
    let out = wgtrain()
        .args(["train", "--data", &data, "--val", "-", "--backend", "cpu"])
        .args(["--max-iter", "3", "--json"])
        .write_stdin("b,a,y\n1,1,0\n2,2,1\n")
        .assert()
        .success();
    let r: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(uint(&r["data"]["val"]["rows"], "val rows"), 2, "{r}");
    for cmd in ["predict", "eval"] {
        let out = wgtrain()
            .args([cmd, "--model", &model, "--data", "-", "--backend", "cpu"])
            .write_stdin(csv)
            .assert()
            .success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        if cmd == "predict" {
            assert_eq!(text.lines().count(), 5, "{text}");
        } else {
            assert_contains_all(&text, &["accuracy"]);
        }
    }
    // eval without the label column names stdin, not "-".
    let out = wgtrain()
        .args(["eval", "--model", &model, "--data", "-", "--backend", "cpu"])
        .write_stdin("a,b\n1,2\n")
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_contains_all(&err, &["stdin: no column \"y\" (the model's label)"]);
    // A bad line in stdin names it.
    let out = wgtrain()
        .args(["train", "--data", "-", "--backend", "cpu"])
        .write_stdin("a,y\n1,0\nx,1\n")
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_contains_all(
        &err,
        &["stdin, line 3, column 1 \"a\": \"x\" is not a number"],
    );
}

#[test]
fn two_inputs_that_are_one_stream_are_refused_before_reading() {
    let f = Fixtures::new();
    let data_text = "a,y\n1,0\n2,1\n";
    let data = f.file("d.csv", data_text);
    for (d, v) in [
        ("-", "-"),
        ("/dev/stdin", "/dev/stdin"),
        ("-", "/dev/stdin"),
    ] {
        let out = wgtrain()
            .args(["train", "--data", d, "--val", v, "--backend", "cpu"])
            .write_stdin(data_text)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{d} {v}: {err}");
        assert_contains_all(
            &err,
            &[&format!("--val {v} and --data {d} are the same stream")],
        );
    }
    let fifo = f.path("rows.fifo");
    if mkfifo(&fifo) {
        let err = train_fails(&["--data", &fifo, "--val", &fifo, "--backend", "cpu"]);
        assert_contains_all(
            &err,
            &[&format!(
                "--val {fifo} and --data {fifo} are the same stream"
            )],
        );
    }
    // The same regular file twice is read twice.
    let r = train_json(&[
        "--data",
        &data,
        "--val",
        &data,
        "--backend",
        "cpu",
        "--max-iter",
        "2",
    ]);
    assert_eq!(uint(&r["data"]["val"]["rows"], "val rows"), 2);
}
