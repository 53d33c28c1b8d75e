//! Validation messages of the site's forms: field name → messages, the shape every form
//! template reads (`errors.username`, `errors.form`).

use std::collections::BTreeMap;

/// Field → messages, every field present (templates index it without checks).
pub(crate) fn errors(fields: &[&str]) -> BTreeMap<String, Vec<String>> {
    fields
        .iter()
        .map(|f| ((*f).to_owned(), Vec::new()))
        .collect()
}

pub(crate) fn has_errors(errors: &BTreeMap<String, Vec<String>>) -> bool {
    errors.values().any(|v| !v.is_empty())
}

pub(crate) fn add(
    errors: &mut BTreeMap<String, Vec<String>>,
    field: &str,
    message: impl Into<String>,
) {
    errors
        .entry(field.to_owned())
        .or_default()
        .push(message.into());
}
