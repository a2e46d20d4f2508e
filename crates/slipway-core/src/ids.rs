//! Identifier generation.

/// A new 32-hex-digit identifier, the form MLflow uses for run and model ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `s` looks like an id produced by [`new_id`] (32 lowercase hex digits).
pub fn is_hex_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
