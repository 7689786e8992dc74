//! Model files in the safetensors format, readable by `safetensors.numpy.load_file` and
//! PyTorch's loader.
//!
//! Tensors: `layers.{i}.weight` [outputs, inputs] and `layers.{i}.bias` [outputs] for each
//! dense layer i, f32 little-endian. The metadata (string → string) holds, each as a JSON text:
//!
//! - `wgtrain.architecture`: `{"layers": [inputs, hidden..., 1], "activation": "relu"}`
//!   (activation `null` for logistic regression);
//! - `wgtrain.features`: the feature column names, in the order of the first layer's inputs;
//! - `wgtrain.standardization`: `{"mean": [...], "std": [...]}`, or `null` when the features
//!   are used as they are; a column that was constant in the training data has std 1;
//! - `wgtrain.label`: `{"column": name, "positive": value, "negative": value}`;
//! - `wgtrain.report`: the training report, without its `timing` unless asked for
//!   (`--save-timings`), so that the same inputs give the same bytes (optional when reading).
//!
//! - `wgtrain.optimizer` (optional): the optimizer state that goes with the weights, with its
//!   tensors `optimizer.layers.{i}.weight.{buffer}` / `.bias.{buffer}` (see `optimizer.rs`).
//!
//! Other metadata keys, `wgtrain.*` or not, are ignored when reading.
//!
//! The header's JSON has its keys in sorted order: a file's bytes depend on its contents only.
//!
//! A row's probability of the positive class: x' = (x − mean) / std; a = act(W a + b) for each
//! hidden layer; z = W a + b for the last; p = 1 / (1 + exp(−z)); positive iff z ≥ 0.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, LabelJson, LabelMapping, Standardizer};
use crate::error::{Error, Result};
use crate::memory;
use crate::model::{self, Activation, Head, MAX_CLASSES, ModelSpec};

pub const ARCHITECTURE: &str = "wgtrain.architecture";
pub const FEATURES: &str = "wgtrain.features";
pub const STANDARDIZATION: &str = "wgtrain.standardization";
pub const LABEL: &str = "wgtrain.label";
pub const REPORT: &str = "wgtrain.report";
/// `wgtrain prune --save`: how the model was pruned (method, sparsity, rounds).
pub const PRUNING: &str = "wgtrain.pruning";

/// Everything needed to apply trained weights to new rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub spec: ModelSpec,
    /// Feature column names, in the order of the first layer's inputs.
    pub features: Vec<String>,
    /// x' = (x − mean) / std per feature (every std above 0); `None`: raw features.
    pub standardization: Option<Standardizer>,
    pub label: LabelMapping,
    /// Flat, laid out as `ModelSpec::layout`.
    pub params: Vec<f32>,
}

/// A model file read back.
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub model: Model,
    /// The training report as saved, if the file has one.
    pub report: Option<serde_json::Value>,
    /// The optimizer state saved with the weights, if any.
    pub optimizer: Option<SavedOptimizer>,
}

/// The statistics as a model file keeps them: a constant column's std 0 becomes 1, so that
/// (x − mean) / std maps the training rows exactly as `Standardizer::apply` did (to 0).
pub fn file_standardization(fitted: &Standardizer) -> Standardizer {
    Standardizer {
        mean: fitted.mean.clone(),
        std: fitted
            .std
            .iter()
            .map(|&s| if s == 0.0 { 1.0 } else { s })
            .collect(),
    }
}

impl Model {
    /// Applies the stored standardization (if any) to rows with the model's features.
    pub fn standardize(&self, data: &mut Dataset) {
        if let Some(s) = &self.standardization {
            s.apply(data);
        }
    }

    /// The hidden activation as stored: `None` for logistic regression.
    pub fn activation(&self) -> Option<Activation> {
        (!self.spec.is_logistic()).then_some(self.spec.activation)
    }
}

#[derive(Serialize, Deserialize)]
struct Architecture {
    layers: Vec<usize>,
    activation: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stats {
    mean: Vec<f64>,
    std: Vec<f64>,
}

/// The smallest std a non-constant column of f32 values can have: two values 2⁻¹⁴⁹ apart
/// among n ≤ 2⁶¹ rows give at least 2⁻¹⁴⁹ / √(2n) ≈ 6.5·10⁻⁵⁵.
pub const MIN_STD: f64 = 1e-60;

/// Whether a feature's stored mean and std are ones f32 training data can have: the mean
/// finite in f32, the std from [`MIN_STD`] to f32's largest value.
pub fn usable_stats(mean: f64, std: f64) -> bool {
    (mean as f32).is_finite() && (std as f32).is_finite() && std >= MIN_STD
}

fn tensor_names(layer: usize) -> (String, String) {
    (
        format!("layers.{layer}.weight"),
        format!("layers.{layer}.bias"),
    )
}

mod header;
mod optimizer;
mod write;

use header::{Header, parse_header};
pub use optimizer::{OPTIMIZER, SavedOptimizer};
pub use write::{report_metadata, to_bytes, to_bytes_extra, to_bytes_full, to_bytes_with};

/// Reads and checks a model file; errors name the file.
pub fn load(path: &Path) -> Result<ModelFile> {
    load_named(&path.display().to_string(), path)
}

/// Reads and checks the model file a flag names (`--model`, `--init-weights`); errors name
/// the flag and the file.
pub fn load_flag(flag: &str, path: &Path) -> Result<ModelFile> {
    load_named(&format!("{flag} {}", path.display()), path)
}

/// The most bytes a header's JSON may take: safetensors' own cap.
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

fn load_named(name: &str, path: &Path) -> Result<ModelFile> {
    let io = |e: std::io::Error| Error::data(name, e.to_string());
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(Error::data(
            name,
            "Is a directory; a model file saved with --save is expected",
        ));
    }
    from_reader(name, file, meta.is_file().then_some(meta.len()))
}

