//! A safetensors header's JSON parsed into its tensors' entries and its metadata, before
//! any check of what they say.

use std::collections::HashMap;

/// One tensor as the header lists it.
pub(super) struct Entry {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub offsets: (u64, u64),
}

/// A safetensors header's JSON, parsed but not yet checked.
pub(super) struct Header {
    pub tensors: std::collections::BTreeMap<String, Entry>,
    pub metadata: Option<HashMap<String, String>>,
}

/// Parses a header's JSON: each tensor's dtype, shape and `data_offsets`, and the metadata.
pub(super) fn parse_header(json: &[u8]) -> std::result::Result<Header, String> {
    let map: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| format!("invalid JSON in the header: {e}"))?;
    let mut tensors = std::collections::BTreeMap::new();
    let mut metadata = None;
    for (key, v) in map {
        if key == "__metadata__" {
            metadata = serde_json::from_value(v)
                .map_err(|e| format!("the header's __metadata__ is not a map of strings: {e}"))?;
            continue;
        }
        let offsets = v
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| match o.as_slice() {
                [a, b] => Some((a.as_u64()?, b.as_u64()?)),
                _ => None,
            })
            .ok_or_else(|| {
                format!("tensor \"{key}\" has no data_offsets of two byte offsets [start, end]")
            })?;
        let dtype = v
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| format!("tensor \"{key}\" has no dtype"))?
            .to_string();
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| {
                s.iter()
                    .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("tensor \"{key}\" has no shape of dimensions"))?;
        tensors.insert(
            key,
            Entry {
                dtype,
                shape,
                offsets,
            },
        );
    }
    Ok(Header { tensors, metadata })
}
