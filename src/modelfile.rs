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
//! - `wgtrain.report`: the training report (optional when reading).
//!
//! A row's probability of the positive class: x' = (x − mean) / std; a = act(W a + b) for each
//! hidden layer; z = W a + b for the last; p = 1 / (1 + exp(−z)); positive iff z ≥ 0.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::data::{Dataset, LabelMapping, Standardizer};
use crate::error::{Error, Result};
use crate::model::{Activation, ModelSpec};
use crate::report::Report;

pub const ARCHITECTURE: &str = "wgtrain.architecture";
pub const FEATURES: &str = "wgtrain.features";
pub const STANDARDIZATION: &str = "wgtrain.standardization";
pub const LABEL: &str = "wgtrain.label";
pub const REPORT: &str = "wgtrain.report";

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

#[derive(Serialize, Deserialize)]
struct Label {
    column: String,
    positive: String,
    negative: String,
}

fn tensor_names(layer: usize) -> (String, String) {
    (
        format!("layers.{layer}.weight"),
        format!("layers.{layer}.bias"),
    )
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("metadata always serializes")
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The file's bytes.
pub fn to_bytes(model: &Model, report: Option<&Report>) -> Result<Vec<u8>> {
    if model.params.len() != model.spec.parameter_count()
        || model.features.len() != model.spec.layers[0]
    {
        return Err(Error::Config(
            "the weights and features do not match the model's architecture".into(),
        ));
    }
    let mut meta = HashMap::new();
    meta.insert(
        ARCHITECTURE.to_string(),
        json(&Architecture {
            layers: model.spec.layers.clone(),
            activation: model.activation().map(|a| a.name().to_string()),
        }),
    );
    meta.insert(FEATURES.to_string(), json(&model.features));
    meta.insert(
        STANDARDIZATION.to_string(),
        json(&model.standardization.as_ref().map(|s| Stats {
            mean: s.mean.clone(),
            std: s.std.clone(),
        })),
    );
    meta.insert(
        LABEL.to_string(),
        json(&Label {
            column: model.label.column.clone(),
            positive: model.label.positive.clone(),
            negative: model.label.negative.clone(),
        }),
    );
    if let Some(r) = report {
        meta.insert(REPORT.to_string(), json(r));
    }
    let mut tensors = Vec::new();
    for (i, l) in model.spec.layout().iter().enumerate() {
        let (w, b) = tensor_names(i);
        tensors.push((
            w,
            (
                vec![l.outputs, l.inputs],
                le_bytes(&model.params[l.w_off..l.b_off]),
            ),
        ));
        tensors.push((
            b,
            (
                vec![l.outputs],
                le_bytes(&model.params[l.b_off..l.b_off + l.outputs]),
            ),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, (shape, data))| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("building the model file: {e}")))?;
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Config(format!("building the model file: {e}")))
}

/// Writes the model file atomically (no half-written file, whatever happens).
pub fn save(path: &Path, model: &Model, report: Option<&Report>) -> Result<()> {
    atomic::write_atomic(path, &to_bytes(model, report)?)
}

/// Reads and checks a model file.
pub fn load(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).map_err(|err| Error::Io {
        path: path.to_path_buf(),
        err,
    })?;
    from_bytes(&path.display().to_string(), &bytes)
}

/// Parses and checks a model file's bytes; `name` is used in error messages.
pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<ModelFile> {
    let bad = |msg: String| Error::data(name, msg);
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        bad(format!(
            "not a readable safetensors file ({e}); is it a wgtrain model saved with --save?"
        ))
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    let meta = header.metadata().as_ref().ok_or_else(|| {
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
    let invalid_arch = |why: &str| {
        bad(format!(
            "metadata \"{ARCHITECTURE}\" is not valid: layers {layers:?}: {why}"
        ))
    };
    if layers.len() < 2 {
        return Err(invalid_arch("needs at least the inputs and the output"));
    }
    if layers.contains(&0) {
        return Err(invalid_arch("every layer needs at least one unit"));
    }
    if layers[layers.len() - 1] != 1 {
        return Err(invalid_arch("the output layer has one unit"));
    }
    let activation = match (&arch.activation, layers.len()) {
        (None, 2) => Activation::Relu, // unused by logistic regression
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
    let spec = ModelSpec::new(layers[0], &layers[1..layers.len() - 1], activation)
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
        if let Some(j) = (0..features.len())
            .find(|&j| !(s.mean[j].is_finite() && s.std[j].is_finite() && s.std[j] > 0.0))
        {
            return Err(bad(format!(
                "metadata \"{STANDARDIZATION}\": feature \"{}\" has mean {} and std {}; \
                 both must be finite and the std above 0",
                features[j], s.mean[j], s.std[j]
            )));
        }
    }

    let label: Label = parse(&bad, LABEL, text(LABEL)?)?;
    if label.positive == label.negative {
        return Err(bad(format!(
            "metadata \"{LABEL}\" has the same value \"{}\" for both classes",
            label.positive
        )));
    }
    let report = match meta.get(REPORT) {
        Some(t) => Some(parse::<serde_json::Value>(&bad, REPORT, t)?),
        None => None,
    };

    // The tensors: exactly the architecture's, f32, of its shapes.
    let layout = spec.layout();
    let mut expected = BTreeSet::new();
    for i in 0..layout.len() {
        let (w, b) = tensor_names(i);
        expected.insert(w);
        expected.insert(b);
    }
    let listed = || expected.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    if let Some(extra) = names.iter().find(|n| !expected.contains(**n)) {
        return Err(bad(format!(
            "unexpected tensor \"{extra}\"; the architecture {layers:?} has the tensors {}",
            listed()
        )));
    }
    let mut params = vec![0.0f32; spec.parameter_count()];
    for (i, l) in layout.iter().enumerate() {
        let (w, b) = tensor_names(i);
        for (tname, shape, off) in [
            (w, vec![l.outputs, l.inputs], l.w_off),
            (b, vec![l.outputs], l.b_off),
        ] {
            let t = st.tensor(&tname).map_err(|_| {
                bad(format!(
                    "tensor \"{tname}\" is missing; the architecture {layers:?} has the tensors {}",
                    listed()
                ))
            })?;
            if t.dtype() != Dtype::F32 {
                return Err(bad(format!(
                    "tensor \"{tname}\" holds {}; expected F32",
                    t.dtype()
                )));
            }
            if t.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor \"{tname}\" has shape {:?}; the architecture {layers:?} needs {shape:?}",
                    t.shape()
                )));
            }
            let dst = &mut params[off..off + shape.iter().product::<usize>()];
            for (d, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            if let Some(k) = dst.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor \"{tname}\" holds a non-finite value ({}) at element {k}",
                    dst[k]
                )));
            }
        }
    }
    Ok(ModelFile {
        model: Model {
            spec,
            features,
            standardization: stats.map(|s| Standardizer {
                mean: s.mean,
                std: s.std,
            }),
            label: LabelMapping {
                column: label.column,
                positive: label.positive,
                negative: label.negative,
            },
            params,
        },
        report,
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
            label: LabelMapping {
                column: "y".into(),
                positive: "M".into(),
                negative: "B".into(),
            },
            params,
        }
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
}
