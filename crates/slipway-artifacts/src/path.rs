//! Client-supplied artifact paths, validated once.
//!
//! This module owns the rules that keep every operation inside the store's
//! root: an [`ArtifactPath`] can only be built by [`ArtifactPath::parse`], so
//! holding one proves the path is relative, has no `.`/`..`/empty segments, no
//! backslashes, control characters or encoded traversal, and does not touch
//! the reserved `.slipway*` namespace used for in-flight uploads.

use std::fmt;

use object_store::path::Path as ObjectPath;

use crate::error::ArtifactError;

/// Longest accepted path, in bytes of UTF-8 (S3's own key limit is 1024 bytes).
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest segment (file or directory name), in bytes: `NAME_MAX` of Linux file systems.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Segment prefix reserved for Slipway's own objects (temporary uploads live
/// under `.slipway-tmp/`). Client paths may not use it in any segment, and
/// listings never show entries that start with it.
pub const RESERVED_PREFIX: &str = ".slipway";

/// Percent-encodings that still being present after the HTTP layer decoded the
/// path means a double-encoded `.`, `/`, `\` or NUL: a traversal attempt.
const ENCODED_TRAVERSAL: [&str; 4] = ["%2e", "%2f", "%5c", "%00"];

/// A validated, relative artifact path such as `model/MLmodel`.
///
/// Segments are separated by `/`. The string form never starts or ends with
/// `/`. Construct with [`ArtifactPath::parse`] (or [`str::parse`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Parses a client-supplied path that the HTTP layer has already
    /// percent-decoded once.
    ///
    /// One trailing `/` is tolerated and dropped (`dir/` means `dir`). Rejects,
    /// with an [`ArtifactError::InvalidPath`] naming the path and the rule:
    /// empty paths; absolute paths (`/x`); Windows drive prefixes (`C:`);
    /// backslashes; `#` (as MLflow's `validate_path_is_safe`); NUL and other
    /// control characters; remaining `%2e`/`%2f`/`%5c`/`%00` encodings
    /// (double-encoded traversal); empty (`a//b`), `.` and `..` segments;
    /// segments starting with [`RESERVED_PREFIX`]; segments over
    /// [`MAX_SEGMENT_BYTES`] bytes (no file system stores a longer name);
    /// and paths over [`MAX_PATH_BYTES`] bytes.
    pub fn parse(raw: &str) -> Result<Self, ArtifactError> {
        let reject = |rule: &str| Err(ArtifactError::invalid_path(raw, rule));
        if raw.is_empty() {
            return reject("path is empty");
        }
        if raw.len() > MAX_PATH_BYTES {
            return reject("path is longer than 1024 bytes");
        }
        if raw.starts_with('/') {
            return reject("absolute paths are not allowed");
        }
        if raw.contains('\\') {
            return reject("backslashes are not allowed");
        }
        if raw.chars().any(char::is_control) {
            return reject("NUL and control characters are not allowed");
        }
        if raw.contains('#') {
            return reject("'#' is not allowed");
        }
        let lower = raw.to_ascii_lowercase();
        if ENCODED_TRAVERSAL.iter().any(|enc| lower.contains(enc)) {
            return reject(
                "percent-encoded '.', '/', '\\' or NUL (double encoding) is not allowed",
            );
        }
        let bytes = raw.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return reject("Windows drive prefixes are not allowed");
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if trimmed.is_empty() {
            return reject("path is empty");
        }
        for segment in trimmed.split('/') {
            match segment {
                "" => return reject("empty path segments ('//') are not allowed"),
                "." | ".." => return reject("'.' and '..' segments are not allowed"),
                s if s.starts_with(RESERVED_PREFIX) => {
                    return reject("segments starting with '.slipway' are reserved")
                }
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return Err(ArtifactError::invalid_path(
                        raw,
                        &format!(
                            "a path segment is {} bytes long; each file or directory name may have at most {MAX_SEGMENT_BYTES} bytes",
                            s.len()
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The path as a string, segments joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the file or directory name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether `name` would be accepted as one segment of an artifact path.
    /// Listings use it to hide anything a client could not address (staging
    /// files, reserved entries).
    pub(crate) fn is_valid_segment(name: &str) -> bool {
        !name.contains('/') && Self::parse(name).is_ok()
    }

    /// The object-store key for this path, relative to the store's root.
    pub(crate) fn to_object_path(&self) -> Result<ObjectPath, ArtifactError> {
        ObjectPath::parse(&self.0)
            .map_err(|_| ArtifactError::invalid_path(&self.0, "not a valid object key"))
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactPath({:?})", self.0)
    }
}

impl AsRef<str> for ArtifactPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ArtifactPath {
    type Err = ArtifactError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a",
            "model/MLmodel",
            "a/b/c.txt",
            "dir/",
            ".hidden",
            "a.b/..c",
            "名前/ファイル",
            "model:v1/x",
            "a b/c",
        ] {
            let parsed = ArtifactPath::parse(p).unwrap();
            assert!(!parsed.as_str().ends_with('/'), "{p}");
        }
        assert_eq!(ArtifactPath::parse("dir/").unwrap().as_str(), "dir");
        assert_eq!(
            ArtifactPath::parse("a/b/c.txt").unwrap().file_name(),
            "c.txt"
        );
    }

    #[test]
    fn rejects_bad_paths_naming_path_and_rule() {
        let long = format!("{}/", "a".repeat(200)).repeat(6);
        let long_name = format!("dir/{}", "n".repeat(MAX_SEGMENT_BYTES + 1));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("/", "absolute"),
            ("/etc/passwd", "absolute"),
            ("..", "'..'"),
            ("../x", "'..'"),
            ("a/../../x", "'..'"),
            ("a/./b", "'.'"),
            (".", "'.'"),
            ("a//b", "empty path segments"),
            ("a\\b", "backslash"),
            ("..\\x", "backslash"),
            ("a\0b", "control"),
            ("a\nb", "control"),
            ("C:/x", "drive"),
            ("c:", "drive"),
            (".slipway-tmp/x", "reserved"),
            ("a/.slipway/x", "reserved"),
            ("%2e%2e/x", "double encoding"),
            ("a%2F..%2fb", "double encoding"),
            ("a%5cb", "double encoding"),
            ("a#1", "'#'"),
            (&long, "1024"),
            (&long_name, "at most 255 bytes"),
        ];
        for (bad, rule) in cases {
            let err = ArtifactPath::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ArtifactError::InvalidPath(_)),
                "{bad:?}: {err:?}"
            );
            assert!(
                msg.contains(rule),
                "{bad:?}: message {msg:?} lacks rule {rule:?}"
            );
            if !bad.is_empty() && !bad.contains(['\0', '\n']) && bad.len() < 100 {
                assert!(
                    msg.contains(*bad),
                    "{bad:?}: message {msg:?} lacks the path"
                );
            }
        }
    }

    #[test]
    fn exactly_max_lengths_are_accepted() {
        let name = "a".repeat(MAX_SEGMENT_BYTES);
        assert!(ArtifactPath::parse(&name).is_ok());
        let mut p = [name.as_str(); 4].join("/");
        p.push('/');
        p.push_str(&"b".repeat(MAX_PATH_BYTES - p.len()));
        assert_eq!(p.len(), MAX_PATH_BYTES);
        assert!(ArtifactPath::parse(&p).is_ok());
    }
}