/// Reads and checks a model file from `src`, as a file of `size` bytes (a regular file's
/// length) or a stream (`None`); `name` is used in error messages.
pub fn from_reader(name: &str, src: impl Read, size: Option<u64>) -> Result<ModelFile> {
    read_model(name, src, size, memory::limit())
}

fn not_readable(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::data(
        name,
        format!(
            "not a readable safetensors file ({msg}); is it a wgtrain model saved with --save?"
        ),
    )
}

/// Reads a model file from `src` without trusting it: the 8-byte header length (at most
/// [`MAX_HEADER_BYTES`]), the header's JSON (its first byte checked at once), which is then
/// checked on its own (metadata, tensor names, dtypes, shapes, contiguous offsets), so that the
/// tensor data is exactly 4 bytes per parameter and optimizer-state value; that many bytes
/// are read, into the parameters and the state,
/// once that size matches `size` (a regular file's length) and fits `limit`. A stream with
/// bytes beyond is refused.
fn read_model(
    name: &str,
    mut src: impl Read,
    size: Option<u64>,
    limit: memory::Limit,
) -> Result<ModelFile> {
    let bad = |msg: String| not_readable(name, msg);
    let failed = |e: std::io::Error| Error::data(name, format!("reading failed: {e}"));
    let mut head = [0u8; 8];
    let got = read_full(&mut src, &mut head).map_err(failed)?;
    if got < 8 {
        return Err(bad(format!(
            "{got} bytes, shorter than the 8-byte header length"
        )));
    }
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "the header length says {} ({n} bytes), more than the {} a header may take",
            memory::fmt_bytes(n),
            memory::fmt_bytes(MAX_HEADER_BYTES)
        )));
    }
    if let Some(size) = size.filter(|&s| s.saturating_sub(8) < n) {
        return Err(bad(format!(
            "the header length says {n} bytes, but only {} follow it",
            size.saturating_sub(8)
        )));
    }
    // The JSON opens with `{`: one byte tells a stream of zeros or noise at once.
    let mut first = [0u8; 1];
    if n == 0 || read_full(&mut src, &mut first).map_err(failed)? < 1 || first[0] != b'{' {
        return Err(bad(format!(
            "the header's {n} bytes do not start a JSON object"
        )));
    }
    let n = n as usize; // at most 100 MiB
    let mut json = Vec::new();
    json.try_reserve_exact(n)
        .map_err(|_| bad(format!("no memory for a header of {n} bytes")))?;
    json.push(first[0]);
    json.resize(n, 0);
    let got = read_full(&mut src, &mut json[1..]).map_err(failed)?;
    if got < n - 1 {
        return Err(bad(format!(
            "the file ends {} bytes into the header's {n}",
            got + 1
        )));
    }
    let header = parse_header(&json).map_err(bad)?;
    drop(json);
    let checked = check_header(name, &header)?;
    // The checks passed: the data is exactly the parameters and any optimizer state, 4 bytes
    // each.
    let data = checked.data_bytes();
    let total = data.checked_add(8 + n as u64);
    if let Some(size) = size.filter(|&s| total != Some(s)) {
        return Err(bad(format!(
            "the header states {} of tensor data, the file holds {} after the header",
            memory::fmt_bytes(data),
            memory::fmt_bytes(size.saturating_sub(8 + n as u64))
        )));
    }
    memory::check_against(limit, total, |s| {
        format!("{name}: the model file's header states {s} of header and tensor data")
    })?;
    let params = read_params(name, &checked, &mut src)?;
    if size.is_none() && read_full(&mut src, &mut first).map_err(failed)? > 0 {
        return Err(bad(format!(
            "more bytes follow the {data} bytes of tensor data the header states"
        )));
    }
    checked.into_file(name, params)
}

/// Reads into `buf` until it is full or the input ends; the bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A header that passed every check: the model less its parameters, and where each tensor's
/// values lie.
struct Checked {
    spec: ModelSpec,
    features: Vec<String>,
    stats: Option<Stats>,
    label: LabelMapping,
    report: Option<serde_json::Value>,
    /// The optimizer and its step count, when the file has its state.
    optimizer: Option<(crate::optim::Optimizer, u64)>,
    /// (byte offset in the tensor data, name, offset in the parameters, values), by offset;
    /// contiguous from 0. Offsets past the parameters are the optimizer's buffers.
    tensors: Vec<(u64, String, usize, usize)>,
}

impl Checked {
    /// Floats of tensor data: the parameters and each optimizer buffer.
    fn floats(&self) -> usize {
        let buffers = self.optimizer.map_or(0, |(o, _)| o.buffers());
        self.spec.parameter_count() * (1 + buffers)
    }

    /// The bytes of tensor data: 4 per float.
    fn data_bytes(&self) -> u64 {
        self.floats() as u64 * 4
    }

    fn into_file(self, name: &str, mut params: Vec<f32>) -> Result<ModelFile> {
        let p = self.spec.parameter_count();
        let optimizer = match self.optimizer {
            Some((optimizer, step)) => {
                let layout = self.spec.layout();
                Some(optimizer::saved(
                    name,
                    optimizer,
                    step,
                    &params[p..],
                    &layout,
                )?)
            }
            None => None,
        };
        params.truncate(p);
        Ok(ModelFile {
            optimizer,
            model: Model {
                spec: self.spec,
                features: self.features,
                standardization: self.stats.map(|s| Standardizer {
                    mean: s.mean,
                    std: s.std,
                }),
                label: self.label,
                params,
            },
            report: self.report,
        })
    }
}

