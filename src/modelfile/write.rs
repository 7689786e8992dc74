//! A model file's bytes: the tensors and the metadata, serialized with the header's keys
//! sorted so the same model gives the same bytes (`train --save` writes them).

use serde::Serialize;

use super::*;
use crate::error::{Error, Result};
use crate::report::Report;

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("metadata always serializes")
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The file's bytes, the report (if any) without its timings.
pub fn to_bytes(model: &Model, report: Option<&Report>) -> Result<Vec<u8>> {
    to_bytes_with(model, report, false)
}

/// The report as the file keeps it: the `--json` report, less `timing` unless `timings`.
pub fn report_metadata(report: &Report, timings: bool) -> String {
    let mut v = serde_json::to_value(report).expect("a report always serializes");
    if !timings {
        if let Some(o) = v.as_object_mut() {
            o.remove("timing");
        }
    }
    json(&v)
}

/// The file's bytes; `timings`: keep the report's `timing` (which differs run to run).
pub fn to_bytes_with(model: &Model, report: Option<&Report>, timings: bool) -> Result<Vec<u8>> {
    to_bytes_full(model, None, report, timings)
}

/// The file's bytes with further metadata entries (key, JSON text), no report and no
/// optimizer state.
pub fn to_bytes_extra(model: &Model, extra: &[(&str, String)]) -> Result<Vec<u8>> {
    to_bytes_meta(model, None, None, false, extra)
}

/// The file's bytes with the optimizer state, if any.
pub fn to_bytes_full(
    model: &Model,
    opt: Option<&SavedOptimizer>,
    report: Option<&Report>,
    timings: bool,
) -> Result<Vec<u8>> {
    to_bytes_meta(model, opt, report, timings, &[])
}

fn to_bytes_meta(
    model: &Model,
    opt: Option<&SavedOptimizer>,
    report: Option<&Report>,
    timings: bool,
    extra: &[(&str, String)],
) -> Result<Vec<u8>> {
    let p = model.spec.parameter_count();
    if opt.is_some_and(|o| {
        o.state.buffers.len() != o.optimizer.buffers()
            || o.state.buffers.iter().any(|b| b.len() != p)
    }) {
        return Err(Error::Config(
            "the optimizer state does not match the model's architecture".into(),
        ));
    }
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !finite(&model.params) || opt.is_some_and(|o| !o.state.buffers.iter().all(|b| finite(b))) {
        return Err(Error::Config(
            "the weights or the optimizer state hold a non-finite value; a model file holds \
             finite numbers only"
                .into(),
        ));
    }
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
        json(&model.label.json(model.spec.head == Head::Softmax)),
    );
    if let Some(r) = report {
        meta.insert(REPORT.to_string(), report_metadata(r, timings));
    }
    if let Some(o) = opt {
        meta.insert(OPTIMIZER.to_string(), json(&optimizer::Meta::of(o)));
    }
    for (key, value) in extra {
        meta.insert(key.to_string(), value.clone());
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
    if let Some(o) = opt {
        for (name, shape, off) in optimizer::tensors(&model.spec.layout(), p, &o.optimizer) {
            let len: usize = shape.iter().product();
            let b = off / p - 1;
            let at = off % p;
            tensors.push((name, (shape, le_bytes(&o.state.buffers[b][at..at + len]))));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, (shape, data))| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("building the model file: {e}")))?;
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Config(format!("building the model file: {e}")))?;
    sorted_header(bytes)
}

/// The file with its header's JSON written again in sorted key order (the metadata comes
/// from a hash map, whose order differs run to run), padded with spaces to a multiple of 8
/// bytes as safetensors writes it; the tensor data is untouched.
fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = || Error::Config("building the model file: a malformed header".into());
    let n = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)?;
    let end = n
        .checked_add(8)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(bad)?;
    let header: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|_| bad())?;
    // serde_json's own maps may keep insertion order; sort every level explicitly.
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(o) => {
                let mut keys: Vec<(String, serde_json::Value)> =
                    o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(keys.into_iter().collect())
            }
            other => other,
        }
    }
    let header: std::collections::BTreeMap<String, serde_json::Value> =
        header.into_iter().map(|(k, v)| (k, sorted(v))).collect();
    let mut text = json(&header).into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}
