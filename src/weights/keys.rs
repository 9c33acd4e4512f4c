//! What a checkpoint must hold for a model: its keys and PyTorch shapes, and the check of a file's header
//! against them (run before any tensor data is read).

use crate::error::WeightsError;

/// How a module parameter appears in the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// mmdetection key.
    pub key: String,
    /// PyTorch shape of the tensor in the checkpoint.
    pub shape: Vec<usize>,
    /// The checkpoint holds the transpose of the module's 2-D parameter.
    pub transposed: bool,
}

/// Checks a checkpoint's keys and shapes (`found`) against the module's (`specs`): exactly the same keys, the
/// same shapes. Run on a file's header before its data is read, and again before loading.
pub(crate) fn check_keys<'a>(
    origin: &str,
    specs: &[KeySpec],
    found: impl IntoIterator<Item = (&'a str, &'a [usize])>,
) -> Result<(), WeightsError> {
    let found: std::collections::HashMap<&str, &[usize]> = found.into_iter().collect();
    let origin = origin.to_string();
    let missing: Vec<String> = specs.iter().filter(|s| !found.contains_key(s.key.as_str())).map(|s| s.key.clone()).collect();
    let mut unexpected: Vec<String> = {
        let wanted: std::collections::HashSet<&str> = specs.iter().map(|s| s.key.as_str()).collect();
        found.keys().filter(|k| !wanted.contains(*k)).map(|k| k.to_string()).collect()
    };
    unexpected.sort();
    let hint = depth_hint(&unexpected, &missing);
    if !unexpected.is_empty() {
        return Err(WeightsError::Unexpected { origin, count: unexpected.len(), keys: unexpected, hint });
    }
    if !missing.is_empty() {
        return Err(WeightsError::Missing { origin, count: missing.len(), keys: missing, hint });
    }
    for spec in specs {
        let shape = found[spec.key.as_str()];
        if shape != spec.shape.as_slice() {
            return Err(WeightsError::Shape { origin, key: spec.key.clone(), expected: spec.shape.clone(), found: shape.to_vec() });
        }
    }
    Ok(())
}

/// Names the likely cause when the only mismatch is the number of ResNet layer3 blocks (R-50 has 6, R-101 23).
fn depth_hint(unexpected: &[String], missing: &[String]) -> String {
    let in_layer3 = |keys: &[String]| !keys.is_empty() && keys.iter().all(|k| k.starts_with("backbone.layer3."));
    if in_layer3(unexpected) && missing.is_empty() {
        "; it has more backbone.layer3 blocks than the config: a ResNet-101 checkpoint for a ResNet-50 config?".into()
    } else if in_layer3(missing) && unexpected.is_empty() {
        "; it has fewer backbone.layer3 blocks than the config: a ResNet-50 checkpoint for a ResNet-101 config?".into()
    } else {
        String::new()
    }
}


/// A checkpoint key as mmdetection's `load_checkpoint` revises it: a DataParallel model's `module.` prefix
/// stripped.
pub(crate) fn canonical(key: &str) -> &str {
    key.strip_prefix("module.").unwrap_or(key)
}

/// `(key, shape)` pairs with their keys made [`canonical`], refusing a key that then appears twice.
pub(crate) fn canonical_keys<'a>(
    origin: &str,
    found: impl IntoIterator<Item = (&'a str, &'a [usize])>,
) -> Result<Vec<(&'a str, &'a [usize])>, WeightsError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (key, shape) in found {
        let key = canonical(key);
        if !seen.insert(key) {
            return Err(WeightsError::Corrupt { origin: origin.to_string(), message: format!("tensor `{key}` appears twice (with and without `module.`)") });
        }
        out.push((key, shape));
    }
    Ok(out)
}