/// Reads the tensor data, in file order, into the parameters; refuses non-finite values.
fn read_params(name: &str, checked: &Checked, src: &mut impl Read) -> Result<Vec<f32>> {
    let mut params = vec![0.0f32; checked.floats()];
    let data = checked.data_bytes();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    for (_, tname, off, len) in &checked.tensors {
        let dst = &mut params[*off..off + len];
        for part in dst.chunks_mut(buf.len() / 4) {
            let bytes = &mut buf[..part.len() * 4];
            let got = read_full(src, bytes)
                .map_err(|e| Error::data(name, format!("reading failed: {e}")))?;
            done += got as u64;
            if got < bytes.len() {
                return Err(not_readable(
                    name,
                    format!(
                        "the file ends {done} bytes into the {data} bytes of tensor data the \
                         header states"
                    ),
                ));
            }
            for (d, c) in part.iter_mut().zip(bytes.chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        if let Some(k) = dst.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                name,
                format!(
                    "tensor \"{tname}\" holds a non-finite value ({}) at element {k}",
                    dst[k]
                ),
            ));
        }
    }
    Ok(params)
}

/// Parses and checks a model file's bytes; `name` is used in error messages.
pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<ModelFile> {
    SafeTensors::deserialize(bytes).map_err(|e| not_readable(name, e))?;
    // Deserialized, so the header length and JSON are sound.
    let (n, _) = SafeTensors::read_metadata(bytes).map_err(|e| not_readable(name, e))?;
    let json = bytes.get(8..8 + n).unwrap_or_default();
    let header = parse_header(json).map_err(|e| not_readable(name, e))?;
    let checked = check_header(name, &header)?;
    let mut data = bytes.get(8 + n..).unwrap_or_default();
    let params = read_params(name, &checked, &mut data)?;
    checked.into_file(name, params)
}

