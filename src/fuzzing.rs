//! The bodies of the fuzz targets (fuzz/fuzz_targets/), kept in the library so that the stable
//! test suite (tests/fuzz_corpus.rs) replays the same code over the saved corpus and crashes.
//! Each takes arbitrary bytes and must return without panicking or aborting; errors are fine.

use std::ffi::OsString;

use clap::Parser;

use crate::backend::BackendChoice;
use crate::cli::{Cli, Command};
use crate::data::{self, CsvOptions, LabelMapping};
use crate::{modelfile, predict};

/// The CSV loaders. The first byte picks the options (label column, positive value, a dropped
/// column, the delimiter), the rest is the file; rows that load are then standardized, as
/// training does.
pub fn csv(input: &[u8]) {
    let (&pick, bytes) = input.split_first().unwrap_or((&0, &[]));
    let opts = CsvOptions {
        label: (pick & 1 != 0).then(|| "y".to_string()),
        positive: (pick & 2 != 0).then(|| "1".to_string()),
        drop: if pick & 4 != 0 {
            vec!["b".to_string()]
        } else {
            vec![]
        },
        delimiter: match pick >> 3 & 3 {
            1 => b';',
            2 => b'\t',
            _ => b',',
        },
    };
    if let Ok(d) = data::parse_csv("fuzz.csv", bytes, &opts) {
        let s = data::Standardizer::fit(&d);
        let mut d2 = d.clone();
        s.apply(&mut d2);
        let _ = data::parse_csv_like("fuzz-val.csv", bytes, &d);
    }
    let label = LabelMapping::binary("y", "0", "1");
    let features = ["a".to_string(), "b".to_string()];
    let _ = data::parse_csv_named("fuzz.csv", bytes, &features, &label);
}

/// The model-file loader, reading the bytes as a file or, for half the inputs (by their
/// length), as a stream; a model that loads (and is small) is then applied on the CPU to one
/// row of zeros, as `predict` would.
pub fn model_file(bytes: &[u8]) {
    let size = (bytes.len() % 2 == 0).then_some(bytes.len() as u64);
    let Ok(file) = modelfile::from_reader("fuzz.safetensors", bytes, size) else {
        return;
    };
    let model = file.model;
    if model.params.len() > 1 << 16 {
        return;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    if w.write_record(&model.features).is_err() {
        return;
    }
    if w.write_record(model.features.iter().map(|_| "0")).is_err() {
        return;
    }
    let Ok(text) = w.into_inner() else {
        return;
    };
    let Ok((mut rows, labelled)) =
        data::parse_csv_named("fuzz.csv", &text, &model.features, &model.label)
    else {
        return;
    };
    model.standardize(&mut rows);
    let rows = predict::Rows {
        data: rows,
        labelled,
    };
    let _ = predict::predict(&model, &rows, BackendChoice::Cpu, None);
}

/// The command line up to a typed job: NUL-separated arguments after `wgtrain`, parsed by
/// clap and checked as `main` checks them, without reading or writing any file.
pub fn flags(bytes: &[u8]) {
    let args = std::iter::once(OsString::from("wgtrain")).chain(
        bytes
            .split(|&b| b == 0)
            .map(|a| OsString::from(String::from_utf8_lossy(a).into_owned())),
    );
    let Ok(cli) = Cli::try_parse_from(args) else {
        return;
    };
    match cli.command {
        Command::Train(args) => {
            let _ = args.job();
        }
        Command::Prune(args) => {
            let _ = args.job();
        }
        Command::Predict(args) => {
            let _ = crate::cli::check_adapter(args.apply.backend, args.apply.adapter.as_deref());
        }
        Command::Eval(args) => {
            let _ = crate::cli::check_adapter(args.apply.backend, args.apply.adapter.as_deref());
        }
        // Without --backends, spec() opens a GPU to see whether to measure it: no I/O here.
        Command::Bench(args) if args.backends.is_some() => {
            let _ = args.spec();
        }
        Command::Bench(_) => {}
        Command::Devices { .. } => {}
    }
}