/// Checks a header against the architecture its metadata states: every metadata key, then
/// the tensors (exactly the architecture's, F32, of its shapes, contiguous from byte 0).
fn check_header(name: &str, header: &Header) -> Result<Checked> {
    let bad = |msg: String| Error::data(name, msg);
    let meta = header.metadata.as_ref().ok_or_else(|| {
        bad(format!(
            "the file has no metadata; a wgtrain model file holds {ARCHITECTURE}, {FEATURES}, \
             {STANDARDIZATION} and {LABEL}"
        ))
    })?;
    let text = |key: &str| -> Result<&str> {
        meta.get(key).map(String::as_str).ok_or_else(|| {
            bad(format!(
                "the metadata has no key \"{key}\"; is it a wgtrain model saved with --save?"
            ))
        })
    };
    fn parse<T: for<'de> Deserialize<'de>>(
        bad: &dyn Fn(String) -> Error,
        key: &str,
        text: &str,
    ) -> Result<T> {
        serde_json::from_str(text).map_err(|e| bad(format!("metadata \"{key}\" is not valid: {e}")))
    }

    let arch: Architecture = parse(&bad, ARCHITECTURE, text(ARCHITECTURE)?)?;
    let layers = &arch.layers;
    let shown = model::layers_text(layers);
    let invalid_arch = |why: &str| {
        bad(format!(
            "metadata \"{ARCHITECTURE}\" is not valid: layers {shown}: {why}"
        ))
    };
    if layers.len() < 2 {
        return Err(invalid_arch("needs at least the inputs and the output"));
    }
    if layers.contains(&0) {
        return Err(invalid_arch("every layer needs at least one unit"));
    }
    // The label decides the head: positive/negative a sigmoid, a class list softmax.
    let (label, head) = match parse(&bad, LABEL, text(LABEL)?)? {
        LabelJson::Binary {
            column,
            positive,
            negative,
        } => {
            if crate::data::same_label(&positive, &negative) {
                return Err(bad(format!(
                    "metadata \"{LABEL}\" has the same value for both classes: positive \"{positive}\", \
                     negative \"{negative}\""
                )));
            }
            (
                LabelMapping::binary(&column, &negative, &positive),
                Head::Sigmoid,
            )
        }
        LabelJson::Classes { column, classes } => {
            if !(2..=MAX_CLASSES).contains(&classes.len()) {
                return Err(bad(format!(
                    "metadata \"{LABEL}\" lists {} classes; a model has 2 to {MAX_CLASSES}",
                    classes.len()
                )));
            }
            for (i, a) in classes.iter().enumerate() {
                if let Some(b) = classes[..i].iter().find(|b| crate::data::same_label(a, b)) {
                    return Err(bad(format!(
                        "metadata \"{LABEL}\" lists the class \"{a}\" twice (as \"{b}\")"
                    )));
                }
            }
            (LabelMapping { column, classes }, Head::Softmax)
        }
    };
    let outputs = head.outputs(label.k());
    if layers[layers.len() - 1] != outputs {
        return Err(invalid_arch(&match head {
            Head::Sigmoid => "the output layer has one unit".to_string(),
            Head::Softmax => {
                format!("the output layer has one unit per class of \"{LABEL}\" ({outputs})")
            }
        }));
    }
    let dense = layers.len() - 1;
    if dense > header.tensors.len() {
        // More layers than tensors: name the first missing one, sizing nothing by the layers.
        let missing = (0..dense)
            .flat_map(|i| {
                let (w, b) = tensor_names(i);
                [w, b]
            })
            .find(|n| !header.tensors.contains_key(n))
            .unwrap_or_default();
        return Err(bad(format!(
            "tensor \"{missing}\" is missing; the architecture {shown} has {dense} dense layers \
             of two tensors each, the file {} tensors",
            header.tensors.len()
        )));
    }
    let activation = match (&arch.activation, layers.len()) {
        (None, 2) => Activation::Relu, // unused by logistic regression
        (Some(a), 2) => {
            return Err(bad(format!(
                "metadata \"{ARCHITECTURE}\" is not valid: layers {shown} are logistic \
                 regression, which has no activation, but the file gives \"{a}\" (null expected)"
            )));
        }
        (None, _) => {
            return Err(bad(format!(
                "metadata \"{ARCHITECTURE}\" is not valid: hidden layers need an activation"
            )));
        }
        (Some(a), _) => [Activation::Relu, Activation::Tanh, Activation::Sigmoid]
            .into_iter()
            .find(|x| x.name() == a)
            .ok_or_else(|| {
                bad(format!(
                    "metadata \"{ARCHITECTURE}\" is not valid: unknown activation \"{a}\" (relu, tanh or sigmoid)"
                ))
            })?,
    };
    // Checked arithmetic: nothing below is sized from the layers before this.
    model::check_parameters(layers)
        .map_err(|e| bad(format!("metadata \"{ARCHITECTURE}\" is not valid: {e}")))?;
    let spec = ModelSpec::with_head(
        layers[0],
        &layers[1..layers.len() - 1],
        activation,
        head,
        label.k(),
    )
    .map_err(|e| bad(format!("metadata \"{ARCHITECTURE}\" is not valid: {e}")))?;

    let features: Vec<String> = parse(&bad, FEATURES, text(FEATURES)?)?;
    if features.len() != layers[0] {
        return Err(bad(format!(
            "metadata \"{FEATURES}\" names {} features; the architecture has {} inputs",
            features.len(),
            layers[0]
        )));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = features.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(bad(format!(
            "metadata \"{FEATURES}\" names \"{dup}\" twice"
        )));
    }

    let stats: Option<Stats> = parse(&bad, STANDARDIZATION, text(STANDARDIZATION)?)?;
    if let Some(s) = &stats {
        if s.mean.len() != features.len() || s.std.len() != features.len() {
            return Err(bad(format!(
                "metadata \"{STANDARDIZATION}\" has {} means and {} standard deviations for {} features",
                s.mean.len(),
                s.std.len(),
                features.len()
            )));
        }
        if let Some(j) = (0..features.len()).find(|&j| !usable_stats(s.mean[j], s.std[j])) {
            return Err(bad(format!(
                "metadata \"{STANDARDIZATION}\": feature \"{}\" has mean {:?} and std {:?}; \
                 f32 training data gives a mean finite in f32 (at most {:e} in size) and a std \
                 from {MIN_STD:e} to {:e}",
                features[j],
                s.mean[j],
                s.std[j],
                f32::MAX,
                f32::MAX
            )));
        }
    }

    if features.contains(&label.column) {
        return Err(bad(format!(
            "metadata \"{LABEL}\": the label column \"{}\" is also a feature in \"{FEATURES}\"",
            label.column
        )));
    }
    let report = match meta.get(REPORT) {
        Some(t) => Some(parse::<serde_json::Value>(&bad, REPORT, t)?),
        None => None,
    };

    let optimizer = match meta.get(OPTIMIZER) {
        Some(t) => {
            let m: optimizer::Meta = parse(&bad, OPTIMIZER, t)?;
            Some(
                m.checked()
                    .map_err(|e| bad(format!("metadata \"{OPTIMIZER}\" is not valid: {e}")))?,
            )
        }
        None => None,
    };

    // The tensors: exactly the architecture's and the optimizer state's, f32, of their
    // shapes.
    let layout = spec.layout();
    let mut wanted = Vec::new();
    for (i, l) in layout.iter().enumerate() {
        let (w, b) = tensor_names(i);
        wanted.push((w, vec![l.outputs, l.inputs], l.w_off));
        wanted.push((b, vec![l.outputs], l.b_off));
    }
    if let Some((o, _)) = &optimizer {
        wanted.extend(optimizer::tensors(&layout, spec.parameter_count(), o));
    }
    let expected: BTreeSet<String> = wanted.iter().map(|w| w.0.clone()).collect();
    let listed = || expected.iter().cloned().collect::<Vec<_>>().join(", ");
    if let Some(extra) = header.tensors.keys().find(|n| !expected.contains(*n)) {
        return Err(bad(format!(
            "unexpected tensor \"{extra}\"; the architecture {shown} has the tensors {}",
            listed()
        )));
    }
    // Every tensor's dtype, shape and byte range, before anything is allocated.
    let mut tensors = Vec::new();
    {
        for (tname, shape, off) in wanted {
            let t = header.tensors.get(&tname).ok_or_else(|| {
                bad(format!(
                    "tensor \"{tname}\" is missing; the architecture {shown} has the tensors {}",
                    listed()
                ))
            })?;
            if t.dtype != "F32" {
                return Err(bad(format!(
                    "tensor \"{tname}\" holds {:?}; expected F32",
                    t.dtype
                )));
            }
            if t.shape != shape {
                return Err(bad(format!(
                    "tensor \"{tname}\" has shape {:?}; the architecture {shown} needs {shape:?}",
                    t.shape
                )));
            }
            // Within the parameter count, so no overflow.
            let len = shape.iter().product::<usize>();
            let (start, end) = t.offsets;
            if end.checked_sub(start) != Some(len as u64 * 4) {
                return Err(bad(format!(
                    "tensor \"{tname}\" has data_offsets [{start}, {end}]; its shape \
                     {shape:?} of F32 takes {} bytes",
                    len as u64 * 4
                )));
            }
            tensors.push((start, tname, off, len));
        }
    }
    tensors.sort_unstable();
    let mut at = 0u64;
    for (start, tname, _, len) in &tensors {
        if *start != at {
            return Err(bad(format!(
                "tensor \"{tname}\" starts at byte {start} of the tensor data; the tensors lie \
                 one after another from byte 0, so byte {at} was expected"
            )));
        }
        at += *len as u64 * 4;
    }
    Ok(Checked {
        spec,
        features,
        stats,
        label,
        report,
        optimizer,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(hidden: &[usize]) -> Model {
        // Logistic regression reads back with the (unused) activation relu.
        let act = if hidden.is_empty() {
            Activation::Relu
        } else {
            Activation::Tanh
        };
        let spec = ModelSpec::new(3, hidden, act).unwrap();
        let params: Vec<f32> = (0..spec.parameter_count())
            .map(|i| i as f32 * 0.25 - 1.0)
            .collect();
        Model {
            spec,
            features: vec!["a".into(), "b".into(), "c".into()],
            standardization: Some(file_standardization(&Standardizer {
                mean: vec![0.1, 0.2, 0.3],
                std: vec![1.5, 0.0, 2.5],
            })),
            label: LabelMapping::binary("y", "B", "M"),
            params,
        }
    }

    fn adam_state(m: &Model, kind: crate::optim::OptimizerKind) -> SavedOptimizer {
        let optimizer = crate::optim::Optimizer {
            kind,
            momentum: if kind == crate::optim::OptimizerKind::Sgd {
                0.9
            } else {
                0.0
            },
            ..Default::default()
        };
        let p = m.params.len();
        let buffers = (0..optimizer.buffers())
            .map(|b| (0..p).map(|i| (b * p + i) as f32 * 0.5).collect())
            .collect();
        SavedOptimizer {
            optimizer,
            state: crate::optim::OptState { step: 37, buffers },
        }
    }

    #[test]
    fn optimizer_state_round_trips_and_is_checked() {
        use crate::optim::OptimizerKind::*;
        for (hidden, kind) in [(&[][..], Adam), (&[4, 2][..], Adamw), (&[4][..], Sgd)] {
            let m = model(hidden);
            let saved = adam_state(&m, kind);
            let bytes = to_bytes_full(&m, Some(&saved), None, false).unwrap();
            let back = from_bytes("m", &bytes).unwrap();
            assert_eq!(back.model, m);
            assert_eq!(back.optimizer.as_ref(), Some(&saved), "{kind:?}");
        }
        // Plain SGD keeps only its step count.
        let m = model(&[3]);
        let plain = SavedOptimizer {
            optimizer: Default::default(),
            state: crate::optim::OptState {
                step: 5,
                buffers: vec![],
            },
        };
        let back = from_bytes("m", &to_bytes_full(&m, Some(&plain), None, false).unwrap()).unwrap();
        assert_eq!(back.optimizer, Some(plain));
        assert!(
            from_bytes("m", &to_bytes(&m, None).unwrap())
                .unwrap()
                .optimizer
                .is_none()
        );
        // A state of the wrong length is refused when writing.
        let mut short = adam_state(&m, Adam);
        short.state.buffers[1].pop();
        assert!(to_bytes_full(&m, Some(&short), None, false).is_err());
    }

    /// The file of `m` with its Adam state, the metadata `wgtrain.optimizer` replaced by
    /// `meta` (removed if `None`) and the tensors whose names contain `drop` left out.
    fn edited(m: &Model, meta: Option<&str>, drop: &str) -> Vec<u8> {
        let bytes = to_bytes_full(
            m,
            Some(&adam_state(m, crate::optim::OptimizerKind::Adam)),
            None,
            false,
        )
        .unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut md: HashMap<String, String> = header.metadata().clone().unwrap();
        match meta {
            Some(t) => md.insert(OPTIMIZER.into(), t.into()),
            None => md.remove(OPTIMIZER),
        };
        let views: Vec<_> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| drop.is_empty() || !n.contains(drop))
            .collect();
        safetensors::serialize(views, Some(md)).unwrap()
    }

    #[test]
    fn bad_optimizer_state_is_named() {
        let m = model(&[4]);
        let err = |b: Vec<u8>| from_bytes("m.st", &b).unwrap_err().to_string();
        let e = err(edited(&m, None, ""));
        assert!(e.starts_with("m.st: "), "{e}");
        assert!(
            e.contains("unexpected tensor \"optimizer.layers.0.bias.exp_avg\""),
            "{e}"
        );
        let e = err(edited(&m, Some("{}"), ""));
        assert!(
            e.contains("metadata \"wgtrain.optimizer\" is not valid"),
            "{e}"
        );
        let text = r#"{"optimizer":"lion","step":1,"momentum":0,"nesterov":false,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0}"#;
        let e = err(edited(&m, Some(text), ""));
        assert!(e.contains("unknown optimizer \"lion\""), "{e}");
        let e = err(edited(
            &m,
            Some(&text.replace("lion", "adam").replace("0.999", "1.5")),
            "",
        ));
        assert!(e.contains("a beta is not below 1"), "{e}");
        let e = err(edited(
            &m,
            Some(&text.replace("lion", "adam")),
            "layers.1.weight.exp_avg_sq",
        ));
        assert!(
            e.contains("tensor \"optimizer.layers.1.weight.exp_avg_sq\" is missing"),
            "{e}"
        );
        let huge = text
            .replace("lion", "adam")
            .replace("\"step\":1", "\"step\":18446744073709551615");
        let e = err(edited(&m, Some(&huge), ""));
        assert!(e.contains("more updates than an optimizer counts"), "{e}");
        let mut negative = adam_state(&m, crate::optim::OptimizerKind::Adam);
        negative.state.buffers[1][7] = -1.0;
        let e = err(to_bytes_full(&m, Some(&negative), None, false).unwrap());
        // Parameter 7 of the 3 → 4 → 1 model: layer 0's weights [4, 3] (its bias at 12).
        let want = "\"optimizer.layers.0.weight.exp_avg_sq\" holds a negative second moment (-1) at element 7";
        assert!(e.contains(want), "{e}");
        let mut nan = negative.clone();
        nan.state.buffers[0][0] = f32::NAN;
        assert!(to_bytes_full(&m, Some(&nan), None, false).is_err());
        let mut weights = m.clone();
        weights.params[0] = f32::INFINITY;
        assert!(to_bytes_full(&weights, None, None, false).is_err());
    }

    #[test]
    fn round_trip_keeps_everything() {
        for hidden in [&[][..], &[4, 2][..]] {
            let m = model(hidden);
            let back = from_bytes("m", &to_bytes(&m, None).unwrap()).unwrap();
            assert_eq!(back.model, m);
            assert!(back.report.is_none());
        }
        assert_eq!(model(&[]).standardization.unwrap().std, vec![1.5, 1.0, 2.5]);
    }

    #[test]
    fn tensors_are_named_and_shaped_per_layer() {
        let m = model(&[4]);
        let bytes = to_bytes(&m, None).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "layers.0.bias",
                "layers.0.weight",
                "layers.1.bias",
                "layers.1.weight"
            ]
        );
        assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), [4, 3]);
        assert_eq!(st.tensor("layers.1.bias").unwrap().shape(), [1]);
        let w0 = st.tensor("layers.0.weight").unwrap();
        assert_eq!(&w0.data()[..4], &(-1.0f32).to_le_bytes());
    }

    #[test]
    fn bad_files_are_named_and_explained() {
        let m = model(&[4]);
        let good = to_bytes(&m, None).unwrap();
        let e = from_bytes("m.st", &good[..good.len() - 3]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.st: not a readable safetensors file"),
            "{e}"
        );
        let e = from_bytes("m.st", b"hello").unwrap_err();
        assert!(e.to_string().contains("m.st: not a readable"), "{e}");

        // Tensors that do not match the architecture.
        let other = to_bytes(&model(&[5]), None).unwrap();
        let st = SafeTensors::deserialize(&other).unwrap();
        let (_, h) = SafeTensors::read_metadata(&good).unwrap();
        let mut meta = h.metadata().clone().unwrap();
        let views: Vec<_> = st.tensors();
        let mixed = safetensors::serialize(views.clone(), Some(meta.clone())).unwrap();
        let e = from_bytes("m.st", &mixed).unwrap_err();
        assert!(e.to_string().contains("has shape [5, 3]"), "{e}");
        let fewer: Vec<_> = views
            .iter()
            .filter(|(n, _)| n != "layers.1.bias")
            .cloned()
            .collect();
        meta.insert(
            ARCHITECTURE.into(),
            r#"{"layers":[3,5,1],"activation":"tanh"}"#.into(),
        );
        let e = from_bytes(
            "m.st",
            &safetensors::serialize(fewer, Some(meta.clone())).unwrap(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("tensor \"layers.1.bias\" is missing"),
            "{e}"
        );

        // Bad metadata.
        for (key, value, needle) in [
            (FEATURES, r#"["a","b"]"#, "names 2 features"),
            (FEATURES, "[1,2,3]", "\"wgtrain.features\" is not valid"),
            (
                ARCHITECTURE,
                r#"{"layers":[3,5,1],"activation":"gelu"}"#,
                "unknown activation",
            ),
            (
                STANDARDIZATION,
                r#"{"mean":[0,0,0],"std":[1,0,1]}"#,
                "feature \"b\"",
            ),
            (
                LABEL,
                r#"{"column":"y","positive":"1","negative":"1"}"#,
                "same value",
            ),
            (REPORT, "{", "\"wgtrain.report\" is not valid"),
        ] {
            let mut meta = meta.clone();
            meta.insert(key.into(), value.into());
            let bytes = safetensors::serialize(views.clone(), Some(meta)).unwrap();
            let e = from_bytes("m.st", &bytes).unwrap_err().to_string();
            assert!(e.starts_with("m.st: ") && e.contains(needle), "{key}: {e}");
        }
        let mut no_label = meta.clone();
        no_label.remove(LABEL);
        let bytes = safetensors::serialize(views.clone(), Some(no_label)).unwrap();
        let e = from_bytes("m.st", &bytes).unwrap_err().to_string();
        assert!(e.contains("no key \"wgtrain.label\""), "{e}");
        let bytes = safetensors::serialize(views, None).unwrap();
        let e = from_bytes("m.st", &bytes).unwrap_err().to_string();
        assert!(e.contains("has no metadata"), "{e}");
    }

    /// The file of `model(&[4])` with metadata `key` set to `value`.
    fn with_meta(key: &str, value: &str) -> Vec<u8> {
        let good = to_bytes(&model(&[4]), None).unwrap();
        let st = SafeTensors::deserialize(&good).unwrap();
        let (_, h) = SafeTensors::read_metadata(&good).unwrap();
        let mut meta = h.metadata().clone().unwrap();
        meta.insert(key.into(), value.into());
        safetensors::serialize(st.tensors(), Some(meta)).unwrap()
    }

    #[test]
    fn huge_architectures_are_refused_before_allocating() {
        for (layers, needle) in [
            (
                "[3,1000000000000,1]",
                "the model [3, 1000000000000, 1] has 5,000,000,000,001 parameters (18.2 TiB as f32), more than ",
            ),
            (
                "[3,18446744073709551615,1]",
                "has over 18,446,744,073,709,551,615 parameters (over 16 EiB as f32)",
            ),
            (
                "[3,4294967296,4294967296,1]",
                "parameters (over 16 EiB as f32)",
            ),
        ] {
            let arch = format!(r#"{{"layers":{layers},"activation":"tanh"}}"#);
            let e = from_bytes("m.st", &with_meta(ARCHITECTURE, &arch))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("m.st: metadata \"wgtrain.architecture\" is not valid: ")
                    && e.contains(needle),
                "{layers}: {e}"
            );
        }
        // Far more layers than tensors: nothing is sized by the layers, the message is short.
        let many = format!(
            r#"{{"layers":[3{}],"activation":"tanh"}}"#,
            ",1".repeat(100_000)
        );
        let e = from_bytes("m.st", &with_meta(ARCHITECTURE, &many))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "m.st: tensor \"layers.2.weight\" is missing; the architecture [3, 1, 1, 1, 1, 1, 1, \
             1, …, 1, 1] (100001 layers) has 100000 dense layers of two tensors each, the file 4 \
             tensors"
        );
        // Within memory but not the file's tensors: refused by shape, before allocating.
        let arch = r#"{"layers":[3,1000000,1],"activation":"tanh"}"#;
        let e = from_bytes("m.st", &with_meta(ARCHITECTURE, arch))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tensor \"layers.0.weight\" has shape [4, 3]; the architecture [3, 1000000, 1] needs [1000000, 3]"),
            "{e}"
        );
    }

    fn limit(bytes: u64) -> memory::Limit {
        memory::Limit { bytes, known: true }
    }

    #[test]
    fn reading_trusts_no_size_in_the_file() {
        let good = to_bytes(&model(&[4]), None).unwrap();
        let n = good.len() as u64;
        let read = |b: &[u8], size: Option<u64>, l: u64| {
            read_model("m.st", b, size, limit(l)).map_err(|e| e.to_string())
        };
        let back = from_bytes("m.st", &good).unwrap().model;
        assert_eq!(read(&good, Some(n), 1 << 30).unwrap().model, back);
        assert_eq!(read(&good, None, 1 << 30).unwrap().model, back);
        // Endless zeros or noise from a stream: refused after at most 9 bytes.
        let e = read_model(
            "--model /dev/zero",
            std::io::repeat(0),
            None,
            limit(1 << 30),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--model /dev/zero: not a readable safetensors file (the header's 0 bytes do not start a JSON object)"),
            "{e}"
        );
        let e = read_model("r", std::io::repeat(0xAB), None, limit(1 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("more than the 100.0 MiB a header may take"),
            "{e}"
        );
        let e = read(b"\x04\0\0\0\0\0\0\0abcd", None, 1 << 30).unwrap_err();
        assert!(
            e.contains("the header's 4 bytes do not start a JSON object"),
            "{e}"
        );
        // A header length past the file.
        let mut long = good.clone();
        long[..8].copy_from_slice(&(n - 4).to_le_bytes());
        let e = read(&long, Some(n), 1 << 30).unwrap_err();
        assert!(e.contains("but only"), "{e}");
        // Tensor data that the file does not hold, or the machine could not.
        let e = read(&good, Some(n + 1), 1 << 30).unwrap_err();
        assert!(e.contains("the file holds"), "{e}");
        let e = read(&good[..good.len() - 4], None, 1 << 30).unwrap_err();
        assert!(
            e.contains("the file ends 80 bytes into the 84 bytes"),
            "{e}"
        );
        let e = read(&good, None, n - 1).unwrap_err();
        assert!(
            e.starts_with("m.st: the model file's header states")
                && e.contains("more than this machine's"),
            "{e}"
        );
        let mut more = good.clone();
        more.push(0);
        let e = read(&more, None, 1 << 30).unwrap_err();
        assert!(e.contains("more bytes follow"), "{e}");
        let e = read(b"\x05\0\0\0\0\0\0\0{abcd", None, 1 << 30).unwrap_err();
        assert!(e.contains("invalid JSON in the header"), "{e}");
    }

    /// The header of `model(&[4])`'s file with `edit` applied to its JSON; no tensor data.
    fn edited_header(
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Vec<u8> {
        let good = to_bytes(&model(&[4]), None).unwrap();
        let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&good[8..8 + n]).unwrap();
        edit(&mut map);
        let json = serde_json::to_vec(&map).unwrap();
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&json);
        out
    }

    /// A reader that fails once more than `left` bytes are asked of it.
    struct Guard<R> {
        inner: R,
        left: u64,
    }

    impl<R: Read> Read for Guard<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other(
                    "read past the tensors the model needs",
                ));
            }
            let k = buf.len().min(self.left as usize);
            let got = self.inner.read(&mut buf[..k])?;
            self.left -= got as u64;
            Ok(got)
        }
    }

    #[test]
    fn tensors_are_checked_on_the_header_before_any_data_is_read() {
        const GIB6: u64 = 6 << 30;
        let junk = edited_header(|m| {
            m.insert(
                "junk".into(),
                serde_json::json!({"dtype": "F32", "shape": [GIB6 / 4], "data_offsets": [84, 84 + GIB6]}),
            );
        });
        assert!(junk.len() < 4096);
        let total = junk.len() as u64 + 84 + GIB6;
        // As a (sparse) file of that size, and as a stream that would go on: nothing past the
        // header is read.
        for size in [Some(total), None] {
            let src = Guard {
                inner: std::io::Read::chain(&junk[..], std::io::repeat(0)),
                left: junk.len() as u64,
            };
            let e = read_model("m.st", src, size, limit(1 << 40))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(
                    "m.st: unexpected tensor \"junk\"; the architecture [3, 4, 1] has the tensors "
                ),
                "{size:?}: {e}"
            );
        }
        // Offsets that are not the shape's bytes, or not contiguous from 0; other dtypes.
        type Edit = fn(&mut serde_json::Value);
        let cases: [(Edit, &str); 4] = [
            (
                |t| t["data_offsets"] = serde_json::json!([0, u64::MAX]),
                "tensor \"layers.0.weight\" has data_offsets [0, 18446744073709551615]; its shape [4, 3] of F32 takes 48 bytes",
            ),
            (
                |t| t["data_offsets"] = serde_json::json!([0, -4]),
                "tensor \"layers.0.weight\" has no data_offsets",
            ),
            (
                |t| t["dtype"] = "F64".into(),
                "tensor \"layers.0.weight\" holds \"F64\"; expected F32",
            ),
            (
                |t| t["data_offsets"] = serde_json::json!([1000, 1048]),
                "of the tensor data; the tensors lie one after another from byte 0",
            ),
        ];
        for (edit, needle) in cases {
            let head = edited_header(|m| edit(m.get_mut("layers.0.weight").unwrap()));
            let src = Guard {
                inner: std::io::Read::chain(&head[..], std::io::repeat(0)),
                left: head.len() as u64,
            };
            let e = read_model("m.st", src, None, limit(1 << 40))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("m.st: ") && e.contains(needle), "{e}");
        }
        // A good file reads exactly its bytes.
        let good = to_bytes(&model(&[4]), None).unwrap();
        let src = Guard {
            inner: std::io::Read::chain(&good[..], std::io::repeat(0)),
            left: good.len() as u64,
        };
        assert!(read_model("m.st", src, Some(good.len() as u64), limit(1 << 40)).is_ok());
    }

    #[test]
    fn meaningless_metadata_is_refused() {
        for (key, value, needle) in [
            (
                LABEL,
                r#"{"column":"y","positive":"1","negative":"1.0"}"#,
                "the same value for both classes: positive \"1\", negative \"1.0\"",
            ),
            (
                LABEL,
                r#"{"column":"b","positive":"M","negative":"B"}"#,
                "the label column \"b\" is also a feature",
            ),
        ] {
            let e = from_bytes("m.st", &with_meta(key, value))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("m.st: ") && e.contains(needle), "{e}");
        }
        let logistic = to_bytes(&model(&[]), None).unwrap();
        let st = SafeTensors::deserialize(&logistic).unwrap();
        let (_, h) = SafeTensors::read_metadata(&logistic).unwrap();
        let mut meta = h.metadata().clone().unwrap();
        meta.insert(
            ARCHITECTURE.into(),
            r#"{"layers":[3,1],"activation":"tanh"}"#.into(),
        );
        meta.insert("wgtrain.future".into(), "anything".into());
        let bytes = safetensors::serialize(st.tensors(), Some(meta.clone())).unwrap();
        let e = from_bytes("m.st", &bytes).unwrap_err().to_string();
        assert!(
            e.starts_with("m.st: metadata \"wgtrain.architecture\" is not valid: layers [3, 1] are logistic regression, which has no activation, but the file gives \"tanh\""),
            "{e}"
        );
        // Unknown keys are ignored.
        meta.insert(
            ARCHITECTURE.into(),
            r#"{"layers":[3,1],"activation":null}"#.into(),
        );
        let bytes = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
        assert!(from_bytes("m.st", &bytes).is_ok());
    }

    #[test]
    fn standardization_unusable_in_f32_is_refused() {
        for stats in [
            r#"{"mean":[0,0,0],"std":[1,1e-300,1]}"#,
            r#"{"mean":[0,1e300,0],"std":[1,1,1]}"#,
            r#"{"mean":[0,0,0],"std":[1,-2,1]}"#,
            r#"{"mean":[0,0,0],"std":[1,0,1]}"#,
            r#"{"mean":[0,0,0],"std":[1,1e39,1]}"#,
        ] {
            let e = from_bytes("m.st", &with_meta(STANDARDIZATION, stats))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(
                    "m.st: metadata \"wgtrain.standardization\": feature \"b\" has mean "
                ),
                "{stats}: {e}"
            );
        }
        // NaN is not JSON: refused as such.
        let e = from_bytes(
            "m.st",
            &with_meta(STANDARDIZATION, r#"{"mean":[0,NaN,0],"std":[1,1,1]}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("m.st: metadata \"wgtrain.standardization\" is not valid"),
            "{e}"
        );
        // What f32 data can give is kept: a tiny but real spread, values near f32's limit.
        assert!(
            usable_stats(3e38, 3.4e38) && usable_stats(0.0, 7e-46) && usable_stats(-1.0, 1e-59)
        );
        assert!(!usable_stats(f64::NAN, 1.0) && !usable_stats(0.0, f64::INFINITY));
    }
}
